/**
 * Why a route's broker operation failed. The Durable Object returns these as plain data (thrown
 * errors lose their fields crossing RPC); the Worker turns each kind into one HTTP status in
 * `src/http/gateway-error.ts`.
 */
export type FailureKind =
  /** The broker could not be reached, or the connection is down and reconnecting; nothing was done, a retry may work. */
  | "unavailable"
  /** The broker refused the connection because of the route's settings (login refused, no such vhost); a retry will not help. */
  | "misconfigured"
  /** The message cannot be published as it is (its properties do not fit in a frame); nothing was sent. */
  | "invalid_message"
  /** The message is larger than the broker takes (its `max_message_size`); nothing was published. */
  | "too_large"
  /** The consumer's queue does not exist. */
  | "queue_not_found"
  /** The broker refused the operation (channel error, negative confirm). */
  | "broker_error"
  /** A mandatory message that no queue took; nothing was enqueued. */
  | "unroutable"
  /** No answer from the broker (in time, or before the connection dropped); for a publish the outcome is unknown. */
  | "no_answer"
  /** The caller went over the route's `rate_limit`; nothing reached the broker. */
  | "rate_limited"
  /** The `Idempotency-Key` was used for a different request within the window; nothing was published. */
  | "idempotency_conflict"
  /** The gateway itself failed; the message was not published or consumed. */
  | "internal";

export interface RouteFailure {
  ok: false;
  kind: FailureKind;
  /** Human-readable reason, safe to show to the client (never a stack trace, never a password). */
  message: string;
  /** For "unavailable": seconds until the route tries the broker again; for "rate_limited", until the caller may (the answer's `Retry-After`). */
  retryAfterS?: number;
}

/** Thrown inside the Durable Object, caught at its RPC boundary and returned as a {@link RouteFailure}. */
export class RouteFailureError extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
    readonly retryAfterS?: number,
  ) {
    super(message);
    this.name = "RouteFailureError";
  }

  toFailure(): RouteFailure {
    const failure: RouteFailure = { ok: false, kind: this.kind, message: this.message };
    if (this.retryAfterS !== undefined) failure.retryAfterS = this.retryAfterS;
    return failure;
  }
}

/** The HTTP status each kind of failure is answered with (`src/http/gateway-error.ts`), and counted under in `/amqp/metrics`. */
export const FAILURE_STATUS: Record<FailureKind, number> = {
  unavailable: 503,
  misconfigured: 502,
  invalid_message: 400,
  too_large: 413,
  queue_not_found: 404,
  broker_error: 502,
  unroutable: 422,
  no_answer: 504,
  rate_limited: 429,
  idempotency_conflict: 422,
  internal: 500,
};

/** `2xx` for a success, else the class of the failure's status (`4xx`, `5xx`). */
export const statusClass = (failure: { kind: FailureKind } | undefined): string =>
  failure === undefined ? "2xx" : `${String(FAILURE_STATUS[failure.kind]).charAt(0)}xx`;

/** How a broker's refusal of a publish with `basic.nack` is named in a failure's message (the management API answers it in the broker's words). */
export const NEGATIVE_CONFIRM = "negative confirm (basic.nack)";
