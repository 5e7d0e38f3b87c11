import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { GatewayEnv } from "../env";
import { SMALL_BYTES, type Reservation } from "../memory-budget";
import { GatewayError } from "./gateway-error";
import { admissionFor } from "./access/admission";
import { holdMemory, memoryRefusal } from "./request-memory";
import type { RouteConfig } from "../config/schema";

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
  /** The route whose `rate_limit` names the caller whose share of the isolate's memory the body takes. */
  route: Pick<RouteConfig, "rate_limit">;
  /** Memory the body takes while the request runs, per byte of it (a batch's elements are copies: 2). */
  expansion?: number;
}

/**
 * The middleware that gets a request's body to its handler, to mount in front of it:
 * 1. a mark that the body is being read, for {@link unreadBodyError};
 * 2. room for the body in the isolate's memory, held until the request is answered: from its
 *    Content-Length before anything is read (503 with Retry-After when it does not fit), or, for
 *    a body sent in chunks, grown chunk by chunk as it streams in (503 once it no longer fits);
 * 3. hono's `bodyLimit`: 413 as soon as the body is known to be over `maxBytes`, from
 *    Content-Length when given, else while it streams in, so an oversize body is never buffered
 *    whole and the rest of it never read;
 * 4. the read of the whole body, which the handler then takes from hono's cache (`c.req.text()`,
 *    `c.req.arrayBuffer()`), and the mark taken off.
 *
 * A body ends early when its client goes away mid-upload (workerd's read fails with "Network
 * connection lost."), inside `bodyLimit` for a chunked body, in step 4 otherwise. That is the
 * client's doing, not the gateway's: a 400 (the request that arrived is incomplete, RFC 9112
 * section 8), one warn line in the request log and nothing done, rather than a 500 "internal
 * error" with a stack trace for each abort. Not 408 (the server did not time out waiting) nor
 * nginx's 499 (no HTTP status; hono's types refuse it): a client that is gone reads no answer
 * anyway, and one whose proxy cut its body short reads a true one. hono answers an error where
 * it is thrown (its compose calls `onError` there), so the mark is read by `app.onError`.
 */
export const requestBody = (
  policy: BodyPolicy,
): [MiddlewareHandler<GatewayEnv>, MiddlewareHandler<GatewayEnv>, MiddlewareHandler<GatewayEnv>, MiddlewareHandler<GatewayEnv>] => {
  const unread = {
    reason: `${policy.prefix ?? ""}the request body could not be read: the client closed the connection before sending all of it; nothing was ${policy.nothing}`,
    route: policy.routeId,
  };
  const expansion = policy.expansion ?? 1;
  const what = `nothing was ${policy.nothing}`;
  const hold: MiddlewareHandler<GatewayEnv> = async (c, next) => {
    const declared = Number(c.req.header("content-length"));
    const known = c.req.header("content-length") !== undefined && Number.isSafeInteger(declared) && declared >= 0;
    const caller = admissionFor(c, policy.route)?.key;
    // Over the bound, bodyLimit answers 413 without reading it: nothing to hold for it. A small
    // bound (a settle's) is held whole; a larger one, sent in chunks, is counted as it comes.
    const small = policy.maxBytes <= SMALL_BYTES;
    const upFront = known ? Math.min(declared, policy.maxBytes + 1) : small ? policy.maxBytes : 0;
    const held = await holdMemory(policy.routeId, "publish", upFront * expansion, caller, what);
    try {
      // Only a body of unknown length is touched here: on Node, reading `body` turns
      // @hono/node-server's light request into a whole Request, which costs a publish ~10% of
      // its CPU; left alone, `arrayBuffer()` reads the socket's stream directly.
      const body = !known && !small ? (c.req.raw.body as ReadableStream<Uint8Array> | null) : null;
      if (body) {
        c.req.raw = new Request(c.req.raw, {
          body: counted(body, held, expansion, () => c.set("unreadBody", memoryRefusal(policy.routeId, what))),
          duplex: "half",
        } as RequestInit);
      }
      await next();
    } finally {
      held.release();
    }
  };
  const reading: MiddlewareHandler<GatewayEnv> = async (c, next) => {
    c.set("unreadBody", unread);
    await next();
  };
  const streamed = bodyLimit({
    maxSize: policy.maxBytes,
    onError: () => {
      throw new GatewayError(413, policy.tooLarge, policy.routeId);
    },
  });
  // A body of declared length within the bound is let through without asking for
  // `c.req.raw.body` (see `hold`). Over it, or sent in chunks, bodyLimit judges it: it asks for
  // the body, and on Node that body's stream is what stops the server from reading the rest of
  // a refused upload (@hono/node-server's drain cap); left untouched, Node would read it all.
  const limit: MiddlewareHandler<GatewayEnv> = async (c, next) => {
    const length = c.req.header("content-length");
    const withinBound = length !== undefined && c.req.header("transfer-encoding") === undefined && parseInt(length, 10) <= policy.maxBytes;
    return withinBound ? next() : streamed(c, next);
  };
  const read: MiddlewareHandler<GatewayEnv> = async (c, next) => {
    await c.req.arrayBuffer();
    c.set("unreadBody", undefined);
    await next();
  };
  return [reading, hold, limit, read];
};

/**
 * `body`, growing `held` by each chunk (times `expansion`) as it is read; a chunk that no longer
 * fits ends the body with an error, after `refused` has marked the answer (a 503: the client may
 * retry) for {@link unreadBodyError}.
 */
const counted = (
  body: ReadableStream<Uint8Array>,
  held: Reservation,
  expansion: number,
  refused: () => void,
): ReadableStream<Uint8Array> => {
  let bytes = 0;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>(
      {
        transform(chunk, controller) {
          bytes += chunk.byteLength;
          if (!held.grow(bytes * expansion)) {
            refused();
            controller.error(new Error("no room for the body in memory"));
            return;
          }
          controller.enqueue(chunk);
        },
      },
      // At most one chunk read ahead of the reader. (Not none: a pipe into a writable side that
      // may hold nothing never starts in Deno, which waits for the writer to be ready first.)
      { highWaterMark: 1 },
      { highWaterMark: 0 },
    ),
  );
};

/**
 * The answer to `error` when it was thrown while the request's body was being read, and is not
 * an answer already (the 413): the 400 of a body its client stopped sending. Else undefined.
 */
export const unreadBodyError = (c: Context<GatewayEnv>, error: Error): GatewayError | undefined => {
  const unread = c.get("unreadBody");
  if (!unread || error instanceof HTTPException) return undefined;
  return unread instanceof HTTPException ? (unread as GatewayError) : new GatewayError(400, unread.reason, unread.route);
};
