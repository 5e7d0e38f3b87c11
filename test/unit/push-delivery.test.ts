/**
 * Push delivery (src/push/) against the real broker and a real HTTP endpoint of the test's own,
 * which checks every request's signature with the `standardwebhooks` package. Every message is
 * accounted for: delivered to the endpoint, in the queue, or in the dead-letter queue.
 */
import { createHmac } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { AMQPClient, type AMQPChannel, type AMQPMessage } from "@cloudamqp/amqp-client";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PushConfig } from "../../src/contract/route-settings";
import { ObjectTimers } from "../../src/object-timers";
import { PushDelivery, type PushEvents } from "../../src/push/push-delivery";
import { retryDelayMs } from "../../src/push/retry-delay";
import { webhookSecretKey } from "../../src/contract/webhook-secret";
import { WebhookSigner } from "../../src/push/webhook-signature";
import { BROKER_URL, drain, uniqueName } from "../helpers/broker";

const SECRET = `whsec_${Buffer.from("a test key of thirty-two bytes!!").toString("base64")}`;

interface Received {
  body: Buffer;
  headers: IncomingMessage["headers"];
  at: number;
}

/** An HTTP endpoint that records what it receives; `answer` decides each request's fate. */
const endpoint = async (answer: (request: Received, response: ServerResponse) => void) => {
  const received: Received[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const entry = { body: Buffer.concat(chunks), headers: request.headers, at: Date.now() };
      received.push(entry);
      answer(entry, response);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return {
    url,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
};

const verifies = (entry: Received): boolean => {
  try {
    // Text bodies only: the package decodes the payload as UTF-8 (binary ones: see the signing test).
    new Webhook(SECRET).verify(entry.body.toString("utf8"), entry.headers as Record<string, string>, { jsonParse: false });
    return true;
  } catch {
    return false;
  }
};

let connection: Awaited<ReturnType<AMQPClient["connect"]>>;
beforeAll(async () => {
  connection = await new AMQPClient(BROKER_URL).connect();
});
afterAll(async () => {
  await connection?.close().catch(() => undefined);
});

/** A queue of the test's own with `bodies` in it, and a dead-letter queue behind it. */
const filledQueue = async (bodies: string[]) => {
  const channel = await connection.channel();
  const queue = uniqueName("push");
  const dead = `${queue}-dead`;
  await channel.queueDeclare(dead, { durable: false });
  await channel.queueDeclare(queue, { durable: false }, { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead });
  await channel.confirmSelect();
  await Promise.all(bodies.map((body) => channel.basicPublish("", queue, body, { contentType: "text/plain" })));
  return {
    queue,
    dead,
    remove: async () => {
      await channel.queueDelete(queue).catch(() => undefined);
      await channel.queueDelete(dead).catch(() => undefined);
      await channel.close().catch(() => undefined);
    },
  };
};

const counting = () => {
  const counts = { pushed: 0, failed: 0, deadLettered: 0, failures: [] as Array<{ attempt: number; retryInMs: number | undefined }> };
  const events: PushEvents = {
    pushed: () => counts.pushed++,
    failed: ({ attempt, retryInMs }) => {
      counts.failed++;
      counts.failures.push({ attempt, retryInMs });
    },
    deadLettered: () => counts.deadLettered++,
  };
  return { counts, events };
};

const settings = (url: string, overrides: Partial<PushConfig> = {}): PushConfig => ({
  url,
  secret: SECRET,
  concurrency: 1,
  timeout_ms: 2000,
  max_attempts: 5,
  backoff_ms: 50,
  max_backoff_ms: 400,
  headers: {},
  ...overrides,
});

/** What a route gives a delivery's request from the message (the route side's mapping; here the two headers the tests read). */
const noHeaders = (message: AMQPMessage) => ({
  "x-redelivered": String(message.redelivered),
  ...(message.properties.contentType ? { "content-type": message.properties.contentType } : {}),
});

/**
 * Runs `work` with a push from a queue of the test's own (filled with `bodies`) to `hook`, and
 * removes them all afterwards, whatever happened.
 */
const pushing = async (
  bodies: string[],
  hook: Awaited<ReturnType<typeof endpoint>>,
  overrides: Partial<PushConfig> & { random?: () => number },
  work: (run: {
    push: PushDelivery;
    channel: AMQPChannel;
    queue: string;
    dead: string;
    counts: ReturnType<typeof counting>["counts"];
  }) => Promise<void>,
) => {
  const { random, ...config } = overrides;
  const { queue, dead, remove } = await filledQueue(bodies);
  const channel = await connection.channel();
  const { counts, events } = counting();
  const push = new PushDelivery({
    queue,
    push: settings(hook.url, config),
    events,
    messageHeaders: noHeaders,
    timers: new ObjectTimers(),
    ...(random ? { random } : {}),
  });
  try {
    await push.start(channel);
    await work({ push, channel, queue, dead, counts });
  } finally {
    await push.pause();
    await channel.close().catch(() => undefined);
    await remove();
    await hook.close();
  }
};

const until = async (done: () => boolean | Promise<boolean>, ms = 20_000) => {
  const deadline = Date.now() + ms;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

const messageCount = async (queue: string) => {
  const channel = await connection.channel();
  try {
    return (await channel.queueDeclare(queue, { passive: true })).messageCount;
  } finally {
    await channel.close().catch(() => undefined);
  }
};

describe("Standard Webhooks signing", () => {
  it("signs what the standardwebhooks package verifies, and a binary body's HMAC over its raw bytes", async () => {
    const signer = new WebhookSigner(SECRET);
    const text = new TextEncoder().encode('{"order":"é"}');
    const headers = await signer.headers("msg_1", Math.floor(Date.now() / 1000), text);
    expect(() => new Webhook(SECRET).verify(Buffer.from(text).toString("utf8"), headers)).not.toThrow();
    expect(() => new Webhook(SECRET).verify('{"order":"e"}', headers)).toThrow();
    const binary = Uint8Array.from([0, 255, 128, 10, 13, 200]);
    const signed = await signer.headers("msg_2", 1_700_000_000, binary);
    const key = Buffer.from(SECRET.slice("whsec_".length), "base64");
    const expected = createHmac("sha256", key)
      .update(Buffer.concat([Buffer.from("msg_2.1700000000."), binary]))
      .digest("base64");
    expect(signed["webhook-signature"]).toBe(`v1,${expected}`);
  });

  it("refuses a secret that is not whsec_ and base64 of at least 16 bytes", () => {
    expect(webhookSecretKey("s3cret")).toEqual({ problem: "must start with whsec_" });
    expect(webhookSecretKey("whsec_not base64!")).toEqual({ problem: "must be base64 after whsec_ (no spaces or line breaks)" });
    expect(webhookSecretKey(`whsec_${btoa("short")}`)).toEqual({ problem: "must hold a key of at least 16 bytes (it has 5)" });
    expect("key" in webhookSecretKey(SECRET)).toBe(true);
  });
});

describe("retry delays", () => {
  it("double from backoff_ms, stop at max_backoff_ms, and jitter by at most half either way", () => {
    expect([1, 2, 3, 4, 5].map((failed) => retryDelayMs(failed, 1000, 6000, () => 0.5))).toEqual([1000, 2000, 4000, 6000, 6000]);
    expect(retryDelayMs(2, 1000, 60_000, () => 0)).toBe(1000);
    expect(retryDelayMs(2, 1000, 60_000, () => 0.999_999)).toBe(3000);
  });
});

describe("a push to a webhook", () => {
  it("delivers every message once, signed, in queue order at concurrency 1", async () => {
    const bodies = Array.from({ length: 300 }, (_, i) => `ordered ${i} ${crypto.randomUUID()}`);
    const hook = await endpoint((_, response) => response.writeHead(204).end());
    await pushing(bodies, hook, {}, async ({ push, queue, counts }) => {
      await until(() => counts.pushed === bodies.length);
      expect(hook.received.map((entry) => entry.body.toString())).toEqual(bodies);
      expect(hook.received.every(verifies)).toBe(true);
      expect(
        hook.received.every((entry) => entry.headers["webhook-attempt"] === "1" && entry.headers["content-type"] === "text/plain"),
      ).toBe(true);
      expect(new Set(hook.received.map((entry) => entry.headers["webhook-id"])).size).toBe(bodies.length);
      await push.pause();
      expect(await messageCount(queue)).toBe(0);
    });
  });

  it("delivers every message at concurrency 16, each once", async () => {
    const bodies = Array.from({ length: 500 }, (_, i) => `parallel ${i} ${crypto.randomUUID()}`);
    let inFlight = 0;
    let most = 0;
    const hook = await endpoint((_, response) => {
      inFlight++;
      most = Math.max(most, inFlight);
      setTimeout(() => {
        inFlight--;
        response.writeHead(200).end();
      }, 5);
    });
    await pushing(bodies, hook, { concurrency: 16 }, async ({ counts }) => {
      await until(() => counts.pushed === bodies.length);
      expect(hook.received.map((entry) => entry.body.toString()).sort()).toEqual([...bodies].sort());
      expect(hook.received.every(verifies)).toBe(true);
      expect(most).toBeGreaterThan(1);
      expect(most).toBeLessThanOrEqual(16);
    });
  });

  it("retries what fails (a 500, a timeout, a connection cut) after the backoff, and acknowledges only the 2xx", async () => {
    const bodies = Array.from({ length: 6 }, (_, i) => `flaky ${i} ${crypto.randomUUID()}`);
    const hook = await endpoint((entry, response) => {
      const attempt = Number(entry.headers["webhook-attempt"]);
      if (attempt === 1) return void response.writeHead(500).end();
      // The second attempt: a cut connection for some, no answer in time for the others.
      if (attempt === 2) return void (bodies.indexOf(entry.body.toString()) % 2 === 0 ? response.socket?.destroy() : undefined);
      response.writeHead(202).end();
    });
    await pushing(bodies, hook, { timeout_ms: 300, random: () => 0.5 }, async ({ push, queue, counts }) => {
      await until(() => counts.pushed === bodies.length);
      const delivered = hook.received.filter((entry) => entry.headers["webhook-attempt"] === "3");
      expect(delivered.map((entry) => entry.body.toString())).toEqual(bodies);
      expect(counts.failed).toBe(bodies.length * 2);
      // Each message's three attempts carry one id; the retries waited 50 then 100 ms (jitter 0 here).
      for (const body of bodies) {
        const attempts = hook.received.filter((entry) => entry.body.toString() === body);
        expect(attempts.map((entry) => entry.headers["webhook-attempt"])).toEqual(["1", "2", "3"]);
        expect(new Set(attempts.map((entry) => entry.headers["webhook-id"])).size).toBe(1);
        expect((attempts[1]?.at ?? 0) - (attempts[0]?.at ?? 0)).toBeGreaterThanOrEqual(45);
      }
      expect(counts.failures.filter((failure) => failure.attempt === 1).every((failure) => failure.retryInMs === 50)).toBe(true);
      expect(counts.failures.filter((failure) => failure.attempt === 2).every((failure) => failure.retryInMs === 100)).toBe(true);
      await push.pause();
      expect(await messageCount(queue)).toBe(0);
    });
  });

  it("after max_attempts failed attempts, rejects the message to the queue's dead-letter exchange", async () => {
    const bodies = Array.from({ length: 5 }, (_, i) => `doomed ${i} ${crypto.randomUUID()}`);
    const hook = await endpoint((_, response) => response.writeHead(500).end());
    await pushing(bodies, hook, { max_attempts: 3, backoff_ms: 10 }, async ({ push, dead, counts }) => {
      await until(() => counts.deadLettered === bodies.length);
      expect(counts).toMatchObject({ pushed: 0, failed: bodies.length * 3, deadLettered: bodies.length });
      expect(hook.received).toHaveLength(bodies.length * 3);
      expect(push.state().last_error?.message).toMatch(/attempt 3 of .*: the endpoint answered 500/);
      await until(async () => (await messageCount(dead)) === bodies.length);
      expect((await drain(dead)).map((message) => message.bodyToString())).toEqual(bodies);
    });
  });

  it("on pause, lets the attempt under way finish and puts back a message waiting for its retry; nothing is lost", async () => {
    const bodies = Array.from({ length: 4 }, (_, i) => `paused ${i} ${crypto.randomUUID()}`);
    let failing = true;
    const hook = await endpoint((_, response) => response.writeHead(failing ? 503 : 200).end());
    await pushing(bodies, hook, { backoff_ms: 60_000, max_backoff_ms: 60_000 }, async ({ push, channel, queue, counts }) => {
      await until(() => counts.failed === 1);
      expect(push.state()).toMatchObject({ state: "running", in_flight: 1 });
      // The first message waits a minute for its retry: a pause puts it back now.
      await push.pause();
      expect(push.state()).toMatchObject({ state: "paused", in_flight: 0 });
      await until(async () => (await messageCount(queue)) === bodies.length);
      failing = false;
      await push.start(channel);
      await until(() => counts.pushed === bodies.length);
      const delivered = hook.received.filter((entry) => entry.headers["webhook-attempt"] === "1").slice(1);
      expect(delivered.map((entry) => entry.body.toString())).toEqual(bodies);
      // The message put back comes again marked redelivered (X-Redelivered on a real route).
      expect(delivered[0]?.headers["x-redelivered"]).toBe("true");
    });
  });
});
