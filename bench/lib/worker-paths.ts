/**
 * The bench Worker's own paths (bench/bench-worker.ts), shared with the Node side that loads them.
 * No imports: the Worker bundles this file, and the Node-only helpers must stay out of it.
 */

/** `POST <prefix><route id>`: the route's publish without AMQP (the ceiling). */
export const CEILING_PREFIX = "/__ceiling/";

/** The runtime's baselines: `<prefix>alone` and `<prefix>object-call`. */
export const BASELINE_PREFIX = "/__baseline/";

/**
 * Routes of the bench's routes file whose objects answer without the broker (bench/bench-worker.ts):
 * a publish is "confirmed" at once, a GET gets a canned message. Everything else a request does,
 * the Worker's middleware, access checks, memory accounting, the call with the route's settings
 * and the answer's headers, is the gateway's own: the no-AMQP ceiling of a route. (The object's
 * own handling of a request, counters and rate limit included, is skipped with the broker work.)
 */
export const NO_AMQP_ROUTES = {
  publish: "bench-no-amqp",
  consume: "bench-consume-no-amqp",
  /** The same with a 16 KiB message. */
  consumeLarge: "bench-consume-no-amqp-16k",
} as const;

/** A JSON event of about `bytes` bytes: the bench's payloads, and the no-AMQP consume route's canned message. */
export const payloadOf = (bytes: number): string => {
  const skeleton = JSON.stringify({ event: "order.created", id: "0000000000", data: "" });
  return JSON.stringify({ event: "order.created", id: "0000000000", data: "x".repeat(Math.max(0, bytes - skeleton.length)) });
};
