/**
 * Long-poll (`GET ?wait=S`) inside workerd against the real broker: a wait that receives a
 * message published after it began, one that ends in 204 leaving the queue as it was, a client
 * that goes away mid-wait, several clients sharing the route in the order they came, and the
 * route's consume mode applied to what a wait receives.
 */
import { describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, drain, publishDirect, uniqueName, withChannel } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

const route = (id: string, queue: string, consumer = "auto_ack: true") =>
  `routes:\n  - { id: ${id}, path: /jobs, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, ${consumer} } } }\n`;

const withQueue = async (test: (queue: string) => Promise<void>) => {
  const queue = uniqueName("poll");
  await declareQueue(queue);
  try {
    await test(queue);
  } finally {
    await deleteQueue(queue);
  }
};

/** Ready messages and consumers of `queue`, from an independent client. */
const depth = (queue: string) =>
  withChannel(async (channel) => {
    const { messageCount, consumerCount } = await channel.queueDeclare(queue, { passive: true });
    return { messages: messageCount, consumers: consumerCount };
  });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("GET ?wait=S", () => {
  it("answers as soon as a message published after the request began arrives", () =>
    withQueue(async (queue) => {
      const send = gatewayFor(route(uniqueRouteId("poll"), queue));
      const started = Date.now();
      const answer = send("GET", "/jobs?wait=15");
      await sleep(1500);
      await publishDirect(queue, "late arrival");
      const response = await answer;
      expect(response.status).toBe(200);
      expect(await response.text()).toBe("late arrival");
      // Well before the wait's end: it came when the message did.
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(await depth(queue)).toEqual({ messages: 0, consumers: 0 });
    }));

  it("ends in 204 when nothing comes, leaving the queue as it was and no consumer behind", () =>
    withQueue(async (queue) => {
      const send = gatewayFor(route(uniqueRouteId("empty"), queue));
      const response = await send("GET", "/jobs?wait=1");
      expect(response.status).toBe(204);
      await sleep(100);
      expect(await depth(queue)).toEqual({ messages: 0, consumers: 0 });
      await publishDirect(queue, "after");
      expect(await depth(queue)).toEqual({ messages: 1, consumers: 0 });
    }));

  it("gives up a client's place at once when it goes away: a message published then stays in the queue", () =>
    withQueue(async (queue) => {
      const send = gatewayFor(route(uniqueRouteId("gone"), queue));
      const client = new AbortController();
      const answer = send("GET", "/jobs?wait=15", { signal: client.signal });
      await sleep(500);
      expect((await depth(queue)).consumers).toBe(1);
      client.abort();
      await sleep(300);
      await publishDirect(queue, "for somebody else");
      await sleep(300);
      expect(await depth(queue)).toEqual({ messages: 1, consumers: 0 });
      expect((await answer).status).toBe(204);
    }));

  it("serves waiting clients in the order they came, one message each, and requeues nothing in between", () =>
    withQueue(async (queue) => {
      const send = gatewayFor(route(uniqueRouteId("line"), queue));
      const answers: Array<Promise<string>> = [];
      for (let i = 0; i < 4; i++) {
        answers.push(send("GET", "/jobs?wait=15").then((response) => response.text()));
        await sleep(150);
      }
      for (let i = 0; i < 4; i++) await publishDirect(queue, `m${i}`);
      expect(await Promise.all(answers)).toEqual(["m0", "m1", "m2", "m3"]);
      expect(await depth(queue)).toEqual({ messages: 0, consumers: 0 });
    }));

  it("takes no more than it asked for: what arrives after goes back to the queue in its order", () =>
    withQueue(async (queue) => {
      const send = gatewayFor(route(uniqueRouteId("max"), queue));
      const answer = send("GET", "/jobs?wait=15&max=2");
      await sleep(500);
      await withChannel(async (channel) => {
        for (let i = 0; i < 5; i++) await channel.basicPublish("", queue, `b${i}`);
      });
      const batch = (await (await answer).json()) as { messages: Array<{ body: string }> };
      const got = batch.messages.map((message) => message.body);
      expect(got.length).toBeGreaterThanOrEqual(1);
      expect(got).toEqual(["b0", "b1"].slice(0, got.length));
      await sleep(300);
      const left = (await drain(queue)).map((message) => message.bodyString());
      expect([...got, ...left]).toEqual(["b0", "b1", "b2", "b3", "b4"]);
    }));

  it("leases what it receives under ack: lease, and the lease settles", () =>
    withQueue(async (queue) => {
      const send = gatewayFor(route(uniqueRouteId("lease"), queue, "ack: lease"));
      const answer = send("GET", "/jobs?wait=15");
      await sleep(500);
      await publishDirect(queue, "leased while waiting");
      const response = await answer;
      expect(await response.text()).toBe("leased while waiting");
      const leaseId = response.headers.get("x-lease-id");
      expect(leaseId).toMatch(/^0\./);
      const acked = await send("POST", "/jobs/ack", {
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ lease_ids: [leaseId] }),
      });
      expect(acked.status).toBe(200);
      await sleep(200);
      expect(await depth(queue)).toEqual({ messages: 0, consumers: 0 });
    }));

  it("keeps serving waiting clients while earlier ones hold their messages on leases", () =>
    withQueue(async (queue) => {
      const send = gatewayFor(route(uniqueRouteId("starve"), queue, "ack: lease"));
      const take = () =>
        send("GET", "/jobs?wait=10").then(async (response) => (response.status === 200 ? response.text() : String(response.status)));
      const first = take();
      await sleep(150);
      const second = take();
      await sleep(300);
      await publishDirect(queue, "m1");
      expect(await first).toBe("m1");
      const third = take();
      await sleep(300);
      await publishDirect(queue, "m2");
      await publishDirect(queue, "m3");
      // Neither waits out its time: the leased m1 does not use up what the broker may send.
      expect(await Promise.all([second, third])).toEqual(["m2", "m3"]);
    }));

  it("under many waiting clients and bursts of messages, hands out each message exactly once and leaves none unacknowledged", () =>
    withQueue(async (queue) => {
      const send = gatewayFor(route(uniqueRouteId("burst"), queue, "auto_ack: false"));
      const bodies = Array.from({ length: 60 }, (_, i) => `burst-${i}`);
      const received: string[] = [];
      let stop = false;
      // Ten clients, each polling for up to 3 messages at a time until the test has seen them all.
      const clients = Array.from({ length: 10 }, async () => {
        while (!stop) {
          const response = await send("GET", "/jobs?wait=2&max=3");
          if (response.status === 200)
            received.push(...((await response.json()) as { messages: Array<{ body: string }> }).messages.map((m) => m.body));
          else await response.arrayBuffer();
        }
      });
      await sleep(300);
      await withChannel(async (channel) => {
        for (const [index, body] of bodies.entries()) {
          await channel.basicPublish("", queue, body);
          if (index % 15 === 14) await sleep(100);
        }
      });
      const deadline = Date.now() + 15_000;
      while (received.length < bodies.length && Date.now() < deadline) await sleep(100);
      stop = true;
      await Promise.all(clients);
      expect([...received].sort()).toEqual([...bodies].sort());
      await sleep(300);
      expect(await depth(queue)).toEqual({ messages: 0, consumers: 0 });
    }));

  it("is refused with 400 outside 0 to 20 seconds", () =>
    withQueue(async (queue) => {
      const send = gatewayFor(route(uniqueRouteId("bounds"), queue));
      for (const wait of ["21", "-1", "abc", "1e3"]) expect((await send("GET", `/jobs?wait=${wait}`)).status, wait).toBe(400);
    }));
});
