/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): a request's `traceparent` and
 * `tracestate` travel with the message it publishes, in its headers table under the same names
 * (where OpenTelemetry's AMQP instrumentations read them), and come back as response headers with
 * a consumed or pushed message.
 */

export const TRACEPARENT = "traceparent";
export const TRACESTATE = "tracestate";

/** A traceparent the gateway passes on: the header's value, and its trace id (for the log). */
export interface TraceContext {
  traceparent: string;
  tracestate?: string;
  traceId: string;
}

const ZERO_TRACE_ID = "0".repeat(32);
const ZERO_PARENT_ID = "0".repeat(16);

/**
 * A valid `traceparent` as the gateway passes it on, or undefined: `version-traceid-parentid-flags`
 * in lower-case hex, version not `ff`, ids not all zeros. Version 00 has exactly those four fields;
 * a later version may add more after a dash (the spec's rule for versions it does not know), which
 * are dropped: what is passed on is always those 55 characters, so no producer's or caller's value
 * can carry anything else into a header.
 */
export const canonicalTraceparent = (value: string | undefined): string | undefined => {
  if (value === undefined) return undefined;
  const match = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-|$)/.exec(value.trim());
  if (!match) return undefined;
  const [head, version, traceId, parentId, , rest] = match;
  if (version === "ff" || (version === "00" && rest === "-")) return undefined;
  if (traceId === ZERO_TRACE_ID || parentId === ZERO_PARENT_ID) return undefined;
  return head.slice(0, 55);
};

/** The trace id of a valid `traceparent` (see {@link canonicalTraceparent}), else undefined. */
export const traceIdOf = (value: string | undefined): string | undefined => canonicalTraceparent(value)?.slice(3, 35);

/** A `tracestate` worth passing on: at most 512 characters of list members, printable ASCII. */
export const isPassableTracestate = (value: string | undefined): value is string =>
  value !== undefined && value.length > 0 && value.length <= 512 && /^[\x20-\x7e]+$/.test(value);

/**
 * The trace context of a request: its own `traceparent` (and `tracestate`) when valid; else a new
 * trace the gateway starts, sampled so that the services downstream record it (its `tracestate`,
 * which belongs to the trace it came with, is dropped).
 */
export const traceContextOf = (traceparent: string | undefined, tracestate: string | undefined): TraceContext => {
  const canonical = canonicalTraceparent(traceparent);
  if (canonical !== undefined) {
    return {
      traceparent: canonical,
      traceId: canonical.slice(3, 35),
      ...(isPassableTracestate(tracestate) ? { tracestate: tracestate.trim() } : {}),
    };
  }
  const id = randomHex(16);
  return { traceparent: `00-${id}-${randomHex(8)}-01`, traceId: id };
};

/** Two hex digits per byte value, so that a new trace costs a table lookup per byte (one per request without a traceparent). */
const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"));

const randomHex = (bytes: number): string => {
  const random = crypto.getRandomValues(new Uint8Array(bytes));
  // All zeros is invalid; at 2^-64 and below, one byte set makes sure.
  if (random.every((byte) => byte === 0)) random[0] = 1;
  let hex = "";
  for (const byte of random) hex += HEX[byte] ?? "00";
  return hex;
};
