/**
 * A route's `rate_limit` holds for everything a caller asks of it, inside workerd against the real
 * broker: `POST <path>/ack` and `/nack` and `GET <path>/replies/<id>` take from the same bucket as
 * the caller's consumes and publishes. Over it, 429 with Retry-After, counted as `rejected`, and
 * nothing is settled: the lease is still there for another caller to settle, and the reply still
 * there to fetch. On a sharded route too, where a caller's consumes and requests go to its own
 * shard, which is where it is charged even for an id of another shard (the other caller's here).
 */
import { describe, expect, it, vi } from "vitest";
import { BROKER_URL, messageCount, publishDirect, uniqueName, withQueue } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";
import { withResponder } from "./responder";

type Stats = Record<string, { rejected: number; acked: number; nacked: number; total_errors: number }>;
type Settled = { results: Array<{ outcome: string }> };

const A = { "cf-connecting-ip": "198.51.100.21" };
const B = { "cf-connecting-ip": "198.51.100.22" };
const json = { "content-type": "application/json" };

describe("settling leases over the caller's rate limit", () => {
  it.each([1, 4])("is 429 for ack and nack, counted as rejected, and the lease stays leased (%i shard(s))", (shards) =>
    withQueue("limited-settle", async (queue) => {
      await publishDirect(queue, "first");
      await publishDirect(queue, "second");
      const id = uniqueRouteId("limited-settle");
      const send = gatewayFor(
        `routes:\n  - { id: ${id}, path: /jobs, rate_limit: { requests: 3, period_s: 3600 }, amqp: { enabled: true, url: "${BROKER_URL}", shards: ${shards}, consumer: { queue: ${queue}, ack: lease } } }\n`,
      );
      const settle = (verb: string, leaseId: string, caller: Record<string, string>) =>
        send("POST", `/jobs/${verb}`, { headers: { ...json, ...caller }, body: JSON.stringify({ lease_ids: [leaseId] }) });
      // A's budget of 3: two consumes and one ack.
      const first = (await send("GET", "/jobs", { headers: A })).headers.get("x-lease-id") ?? "";
      const second = (await send("GET", "/jobs", { headers: A })).headers.get("x-lease-id") ?? "";
      expect([first, second]).not.toContain("");
      expect((await settle("ack", first, A)).status).toBe(200);
      for (const verb of ["ack", "nack"]) {
        const refused = await settle(verb, second, A);
        expect(refused.status).toBe(429);
        expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
        expect(await refused.json()).toEqual({ error: expect.stringContaining("rate limit of 3 requests per 3600 s"), route: id });
      }
      // Not settled: neither acknowledged nor back in the queue, and another caller, with a budget
      // of its own, settles it now.
      expect(await messageCount(queue)).toBe(0);
      const byB = await settle("ack", second, B);
      expect(byB.status).toBe(200);
      expect(((await byB.json()) as Settled).results.map((result) => result.outcome)).toEqual(["acked"]);
      const stats = (await (await send("GET", "/amqp")).json()) as Stats;
      expect(stats[id]).toMatchObject({ rejected: 2, acked: 2, nacked: 0, total_errors: 0 });
    }),
  );
});

describe("fetching an async reply over the caller's rate limit", () => {
  it.each([1, 4])("is 429, counted as rejected, and the reply is still there for another caller (%i shard(s))", async (shards) => {
    const queue = uniqueName("limited-reply");
    let answered = 0;
    await withResponder(
      queue,
      (request) => {
        answered++;
        return { body: `reply to ${request.bodyToString() ?? ""}` };
      },
      async () => {
        const id = uniqueRouteId("limited-reply");
        const send = gatewayFor(
          `routes:\n  - { id: ${id}, path: /rpc, methods: [POST], rate_limit: { requests: 2, period_s: 3600 }, amqp: { enabled: true, url: "${BROKER_URL}", shards: ${shards}, producer: { routing_key: ${queue}, reply: true } } }\n`,
        );
        const ask = async (body: string) => {
          const accepted = await send("POST", "/rpc", { body, headers: { prefer: "respond-async", ...A } });
          expect(accepted.status).toBe(202);
          return accepted.headers.get("location") ?? "";
        };
        // A's budget of 2: two requests.
        const [one, two] = [await ask("one"), await ask("two")];
        // Both replies in, fetched by B (a budget of its own), who may read any reply it knows the id
        // of. Each of B's polls counts against its budget of 2, so B asks only once both are answered.
        await vi.waitUntil(() => answered === 2, { timeout: 5000, interval: 20 });
        await new Promise((resolve) => setTimeout(resolve, 200));
        const fetched = async (location: string) => {
          for (let tries = 0; tries < 50; tries++) {
            const answer = await send("GET", location, { headers: B });
            if (answer.status !== 202) return answer;
            await answer.arrayBuffer();
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
          throw new Error(`no reply at ${location}`);
        };
        expect(await (await fetched(one)).text()).toBe("reply to one");
        const refused = await send("GET", two, { headers: A });
        expect(refused.status).toBe(429);
        expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
        expect(((await refused.json()) as { route: string }).route).toBe(id);
        // Still there.
        const later = await fetched(two);
        expect(later.status).toBe(200);
        expect(await later.text()).toBe("reply to two");
        const stats = (await (await send("GET", "/amqp")).json()) as Stats;
        expect(stats[id]).toMatchObject({ rejected: 1, total_errors: 0 });
      },
    );
  });
});
