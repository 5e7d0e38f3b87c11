import type { Context } from "hono";
import type { LeaseResult, LeaseSettlement } from "../contract/route-calls";
import type { ConsumingRoute } from "../config/schema";
import type { GatewayEnv } from "../env";
import type { Admission } from "../contract/route-calls";
import type { RouteFailure } from "../contract/failures";
import { admissionFor, shardFor } from "./access/admission";
import { failureError, GatewayError } from "./gateway-error";
import { parseShardedId } from "./sharded-ids";
import { routeClient } from "./route-client";
import { requestBody } from "./request-body";
import type { ConsumingTarget } from "../contract/route-settings";
import { MAX_LEASE_MS } from "../config/schema";

/** What a lease request does: settle (`ack`, `nack`) or `extend`. */
export type LeaseVerb = "ack" | "nack" | "extend";

/** Longest delay of a nack: 12 hours. */
export const MAX_NACK_DELAY_S = 12 * 60 * 60;

/** Most lease ids one settle request may carry. */
const MAX_LEASE_IDS = 1000;
/** Largest settle body read: 1000 ids of 39 characters, with room to spare. */
const MAX_SETTLE_BODY_BYTES = 64 * 1024;

/**
 * The settle body, mounted before {@link settleLeases}: 413 as soon as it is known to be larger
 * than 64 KiB, so that a chunked body of any size costs at most this much to refuse (read whole,
 * one of a gigabyte grew workerd by 2 GB), and a 400 when the client went away mid-upload.
 */
export const settleBody = (route: ConsumingRoute, verb: LeaseVerb) =>
  requestBody({
    routeId: route.id,
    route,
    maxBytes: MAX_SETTLE_BODY_BYTES,
    tooLarge: `${verb}: the body is larger than ${MAX_SETTLE_BODY_BYTES} bytes; nothing was ${verb === "extend" ? "extended" : "settled"}`,
    prefix: `${verb}: `,
    nothing: "settled",
  });

/**
 * `POST <path>/ack` and `POST <path>/nack` on a route with `ack: lease`: settles the leases named
 * in `{"lease_ids": [...]}` (nack also takes `"requeue": true|false`; false dead-letters the
 * message when its queue has a dead-letter exchange, else drops it). Answers one result per id,
 * in order; the status is 200 when every id was settled, the ids' own status when they all
 * share one (404 unknown, 409 settled before, 410 already back in the queue), else 207. A caller
 * over the route's `rate_limit` gets 429 and nothing is settled.
 *
 * A nack with `"delay_s": S` puts the message back S seconds from now, held by the broker
 * meanwhile; its result says when (`returns_at`), or 503 when the broker did not take the delay
 * (the lease is still held). A message delivered `max_deliveries` times is dead-lettered instead
 * (`dead_lettered`).
 *
 * `POST <path>/extend` with `{"lease_ids": [...], "lease_timeout_ms": T}` sets each lease to
 * expire T from now (1 to 12 h): 200 with `expires_at` per id, or the same 404, 409 and 410.
 */
export const settleLeases = async (c: Context<GatewayEnv>, route: ConsumingRoute, verb: LeaseVerb): Promise<Response> => {
  const { ids, requeue, extendMs, delayS } = await settleRequest(c, route.id, verb);
  const how: LeaseSettlement =
    verb === "extend" ? { extendMs: extendMs ?? 0 } : verb === "ack" ? "ack" : !requeue ? "reject" : delayS ? { delayS } : "requeue";
  const target: ConsumingTarget = { id: route.id, amqp: route.amqp };
  const byShard = new Map<number, Array<{ index: number; id: string }>>();
  const results: LeaseResult[] = ids.map((leaseId) => ({
    lease_id: leaseId,
    status: 404,
    outcome: "unknown",
    error: "not a lease id of this route",
  }));
  ids.forEach((leaseId, index) => {
    const parsed = parseShardedId(leaseId, route.amqp.shards);
    if (!parsed) return;
    byShard.set(parsed.shard, [...(byShard.get(parsed.shard) ?? []), { index, id: parsed.id }]);
  });
  const settleAt = async (shard: number, entries: Array<{ index: number; id: string }>, admission?: Admission) => {
    const settled = await routeClient(c.env, target, shard).call("settle", async (object): Promise<LeaseResult[] | RouteFailure> =>
      object.settleLeases(
        entries.map((entry) => entry.id),
        how,
        admission,
      ),
    );
    if (!Array.isArray(settled)) throw failureError(settled, route.id);
    settled.forEach((result, position) => {
      const entry = entries[position];
      // Each result names the id as the client sent it.
      if (entry) results[entry.index] = { ...result, lease_id: ids[entry.index] ?? result.lease_id };
    });
  };
  // The route's rate_limit, charged once, in the object of the caller's own shard (where its
  // consumes went, so where its leases are), before anything is settled: a 429 there settles
  // nothing anywhere. Its ids there go with the charge; with none there, it is a charge alone.
  const admission = admissionFor(c, route);
  if (admission) {
    const home = shardFor(target, admission);
    await settleAt(home, byShard.get(home) ?? [], admission);
    byShard.delete(home);
  }
  await Promise.all([...byShard].map(([shard, entries]) => settleAt(shard, entries)));
  const statuses = new Set(results.map((result) => result.status));
  const [only] = statuses;
  const status = statuses.size === 1 && only !== undefined ? only : 207;
  return c.json({ results }, status);
};

/** The body of a settle request, or 400 saying what is wrong with it. */
const settleRequest = async (
  c: Context<GatewayEnv>,
  routeId: string,
  verb: LeaseVerb,
): Promise<{ ids: string[]; requeue: boolean; extendMs?: number; delayS?: number }> => {
  const invalid = (reason: string) => new GatewayError(400, `${verb}: ${reason}`, routeId);
  // Read whole, within its bound, by settleBody, mounted before this.
  const text = await c.req.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw invalid('the body must be JSON: {"lease_ids": ["..."]}');
  }
  const {
    lease_ids: ids,
    requeue = true,
    lease_timeout_ms: extendMs,
    delay_s: delayS,
  } = (body ?? {}) as { lease_ids?: unknown; requeue?: unknown; lease_timeout_ms?: unknown; delay_s?: unknown };
  if (!Array.isArray(ids) || ids.length === 0 || !ids.every((id) => typeof id === "string")) {
    throw invalid("lease_ids must be a non-empty list of lease ids");
  }
  if (ids.length > MAX_LEASE_IDS) throw invalid(`at most ${MAX_LEASE_IDS} lease ids per request`);
  if (new Set(ids).size !== ids.length) throw invalid("a lease id is listed twice");
  if (typeof requeue !== "boolean") throw invalid("requeue must be true or false");
  if (verb !== "nack" && (body as { requeue?: unknown }).requeue !== undefined) throw invalid("requeue is for nack");
  if (verb !== "nack" && delayS !== undefined) throw invalid("delay_s is for nack");
  if (delayS !== undefined) {
    if (typeof delayS !== "number" || !Number.isInteger(delayS) || delayS < 0 || delayS > MAX_NACK_DELAY_S) {
      throw invalid(`delay_s must be a whole number of seconds from 0 to ${MAX_NACK_DELAY_S} (12 h)`);
    }
    if (!requeue) throw invalid("delay_s needs requeue: true (a message that is not requeued does not come back)");
  }
  if (verb !== "extend") {
    if (extendMs !== undefined) throw invalid("lease_timeout_ms is for extend");
    return { ids, requeue, ...(delayS ? { delayS } : {}) };
  }
  if (typeof extendMs !== "number" || !Number.isInteger(extendMs) || extendMs < 1 || extendMs > MAX_LEASE_MS) {
    throw invalid(`lease_timeout_ms must be a whole number of milliseconds from 1 to ${MAX_LEASE_MS} (12 h)`);
  }
  return { ids, requeue, extendMs };
};
