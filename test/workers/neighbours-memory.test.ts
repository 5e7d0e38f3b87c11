/**
 * Memory is shared by every request of an isolate: large bodies from many callers at once are
 * held within the isolate's budget, what does not fit is refused (503, Retry-After) before it is
 * read or taken, and small requests beside them go on. Every answer is checked against the broker.
 */
import { describe, expect, it } from "vitest";
import { BROKER_URL, drain, messageCount, uniqueName, withChannel, withQueue } from "../helpers/broker";
import { workerMemory, WORKER_MEMORY_BYTES } from "../../src/http/request-memory";
import { gatewayFor, uniqueRouteId } from "./gateway";
import { uniqueBodies } from "./neighbours";

const MiB = 1024 * 1024;

/** Samples the Worker's held bytes every few milliseconds while `work` runs; returns its result and the largest sample. */
const watchingMemory = async <T>(work: () => Promise<T>): Promise<{ result: T; peak: number }> => {
  let peak = 0;
  let running = true;
  const sampler = (async () => {
    while (running) {
      peak = Math.max(peak, workerMemory.used);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  })();
  try {
    return { result: await work(), peak };
  } finally {
    running = false;
    await sampler;
  }
};

describe("large bodies from many callers at once", () => {
  it("are held within the isolate's budget; every 202 is queued, every 503 is not, and small publishes beside them all succeed", async () => {
    await withQueue("memory-publish", async (queue) => {
      const send = gatewayFor(
        `routes:\n  - { id: ${uniqueRouteId("memory")}, path: /in, amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue}, max_body_bytes: 2097152 } } }\n`,
      );
      const large = uniqueBodies(120, "L").map((body) => body.padEnd(MiB, "x"));
      const small = uniqueBodies(60, "S");
      const { result, peak } = await watchingMemory(() =>
        Promise.all([
          ...large.map(async (body) => {
            const answer = await send("POST", "/in", { body, headers: { "content-type": "text/plain" } });
            await answer.arrayBuffer();
            return { body, status: answer.status, retryAfter: answer.headers.get("retry-after") };
          }),
          ...small.map(async (body) => {
            const answer = await send("POST", "/in", { body, headers: { "content-type": "text/plain" } });
            await answer.arrayBuffer();
            return { body, status: answer.status, retryAfter: answer.headers.get("retry-after") };
          }),
        ]),
      );
      const queued = new Set((await drain(queue)).map((message) => message.bodyString()));
      const answered = (prefix: string) => result.filter((one) => one.body.startsWith(prefix));
      // The small ones: all published.
      expect(answered("S").map((one) => one.status)).toEqual(small.map(() => 202));
      // The large ones: each 202 queued, each refusal a 503 with Retry-After and not queued.
      for (const one of answered("L")) {
        if (one.status === 202) expect(queued.has(one.body)).toBe(true);
        else {
          expect({ status: one.status, retryAfter: one.retryAfter }).toEqual({ status: 503, retryAfter: "1" });
          expect(queued.has(one.body)).toBe(false);
        }
      }
      expect(queued.size).toBe(result.filter((one) => one.status === 202).length);
      // Never more held than the budget, and nothing once they are answered.
      expect(peak).toBeGreaterThan(0);
      expect(peak).toBeLessThanOrEqual(WORKER_MEMORY_BYTES);
      expect(workerMemory.used).toBe(0);
    });
  });

  it("taken as batches by many consumers at once, are each handed out once, within the budget, and nothing refused is taken", async () => {
    const queue = uniqueName("memory-consume");
    const bodies = uniqueBodies(80, "M").map((body) => body.padEnd(MiB, "y"));
    await withChannel(async (channel) => {
      await channel.queueDeclare(queue, { durable: false });
      for (const body of bodies) await channel.basicPublish("", queue, body);
    });
    try {
      const send = gatewayFor(
        `routes:\n  - { id: ${uniqueRouteId("memory-out")}, path: /out, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, auto_ack: true } } }\n`,
      );
      const received: string[] = [];
      const statuses = new Set<number>();
      const { peak } = await watchingMemory(() =>
        Promise.all(
          Array.from({ length: 40 }, async () => {
            const answer = await send("GET", "/out?max=100");
            statuses.add(answer.status);
            if (answer.status === 200) {
              const batch = (await answer.json()) as { messages: Array<{ body: string }> };
              received.push(...batch.messages.map((message) => message.body));
            } else await answer.arrayBuffer();
          }),
        ),
      );
      // What was not handed out is still queued: every message once, none lost.
      const left = (await drain(queue)).map((message) => message.bodyString() ?? "");
      expect([...received, ...left].sort()).toEqual([...bodies].sort());
      expect(new Set(received).size).toBe(received.length);
      expect([...statuses].every((status) => status === 200 || status === 204 || status === 503)).toBe(true);
      expect(peak).toBeLessThanOrEqual(WORKER_MEMORY_BYTES);
      expect(workerMemory.used).toBe(0);
      expect(await messageCount(queue)).toBe(0);
    } finally {
      await withChannel((channel) => channel.queueDelete(queue));
    }
  });
});

describe("answers to clients that do not read them", () => {
  for (const kind of ["stream", "long-poll"] as const) {
    it(`are held within the route's budget (${kind}s): the other messages stay in the queue`, async () => {
      const queue = uniqueName(`unread-${kind}`);
      await withChannel((channel) => channel.queueDeclare(queue, { durable: false }));
      try {
        const send = gatewayFor(
          `routes:\n  - { id: ${uniqueRouteId("unread")}, path: /out, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, stream: true, auto_ack: true } } }\n`,
        );
        const clients = 40;
        // Nobody reads these answers' bodies (a stream's opening comment aside): the gateway's
        // writes of them never complete.
        const answers = Array.from({ length: clients }, async () => {
          if (kind === "long-poll") return send("GET", "/out?wait=10");
          const stream = await send("GET", "/out", { headers: { accept: "text/event-stream" } });
          const reader = stream.body?.getReader();
          await reader?.read();
          reader?.releaseLock();
          return stream;
        });
        await new Promise((resolve) => setTimeout(resolve, 500));
        await withChannel(async (channel) => {
          for (let index = 0; index < clients; index++) await channel.basicPublish("", queue, new Uint8Array(MiB).fill(index));
        });
        await new Promise((resolve) => setTimeout(resolve, 2000));
        const taken = clients - (await messageCount(queue));
        // At most what the route's object holds at once (16 MiB); before, every client got one.
        expect(taken).toBeGreaterThan(0);
        expect(taken).toBeLessThanOrEqual(16);
        // Read now: the rest are handed out in turn.
        for (const answer of answers) await (await answer).body?.cancel();
      } finally {
        await withChannel((channel) => channel.queueDelete(queue));
      }
    });
  }
});
