/**
 * Faults of a real broker, its connections and the Web-AMQP relay, with the gateway as
 * `npm start` runs it. Every request must get an answer, within the configured timeouts, and
 * the routes must come back by themselves. The broker is a disposable RabbitMQ node of the test's
 * own: the one on 127.0.0.1:5672 is never stopped, alarmed or cut.
 */
import { spawnSync, type ChildProcess } from "node:child_process";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startRelay } from "../../scripts/lib/web-amqp-relay";
import { declareQueue, drain as drainFrom, messageCount, uniqueName, withChannel } from "../helpers/broker";
import { startDisposableBroker, type DisposableBroker } from "../helpers/disposable-broker";
import { answerAtOnce, startWebhookEndpoint, type WebhookEndpoint } from "../helpers/webhook-endpoint";
import { connectionEvents, npmStart, waitFor, type RunningGateway } from "./npm-start";

const RELAY = "127.0.0.1:15681";
const queue = uniqueName("faults");
const pushQueue = uniqueName("faults-push");
const prefix = `fault-${queue.slice(-8)}`;
const HOOK_SECRET = `whsec_${Buffer.from("a faults key of thirty-two bytes").toString("base64")}`;

const ROUTES = (url: string, hookUrl: string) => `
routes:
  - id: ${prefix}-tcp
    path: /tcp
    amqp:
      enabled: true
      url: "${url}"
      connect_timeout_ms: 2000
      producer: { routing_key: ${queue}, confirm_timeout_ms: 2000 }
      consumer: { queue: ${queue} }
  - id: ${prefix}-lease
    path: /leased
    amqp:
      enabled: true
      url: "${url}"
      connect_timeout_ms: 2000
      consumer: { queue: ${queue}, ack: lease }
  - id: ${prefix}-ws
    path: /ws
    amqp:
      enabled: true
      url: "ws://guest:guest@${RELAY}/?vhost=/"
      connect_timeout_ms: 2000
      producer: { routing_key: ${queue}, confirm_timeout_ms: 2000 }
  - id: ${prefix}-push
    path: /pushed
    amqp:
      enabled: true
      url: "${url}"
      connect_timeout_ms: 2000
      consumer: { queue: ${pushQueue}, push: { url: "${hookUrl}/", secret: "\${HOOK_SECRET}", backoff_ms: 50, max_backoff_ms: 500, max_attempts: 100 } }
`;

let broker: DisposableBroker;
let gateway: RunningGateway;
let relay: ChildProcess | undefined;
let hook: WebhookEndpoint;
const drain = (name: string) => drainFrom(name, broker.url);

const post = async (path: string, body = "{}") => {
  const started = Date.now();
  const response = await fetch(`${gateway.url}${path}`, {
    method: "POST",
    body,
    headers: { "content-type": "application/json" },
    signal: AbortSignal.timeout(20_000),
  });
  return { status: response.status, body: await response.text(), headers: response.headers, ms: Date.now() - started };
};

/** Polls `path` with publishes until one is accepted; returns how long that took. */
const recoveryTime = async (path: string, timeoutMs = 20_000): Promise<number> => {
  const started = Date.now();
  await waitFor(async () => (await post(path)).status === 202, timeoutMs);
  return Date.now() - started;
};

/** Sends SIGSTOP or SIGCONT to a process and its children. */
const signalTree = (process: ChildProcess | undefined, signal: "STOP" | "CONT") => {
  if (process?.pid === undefined) return;
  spawnSync("pkill", [`-${signal}`, "-P", String(process.pid)]);
  spawnSync("kill", [`-${signal}`, String(process.pid)]);
};

beforeAll(async () => {
  broker = await startDisposableBroker();
  await declareQueue(queue, {}, broker.url);
  await declareQueue(pushQueue, {}, broker.url);
  relay = await startRelay(RELAY, broker.address);
  hook = await startWebhookEndpoint(HOOK_SECRET);
  gateway = await npmStart(ROUTES(broker.url, hook.url), { HOOK_SECRET });
}, 180_000);
// A fault test that failed halfway must not leave the next one a stopped or alarmed broker.
afterEach(async () => {
  await broker.startApp();
  await broker.setMemoryAlarm(false);
});
afterAll(async () => {
  await gateway?.stop();
  relay?.kill();
  await hook?.close();
  await broker?.stop();
});

describe("the broker closes the gateway's connections", () => {
  it("the routes recover within seconds, on both transports", async () => {
    for (const path of ["/tcp", "/ws"]) expect((await post(path)).status).toBe(202);
    expect(await broker.closeConnectionsNamed(`amqp-edge-gateway ${prefix}`)).toBeGreaterThanOrEqual(2);
    const answer = await post("/tcp");
    expect([202, 503]).toContain(answer.status);
    for (const path of ["/tcp", "/ws"]) expect(await recoveryTime(path)).toBeLessThan(10_000);
    // Each connection event is a log line of its own, with the URL's password hidden.
    const events = connectionEvents(gateway, `amqp-edge-gateway ${prefix}-tcp publish`);
    expect(events).toEqual(expect.arrayContaining(["broker connected", "broker connection lost; reconnecting", "broker reconnected"]));
    expect(gateway.output()).not.toContain("guest:guest@");
    await drain(queue);
  });
});

describe("the broker drops a connection that holds leases", () => {
  it("puts the leased messages back itself, and a later ack of them answers 410 for each", async () => {
    await drain(queue);
    expect((await post("/tcp", '"leased then dropped"')).status).toBe(202);
    const leased = await fetch(`${gateway.url}/leased`, { signal: AbortSignal.timeout(20_000) });
    expect(await leased.text()).toBe('"leased then dropped"');
    const leaseId = leased.headers.get("x-lease-id");
    expect(await broker.closeConnectionsNamed(`amqp-edge-gateway ${prefix}-lease consume`)).toBe(1);
    // Back in the queue, by the broker's doing, marked as delivered before.
    let back: Awaited<ReturnType<typeof drain>> = [];
    await waitFor(async () => (back = [...back, ...(await drain(queue))]).length > 0, 10_000);
    expect(back.map((message) => [message.bodyString(), message.redelivered])).toEqual([['"leased then dropped"', true]]);
    const late = await fetch(`${gateway.url}/leased/ack`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ lease_ids: [leaseId] }),
      signal: AbortSignal.timeout(20_000),
    });
    expect(late.status).toBe(410);
    expect(((await late.json()) as { results: Array<{ outcome: string }> }).results[0]?.outcome).toBe("gone");
  });
});

describe("the broker stops and starts", () => {
  it("answers 503 with Retry-After while it is down, never hangs, recovers after, and keeps what it confirmed", async () => {
    await drain(queue);
    expect((await post("/tcp", '"confirmed before the restart"')).status).toBe(202);
    await broker.stopApp();
    try {
      for (let i = 0; i < 3; i++) {
        const answer = await post("/tcp");
        expect(answer.status).toBe(503);
        expect(answer.headers.get("retry-after")).toBe("1");
        expect(answer.ms).toBeLessThan(5_000);
      }
      const consume = await fetch(`${gateway.url}/tcp`, { signal: AbortSignal.timeout(20_000) });
      expect(consume.status).toBe(503);
    } finally {
      await broker.startApp();
    }
    expect(await recoveryTime("/tcp")).toBeLessThan(15_000);
    const stats = (await (await fetch(`${gateway.url}/amqp`)).json()) as Record<
      string,
      { connected: boolean; last_error: { message: string } | null }
    >;
    expect(stats[`${prefix}-tcp`]?.connected).toBe(true);
    expect(stats[`${prefix}-tcp`]?.last_error?.message).toMatch(/broker/);
    // Persistent, in a durable queue, confirmed: it outlived the broker's restart.
    const bodies = (await drain(queue)).map((message) => message.bodyString());
    expect(bodies[0]).toBe('"confirmed before the restart"');
  });
});

describe("a push route through a broker restart", () => {
  it("delivers every message published before and after, signed: nothing lost, a duplicate only as a redelivery", async () => {
    const publish = (bodies: string[]) =>
      withChannel(async (channel) => {
        await channel.confirmSelect();
        await Promise.all(bodies.map((body) => channel.basicPublish("", pushQueue, body, { deliveryMode: 2 })));
      }, broker.url);
    // Slow enough that the restart catches a delivery under way.
    hook.answer = (entry, response) => void setTimeout(() => answerAtOnce(entry, response), 20);
    try {
      const before = Array.from({ length: 100 }, (_, i) => `before ${i} ${crypto.randomUUID()}`);
      await publish(before);
      await waitFor(() => hook.received.length >= 10, 20_000);
      await broker.stopApp();
      // Most of them still in the queue (or in flight) when the broker went.
      expect(hook.received.length).toBeLessThan(before.length / 2);
      try {
        await new Promise((resolve) => setTimeout(resolve, 3_000));
      } finally {
        await broker.startApp();
      }
      const after = Array.from({ length: 50 }, (_, i) => `after ${i} ${crypto.randomUUID()}`);
      await publish(after);
      const delivered = () => new Set(hook.received.map((entry) => entry.body));
      await waitFor(() => [...before, ...after].every((body) => delivered().has(body)), 60_000);
      await waitFor(async () => (await messageCount(pushQueue, broker.url)) === 0, 10_000);
      expect(hook.received.every((entry) => entry.verified)).toBe(true);
      // A body that came again came as a redelivery: the restart raced its 2xx, or took it in flight.
      const seen = new Set<string>();
      for (const entry of hook.received) {
        if (seen.has(entry.body))
          expect({ body: entry.body, redelivered: entry.headers["x-redelivered"] }).toEqual({ body: entry.body, redelivered: "true" });
        seen.add(entry.body);
      }
      expect(seen.size).toBe(before.length + after.length);
    } finally {
      hook.answer = answerAtOnce;
    }
  }, 120_000);
});

describe("the Web-AMQP relay dies and comes back", () => {
  it("ws:// publishes get 503 while it is gone and 202 once it is back", async () => {
    expect((await post("/ws")).status).toBe(202);
    relay?.kill();
    await waitFor(() => relay?.exitCode !== null || relay?.signalCode !== null);
    const refused = await post("/ws");
    expect(refused.status).toBe(503);
    expect(refused.ms).toBeLessThan(5_000);
    relay = await startRelay(RELAY);
    expect(await recoveryTime("/ws")).toBeLessThan(15_000);
    await drain(queue);
  });

  it("a relay that stops answering (a dead peer) gets a 504 within the confirm timeout, not a hang", async () => {
    expect((await post("/ws")).status).toBe(202);
    // websockify serves each connection from a forked child: freeze them all.
    signalTree(relay, "STOP");
    try {
      const answer = await post("/ws");
      expect(answer.status).toBe(504);
      expect((JSON.parse(answer.body) as { error: string }).error).toMatch(/may or may not have been enqueued/);
      expect(answer.ms).toBeLessThan(5_000);
    } finally {
      signalTree(relay, "CONT");
    }
    expect(await recoveryTime("/ws")).toBeLessThan(15_000);
    await drain(queue);
  });
});

describe("the broker blocks publishers (memory alarm)", () => {
  it("publishes get 503 with Retry-After instead of hanging, consumers keep working, and publishing resumes", async () => {
    expect((await post("/tcp", '"before"')).status).toBe(202);
    await broker.setMemoryAlarm(true);
    try {
      // The broker tells the connection it is blocked; the first publish may be held (and answered 504).
      await waitFor(async () => (await post("/tcp")).status === 503, 15_000);
      const refused = await post("/tcp");
      expect(refused.status).toBe(503);
      expect(refused.headers.get("retry-after")).toBe("1");
      expect((JSON.parse(refused.body) as { error: string }).error).toMatch(/not accepting messages/);
      const consumed = await fetch(`${gateway.url}/tcp`, { signal: AbortSignal.timeout(10_000) });
      expect([200, 204]).toContain(consumed.status);
    } finally {
      await broker.setMemoryAlarm(false);
    }
    expect(await recoveryTime("/tcp")).toBeLessThan(15_000);
    await waitFor(
      () => connectionEvents(gateway, `amqp-edge-gateway ${prefix}-tcp publish`).includes("broker unblocked publishing"),
      10_000,
    );
    expect(connectionEvents(gateway, `amqp-edge-gateway ${prefix}-tcp publish`)).toContain("broker blocked publishing");
    await drain(queue);
  });
});
