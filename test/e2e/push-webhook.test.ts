/**
 * Push to a webhook through `npm start` (and, in the e2e-node and e2e-deno projects, the Node and
 * Deno servers): the gateway consumes a queue of the test's own and POSTs each message to an HTTP
 * endpoint of the test's own, which checks every signature with the `standardwebhooks` package.
 * Every message is accounted for with the test's own AMQP client: delivered, in its queue, or in
 * its dead-letter queue.
 */
import type { ServerResponse } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, drain, messageCount, uniqueName, withChannel } from "../helpers/broker";
import { startWebhookEndpoint, type ReceivedWebhook, type WebhookEndpoint } from "../helpers/webhook-endpoint";
import { npmStart, waitFor, type RunningGateway } from "./npm-start";

const SECRET = `whsec_${Buffer.from("an e2e key of thirty-two bytes!!").toString("base64")}`;
const ADMIN_TOKEN = "push-admin-token";
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

/** The endpoint: records each request (and whether its signature verifies); `answer` decides its status. */
let hook: WebhookEndpoint;

const ordered = uniqueName("push-ordered");
const parallel = uniqueName("push-parallel");
const doomed = uniqueName("push-doomed");
const dead = `${doomed}-dead`;
let gateway: RunningGateway;
let routesYaml = "";
const GATEWAY_ENV = { HOOK_SECRET: SECRET, HOOK_TOKEN: "hook-token", ADMIN_TOKEN };

beforeAll(async () => {
  hook = await startWebhookEndpoint(SECRET);
  const url = hook.url;
  // Declared here too, as the routes' topology declares them: the gateway applies its topology
  // once its push connects, which may come after the tests' first publish.
  await declareQueue(dead);
  await declareQueue(ordered);
  await declareQueue(parallel);
  await declareQueue(doomed, { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead });
  routesYaml = `topology:
  queues:
    - { name: ${ordered} }
    - { name: ${parallel} }
    - { name: ${doomed}, arguments: { x-dead-letter-exchange: "", x-dead-letter-routing-key: ${dead} } }
routes:
  - id: ordered-hook
    path: /hooks/ordered
    amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${ordered}, push: { url: "${url}/ordered", secret: "\${HOOK_SECRET}", backoff_ms: 50, max_backoff_ms: 500, max_attempts: 100 } } }
  - id: parallel-hook
    path: /hooks/parallel
    amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${parallel}, push: { url: "${url}/parallel", secret: "\${HOOK_SECRET}", concurrency: 16, timeout_ms: 60000, headers: { Authorization: "Bearer \${HOOK_TOKEN}" } } } }
  - id: doomed-hook
    path: /hooks/doomed
    amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${doomed}, push: { url: "${url}/doomed", secret: "\${HOOK_SECRET}", max_attempts: 3, backoff_ms: 20 } } }
`;
  gateway = await npmStart(routesYaml, GATEWAY_ENV);
}, 180_000);

afterAll(async () => {
  await gateway?.stop();
  await hook?.close();
  for (const queue of [ordered, parallel, doomed, dead]) await deleteQueue(queue);
});

const publish = (queue: string, bodies: string[]) =>
  withChannel(async (channel) => {
    await channel.confirmSelect();
    await Promise.all(bodies.map((body) => channel.basicPublish("", queue, body, { contentType: "text/plain" })));
  });

/** What the endpoint received for one route: each route's bodies start with its name. */
const to = (route: string) => hook.received.filter((entry) => entry.body.startsWith(route));

const state = async (path: string, headers: Record<string, string> = admin) => {
  const response = await fetch(`${gateway.url}${path}`, { headers });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};

/** The route's counters behind `GET /amqp`. */
const pushStats = async (route: string) =>
  ((await (await fetch(`${gateway.url}/amqp`, { headers: admin })).json()) as Record<string, Record<string, number>>)[route] ?? {};

describe("a push route", () => {
  it("starts by itself, and delivers every message once, signed, in queue order (concurrency 1)", async () => {
    const bodies = Array.from({ length: 2000 }, (_, i) => `ordered ${i} ${crypto.randomUUID()}`);
    await publish(ordered, bodies);
    await waitFor(() => to("ordered").length >= bodies.length, 60_000);
    const got = to("ordered");
    expect(got.map((entry) => entry.body)).toEqual(bodies);
    expect(got.every((entry) => entry.verified)).toBe(true);
    expect(got.every((entry) => entry.headers["webhook-attempt"] === "1" && entry.headers["content-type"] === "text/plain")).toBe(true);
    expect(got.every((entry) => entry.headers["x-redelivered"] === "false" && entry.headers["x-routing-key"] === ordered)).toBe(true);
    await waitFor(async () => (await messageCount(ordered)) === 0, 5_000);
    const shown = await state("/hooks/ordered");
    expect(shown).toMatchObject({ status: 200, body: { route: "ordered-hook", state: "running", in_flight: 0, last_error: null } });
    expect(await pushStats("ordered-hook")).toMatchObject({ pushed: bodies.length, push_failures: 0, dead_lettered: 0 });
    // The start banner names the endpoint by its origin: a webhook URL's path may hold its secret.
    expect(gateway.output()).toContain(`to ${hook.url}`);
    expect(gateway.output()).not.toContain(`${hook.url}/ordered`);
  });

  it("delivers every message once at concurrency 16, with the route's extra headers, more of them than an object may have timers", async () => {
    // More attempts within one timeout_ms (60 s) than workerd's 10,000 active timers an object may
    // have: a timer kept armed per attempt ran out of them, and the push's connection lost its heartbeats.
    const bodies = Array.from({ length: 10_500 }, (_, i) => `parallel ${i} ${crypto.randomUUID()}`);
    await publish(parallel, bodies);
    await waitFor(() => to("parallel").length >= bodies.length, 90_000);
    const got = to("parallel");
    expect(got.map((entry) => entry.body).sort()).toEqual([...bodies].sort());
    expect(got.every((entry) => entry.verified && entry.headers.authorization === "Bearer hook-token")).toBe(true);
    await waitFor(async () => (await messageCount(parallel)) === 0, 5_000);
    expect(await pushStats("parallel-hook")).toMatchObject({ pushed: bodies.length, push_failures: 0 });
  }, 120_000);

  it("rejects a message to the dead-letter queue after max_attempts failed attempts, and counts it", async () => {
    const previous = hook.answer;
    hook.answer = (entry, response) => (entry.body.startsWith("doomed") ? void response.writeHead(500).end() : previous(entry, response));
    try {
      const bodies = Array.from({ length: 5 }, (_, i) => `doomed ${i} ${crypto.randomUUID()}`);
      await publish(doomed, bodies);
      await waitFor(async () => (await messageCount(dead)) === bodies.length, 30_000);
      expect((await drain(dead)).map((message) => message.bodyToString())).toEqual(bodies);
      expect(to("doomed").map((entry) => entry.headers["webhook-attempt"])).toEqual(bodies.flatMap(() => ["1", "2", "3"]));
      expect(await pushStats("doomed-hook")).toMatchObject({ pushed: 0, push_failures: 15, dead_lettered: 5 });
      expect((await state("/hooks/doomed")).body.last_error).toMatchObject({ message: expect.stringMatching(/the endpoint answered 500/) });
    } finally {
      hook.answer = previous;
    }
  });

  it("pauses and resumes without losing anything; its state and control need the admin token", async () => {
    expect((await state("/hooks/ordered", {})).status).toBe(401);
    const refused = await fetch(`${gateway.url}/hooks/ordered/pause`, { method: "POST" });
    expect(refused.status).toBe(401);
    const paused = await fetch(`${gateway.url}/hooks/ordered/pause`, { method: "POST", headers: admin });
    expect(paused.status).toBe(200);
    expect(await paused.json()).toMatchObject({ state: "paused" });
    const before = to("ordered").length;
    const bodies = Array.from({ length: 20 }, (_, i) => `while paused ${i} ${crypto.randomUUID()}`).map((body) => `ordered ${body}`);
    await publish(ordered, bodies);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(to("ordered").length).toBe(before);
    expect(await messageCount(ordered)).toBe(bodies.length);
    const resumed = await fetch(`${gateway.url}/hooks/ordered/resume`, { method: "POST", headers: admin });
    expect(await resumed.json()).toMatchObject({ state: expect.stringMatching(/running|starting/) });
    await waitFor(() => to("ordered").length === before + bodies.length, 30_000);
    expect(
      to("ordered")
        .slice(before)
        .map((entry) => entry.body),
    ).toEqual(bodies);
  });

  it("loses nothing when the endpoint goes down for 20 s, nor when the gateway restarts mid-delivery", async () => {
    const previous = hook.answer;
    const failuresBefore = (await pushStats("ordered-hook")).push_failures ?? 0;
    // Down for 20 s: 6 s of 503s and cut connections, then 14 s with nothing listening (refused).
    hook.answer = (entry, response) =>
      entry.body.startsWith("ordered")
        ? void (Math.random() < 0.5 ? response.socket?.destroy() : response.writeHead(503).end())
        : previous(entry, response);
    const before = to("ordered").length;
    const outage = Array.from({ length: 30 }, (_, i) => `ordered outage ${i} ${crypto.randomUUID()}`);
    await publish(ordered, outage);
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    await hook.down();
    await new Promise((resolve) => setTimeout(resolve, 14_000));
    await hook.up();
    // Failed attempts the endpoint never saw: refused connections, counted and retried all the same.
    const seenFailing = to("ordered").length - before;
    expect((await pushStats("ordered-hook")).push_failures ?? 0).toBeGreaterThan(failuresBefore + seenFailing);
    // Back, but slow: a restart catches deliveries under way.
    hook.answer = (entry, response) => void setTimeout(() => previous(entry, response), 20);
    try {
      const load = Array.from({ length: 150 }, (_, i) => `ordered restart ${i} ${crypto.randomUUID()}`);
      await publish(ordered, load);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await gateway.stop();
      gateway = await npmStart(routesYaml, GATEWAY_ENV);
      const wanted = [...outage, ...load];
      const delivered = () =>
        new Set(
          to("ordered")
            .slice(before)
            .filter((entry) => entry.headers["webhook-attempt"] !== undefined)
            .map((entry) => entry.body),
        );
      await waitFor(() => wanted.every((body) => delivered().has(body)), 60_000);
      await waitFor(async () => (await messageCount(ordered)) === 0, 10_000);
      // A body that came twice came as a redelivery (the restart raced its 2xx: X-Redelivered), or
      // as the same delivery again (the same webhook-id): never as a new message.
      const seen = new Map<string, ReceivedWebhook[]>();
      for (const entry of to("ordered").slice(before)) seen.set(entry.body, [...(seen.get(entry.body) ?? []), entry]);
      for (const entries of seen.values()) {
        const firsts = entries.filter((entry) => entry.headers["webhook-attempt"] === "1");
        for (const again of firsts.slice(1)) {
          const sameDelivery = firsts.some((first) => first !== again && first.headers["webhook-id"] === again.headers["webhook-id"]);
          expect({ redelivered: again.headers["x-redelivered"] === "true" || sameDelivery }).toEqual({ redelivered: true });
        }
      }
      expect(
        to("ordered")
          .slice(before)
          .every((entry) => entry.verified),
      ).toBe(true);
    } finally {
      hook.answer = previous;
    }
  }, 150_000);

  it("delivers, signed, a message whose message_id and content type are not plain header values", async () => {
    const body = `ordered odd properties ${crypto.randomUUID()}`;
    const before = to("ordered").length;
    await withChannel(async (channel) => {
      await channel.confirmSelect();
      await channel.basicPublish("", ordered, body, { contentType: "text/plain\r\nX-Injected: 1", messageId: "  spaced 中文 id  " });
    });
    await waitFor(() => to("ordered").length > before, 20_000);
    const got = to("ordered").slice(before)[0];
    expect(got?.body).toBe(body);
    expect(got?.verified).toBe(true);
    expect(got?.headers["x-injected"]).toBeUndefined();
    // Percent-encoded, and named as such, as a GET answer has it.
    expect(got?.headers["content-type"]).toBe("text%2Fplain%0D%0AX-Injected%3A%201");
    expect(String(got?.headers["x-amqp-encoded"])).toContain("content-type");
    expect(got?.headers["webhook-id"]).toMatch(/^msg_/);
  });

  it("starts again by itself when the broker cancels its consumer (its queue deleted and declared again)", async () => {
    await deleteQueue(ordered);
    await declareQueue(ordered);
    const body = `ordered after the queue came back ${crypto.randomUUID()}`;
    await publish(ordered, [body]);
    await waitFor(() => to("ordered").some((entry) => entry.body === body), 30_000);
  });

  it("keeps queue order at concurrency 1 when a resume comes while a pause waits for an attempt, and keeps its last error", async () => {
    const control = (action: string) => fetch(`${gateway.url}/hooks/ordered/${action}`, { method: "POST", headers: admin });
    const [first, second, third] = ["first", "second", "third"].map((name) => `ordered in turn ${name} ${crypto.randomUUID()}`) as [
      string,
      string,
      string,
    ];
    const previous = hook.answer;
    let held: ServerResponse | undefined;
    let inFlight = 0;
    let most = 0;
    hook.answer = (entry, response) => {
      if (![first, second, third].includes(entry.body)) return previous(entry, response);
      most = Math.max(most, ++inFlight);
      const answer = (status: number) => {
        inFlight--;
        response.writeHead(status).end();
      };
      // The first attempt of the first message hangs until the test lets it fail.
      if (entry.body === first && held === undefined) held = Object.assign(response, { fail: () => answer(503) });
      else answer(204);
    };
    const before = to("ordered").length;
    try {
      await publish(ordered, [first, second, third]);
      await waitFor(() => held !== undefined, 20_000);
      const pausing = control("pause");
      await new Promise((resolve) => setTimeout(resolve, 200));
      const resuming = control("resume");
      await new Promise((resolve) => setTimeout(resolve, 500));
      (held as unknown as { fail: () => void }).fail();
      expect((await pausing).status).toBe(200);
      expect((await resuming).status).toBe(200);
      await waitFor(
        () =>
          to("ordered")
            .slice(before)
            .filter((entry) => entry.body === third).length > 0,
        20_000,
      );
      // One at a time, and in queue order: the first again (its attempt failed while pausing), then the others.
      expect(
        to("ordered")
          .slice(before)
          .map((entry) => entry.body),
      ).toEqual([first, first, second, third]);
      expect(most).toBe(1);
      expect((await state("/hooks/ordered")).body.last_error).toMatchObject({ message: expect.stringMatching(/answered 503/) });
    } finally {
      hook.answer = previous;
    }
  });

  it("tells the truth when a pause races a resume (paused: no consumer), and refuses control from a web page", async () => {
    const control = (action: string) => fetch(`${gateway.url}/hooks/ordered/${action}`, { method: "POST", headers: admin });
    // A pause that closed the channel as its consume was on the way hung (amqp-client's close).
    for (let round = 0; round < 25; round++) {
      await control("pause");
      await Promise.all([control("resume"), control("pause")]);
      // Whichever came last, the state says what the broker has.
      await new Promise((resolve) => setTimeout(resolve, 150));
      const shown = (await state("/hooks/ordered")).body.state;
      expect({ shown, consumers: await consumers(ordered) }).toEqual({ shown, consumers: shown === "paused" ? 0 : 1 });
    }
    await control("pause");
    await waitFor(async () => (await consumers(ordered)) === 0, 10_000);
    const refused = await fetch(`${gateway.url}/hooks/ordered/resume`, {
      method: "POST",
      headers: { ...admin, origin: "https://evil.example" },
    });
    expect(refused.status).toBe(403);
    expect(await consumers(ordered)).toBe(0);
    // A HEAD starts nothing; the control paths answer other methods as every path does.
    const head = await fetch(`${gateway.url}/hooks/ordered`, { method: "HEAD", headers: admin });
    expect(head.status).toBe(405);
    const options = await fetch(`${gateway.url}/hooks/ordered/resume`, { method: "OPTIONS" });
    expect({ status: options.status, allow: options.headers.get("allow") }).toEqual({ status: 204, allow: "POST, OPTIONS" });
    const get = await fetch(`${gateway.url}/hooks/ordered/resume`, { headers: admin });
    expect({ status: get.status, allow: get.headers.get("allow") }).toEqual({ status: 405, allow: "POST, OPTIONS" });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await consumers(ordered)).toBe(0);
    await fetch(`${gateway.url}/hooks/ordered/resume`, { method: "POST", headers: admin });
    await waitFor(async () => (await consumers(ordered)) === 1, 10_000);
  });
});

const consumers = (queue: string) => withChannel(async (channel) => (await channel.queueDeclare(queue, { passive: true })).consumerCount);
