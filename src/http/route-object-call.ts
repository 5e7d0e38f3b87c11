import { GatewayError, RETRY_AFTER_SECONDS } from "./gateway-error";

/** What a call to a route's object does, which decides what its failure as a call becomes. */
export type RouteOperation = "publish" | "consume" | "settle";

/** What workerd puts on an error thrown by a Durable Object call that failed as a call. */
interface DurableObjectCallError {
  /** The call may succeed if made again with a fresh stub (the object was reset, e.g. by a deploy). */
  retryable?: boolean;
  /** The object has more work queued than it can take; the request never reached it. */
  overloaded?: boolean;
}

/**
 * Calls the route's Durable Object. `call` must get a fresh stub each time it runs.
 *
 * If the call itself fails (the object was reset by a deploy or eviction, or is overloaded):
 * - an overloaded object never saw the request: 503 with Retry-After;
 * - a consume is tried once more with a fresh stub, when workerd says that may work: an
 *   unacknowledged delivery goes back to the queue with the reset connection, so retrying loses
 *   nothing;
 * - a settle of leases is not retried either (some may have been settled): 503;
 * - a publish is never retried: the object may have published before it was reset, so the
 *   outcome is unknown (504), and the client decides whether a duplicate is acceptable.
 */
export const callRouteObject = async <T>(routeId: string, operation: RouteOperation, call: () => Promise<T>): Promise<T> => {
  let error: unknown;
  try {
    return await call();
  } catch (first) {
    error = first;
  }
  const firstError = error as DurableObjectCallError;
  if (operation === "consume" && firstError.retryable && !firstError.overloaded) {
    try {
      return await call();
    } catch (second) {
      error = second;
    }
  }
  console.error(`route ${routeId}: Durable Object call failed`, error);
  const { overloaded } = error as DurableObjectCallError;
  if (operation === "publish" && !overloaded) {
    throw new GatewayError(
      504,
      "the route's connection holder was reset during the publish; the message may or may not have been enqueued",
      routeId,
    );
  }
  throw new GatewayError(
    503,
    overloaded ? "the route is overloaded; retry later" : "the route's connection holder is restarting; retry",
    routeId,
    { "Retry-After": String(RETRY_AFTER_SECONDS) },
  );
};
