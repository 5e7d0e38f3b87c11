import type { Context } from "hono";
import type { ReplyOutcome } from "../contract/route-calls";
import type { ConsumedMessage, OutgoingMessage } from "../contract/messages";
import type { ReplyState } from "../contract/route-calls";
import type { PublishingRoute } from "../config/schema";
import type { GatewayEnv } from "../env";
import type { RouteFailure } from "../contract/failures";
import { admissionFor, chargeCaller, shardFor } from "./access/admission";
import { failureError, GatewayError } from "./gateway-error";
import { shardedId, parseShardedId } from "./sharded-ids";
import { messageHeaders } from "../contract/message-headers";
import { routeClient } from "./route-client";
import type { PublishingTarget } from "../contract/route-settings";

/**
 * Request/reply (`producer.reply`): publishes the request with direct reply-to and a fresh
 * correlation id `<shard>.<uuid>`, and answers 200 with the reply's body, content type and
 * properties as headers; 504 when none came in `reply_timeout_ms` (the request was published).
 * With `Prefer: respond-async`: 202 once the request is confirmed, with
 * `Location: <path>/replies/<id>` to fetch the reply from.
 */
export const requestReply = async (
  c: Context<GatewayEnv>,
  route: PublishingRoute,
  target: PublishingTarget,
  message: OutgoingMessage,
): Promise<Response> => {
  for (const header of ["x-correlation-id", "x-reply-to"]) {
    if (c.req.header(header) !== undefined) {
      throw new GatewayError(
        400,
        `header ${header}: a reply route sets reply_to and correlation_id itself; nothing was published`,
        route.id,
      );
    }
  }
  const admission = admissionFor(c, route);
  const shard = shardFor(target, admission);
  const id = shardedId(shard, crypto.randomUUID());
  const async = prefersAsync(c.req.header("prefer"));
  const outcome = await routeClient(c.env, target, shard).call("publish", async (object): Promise<ReplyOutcome> =>
    object.request({ route: target, message, id, async, ...(admission ? { admission } : {}) }),
  );
  if (!outcome.ok) throw failureError(outcome, target.id);
  if (!outcome.reply) {
    // The schema allows reply routes only on paths without wildcards or optional parts, so the
    // request's own path is the route's, and `<path>/replies/:reply_id` matches below it.
    const location = `${c.req.path.replace(/\/+$/, "")}/replies/${id}`;
    c.header("Location", location);
    c.header("Preference-Applied", "respond-async");
    return c.json({ status: "accepted", id, location }, 202);
  }
  return replyResponse(outcome.reply);
};

/**
 * `GET <path>/replies/<id>`: 200 with the reply, 202 while it is pending, the failure's status
 * once it failed, 404 once it has expired; 429 for a caller over the route's `rate_limit`.
 */
export const fetchReply = async (c: Context<GatewayEnv>, route: PublishingRoute): Promise<Response> => {
  const id = c.req.param("reply_id") ?? "";
  const parsed = parseShardedId(id, route.amqp.shards);
  const unknown = () => new GatewayError(404, `no reply ${id} here: it has expired, or was never requested on this route`, route.id);
  if (!parsed) throw unknown();
  const target: PublishingTarget = { id: route.id, amqp: route.amqp };
  // The route's rate_limit, charged once, in the object of the caller's own shard: the one its
  // request went to, which the id names, unless the id is another caller's (then a charge alone).
  const admission = admissionFor(c, route);
  const home = admission ? shardFor(target, admission) : parsed.shard;
  if (admission && home !== parsed.shard) await chargeCaller(c, target, admission);
  const state = await routeClient(c.env, target, parsed.shard).call("consume", async (object): Promise<ReplyState | RouteFailure> =>
    object.reply(id, home === parsed.shard ? admission : undefined),
  );
  if ("ok" in state) throw failureError(state, route.id);
  switch (state.status) {
    case "unknown":
      throw unknown();
    case "pending":
      return c.json({ status: "pending", id }, 202, { "Retry-After": "1" });
    case "failed":
      throw failureError(state.failure, route.id);
    case "arrived":
      return replyResponse(state.message);
  }
};

/** The reply as the answer: its body, its content type and properties as headers. */
const replyResponse = (reply: ConsumedMessage): Response => {
  const headers = messageHeaders(reply, { reply: true });
  headers.set("Content-Length", String(reply.body.byteLength));
  return new Response(reply.body, { status: 200, headers });
};

/** Whether `Prefer` asks for `respond-async` (RFC 7240: comma-separated preferences, each `token[=value][; params]`). */
const prefersAsync = (prefer: string | undefined): boolean =>
  (prefer ?? "").split(",").some((preference) => {
    const [token = "", value] = (preference.split(";")[0] ?? "").split("=");
    return token.trim().toLowerCase() === "respond-async" && value === undefined;
  });
