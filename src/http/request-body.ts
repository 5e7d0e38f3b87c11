import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { GatewayEnv } from "../env";
import { GatewayError } from "./gateway-error";

/** What a route's body needs said about it: its bound, and the answers when it is over it or cannot be read. */
export interface BodyPolicy {
  routeId: string;
  /** Most bytes the body may have. */
  maxBytes: number;
  /** The 413's reason. */
  tooLarge: string;
  /** Prefix of the 400's reason, such as `ack: ` (default none). */
  prefix?: string;
  /** What did not happen: `published`, `settled`. */
  nothing: string;
}

/**
 * The middleware that gets a request's body to its handler, to mount in front of it:
 * 1. a mark that the body is being read, for {@link unreadBodyError};
 * 2. hono's `bodyLimit`: 413 as soon as the body is known to be over `maxBytes`, from
 *    Content-Length when given, else while it streams in, so an oversize body is never buffered
 *    whole and the rest of it never read;
 * 3. the read of the whole body, which the handler then takes from hono's cache (`c.req.text()`,
 *    `c.req.arrayBuffer()`), and the mark taken off.
 *
 * A body ends early when its client goes away mid-upload (workerd's read fails with "Network
 * connection lost."), inside `bodyLimit` for a chunked body, in step 3 otherwise. That is the
 * client's doing, not the gateway's: a 400 (the request that arrived is incomplete, RFC 9112
 * section 8), one warn line in the request log and nothing done, rather than a 500 "internal
 * error" with a stack trace for each abort. Not 408 (the server did not time out waiting) nor
 * nginx's 499 (no HTTP status; hono's types refuse it): a client that is gone reads no answer
 * anyway, and one whose proxy cut its body short reads a true one. hono answers an error where
 * it is thrown (its compose calls `onError` there), so the mark is read by `app.onError`.
 */
export const requestBody = (
  policy: BodyPolicy,
): [MiddlewareHandler<GatewayEnv>, MiddlewareHandler<GatewayEnv>, MiddlewareHandler<GatewayEnv>] => {
  const unread = {
    reason: `${policy.prefix ?? ""}the request body could not be read: the client closed the connection before sending all of it; nothing was ${policy.nothing}`,
    route: policy.routeId,
  };
  const reading: MiddlewareHandler<GatewayEnv> = async (c, next) => {
    c.set("unreadBody", unread);
    await next();
  };
  const limit = bodyLimit({
    maxSize: policy.maxBytes,
    onError: () => {
      throw new GatewayError(413, policy.tooLarge, policy.routeId);
    },
  });
  const read: MiddlewareHandler<GatewayEnv> = async (c, next) => {
    await c.req.arrayBuffer();
    c.set("unreadBody", undefined);
    await next();
  };
  return [reading, limit, read];
};

/**
 * The answer to `error` when it was thrown while the request's body was being read, and is not
 * an answer already (the 413): the 400 of a body its client stopped sending. Else undefined.
 */
export const unreadBodyError = (c: Context<GatewayEnv>, error: Error): GatewayError | undefined => {
  const unread = c.get("unreadBody");
  return unread && !(error instanceof HTTPException) ? new GatewayError(400, unread.reason, unread.route) : undefined;
};
