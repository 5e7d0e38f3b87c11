/**
 * The `consume` section's shapes and names, shared by bench/lib/consume-modes.ts, which measures
 * them, and bench/lib/report.ts, which judges them (without loading the gateway's runner).
 */

/** `?max=` of the batch runs, and the prefetch of amqp-client's consumer they are compared with. */
export const BATCH = 50;
/** Concurrent clients of the gateway's batch runs; the target is judged at the last. */
export const BATCH_CLIENTS = [1, 4] as const;
/** Concurrent SSE clients. */
export const SSE_CLIENTS = [1, 16] as const;
/** `?wait=` of the long-poll samples, in seconds. */
export const WAIT_S = 10;

/** The variants' names, as they appear in the report's rows. */
export const VARIANTS = {
  batchGateway: `gateway GET ?max=${BATCH}`,
  batchDirect: `amqp-client basic.consume, prefetch ${BATCH}, ack each`,
  waitGateway: `gateway GET ?wait=${WAIT_S}`,
  waitDirect: "amqp-client basic.consume (broker alone)",
  sse: "gateway SSE",
} as const;
