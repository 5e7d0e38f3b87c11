/**
 * A message's whole life through `npm start` (and, in the e2e-node and e2e-deno projects, the
 * Node and Deno servers): delivery counts and `max_deliveries` on classic and quorum queues, nacks
 * with a delay held by the broker (across a gateway restart), lease extension, delayed publishes,
 * dead letters and their redrive, and all of it at once under concurrency. Every outcome is checked
 * with the test's own AMQP client.
 */
import type { AMQPMessage } from "@cloudamqp/amqp-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, drain, messageCount, uniqueName, withChannel } from "../helpers/broker";
import { startWebhookEndpoint, type WebhookEndpoint } from "../helpers/webhook-endpoint";
import { npmStart, waitFor, type RunningGateway } from "./npm-start";

const ADMIN_TOKEN = "life-admin-token";
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

/** A lease route with max_deliveries 3 for each queue type, one settled by nack and one by its lease running out. */
const POISON = (["classic", "quorum"] as const).flatMap((type) =>
  (["nack", "expiry"] as const).map((by) => ({ type, by, id: `poison-${type}-${by}`, queue: uniqueName(`poison-${type}-${by}`) })),
);
const poisonDead = uniqueName("poison-dead");
const retry = uniqueName("retry");
const stretched = uniqueName("stretched");
const later = uniqueName("later");
const laterExchange = uniqueName("later-x");
const laterRouted = uniqueName("later-routed");
const redrive = uniqueName("redrive");
const redriveDead = `${redrive}-dead`;
const busy = uniqueName("busy");
const hoarded = uniqueName("hoarded");
const pushed = uniqueName("pushed");
const pushedDead = `${pushed}-dead`;
const SECRET = `whsec_${Buffer.from("message-life e2e key, 32 bytes!!").toString("base64")}`;
let hook: WebhookEndpoint;
const QUEUES = [
  pushed,
  pushedDead,
  ...POISON.map((p) => p.queue),
  poisonDead,
  retry,
  stretched,
  later,
  laterRouted,
  redrive,
  redriveDead,
  busy,
  hoarded,
];

const deadLettered = { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": poisonDead };
const route = (id: string, amqp: string) => `  - id: ${id}
    path: /${id}
    amqp: { enabled: true, url: "${BROKER_URL}", ${amqp} }
`;
const routes = (hookUrl: string) => `routes:
${POISON.map(({ id, queue, by }) =>
  route(
    id,
    `producer: { routing_key: ${queue} }, consumer: { queue: ${queue}, ack: lease, max_deliveries: 3, lease_timeout_ms: ${by === "expiry" ? 300 : 30000} }`,
  ),
).join("")}${route("retry", `producer: { routing_key: ${retry} }, consumer: { queue: ${retry}, ack: lease }`)}${route(
  "stretched",
  `producer: { routing_key: ${stretched} }, consumer: { queue: ${stretched}, ack: lease, lease_timeout_ms: 2000 }`,
)}${route("later", `producer: { routing_key: ${later}, allow_delay: true }, consumer: { queue: ${later} }`)}${route(
  "later-routed",
  `producer: { exchange: ${laterExchange}, routing_key: a.b, allow_delay: true }`,
)}${route("undelayed", `producer: { routing_key: ${later} }`)}${route(
  "redrive",
  `producer: { routing_key: ${redrive} }, consumer: { queue: ${redrive}, ack: lease, dead_letter_queue: ${redriveDead} }`,
)}${route("busy", `producer: { routing_key: ${busy}, allow_delay: true }, consumer: { queue: ${busy}, ack: lease, lease_timeout_ms: 1500 }`)}${route(
  "hoarded",
  `producer: { routing_key: ${hoarded}, max_body_bytes: 2000000 }, consumer: { queue: ${hoarded}, ack: lease, max_deliveries: 2, lease_timeout_ms: 120000 }`,
)}${route("pushed", `consumer: { queue: ${pushed}, max_deliveries: 1, push: { url: "${hookUrl}/pushed", secret: "${SECRET}" } }`)}`;
let ROUTES = "";

let gateway: RunningGateway;

beforeAll(async () => {
  for (const { type, queue } of POISON)
    await declareQueue(queue, { ...deadLettered, ...(type === "quorum" ? { "x-queue-type": "quorum" } : {}) });
  for (const queue of [poisonDead, retry, stretched, later, laterRouted, redrive, redriveDead, busy]) await declareQueue(queue);
  await declareQueue(hoarded, deadLettered);
  await withChannel(async (channel) => {
    await channel.exchangeDeclare(laterExchange, "topic", { durable: false, autoDelete: false });
    await channel.queueBind(laterRouted, laterExchange, "a.*");
  });
  // Delivered once already, by the broker's count, before the push route starts: over its max_deliveries of 1.
  await declareQueue(pushedDead);
  await declareQueue(pushed, { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": pushedDead });
  await withChannel(async (channel) => {
    await channel.basicPublish("", pushed, "pushed once already", { deliveryMode: 2 });
    const got = await channel.basicGet(pushed, { noAck: false });
    await channel.basicNack(got?.deliveryTag ?? 0, true);
  });
  hook = await startWebhookEndpoint(SECRET);
  ROUTES = routes(hook.url);
  gateway = await npmStart(ROUTES, { ADMIN_TOKEN });
}, 180_000);

afterAll(async () => {
  await gateway?.stop();
  await hook?.close();
  for (const queue of QUEUES) await deleteQueue(queue);
  await withChannel((channel) => channel.exchangeDelete(laterExchange)).catch(() => undefined);
});

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${gateway.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });

/** One GET of a lease route: the body, its lease id and delivery count, or undefined for a 204. */
const take = async (path: string) => {
  const response = await fetch(`${gateway.url}${path}`);
  if (response.status === 204) return undefined;
  expect(response.status).toBe(200);
  return {
    body: await response.text(),
    leaseId: response.headers.get("x-lease-id") ?? "",
    count: Number(response.headers.get("x-delivery-count")),
  };
};

/** Polls `path` until a message comes, for up to `ms`. */
const takeWithin = async (path: string, ms: number) => {
  const deadline = Date.now() + ms;
  for (;;) {
    const got = await take(path);
    if (got || Date.now() > deadline) return got;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
};

const settle = async (path: string, verb: "ack" | "nack" | "extend", ids: string[], extra: Record<string, unknown> = {}) => {
  const response = await post(`${path}/${verb}`, { lease_ids: ids, ...extra });
  return { status: response.status, body: (await response.json()) as { results: Array<Record<string, unknown>> } };
};

const stats = async (id: string) =>
  ((await (await fetch(`${gateway.url}/amqp`, { headers: admin })).json()) as Record<string, Record<string, number>>)[id] ?? {};

const publishDirect = (queue: string, bodies: string[]) =>
  withChannel(async (channel) => {
    await channel.confirmSelect();
    await Promise.all(bodies.map((body) => channel.basicPublish("", queue, body, { contentType: "text/plain", deliveryMode: 2 })));
  });

describe("delivery count and max_deliveries", () => {
  for (const { type, by, id } of POISON) {
    it(`a poison message on a ${type} queue is delivered 3 times (counts 1, 2, 3), then dead-lettered (settled by ${by})`, async () => {
      const body = `poison ${id} ${crypto.randomUUID()}`;
      expect((await post(`/${id}`, body)).status).toBe(202);
      const counts: number[] = [];
      for (let delivery = 1; delivery <= 3; delivery++) {
        const got = await takeWithin(`/${id}`, 5000);
        expect(got?.body).toBe(JSON.stringify(body));
        counts.push(got?.count ?? 0);
        if (by === "nack") {
          const settled = await settle(`/${id}`, "nack", [got?.leaseId ?? ""]);
          expect(settled.body.results[0]?.outcome).toBe(delivery < 3 ? "requeued" : "dead_lettered");
        }
      }
      expect(counts).toEqual([1, 2, 3]);
      // Not handed out a fourth time: in the dead letters, and only there.
      await waitFor(async () => (await drainBodies(poisonDead)).includes(JSON.stringify(body)), 5000);
      expect(await take(`/${id}`)).toBeUndefined();
      expect(await messageCount(POISON.find((p) => p.id === id)?.queue ?? "")).toBe(0);
      expect((await stats(id)).dead_lettered).toBe(1);
    });
  }

  it("counts a message that came back through a broker requeue (a connection lost): X-Delivery-Count 2", async () => {
    // A message the broker itself redelivers carries redelivered (classic) or x-delivery-count (quorum).
    const queue = POISON[0]?.queue ?? "";
    await withChannel(async (channel) => {
      await channel.basicPublish("", queue, "requeued by the broker", { deliveryMode: 2 });
      const got = await channel.basicGet(queue, { noAck: false });
      expect(got).toBeTruthy();
      await channel.basicNack(got?.deliveryTag ?? 0, true);
    });
    const got = await takeWithin(`/${POISON[0]?.id}`, 5000);
    expect(got).toMatchObject({ body: "requeued by the broker", count: 2 });
    await settle(`/${POISON[0]?.id}`, "ack", [got?.leaseId ?? ""]);
  });
});

/** Every body in `queue` now (drained): what the dead letters have received so far, kept in {@link seenDead}. */
const seenDead: string[] = [];
const drainBodies = async (queue: string): Promise<string[]> => {
  const bodies = (await drain(queue)).map((message: AMQPMessage) => message.bodyToString() ?? "");
  seenDead.push(...bodies);
  return seenDead;
};

describe("a nack with a delay", () => {
  it("is not back before delay_s, is back within a second of it, with its count raised", async () => {
    const body = `retry ${crypto.randomUUID()}`;
    await post("/retry", body);
    const first = await takeWithin("/retry", 5000);
    expect(first?.count).toBe(1);
    const nackedAt = Date.now();
    const nacked = await settle("/retry", "nack", [first?.leaseId ?? ""], { delay_s: 2 });
    expect(nacked.status).toBe(200);
    expect(nacked.body.results[0]).toMatchObject({ outcome: "requeued" });
    expect(Date.parse(String(nacked.body.results[0]?.returns_at))).toBeGreaterThanOrEqual(nackedAt + 2000 - 50);
    // Held by the broker, not by the gateway: the route's queue has nothing meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await messageCount(retry)).toBe(0);
    const again = await takeWithin("/retry", 3000);
    const backAfter = Date.now() - nackedAt;
    expect(again).toMatchObject({ body: JSON.stringify(body), count: 2 });
    expect(backAfter).toBeGreaterThanOrEqual(1950);
    expect(backAfter).toBeLessThan(3500);
    await settle("/retry", "ack", [again?.leaseId ?? ""]);
  });

  it("refuses a delay out of bounds or without requeue (400), and leaves the lease held", async () => {
    await post("/retry", "bounds");
    const got = await takeWithin("/retry", 5000);
    const id = got?.leaseId ?? "";
    expect((await settle("/retry", "nack", [id], { delay_s: 43201 })).status).toBe(400);
    expect((await settle("/retry", "nack", [id], { delay_s: 1.5 })).status).toBe(400);
    expect((await settle("/retry", "nack", [id], { delay_s: 5, requeue: false })).status).toBe(400);
    expect((await settle("/retry", "ack", [id], { delay_s: 5 })).status).toBe(400);
    expect((await settle("/retry", "ack", [id])).body.results[0]?.outcome).toBe("acked");
  });
});

describe("settles of one lease at once", () => {
  it("answer 409 to the one that comes second while the first (a delayed nack) is under way", async () => {
    await post("/retry", "raced");
    const got = await takeWithin("/retry", 5000);
    const id = got?.leaseId ?? "";
    const [nacked, acked] = await Promise.all([settle("/retry", "nack", [id], { delay_s: 1 }), settle("/retry", "ack", [id])]);
    expect(nacked.body.results[0]?.outcome).toBe("requeued");
    expect(acked.status).toBe(409);
    const back = await takeWithin("/retry", 3000);
    expect(back?.body).toBe(JSON.stringify("raced"));
    await settle("/retry", "ack", [back?.leaseId ?? ""]);
  });
});

describe("lease extension", () => {
  it("a lease of 2 s extended twice by 2 s is not redelivered for 6 s; extending it once expired is 410", async () => {
    const body = `stretched ${crypto.randomUUID()}`;
    await post("/stretched", body);
    const got = await takeWithin("/stretched", 5000);
    const leasedAt = Date.now();
    const id = got?.leaseId ?? "";
    for (const at of [1800, 3600]) {
      await new Promise((resolve) => setTimeout(resolve, leasedAt + at - Date.now()));
      const extended = await settle("/stretched", "extend", [id], { lease_timeout_ms: 2000 });
      expect(extended.body.results[0]).toMatchObject({ status: 200, outcome: "extended" });
    }
    // Until 5.6 s, still leased: nothing in the queue, nothing for another consumer.
    await new Promise((resolve) => setTimeout(resolve, leasedAt + 5300 - Date.now()));
    expect(await take("/stretched")).toBeUndefined();
    expect(await messageCount(stretched)).toBe(0);
    const back = await takeWithin("/stretched", 3000);
    expect(Date.now() - leasedAt).toBeGreaterThanOrEqual(5500);
    expect(back).toMatchObject({ body: JSON.stringify(body), count: 2 });
    const late = await settle("/stretched", "extend", [id], { lease_timeout_ms: 2000 });
    expect(late.status).toBe(410);
    expect(late.body.results[0]).toMatchObject({ outcome: "expired" });
    await settle("/stretched", "ack", [back?.leaseId ?? ""]);
  });
});

describe("a delayed publish", () => {
  it("500 messages with delays over 0..3 s: none arrives early, all arrive once, every 202 accounted for", async () => {
    const arrivals = new Map<string, number>();
    const duplicates: string[] = [];
    await withChannel(async (channel) => {
      const consumer = await channel.basicConsume(later, { noAck: true }, (message) => {
        const body = message.bodyToString() ?? "";
        if (arrivals.has(body)) duplicates.push(body);
        arrivals.set(body, Date.now());
      });
      const sent: Array<{ body: string; sentAt: number; delay: number; deliverAfter: number }> = [];
      const bodies = Array.from({ length: 500 }, (_, i) => ({
        body: `later ${i} ${crypto.randomUUID()}`,
        delay: Math.floor(Math.random() * 3001),
      }));
      // 20 publishers at once.
      const queue = [...bodies];
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          for (let next = queue.shift(); next; next = queue.shift()) {
            const sentAt = Date.now();
            const response = await fetch(`${gateway.url}/later`, {
              method: "POST",
              headers: { "content-type": "text/plain", "x-delay": String(next.delay) },
              body: next.body,
            });
            expect(response.status).toBe(202);
            const answer = (await response.json()) as { deliver_after?: string };
            const deliverAfter = Date.parse(answer.deliver_after ?? "");
            if (next.delay > 0) expect(deliverAfter).toBeGreaterThanOrEqual(sentAt + next.delay);
            sent.push({ ...next, sentAt, deliverAfter });
          }
        }),
      );
      await waitFor(() => arrivals.size >= sent.length, 15_000);
      await consumer.cancel();
      expect(duplicates).toEqual([]);
      expect([...arrivals.keys()].sort()).toEqual(sent.map((one) => one.body).sort());
      for (const { body, sentAt, delay } of sent) {
        const arrivedAfter = (arrivals.get(body) ?? 0) - sentAt;
        // Never early (the delay is rounded up to whole seconds), and late by at most about a second.
        expect(arrivedAfter, body).toBeGreaterThanOrEqual(delay - 1000);
        expect(arrivedAfter, body).toBeGreaterThanOrEqual(delay > 0 ? delay - 50 : 0);
        expect(arrivedAfter, body).toBeLessThan(delay + 2500);
      }
    });
  }, 60_000);

  it("goes to a named exchange with its routing key when due", async () => {
    const response = await fetch(`${gateway.url}/later-routed`, { method: "POST", headers: { "x-delay": "1000" }, body: "routed later" });
    expect(response.status).toBe(202);
    expect(await messageCount(laterRouted)).toBe(0);
    await waitFor(async () => (await messageCount(laterRouted)) === 1, 4000);
    const [message] = await drain(laterRouted);
    expect(message?.bodyToString()).toBe("routed later");
    expect(message?.routingKey).toBe("a.b");
  });

  it("still arrives after its queue was deleted and declared again (its binding made again)", async () => {
    const send = (body: string) => fetch(`${gateway.url}/later`, { method: "POST", headers: { "x-delay": "1000" }, body });
    expect((await send("before")).status).toBe(202);
    await waitFor(async () => (await messageCount(later)) === 1, 4000);
    await deleteQueue(later);
    await declareQueue(later);
    expect((await send("after")).status).toBe(202);
    await waitFor(async () => (await messageCount(later)) === 1, 4000);
    expect((await drain(later)).map((message) => message.bodyToString())).toEqual(["after"]);
  });

  it("is refused with 400 on a route without allow_delay, for a bad value, and with X-Expiration; nothing published", async () => {
    const before = await messageCount(later);
    for (const [path, headers] of [
      ["/undelayed", { "x-delay": "1000" }],
      ["/later", { "x-delay": "-1" }],
      ["/later", { "x-delay": "86400001" }],
      ["/later", { "x-delay": "1e3" }],
      ["/later", { "x-delay": "1000", "x-expiration": "5000" }],
      ["/later", { "x-amqp-header-runway-delay-to": "queue:elsewhere" }],
      ["/later", { "x-amqp-header-runway-delivery-count": "99" }],
      ["/later", { "x-amqp-header-x-delivery-count": "5" }],
    ] as const) {
      const response = await fetch(`${gateway.url}${path}`, { method: "POST", headers, body: "refused" });
      expect(response.status, JSON.stringify(headers)).toBe(400);
      expect(((await response.json()) as { error: string }).error).toMatch(/X-Delay|set by the gateway/);
    }
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await messageCount(later)).toBe(before);
  });
});

describe("dead letters and redrive", () => {
  it("peeks without removing, then moves 60 and 40 back: each exactly once, the dead letters empty", async () => {
    const bodies = Array.from({ length: 100 }, (_, i) => `dead ${i} ${crypto.randomUUID()}`);
    await publishDirect(redriveDead, bodies);
    expect((await fetch(`${gateway.url}/redrive/dead`)).status).toBe(401);
    const peeked = await fetch(`${gateway.url}/redrive/dead?max=5`, { headers: admin });
    expect(peeked.status).toBe(200);
    const shown = (await peeked.json()) as { messages: Array<{ body: string }> };
    expect(shown.messages.map((message) => message.body)).toEqual(bodies.slice(0, 5));
    await waitFor(async () => (await messageCount(redriveDead)) === 100, 3000);
    expect((await post("/redrive/redrive", { max: 60 })).status).toBe(401);
    expect((await post("/redrive/redrive", { max: 0 }, admin)).status).toBe(400);
    const first = await post("/redrive/redrive", { max: 60 }, admin);
    expect(await first.json()).toEqual({ moved: 60 });
    expect(await messageCount(redrive)).toBe(60);
    expect(await messageCount(redriveDead)).toBe(40);
    const second = await post("/redrive/redrive", { max: 100 }, admin);
    expect(await second.json()).toEqual({ moved: 40 });
    expect(await messageCount(redriveDead)).toBe(0);
    const moved = (await drain(redrive)).map((message) => message.bodyToString());
    expect(moved).toEqual(bodies);
  });
});

describe("under concurrency", () => {
  it("20 consumers nacking with delays and extending, 10 publishers with X-Delay: every message settled exactly once", async () => {
    const published = new Set<string>();
    const acked: string[] = [];
    let publishing = true;
    const publishers = Array.from({ length: 10 }, async (_, p) => {
      for (let i = 0; i < 30; i++) {
        const body = `busy ${p}.${i} ${crypto.randomUUID()}`;
        const response = await fetch(`${gateway.url}/busy`, {
          method: "POST",
          headers: { "content-type": "text/plain", "x-delay": String(Math.floor(Math.random() * 2000)) },
          body,
        });
        expect(response.status).toBe(202);
        published.add(body);
      }
    });
    const consumers = Array.from({ length: 20 }, async () => {
      const deadline = Date.now() + 40_000;
      while (Date.now() < deadline && (publishing || acked.length < published.size)) {
        const response = await fetch(`${gateway.url}/busy?max=5`);
        if (response.status === 204) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          continue;
        }
        const { messages } = (await response.json()) as { messages: Array<{ body: string; lease_id: string; delivery_count: number }> };
        for (const message of messages) {
          const roll = Math.random();
          if (message.delivery_count === 1 && roll < 0.5) {
            const nacked = await settle("/busy", "nack", [message.lease_id], { delay_s: 1 });
            expect(nacked.body.results[0]?.outcome).toBe("requeued");
            continue;
          }
          if (roll < 0.8) {
            const extended = await settle("/busy", "extend", [message.lease_id], { lease_timeout_ms: 3000 });
            expect(extended.body.results[0]?.outcome).toBe("extended");
          }
          const done = await settle("/busy", "ack", [message.lease_id]);
          expect(done.body.results[0]?.outcome).toBe("acked");
          acked.push(message.body);
        }
      }
    });
    await Promise.all(publishers);
    publishing = false;
    await Promise.all(consumers);
    expect(acked.length).toBe(published.size);
    expect(new Set(acked).size).toBe(acked.length);
    expect(new Set(acked)).toEqual(published);
    expect(await messageCount(busy)).toBe(0);
  }, 60_000);
});

describe("beside a caller that holds many large leases", () => {
  it("another caller's message is still counted, delayed and dead-lettered on a classic queue; a large one put back intact", async () => {
    // 9 MiB of leases held: past the 8 MiB a route object keeps in memory, so the 9th and every
    // later body go to its storage (before, the later leases kept none: no delay, no count).
    const large = Array.from({ length: 9 }, (_, i) => Buffer.alloc(1024 * 1024, 65 + i));
    await withChannel(async (channel) => {
      await channel.confirmSelect();
      await Promise.all(large.map((body) => channel.basicPublish("", hoarded, body, { deliveryMode: 2 })));
    });
    const held: string[] = [];
    for (let i = 0; i < large.length; i++) held.push((await takeWithin("/hoarded", 5000))?.leaseId ?? "");
    expect(held.every((id) => id !== "")).toBe(true);
    const body = `beside the hoard ${crypto.randomUUID()}`;
    await post("/hoarded", body);
    const first = await takeWithin("/hoarded", 5000);
    expect(first).toMatchObject({ body: JSON.stringify(body), count: 1 });
    const delayed = await settle("/hoarded", "nack", [first?.leaseId ?? ""], { delay_s: 1 });
    expect(delayed.body.results[0]).toMatchObject({ status: 200, outcome: "requeued" });
    const second = await takeWithin("/hoarded", 4000);
    expect(second).toMatchObject({ body: JSON.stringify(body), count: 2 });
    expect((await settle("/hoarded", "nack", [second?.leaseId ?? ""])).body.results[0]?.outcome).toBe("dead_lettered");
    await waitFor(async () => (await drainBodies(poisonDead)).includes(JSON.stringify(body)), 5000);
    // The last of the large ones (in storage, past the memory kept) goes back whole, counted.
    expect((await settle("/hoarded", "nack", [held.at(-1) ?? ""])).body.results[0]?.outcome).toBe("requeued");
    const back = await fetch(`${gateway.url}/hoarded`);
    expect(back.headers.get("x-delivery-count")).toBe("2");
    const bytes = Buffer.from(await back.arrayBuffer());
    expect(bytes.equals(large.at(-1) ?? Buffer.alloc(0))).toBe(true);
    await settle("/hoarded", "ack", [...held.slice(0, -1), back.headers.get("x-lease-id") ?? ""]);
    expect(await messageCount(hoarded)).toBe(0);
  });
});

describe("a push route", () => {
  it("sends X-Delivery-Count, and dead-letters a message over max_deliveries instead of pushing it", async () => {
    await publishDirect(pushed, ["pushed first time"]);
    await waitFor(() => hook.received.some((entry) => entry.body === "pushed first time"), 15_000);
    const [entry] = hook.received.filter((one) => one.body === "pushed first time");
    expect(entry?.headers["x-delivery-count"]).toBe("1");
    expect(entry?.verified).toBe(true);
    await waitFor(async () => (await messageCount(pushedDead)) === 1, 5000);
    expect((await drain(pushedDead)).map((message) => message.bodyToString())).toEqual(["pushed once already"]);
    expect(hook.received.some((one) => one.body === "pushed once already")).toBe(false);
    expect(await stats("pushed")).toMatchObject({ pushed: 1, dead_lettered: 1 });
  });
});

describe("a gateway restarted during a delay", () => {
  it("loses nothing: the broker holds the message and it comes back", async () => {
    const body = `survivor ${crypto.randomUUID()}`;
    await post("/retry", body);
    const got = await takeWithin("/retry", 5000);
    expect((await settle("/retry", "nack", [got?.leaseId ?? ""], { delay_s: 3 })).status).toBe(200);
    await gateway.stop();
    expect(await messageCount(retry)).toBe(0);
    gateway = await npmStart(ROUTES, { ADMIN_TOKEN });
    const back = await takeWithin("/retry", 8000);
    expect(back).toMatchObject({ body: JSON.stringify(body), count: 2 });
    await settle("/retry", "ack", [back?.leaseId ?? ""]);
  }, 120_000);
});
