import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { FAILURE_STATUS, type RouteFailure } from "../contract/failures";

/**
 * The one error type of a request: an HTTP status, a reason the client may read, the route it
 * concerns, and any headers (`Allow`, `Retry-After`). `app.onError` turns it into
 * `{"error": "...", "route": "..."}`.
 */
export class GatewayError extends HTTPException {
  constructor(
    status: ContentfulStatusCode,
    message: string,
    readonly route: string | null,
    readonly headers: Record<string, string> = {},
    /** More fields for the JSON body, such as which messages of a batch failed. */
    readonly details: Record<string, unknown> = {},
  ) {
    super(status, { message });
  }

  /** The JSON body of the answer. */
  body(): Record<string, unknown> {
    return { error: this.message, route: this.route, ...this.details };
  }

  override getResponse(): Response {
    return Response.json(this.body(), { status: this.status, headers: this.headers });
  }
}

/** Seconds a client should wait before retrying a request refused as unavailable. */
export const RETRY_AFTER_SECONDS = 1;

/** The answer to a failed broker operation on `route`; `message` replaces the failure's own (a batch's summary). */
export const failureError = (
  failure: RouteFailure,
  route: string,
  details: Record<string, unknown> = {},
  message = failure.message,
): GatewayError => {
  const headers =
    failure.kind === "unavailable" || failure.kind === "rate_limited"
      ? { "Retry-After": String(failure.retryAfterS ?? RETRY_AFTER_SECONDS) }
      : undefined;
  return new GatewayError(FAILURE_STATUS[failure.kind] as ContentfulStatusCode, message, route, headers, details);
};
