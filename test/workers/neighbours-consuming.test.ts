/**
 * One route, many callers who do not trust each other: what one caller sends must not change the
 * answer another caller gets. Each test runs honest callers, whose every answer is checked against
 * the broker with an AMQP client of the test's own, beside a caller doing one hostile (or merely
 * unlucky) thing on the same route, at the same time. Here: consuming.
 */
import { describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, messageCount, publishDirect, uniqueName, withChannel } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";
import { beside, uniqueBodies } from "./neighbours";

describe("a caller asking for queues that do not exist", () => {
  for (const autoAck of [true, false]) {
    it(`changes nothing for callers reading an existing queue of the same route (auto_ack: ${autoAck})`, async () => {
      const base = uniqueName("inbox");
      const inbox = `${base}.alice`;
      const bodies = uniqueBodies(300);
      await declareQueue(inbox);
      try {
        for (const body of bodies) await publishDirect(inbox, body);
        const routeId = uniqueRouteId("inbox");
        const send = gatewayFor(
          `routes:\n  - { id: ${routeId}, path: "/inbox/:user", amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: "${base}.{user}", auto_ack: ${autoAck} } } }\n`,
        );
        const hostileStatuses = new Map<number, number>();
        const { result, hostileRuns } = await beside(
          async () => {
            const received: string[] = [];
            const honestStatuses: number[] = [];
            const reader = async () => {
              for (;;) {
                const answer = await send("GET", "/inbox/alice");
                honestStatuses.push(answer.status);
                if (answer.status === 200) received.push(await answer.text());
                else {
                  await answer.body?.cancel();
                  if (answer.status === 204) return;
                }
              }
            };
            await Promise.all(Array.from({ length: 6 }, reader));
            return { received, honestStatuses };
          },
          async () => {
            const answers = await Promise.all(
              Array.from({ length: 4 }, () => send("GET", `/inbox/nobody-${crypto.randomUUID().slice(0, 8)}`)),
            );
            for (const answer of answers) {
              hostileStatuses.set(answer.status, (hostileStatuses.get(answer.status) ?? 0) + 1);
              await answer.body?.cancel();
            }
          },
        );
        expect(hostileRuns).toBeGreaterThan(2);
        // The hostile caller got its own answer: the queues it asked for do not exist.
        expect([...hostileStatuses.keys()]).toEqual([404]);
        // The honest callers: only 200s and their final 204s, every message once.
        expect(result.honestStatuses.filter((status) => status !== 200 && status !== 204)).toEqual([]);
        expect([...result.received].sort()).toEqual([...bodies].sort());
        await expect.poll(() => messageCount(inbox), { timeout: 5_000 }).toBe(0);
      } finally {
        await deleteQueue(inbox);
      }
    });
  }
});

describe("long-polls over the queues of a queue template", () => {
  it("leave no channel behind: more queues than the connection has channels can each be waited on in turn", async () => {
    const base = uniqueName("poll");
    const names = Array.from({ length: 30 }, (_, index) => `${base}.${index}`);
    for (const name of names) await declareQueue(name);
    try {
      // A connection of at most 12 channels (the session's own take 2 or 3).
      const send = gatewayFor(
        `routes:\n  - { id: ${uniqueRouteId("poll")}, path: "/inbox/:user", amqp: { enabled: true, url: "${BROKER_URL}?channelMax=12", consumer: { queue: "${base}.{user}", auto_ack: true } } }\n`,
      );
      const statuses: number[] = [];
      for (let index = 0; index < names.length; index++) {
        const answer = await send("GET", `/inbox/${index}?wait=0.1`);
        statuses.push(answer.status);
        await answer.body?.cancel();
      }
      expect(statuses).toEqual(names.map(() => 204));
      // And a message is still delivered to a long-poll on the first queue.
      await publishDirect(`${base}.0`, "still served");
      const last = await send("GET", "/inbox/0?wait=1");
      expect(last.status).toBe(200);
      expect(await last.text()).toBe("still served");
    } finally {
      for (const name of names) await deleteQueue(name);
    }
  });
});

describe("a batch GET of messages that do not all fit in one answer", () => {
  const mebibyteBodies = (count: number) =>
    Array.from({ length: count }, (_, index) => `${String(index).padStart(4, "0")}:${crypto.randomUUID()}:`.padEnd(1024 * 1024, "x"));

  for (const [kind, args] of [
    ["classic", {}],
    ["quorum with x-delivery-limit 2", { "x-queue-type": "quorum", "x-delivery-limit": 2 }],
  ] as const) {
    it(`takes no more than fits, so nothing comes back redelivered and nothing is dropped, in queue order (${kind})`, async () => {
      const queue = uniqueName("fit");
      await declareQueue(queue, args);
      try {
        const bodies = mebibyteBodies(60);
        // Confirmed: all of them in the queue before the first GET (a quorum queue takes a moment).
        await withChannel(async (channel) => {
          await channel.confirmSelect();
          await Promise.all(bodies.map((body) => channel.basicPublish("", queue, body)));
        });
        const send = gatewayFor(
          `routes:\n  - { id: ${uniqueRouteId("fit")}, path: /jobs, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, auto_ack: true } } }\n`,
        );
        const received: Array<{ body: string; redelivered: boolean }> = [];
        // Each answer holds what fits in the isolate's memory (a few MiB here), until the queue is empty.
        for (let round = 0; round < 200; round++) {
          const answer = await send("GET", "/jobs?max=100");
          if (answer.status === 204) break;
          expect(answer.status).toBe(200);
          const batch = (await answer.json()) as { messages: Array<{ body: string; redelivered: boolean }> };
          received.push(...batch.messages);
        }
        expect(received.map((message) => message.body.slice(0, 4))).toEqual(bodies.map((body) => body.slice(0, 4)));
        expect(received.filter((message) => message.redelivered)).toEqual([]);
      } finally {
        await deleteQueue(queue);
      }
    });
  }
});

describe("a caller holding many long-polls open", () => {
  it("is refused (429) past rate_limit.open_waits, while another caller's long-poll on the same route gets its message", async () => {
    const queue = uniqueName("open-waits");
    await declareQueue(queue);
    try {
      const send = gatewayFor(
        `routes:\n  - { id: ${uniqueRouteId("open-waits")}, path: /jobs, rate_limit: { requests: 1000, period_s: 1, open_waits: 3 }, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, auto_ack: true } } }\n`,
      );
      const hostile = { "cf-connecting-ip": "203.0.113.1" };
      const honest = { "cf-connecting-ip": "203.0.113.2" };
      const held = Array.from({ length: 3 }, () => send("GET", "/jobs?wait=2", { headers: hostile }));
      await new Promise((resolve) => setTimeout(resolve, 300));
      const fourth = await send("GET", "/jobs?wait=2", { headers: hostile });
      expect(fourth.status).toBe(429);
      expect(fourth.headers.get("retry-after")).toBe("1");
      expect(((await fourth.json()) as { error: string }).error).toMatch(/open_waits/);
      // The honest caller waits in line behind the three, and the first three messages go to them.
      const honestWait = send("GET", "/jobs?wait=3", { headers: honest });
      await new Promise((resolve) => setTimeout(resolve, 300));
      for (const body of ["one", "two", "three", "four"]) await publishDirect(queue, body);
      const answers = await Promise.all([...held, honestWait]);
      const bodies = await Promise.all(answers.map((answer) => answer.text()));
      expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200]);
      expect([...bodies].sort()).toEqual(["four", "one", "three", "two"]);
      // Its waits over, the caller may wait again.
      const again = await send("GET", "/jobs?wait=0.2", { headers: hostile });
      expect(again.status).toBe(204);
    } finally {
      await deleteQueue(queue);
    }
  });
});

describe("a caller naming a queue that the broker's declare finds but its get does not", () => {
  // RabbitMQ's queue.declare drops CR and LF from a name, basic.get does not; and it declares
  // its direct reply-to pseudo-queue, which no get can read. Each such get closes its channel.
  it("gets its own 404, and the leases other callers hold on the same route stay theirs to settle", async () => {
    const inbox = uniqueName("leased");
    const bodies = uniqueBodies(20);
    await declareQueue(inbox);
    try {
      for (const body of bodies) await publishDirect(inbox, body);
      const send = gatewayFor(
        `routes:\n  - { id: ${uniqueRouteId("leased")}, path: "/q/:name", amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: "{name}", ack: lease } } }\n`,
      );
      const leases: string[] = [];
      const received: string[] = [];
      for (let index = 0; index < bodies.length / 2; index++) {
        const answer = await send("GET", `/q/${inbox}`);
        expect(answer.status).toBe(200);
        leases.push(answer.headers.get("X-Lease-Id") ?? "");
        received.push(await answer.text());
      }
      const hostile = [`${inbox}%0A`, `%0D${inbox}`, `${inbox.slice(0, 8)}%0D%0A${inbox.slice(8)}`, "amq.rabbitmq.reply-to"];
      const hostileStatuses: number[] = [];
      for (const name of hostile) {
        // Beside honest gets in flight on the same route.
        const [answer, honest] = await Promise.all([send("GET", `/q/${name}`), send("GET", `/q/${inbox}`)]);
        hostileStatuses.push(answer.status);
        await answer.body?.cancel();
        expect(`${name}: ${honest.status}`).toBe(`${name}: 200`);
        leases.push(honest.headers.get("X-Lease-Id") ?? "");
        received.push(await honest.text());
      }
      expect(hostileStatuses).toEqual(hostile.map(() => 404));
      const acked = await send("POST", `/q/${inbox}/ack`, {
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ lease_ids: leases }),
      });
      const results = ((await acked.json()) as { results: Array<{ outcome: string }> }).results;
      expect(results.map((result) => result.outcome)).toEqual(leases.map(() => "acked"));
      // Each message handed out once: what is left was never delivered.
      const left = await withChannel(async (channel) => {
        const rest: Array<{ body: string; redelivered: boolean }> = [];
        for (let message = await channel.basicGet(inbox); message; message = await channel.basicGet(inbox)) {
          rest.push({ body: message.bodyString() ?? "", redelivered: message.redelivered });
        }
        return rest;
      });
      expect(left.filter((message) => message.redelivered)).toEqual([]);
      expect([...received, ...left.map((message) => message.body)].sort()).toEqual([...bodies].sort());
    } finally {
      await deleteQueue(inbox);
    }
  });
});

describe("a caller naming a stream queue", () => {
  // RabbitMQ answers a basic.get on a stream queue by closing the whole connection (540
  // NOT_IMPLEMENTED), and a passive declare cannot tell a stream from any other queue.
  it("costs the route's consuming connection once at most: after that it is that caller's 502 at once, and others' leases stay theirs", async () => {
    const inbox = uniqueName("beside-stream");
    const stream = uniqueName("stream");
    const bodies = uniqueBodies(10);
    await declareQueue(inbox);
    await declareQueue(stream, { "x-queue-type": "stream" });
    try {
      for (const body of bodies) await publishDirect(inbox, body);
      const send = gatewayFor(
        `routes:\n  - { id: ${uniqueRouteId("stream")}, path: "/q/:name", amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: "{name}", ack: lease } } }\n`,
      );
      // The first time may cost the connection (and the leases on it): the broker says what it is only so.
      const first = await send("GET", `/q/${stream}`);
      await first.body?.cancel();
      expect([502, 503]).toContain(first.status);
      const take = async () => {
        for (let attempt = 0; attempt < 50; attempt++) {
          const answer = await send("GET", `/q/${inbox}`);
          if (answer.status === 200) return { lease: answer.headers.get("X-Lease-Id") ?? "", body: await answer.text() };
          await answer.body?.cancel();
          // Reconnecting after the first.
          expect(answer.status).toBe(503);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        throw new Error("no message");
      };
      const taken = [await take(), await take(), await take()];
      const hostile: number[] = [];
      for (let round = 0; round < 5; round++) {
        const [answer, honest] = await Promise.all([send("GET", `/q/${stream}`), take()]);
        hostile.push(answer.status);
        await answer.body?.cancel();
        taken.push(honest);
      }
      expect(hostile).toEqual([502, 502, 502, 502, 502]);
      const acked = await send("POST", `/q/${inbox}/ack`, {
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ lease_ids: taken.map((one) => one.lease) }),
      });
      const results = ((await acked.json()) as { results: Array<{ outcome: string }> }).results;
      expect(results.map((result) => result.outcome)).toEqual(taken.map(() => "acked"));
      expect(await messageCount(inbox)).toBe(bodies.length - taken.length);
    } finally {
      await deleteQueue(inbox);
      await deleteQueue(stream);
    }
  });
});

describe("a caller holding more leases than the route's object may have timers", () => {
  it("changes nothing for an honest caller leasing and acknowledging beside it, and its own leases stay good", async () => {
    const base = uniqueName("leases");
    const [mallory, alice] = [`${base}.mallory`, `${base}.alice`];
    await declareQueue(mallory);
    await declareQueue(alice);
    try {
      // workerd lets an object have 10,000 active timers; a timer per lease ran out of them, and
      // every later lease, wait and heartbeat of the route failed with it.
      await withChannel(async (channel) => {
        await channel.confirmSelect();
        await Promise.all(Array.from({ length: 10_200 }, (_, i) => channel.basicPublish("", mallory, `held ${i}`)));
      });
      const bodies = uniqueBodies(30);
      for (const body of bodies) await publishDirect(alice, body);
      const send = gatewayFor(
        `routes:\n  - { id: ${uniqueRouteId("leases")}, path: "/leased/:user", amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: "${base}.{user}", ack: lease, lease_timeout_ms: 600000 } } }\n`,
      );
      const held: string[] = [];
      // A batch takes what fits in its answer: as many as it takes to hold them all.
      for (let i = 0; i < 500 && held.length < 10_200; i++) {
        const answer = await send("GET", "/leased/mallory?max=100");
        expect(answer.status).toBe(200);
        held.push(...((await answer.json()) as { messages: Array<{ lease_id: string }> }).messages.map((message) => message.lease_id));
      }
      expect(held).toHaveLength(10_200);
      // Alice, on the same route (the same object), leases and acknowledges each of hers.
      const received: string[] = [];
      for (;;) {
        const answer = await send("GET", "/leased/alice");
        if (answer.status === 204) break;
        expect(answer.status).toBe(200);
        received.push(await answer.text());
        const ack = await send("POST", "/leased/alice/ack", {
          body: JSON.stringify({ lease_ids: [answer.headers.get("x-lease-id")] }),
          headers: { "content-type": "application/json" },
        });
        expect(ack.status).toBe(200);
      }
      expect([...received].sort()).toEqual([...bodies].sort());
      expect(await messageCount(alice)).toBe(0);
      // Mallory's leases were all kept: a few acknowledged now, the connection they came on never lost.
      const ack = await send("POST", "/leased/mallory/ack", {
        body: JSON.stringify({ lease_ids: held.slice(0, 10) }),
        headers: { "content-type": "application/json" },
      });
      expect(ack.status).toBe(200);
    } finally {
      await deleteQueue(mallory);
      await deleteQueue(alice);
    }
  }, 120_000);
});
