/**
 * Idempotent retries (`producer.dedupe_window_s`), inside workerd against the real broker: a
 * repeated `Idempotency-Key` is answered like the first request, with `Idempotent-Replayed: true`,
 * and publishes nothing; the same key for other content is refused; the key is forgotten after the
 * window, or once more than `dedupe_max_entries` newer keys are remembered; it picks the shard; and
 * the route object's memory of it outlives the object's reset. A batch is replayed whole, and
 * its retry after a partial failure publishes only the messages the broker did not confirm.
 */
import { env, runInDurableObject } from "cloudflare:test";
import type { AMQPMessage } from "@cloudamqp/amqp-client";
import { sign } from "hono/jwt";
import { describe, expect, it } from "vitest";
import type { AmqpRouteObject } from "../../src/amqp/route-object";
import { BROKER_URL, drain, withQueue } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

type Send = ReturnType<typeof gatewayFor>;

interface Answer {
  status: number;
  replayed: string | null;
  body: unknown;
}

/** A one-route gateway publishing to `queue`, with `producer` fields added to the route's producer. */
const gateway = (id: string, queue: string, producer: string, amqp = ""): Send =>
  gatewayFor(`
routes:
  - id: ${id}
    path: /in
    amqp:
      enabled: true
      url: "${BROKER_URL}"
      ${amqp}
      producer: { routing_key: ${queue}, ${producer} }
`);

const post = async (send: Send, body: string, key?: string, headers: Record<string, string> = {}): Promise<Answer> => {
  const response = await send("POST", "/in", {
    body,
    headers: { "content-type": "application/json", ...(key === undefined ? {} : { "idempotency-key": key }), ...headers },
  });
  return { status: response.status, replayed: response.headers.get("idempotent-replayed"), body: await response.json() };
};

const bodies = (messages: AMQPMessage[]): string[] => messages.map((message) => message.bodyString() ?? "");

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The route's object for shard 0, as src/http/route-client.ts names it. */
const shardZero = (routeId: string) => env.AMQP_ROUTE.get(env.AMQP_ROUTE.idFromName(routeId));

describe("a repeated Idempotency-Key", () => {
  it("is answered 202 with the first answer's body and Idempotent-Replayed: true, and publishes nothing", async () => {
    await withQueue("idem-replay", async (queue) => {
      const send = gateway(uniqueRouteId("idem-replay"), queue, "dedupe_window_s: 60");
      const first = await post(send, '{"order":1}', "order-1");
      const second = await post(send, '{"order":1}', "order-1");
      expect(first).toEqual({ status: 202, replayed: null, body: { status: "published", exchange: "", routing_key: queue } });
      expect(second).toEqual({ ...first, replayed: "true" });
      const messages = await drain(queue);
      expect(bodies(messages)).toEqual(['{"order":1}']);
      expect(messages[0]?.properties.messageId).toBe("order-1");
      // X-Message-Id names the request as well.
      const third = await post(send, '{"order":1}', undefined, { "x-message-id": "order-1" });
      expect(third).toEqual({ ...first, replayed: "true" });
      expect(await drain(queue)).toEqual([]);
    });
  });

  it("sent with another body is refused with 422, and nothing more is published", async () => {
    await withQueue("idem-conflict", async (queue) => {
      const id = uniqueRouteId("idem-conflict");
      const send = gateway(id, queue, "dedupe_window_s: 60");
      expect((await post(send, '{"amount":10}', "pay-1")).status).toBe(202);
      const other = await post(send, '{"amount":99}', "pay-1");
      expect(other.status).toBe(422);
      expect(other.replayed).toBeNull();
      expect(other.body).toEqual({ error: expect.stringMatching(/Idempotency-Key was used for a different request/) as string, route: id });
      // The first request's content is still replayed.
      expect((await post(send, '{"amount":10}', "pay-1")).replayed).toBe("true");
      expect(bodies(await drain(queue))).toEqual(['{"amount":10}']);
    });
  });

  it("is forgotten once the window has passed, and then publishes again", async () => {
    await withQueue("idem-expiry", async (queue) => {
      const send = gateway(uniqueRouteId("idem-expiry"), queue, "dedupe_window_s: 1");
      expect(await post(send, '"tick"', "tick-1")).toMatchObject({ status: 202, replayed: null });
      expect(await post(send, '"tick"', "tick-1")).toMatchObject({ status: 202, replayed: "true" });
      await sleep(1_200);
      expect(await post(send, '"tick"', "tick-1")).toMatchObject({ status: 202, replayed: null });
      // Remembered afresh from that request on.
      expect(await post(send, '"tick"', "tick-1")).toMatchObject({ status: 202, replayed: "true" });
      expect(bodies(await drain(queue))).toEqual(['"tick"', '"tick"']);
    });
  });

  it("sent 20 times at once publishes once; every answer is 202 and all but the first per key are replays", async () => {
    await withQueue("idem-inflight", async (queue) => {
      const id = uniqueRouteId("idem-inflight");
      const send = gateway(id, queue, "dedupe_window_s: 60");
      const sent = [...Array<string>(20).fill("same"), ...Array<string>(5).fill("other-a"), ...Array<string>(5).fill("other-b")];
      const answers = await Promise.all(sent.map((key) => post(send, `"${key}"`, key).then((answer) => ({ key, ...answer }))));
      expect(answers.map((answer) => answer.status)).toEqual(Array(sent.length).fill(202));
      for (const [key, count] of [
        ["same", 20],
        ["other-a", 5],
        ["other-b", 5],
      ] as const) {
        const forKey = answers.filter((answer) => answer.key === key);
        expect(forKey.filter((answer) => answer.replayed === null)).toHaveLength(1);
        expect(forKey.filter((answer) => answer.replayed === "true")).toHaveLength(count - 1);
        expect(new Set(forKey.map((answer) => JSON.stringify(answer.body))).size).toBe(1);
      }
      expect(bodies(await drain(queue)).sort()).toEqual(['"other-a"', '"other-b"', '"same"']);
      const stats = ((await (await send("GET", "/amqp")).json()) as Record<string, { published: number; total_requests: number }>)[id];
      expect(stats).toMatchObject({ published: 3, total_requests: 30 });
    });
  });

  it("picks the shard of a sharded route, so that its repeats meet the object that remembers it", async () => {
    await withQueue("idem-shards", async (queue) => {
      const id = uniqueRouteId("idem-shards");
      const send = gateway(id, queue, "dedupe_window_s: 60", "shards: 4");
      const keys = Array.from({ length: 20 }, (_, index) => `shard-key-${index}`);
      const answers = [];
      // Three rounds, each key once per round, the requests of a round all at once.
      for (let round = 0; round < 3; round++) {
        answers.push(...(await Promise.all(keys.map((key) => post(send, `"${key}"`, key).then((answer) => ({ key, round, ...answer }))))));
      }
      expect(answers.map((answer) => answer.status)).toEqual(Array(60).fill(202));
      expect(answers.filter((answer) => answer.replayed === null).map((answer) => answer.round)).toEqual(Array(20).fill(0));
      expect(answers.filter((answer) => answer.replayed === "true")).toHaveLength(40);
      const published = bodies(await drain(queue));
      expect(published).toHaveLength(20);
      expect(new Set(published)).toEqual(new Set(keys.map((key) => `"${key}"`)));
      const stats = (
        (await (await send("GET", "/amqp")).json()) as Record<string, { published: number; shards: Array<{ published: number }> }>
      )[id];
      expect(stats?.published).toBe(20);
      // The keys spread over several shards.
      expect(stats?.shards.filter((shard) => shard.published > 0).length).toBeGreaterThan(1);
    });
  });

  it("is still replayed after the route's object was reset, and nothing is published again", async () => {
    await withQueue("idem-restart", async (queue) => {
      const id = uniqueRouteId("idem-restart");
      const send = gateway(id, queue, "dedupe_window_s: 60");
      expect(await post(send, '"once"', "restart-1")).toMatchObject({ status: 202, replayed: null });
      const before = await runInDurableObject(shardZero(id), (instance: AmqpRouteObject) => instance);
      const row = await runInDurableObject(shardZero(id), (_, state) =>
        state.storage.sql.exec<{ key: string; confirmed: string }>("SELECT key, confirmed FROM idempotency").toArray(),
      );
      expect(row).toEqual([{ key: "restart-1", confirmed: "*" }]);
      // ctx.abort() resets the object: the next request meets a new instance, built from storage.
      await expect(runInDurableObject(shardZero(id), (_, state) => state.abort("reset by a test"))).rejects.toThrow(/reset by a test/);
      const replay = await post(send, '"once"', "restart-1");
      const after = await runInDurableObject(shardZero(id), (instance: AmqpRouteObject) => instance);
      expect(after).not.toBe(before);
      expect(replay).toMatchObject({ status: 202, replayed: "true" });
      expect(bodies(await drain(queue))).toEqual(['"once"']);
    });
  });

  it("is forgotten, oldest first, once more than dedupe_max_entries keys are remembered", async () => {
    await withQueue("idem-bound", async (queue) => {
      const send = gateway(uniqueRouteId("idem-bound"), queue, "dedupe_window_s: 60, dedupe_max_entries: 3");
      for (let index = 1; index <= 5; index++) {
        expect(await post(send, `"k${index}"`, `k${index}`)).toMatchObject({ status: 202, replayed: null });
      }
      // k1 and k2 were dropped to keep three; k5 (the newest) is remembered.
      expect(await post(send, '"k5"', "k5")).toMatchObject({ status: 202, replayed: "true" });
      expect(await post(send, '"k1"', "k1")).toMatchObject({ status: 202, replayed: null });
      expect(bodies(await drain(queue))).toEqual(['"k1"', '"k2"', '"k3"', '"k4"', '"k5"', '"k1"']);
    });
  });

  it("keeps a key whose first request is still in flight when newer keys push it out, so its waiting repeats publish nothing", async () => {
    await withQueue("idem-evicted", async (queue) => {
      const send = gateway(uniqueRouteId("idem-evicted"), queue, "dedupe_window_s: 60, dedupe_max_entries: 1");
      // Five of A and one B at once: B's row pushes A's out while A's first awaits its confirm.
      const answers = await Promise.all([...Array.from({ length: 5 }, () => post(send, '"A"', "A")), post(send, '"B"', "B")]);
      expect(answers.map((answer) => answer.status)).toEqual([202, 202, 202, 202, 202, 202]);
      expect(bodies(await drain(queue)).sort()).toEqual(['"A"', '"B"']);
    });
  });

  it("on a batch route replays the whole batch and publishes none of its messages again", async () => {
    await withQueue("idem-batch", async (queue) => {
      const send = gateway(uniqueRouteId("idem-batch"), queue, "dedupe_window_s: 60, batch: true");
      const ndjson = '{"n":1}\n{"n":2}\n{"n":3}\n';
      const headers = { "content-type": "application/x-ndjson" };
      const first = await post(send, ndjson, "batch-1", headers);
      expect(first).toEqual({ status: 202, replayed: null, body: { status: "published", count: 3, exchange: "", routing_key: queue } });
      expect(await post(send, ndjson, "batch-1", headers)).toEqual({ ...first, replayed: "true" });
      // Another batch under the key is refused.
      expect((await post(send, '{"n":1}\n{"n":2}\n', "batch-1", headers)).status).toBe(422);
      const messages = await drain(queue);
      expect(bodies(messages)).toEqual(['{"n":1}', '{"n":2}', '{"n":3}']);
      expect(messages.map((message) => message.properties.messageId)).toEqual(["batch-1-0", "batch-1-1", "batch-1-2"]);
    });
  });

  it("on a batch route publishes again only the messages the broker did not confirm before", async () => {
    // The queue takes two messages and refuses (basic.nack) any more.
    const args = { "x-max-length": 2, "x-overflow": "reject-publish" };
    await withQueue(
      "idem-partial",
      async (queue) => {
        const send = gateway(uniqueRouteId("idem-partial"), queue, "dedupe_window_s: 60, batch: true");
        const ndjson = '{"n":1}\n{"n":2}\n{"n":3}\n';
        const headers = { "content-type": "application/x-ndjson" };
        const first = await post(send, ndjson, "partial-1", headers);
        expect(first.status).toBe(502);
        expect(first.body).toMatchObject({ count: 2, failed: [{ index: 2 }] });
        expect(bodies(await drain(queue))).toEqual(['{"n":1}', '{"n":2}']);
        // The retry publishes the third message alone; it is not a replay, since it published.
        const retry = await post(send, ndjson, "partial-1", headers);
        expect(retry).toEqual({ status: 202, replayed: null, body: { status: "published", count: 3, exchange: "", routing_key: queue } });
        const messages = await drain(queue);
        expect(bodies(messages)).toEqual(['{"n":3}']);
        expect(messages[0]?.properties.messageId).toBe("partial-1-2");
        // All three confirmed now: the next repeat replays and publishes nothing.
        expect(await post(send, ndjson, "partial-1", headers)).toEqual({ ...retry, replayed: "true" });
        expect(await drain(queue)).toEqual([]);
      },
      args,
    );
  });
});

describe("Idempotency-Keys on a route whose auth tells callers apart", () => {
  /** A route with two API keys (two callers) and a dedupe window. */
  const twoCallers = (queue: string, producer = "dedupe_window_s: 60") =>
    gatewayFor(`
routes:
  - id: ${uniqueRouteId("idem-callers")}
    path: /in
    auth: { api_key: { header: X-API-Key, keys: [key-of-a, key-of-b] } }
    amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue}, ${producer} } }
`);

  it("are each caller's own: the same key from another caller publishes its own message, and each caller's repeat is its own replay", async () => {
    await withQueue("idem-callers", async (queue) => {
      const send = twoCallers(queue);
      const a = { "x-api-key": "key-of-a" };
      const b = { "x-api-key": "key-of-b" };
      expect(await post(send, '"A\'s order 42"', "order-42", a)).toMatchObject({ status: 202, replayed: null });
      // B's own order 42: neither refused as "used for a different request", nor told that A used the key.
      expect(await post(send, '"B\'s order 42"', "order-42", b)).toMatchObject({ status: 202, replayed: null });
      expect(await post(send, '"A\'s order 42"', "order-42", a)).toMatchObject({ status: 202, replayed: "true" });
      expect(await post(send, '"B\'s order 42"', "order-42", b)).toMatchObject({ status: 202, replayed: "true" });
      // The same caller reusing its key for something else is still refused.
      expect((await post(send, '"A\'s order 43"', "order-42", a)).status).toBe(422);
      expect(bodies(await drain(queue)).sort()).toEqual(['"A\'s order 42"', '"B\'s order 42"']);
    });
  });

  it("stay with the API key when the route's list of keys changes: another key never inherits them", async () => {
    await withQueue("idem-rotated", async (queue) => {
      const routeId = uniqueRouteId("idem-rotated");
      const withKeys = (keys: string) =>
        gatewayFor(`
routes:
  - id: ${routeId}
    path: /in
    auth: { api_key: { header: X-API-Key, keys: [${keys}] } }
    amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue}, dedupe_window_s: 60 } }
`);
      const a = { "x-api-key": "key-of-a" };
      const b = { "x-api-key": "key-of-b" };
      expect(await post(withKeys("key-of-a, key-of-b"), '"order 42"', "order-42", a)).toMatchObject({ status: 202, replayed: null });
      expect(await post(withKeys("key-of-a, key-of-b"), '"A\'s order 43"', "order-43", a)).toMatchObject({ status: 202, replayed: null });
      // A's key is revoked: B's key is now the first in the list. B's own order 42 (the same
      // request as A's) is published, not answered from A's; B's order 43 is not A's conflict.
      const rotated = withKeys("key-of-b");
      expect(await post(rotated, '"order 42"', "order-42", b)).toMatchObject({ status: 202, replayed: null });
      expect(await post(rotated, '"B\'s order 43"', "order-43", b)).toMatchObject({ status: 202, replayed: null });
      expect(bodies(await drain(queue)).sort()).toEqual(['"A\'s order 43"', '"B\'s order 43"', '"order 42"', '"order 42"']);
    });
  });

  it('of two tokens are apart whatever their sub and iss hold: no pair reads as another, no sub-less token as sub "undefined"', async () => {
    await withQueue("idem-jwt", async (queue) => {
      const send = gatewayFor(`
routes:
  - id: ${uniqueRouteId("idem-jwt")}
    path: /in
    auth: { bearer_jwt: { secret: jwt-secret-of-the-test } }
    amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue}, dedupe_window_s: 60 } }
`);
      const exp = Math.floor(Date.now() / 1000) + 600;
      const as = async (claims: Record<string, unknown>) => ({
        authorization: `Bearer ${await sign({ ...claims, exp }, "jwt-secret-of-the-test")}`,
      });
      const pairs = [
        [
          { sub: "a@b", iss: "c" },
          { sub: "a", iss: "b@c" },
        ],
        [{ iss: "c" }, { sub: "undefined", iss: "c" }],
      ];
      for (const [index, [first, second]] of pairs.entries()) {
        expect(await post(send, `"first ${index}"`, `key-${index}`, await as(first ?? {}))).toMatchObject({ status: 202, replayed: null });
        expect(await post(send, `"second ${index}"`, `key-${index}`, await as(second ?? {}))).toMatchObject({
          status: 202,
          replayed: null,
        });
      }
      expect(bodies(await drain(queue))).toHaveLength(4);
    });
  });

  it("cannot be pushed out by another caller's flood of new keys: a caller holds at most half of dedupe_max_entries", async () => {
    await withQueue("idem-flood", async (queue) => {
      const send = twoCallers(queue, "dedupe_window_s: 60, dedupe_max_entries: 10");
      const a = { "x-api-key": "key-of-a" };
      const b = { "x-api-key": "key-of-b" };
      for (let index = 0; index < 3; index++) expect((await post(send, `"a${index}"`, `a${index}`, a)).status).toBe(202);
      // B sends many new keys: its own oldest go, not A's.
      for (let index = 0; index < 30; index++) expect((await post(send, `"b${index}"`, `b${index}`, b)).status).toBe(202);
      for (let index = 0; index < 3; index++) {
        expect(await post(send, `"a${index}"`, `a${index}`, a)).toMatchObject({ status: 202, replayed: "true" });
      }
      expect(bodies(await drain(queue))).toHaveLength(33);
    });
  });
});
