/**
 * What a process manager and a load balancer see of the gateway, black-box on each runtime
 * (GATEWAY_RUNTIME): `/healthz`, `/readyz` with a broker up and one unreachable; and on the Node
 * and Deno servers, SIGTERM's drain (requests in flight answered, every 202 in the queue, held
 * messages back in their queue, exit 0) and a client address that a header cannot forge.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BROKER_URL, DEAD_URL, declareQueue, deleteQueue, drain, messageCount, uniqueName } from "../helpers/broker";
import { npmStart, RUNTIME, waitFor, type RunningGateway } from "./npm-start";

const queue = uniqueName("self-hosted");
/** Stays empty: a long-poll on it waits until the drain answers it. */
const idleQueue = uniqueName("self-hosted-idle");
const routes = (extra = "") => `routes:
  - { id: work, path: /work, amqp: { enabled: true, url: "${BROKER_URL}", producer: { exchange: "", routing_key: ${queue} }, consumer: { queue: ${queue} } } }
  - { id: leased, path: /leased, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, ack: lease, lease_timeout_ms: 60000 } } }
  - { id: idle, path: /idle, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${idleQueue} } } }
  - { id: limited, path: /limited, rate_limit: { requests: 2, period_s: 60, key: ip }, amqp: { enabled: true, url: "${BROKER_URL}", producer: { exchange: "", routing_key: ${queue} } } }
${extra}`;

beforeAll(async () => {
  await declareQueue(queue);
  await declareQueue(idleQueue);
});
afterAll(async () => {
  await deleteQueue(queue);
  await deleteQueue(idleQueue);
});

describe(`health checks (${RUNTIME})`, () => {
  let gateway: RunningGateway;
  beforeAll(async () => {
    gateway = await npmStart(
      routes(
        `  - { id: unreachable, path: /dead, amqp: { enabled: true, url: "${DEAD_URL}", connect_timeout_ms: 1000, producer: { exchange: "" } } }`,
      ),
    );
  }, 120_000);
  afterAll(() => gateway?.stop());

  it("answers /healthz 200 while the process serves", async () => {
    const response = await fetch(`${gateway.url}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "ok" });
  });

  it("answers /readyz 503 while one route's broker cannot be reached, naming no route or address", async () => {
    const response = await fetch(`${gateway.url}/readyz`);
    expect(response.status).toBe(503);
    const body = await response.text();
    expect(JSON.parse(body)).toEqual({ status: "not ready", routes: { ready: 4, not_ready: 1 } });
    expect(body).not.toMatch(/127\.0\.0\.1|unreachable|guest/);
  });
});

describe(`readiness with every broker up (${RUNTIME})`, () => {
  it("answers /readyz 200 once each route's connections are open, and /amqp shows them connected", async () => {
    const gateway = await npmStart(routes());
    try {
      const response = await fetch(`${gateway.url}/readyz`);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ status: "ready", routes: { ready: 4, not_ready: 0 } });
      const stats = (await (await fetch(`${gateway.url}/amqp`)).json()) as Record<string, { connected: boolean }>;
      expect(Object.values(stats).map((route) => route.connected)).toEqual([true, true, true, true]);
    } finally {
      await gateway.stop();
    }
  }, 120_000);
});

/** A start that must be refused: one that serves after all is stopped (nothing left listening on 0.0.0.0) and fails. */
const refusedStart = async (env: Record<string, string>): Promise<never> => {
  const started = await npmStart(routes(), env);
  await started.stop();
  throw new Error("the gateway started");
};

describe.runIf(RUNTIME !== "workerd")(`a server of our own (${RUNTIME})`, () => {
  it("counts a rate limit by the socket's address: a forged CF-Connecting-IP does not get a new bucket", async () => {
    const gateway = await npmStart(routes());
    try {
      const statuses: number[] = [];
      for (const ip of ["198.51.100.1", "198.51.100.2", "198.51.100.3"]) {
        const response = await fetch(`${gateway.url}/limited`, { method: "POST", body: ip, headers: { "CF-Connecting-IP": ip } });
        statuses.push(response.status);
      }
      expect(statuses).toEqual([202, 202, 429]);
    } finally {
      await gateway.stop();
      await drain(queue);
    }
  }, 120_000);

  it("refuses to start, with one line each: on a state directory another live gateway holds, on one it cannot use, on a public /amqp it would serve to other machines", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "gw-state-"));
    const first = await npmStart(routes(), { STATE_DIR: stateDir });
    try {
      await expect(refusedStart({ STATE_DIR: stateDir })).rejects.toThrow(
        /cannot use STATE_DIR .*: another gateway \(process \d+\) uses this state directory/,
      );
    } finally {
      await first.stop();
    }
    // The first let go when it stopped: the directory is free again.
    const second = await npmStart(routes(), { STATE_DIR: stateDir });
    await second.stop();
    const aFile = join(mkdtempSync(join(tmpdir(), "gw-state-")), "not-a-directory");
    writeFileSync(aFile, "");
    await expect(refusedStart({ STATE_DIR: aFile })).rejects.toThrow(/cannot use STATE_DIR .*not-a-directory/);
    await expect(refusedStart({ HOST: "0.0.0.0", ADMIN_TOKEN: "" })).rejects.toThrow(
      /HOST=0\.0\.0\.0 serves other machines, and GET \/amqp would be public/,
    );
  }, 120_000);

  it("drains on SIGTERM: every request in flight answered, every 202 in the queue, a long-poll answered, a lease handed back, exit 0", async () => {
    await drain(queue);
    const gateway = await npmStart(routes(), { DRAIN_TIMEOUT_S: "10" });
    try {
      // A leased message, held when the signal comes: it must be back in the queue afterwards.
      await fetch(`${gateway.url}/work`, { method: "POST", body: "leased-before-stop" });
      const lease = await fetch(`${gateway.url}/leased`);
      expect(lease.status).toBe(200);
      expect(await lease.text()).toBe("leased-before-stop");
      expect(await messageCount(queue)).toBe(0);
      // A long-poll on an empty queue, and publishes in flight.
      const longPoll = fetch(`${gateway.url}/idle?wait=20`).then((response) => response.status);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const bodies = Array.from({ length: 40 }, (_, index) => `drain-${index}-${crypto.randomUUID()}`);
      const publishes = bodies.map((body, index) =>
        new Promise((resolve) => setTimeout(resolve, index * 5)).then(() =>
          fetch(`${gateway.url}/work`, { method: "POST", body }).then(
            (response) => response.status,
            () => 0,
          ),
        ),
      );
      await new Promise((resolve) => setTimeout(resolve, 60));
      const started = Date.now();
      await gateway.signal("SIGTERM");
      expect(gateway.exitCode()).toBe(0);
      // Well within the bound: nothing held it open.
      expect(Date.now() - started).toBeLessThan(9_000);
      expect(await longPoll).toBe(204);
      const statuses = await Promise.all(publishes);
      // Each publish was answered 202 or refused (503 while stopping, or no connection once closed): never hung.
      for (const status of statuses) expect([202, 503, 0]).toContain(status);
      const accepted = bodies.filter((_, index) => statuses[index] === 202);
      expect(accepted.length).toBeGreaterThan(0);
      await waitFor(async () => (await messageCount(queue)) >= accepted.length + 1, 10_000);
      const inQueue = (await drain(queue)).map((message) => message.bodyToString());
      // The lease came back, and every 202 is there, once.
      expect(inQueue).toContain("leased-before-stop");
      for (const body of accepted) expect(inQueue.filter((one) => one === body)).toHaveLength(1);
      expect(gateway.output()).not.toMatch(/"level":"error"/);
    } finally {
      await gateway.stop();
    }
  }, 120_000);
});
