/**
 * The bench Worker's own paths (bench/bench-worker.ts), shared with the Node side that loads them.
 * No imports: the Worker bundles this file, and the Node-only helpers must stay out of it.
 */

/** `POST <prefix><route id>`: the route's publish without AMQP (the ceiling). */
export const CEILING_PREFIX = "/__ceiling/";

/** The runtime's baselines: `<prefix>alone` and `<prefix>object-call`. */
export const BASELINE_PREFIX = "/__baseline/";
