import type { Context } from "hono";
import type { ConsumeOutcome, ConsumeRequest, ConsumingTarget, RouteTarget, SettleOutcome } from "../amqp/route-messages";
import type { GatewayEnv } from "../env";
import { runBeyondResponse } from "./beyond-response";
import { GatewayError, RETRY_AFTER_SECONDS } from "./gateway-error";
import { routeObject, shardName } from "./route-target";
import { SharedCallTimeout, SharedObjectCalls } from "./shared-object-calls";

/**
 * The calls to a route's object that concurrent requests share (src/http/shared-object-calls.ts):
 * plain takes (one message, no `?wait`) and settles. Per isolate, like the requests that share
 * them. Batches (`?max=N`), long-polls and streams call alone: an item is answered only when its
 * whole call is, so one slow or large take would hold up the others.
 */
const takes = new SharedObjectCalls<[ConsumingTarget, ConsumeRequest], ConsumeOutcome>();
const settles = new SharedObjectCalls<[number[], "ack" | "requeue"], SettleOutcome>();

/**
 * How long a request waits for room to send its item, and then for its answer: longer than
 * anything the object does for a take or a settle (a connect, then the broker's answer, each
 * bounded by the route's own timeouts), so only when a call hung; and never past 25 s, within the
 * 30 s that the runtime lets the sending request's `waitUntil` run after its client went away.
 */
const sharedCallDeadline = (target: RouteTarget): number =>
  Math.min(target.amqp.connect_timeout_ms + 2 * target.amqp.operation_timeout_ms + 10_000, 25_000);

/** The object's `consume`, in one call with other requests' plain takes from the same shard. */
export const consumeShared = async (
  c: Context<GatewayEnv>,
  target: ConsumingTarget,
  shard: number,
  request: ConsumeRequest,
): Promise<ConsumeOutcome> => {
  const alone = () => routeObject(c.env, target, shard).consume(target, request);
  if (request.max !== 1 || request.waitMs) return alone();
  const outcome = await withTimeoutAnswered(target.id, () =>
    takes.call(
      shardName(target.id, shard),
      [target, request],
      (items) => routeObject(c.env, target, shard).consumeEach(items),
      (call) => runBeyondResponse(c, call),
      sharedCallDeadline(target),
    ),
  );
  // Did not fit beside the others' messages (given back): again alone, as the same request (counted and admitted once).
  return outcome.ok && outcome.takeAlone ? routeObject(c.env, target, shard).consume(target, { ...request, continued: true }) : outcome;
};

/** The object's `settle`, in one call with other requests' settles on the same shard. */
export const settleShared = (
  c: Context<GatewayEnv>,
  target: RouteTarget,
  shard: number,
  tokens: number[],
  outcome: "ack" | "requeue",
): Promise<SettleOutcome> =>
  settles.call(
    shardName(target.id, shard),
    [tokens, outcome],
    (items) => routeObject(c.env, target, shard).settleEach(items),
    (call) => runBeyondResponse(c, call),
    sharedCallDeadline(target),
  );

/** A take without an answer in time: 503 when it was never sent (nothing was taken), 504 when the object may have taken a message. */
const withTimeoutAnswered = async <T>(routeId: string, call: () => Promise<T>): Promise<T> => {
  try {
    return await call();
  } catch (error) {
    if (!(error instanceof SharedCallTimeout)) throw error;
    if (!error.sent)
      throw new GatewayError(503, "the route is too busy to take the request now; retry", routeId, {
        "Retry-After": String(RETRY_AFTER_SECONDS),
      });
    throw new GatewayError(
      504,
      `the route's connection holder did not answer within ${error.deadlineMs} ms; a message may have been taken for this request`,
      routeId,
    );
  }
};
