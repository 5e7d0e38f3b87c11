/**
 * Cloudflare may evict a route's object at any moment (idle, a deploy, a move). Aborted in the
 * middle of a load (the harshest eviction: nothing of it runs again), it breaks no promise: every 202 is in the queue or was consumed, the messages
 * leased before are back in the queue and their leases answer 410, and what the object keeps in
 * storage (the idempotency window, the counters) is still there for the next object.
 */
import { abortAllDurableObjects } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { FLUSH_DELAY_MS } from "../../src/amqp/route-counters";
import { BROKER_URL, declareQueue, deleteQueue, drain, uniqueName } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

const json = { "content-type": "application/json" };

describe("a route object aborted in the middle of a load", () => {
  it("loses no 202, gives its leases back to the queue (410), and keeps its idempotency window and counters", async () => {
    const queue = uniqueName("evicted");
    await declareQueue(queue);
    const id = uniqueRouteId("evicted");
    // One object for publishing and consuming: the eviction cuts both at once.
    const send = gatewayFor(`
routes:
  - { id: ${id}, path: /jobs, methods: [POST, GET], amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue}, dedupe_window_s: 600 }, consumer: { queue: ${queue}, ack: lease, lease_timeout_ms: 60000 } } }
`);
    try {
      // Leased before the eviction, never settled.
      expect((await send("POST", "/jobs", { body: '"leased"', headers: { ...json, "idempotency-key": "leased" } })).status).toBe(202);
      const taken = await send("GET", "/jobs");
      expect(await taken.text()).toBe('"leased"');
      const leaseId = taken.headers.get("x-lease-id") ?? "";
      // Counters are written a second after they change (route-counters.ts): an abort, unlike an
      // eviction (which waits for the object's timers), loses at most that second's counts.
      await new Promise((resolve) => setTimeout(resolve, FLUSH_DELAY_MS + 500));

      // Publishers with unique bodies; the object is evicted while they run.
      const accepted: string[] = [];
      const other: number[] = [];
      let evicted = false;
      const publishers = Array.from({ length: 8 }, async (_, publisher) => {
        for (let n = 0; n < 40; n++) {
          const body = `"p${publisher}-${n}"`;
          const answer = await send("POST", "/jobs", { body, headers: { ...json, "idempotency-key": `k${publisher}-${n}` } });
          await answer.arrayBuffer();
          if (answer.status === 202) accepted.push(body);
          else other.push(answer.status);
        }
      });
      const eviction = (async () => {
        while (accepted.length < 60) await new Promise((resolve) => setTimeout(resolve, 5));
        // Aborted: torn down at once, its memory and sockets gone, its storage kept. (The plugin's
        // graceful evictDurableObject() waits for the object to hold no reference, which one
        // holding a broker socket never does, and times out after 30 s.)
        await abortAllDurableObjects();
        evicted = true;
      })();
      await Promise.all([...publishers, eviction]);
      expect(evicted).toBe(true);
      expect(accepted.length).toBeGreaterThan(60);
      // Anything but a 202 is a publish the gateway could not promise (503 while it reconnects, 504 unknown).
      expect(other.every((status) => status === 503 || status === 504)).toBe(true);

      // The lease is gone with the old object's connection: 410, and the message is back.
      const settled = await send("POST", "/jobs/ack", { headers: json, body: JSON.stringify({ lease_ids: [leaseId] }) });
      expect(((await settled.json()) as { results: Array<{ status: number; outcome: string }> }).results[0]).toMatchObject({
        status: 410,
        outcome: "gone",
      });
      // The idempotency window survived: a retry of the first publish is a replay, not a second copy.
      const retry = await send("POST", "/jobs", { body: '"leased"', headers: { ...json, "idempotency-key": "leased" } });
      expect(retry.status).toBe(202);
      expect(retry.headers.get("idempotent-replayed")).toBe("true");
      // The counters written before the abort survived.
      const stats = (await (await send("GET", "/amqp")).json()) as Record<string, { published: number; leased: number }>;
      expect(stats[id]?.leased).toBe(1);
      expect(stats[id]?.published).toBeGreaterThanOrEqual(1);

      // Every 202 is in the queue (an independent client), the leased message too, nothing twice.
      const bodies = (await drain(queue)).map((message) => message.bodyString() ?? "");
      expect(bodies.filter((body) => body === '"leased"')).toHaveLength(1);
      const inQueue = new Set(bodies);
      expect(accepted.filter((body) => !inQueue.has(body))).toEqual([]);
      expect(bodies.length).toBe(new Set(bodies).size);
    } finally {
      await deleteQueue(queue);
    }
  }, 30_000);
});
