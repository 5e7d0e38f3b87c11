import type { Context, Hono } from "hono";
import type { ConsumingRoute } from "../config/schema";
import type { GatewayEnv } from "../env";
import { adminAuth } from "./admin-auth";
import { failureError, GatewayError } from "./gateway-error";
import { routeClient } from "./route-client";
import { requestBody } from "./request-body";
import { messageJson } from "./message-json";
import { adminClientOnly } from "./push-handlers";
import { MAX_PEEKED, MAX_REDRIVEN } from "../contract/route-calls";

/** Largest redrive body read: `{"max": N}` with room to spare. */
const MAX_REDRIVE_BODY_BYTES = 4096;

/**
 * A route's dead letters (`consumer.dead_letter_queue`), behind the admin token, which must be set
 * (a dead letter's body is a producer's data): `GET <path>/dead?max=N` shows up to N of them (1 to
 * 100, default 10) as a `?max` answer shows messages, leaving them where they are;
 * `POST <path>/redrive` with `{"max": N}` (1 to 10000) moves up to N back to the route's queue,
 * each confirmed there before it leaves the dead letters, and answers `{"moved": M}`. The dead
 * letters are one queue whatever the route's shards: its first shard serves both.
 */
export const mountDeadLetters = (app: Hono<GatewayEnv>, route: ConsumingRoute): void => {
  const base = route.path.replace(/\/+$/, "");
  const named = (c: Context<GatewayEnv>, next: () => Promise<void>) => {
    c.set("routeId", route.id);
    adminClientOnly(c, route.id, {
      noToken: "a route's dead letters are served only with ADMIN_TOKEN set (they hold producers' data)",
      fromPage: "dead letters are read and redriven by an admin client, not from a web page",
    });
    return next();
  };
  app.on(["GET"], `${base}/dead`, named, adminAuth, async (c) => {
    if (c.req.method === "HEAD")
      throw new GatewayError(405, "HEAD is not served on dead letters; use GET", route.id, { Allow: "GET, OPTIONS" });
    const max = countParameter(c.req.query("max"), 10, MAX_PEEKED, route.id, "dead: max");
    const answer = await routeClient(c.env, route, 0).call("consume", (object) => object.deadLetters(route, max));
    if (!answer.ok) throw failureError(answer, route.id);
    return c.json({ messages: answer.messages.map((message) => messageJson({ message }, (id) => id)) });
  });
  app.on(
    ["POST"],
    `${base}/redrive`,
    named,
    adminAuth,
    ...requestBody({
      routeId: route.id,
      route,
      maxBytes: MAX_REDRIVE_BODY_BYTES,
      tooLarge: `redrive: the body is larger than ${MAX_REDRIVE_BODY_BYTES} bytes; nothing was moved`,
      prefix: "redrive: ",
      nothing: "moved",
    }),
    async (c) => {
      const max = redriveMax(await c.req.text(), route.id);
      const answer = await routeClient(c.env, route, 0).call("settle", (object) => object.redrive(route, max));
      if (!answer.ok) throw failureError(answer, route.id);
      return c.json({ moved: answer.moved, ...(answer.error ? { error: answer.error } : {}) });
    },
  );
  for (const [path, allow] of [
    [`${base}/dead`, "GET, OPTIONS"],
    [`${base}/redrive`, "POST, OPTIONS"],
  ] as const) {
    app.options(path, (c) => c.body(null, 204, { Allow: allow }));
    app.all(path, (c) => {
      throw new GatewayError(405, `${c.req.method} is not served here`, route.id, { Allow: allow });
    });
  }
};

/** `{"max": N}`, N from 1 to {@link MAX_REDRIVEN}; a 400 otherwise. */
const redriveMax = (text: string, routeId: string): number => {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new GatewayError(400, 'redrive: the body must be JSON: {"max": N}; nothing was moved', routeId);
  }
  const max = (body as { max?: unknown } | null)?.max;
  if (typeof max !== "number")
    throw new GatewayError(400, `redrive: max must be a whole number from 1 to ${MAX_REDRIVEN}; nothing was moved`, routeId);
  return countParameter(String(max), undefined, MAX_REDRIVEN, routeId, "redrive: max");
};

/** A whole number from 1 to `most`, or `fallback` when absent; a 400 naming `what` otherwise. */
const countParameter = (text: string | undefined, fallback: number | undefined, most: number, routeId: string, what: string): number => {
  if (text === undefined && fallback !== undefined) return fallback;
  const count = Number(text);
  if (text === undefined || !/^[0-9]+$/.test(text) || count < 1 || count > most) {
    throw new GatewayError(400, `${what} must be a whole number from 1 to ${most}`, routeId);
  }
  return count;
};
