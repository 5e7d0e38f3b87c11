/**
 * How amqp-client's errors read: their AMQP reply codes and reasons, which the route side turns
 * into failures of the contract's kinds (`src/contract/failures.ts`).
 */
import { NEGATIVE_CONFIRM, RouteFailureError, type RouteFailure } from "../contract/failures";

/** The AMQP reply code at the end of amqp-client's channel/connection close messages, e.g. `(404)`. */
export const replyCodeOf = (error: unknown): number | undefined => {
  const match = /\((\d{3})\)$/.exec(error instanceof Error ? error.message : "");
  return match ? Number(match[1]) : undefined;
};

/**
 * Sorts an error from amqp-client: a channel closed by the broker (with its reply code) is the
 * broker refusing this operation; anything else means the connection itself went away. The
 * broker's reason quotes names that may come from a request, line breaks included: any
 * character may stand between the prefix and the code.
 */
export const isChannelError = (error: unknown): boolean =>
  error instanceof Error && /^channel \d+ closed: [\s\S]*\(\d{3}\)$/.test(error.message);

export { NEGATIVE_CONFIRM };

/** The broker's reply text without amqp-client's "channel 1 closed:" prefix. */
export const brokerReason = (error: unknown): string => {
  const text = error instanceof Error ? error.message : String(error);
  if (text === "Message rejected") return NEGATIVE_CONFIRM;
  return text.replace(/^(channel \d+|connection) closed: /, "");
};

/**
 * Every failure as a {@link RouteFailure}: errors thrown across RPC lose their fields, and a
 * stack trace must never reach a client.
 */
export const asFailure = (error: unknown): RouteFailure => {
  if (error instanceof RouteFailureError) return error.toFailure();
  console.error("amqp route object: unexpected error", error);
  return { ok: false, kind: "internal", message: "internal error in the gateway; the operation was not carried out" };
};
