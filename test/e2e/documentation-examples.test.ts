/**
 * The two examples of runway's AMQP backend documentation, verbatim apart from the broker address,
 * served by `npm start` and checked with an AMQP client of the test's own. They use the names the
 * documentation uses (`events`, `jobs`), so they run on a disposable RabbitMQ node of the test's
 * own, never on the user's broker, where a queue named `jobs` may hold the user's messages.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { declareQueue, deleteQueue, drain as drainFrom, messageCount, withChannel } from "../helpers/broker";
import { startDisposableBroker, type DisposableBroker } from "../helpers/disposable-broker";
import { npmStart, type RunningGateway } from "./npm-start";

let broker: DisposableBroker;
beforeAll(async () => {
  broker = await startDisposableBroker();
}, 120_000);
afterAll(async () => {
  await broker?.stop();
});
const drain = (queue: string) => drainFrom(queue, broker.url);

const PUBLISHER_AND_CONSUMER = (url: string) => `
routes:
  - id: message-publisher
    path: /publish
    amqp:
      enabled: true
      url: "${url}"
      producer:
        exchange: events
        routing_key: user.created
  - id: message-consumer
    path: /consume
    amqp:
      enabled: true
      url: "${url}"
      consumer:
        queue: events-queue
        auto_ack: true
`;

const QUEUE_BRIDGE = (url: string) => `
routes:
  - id: enqueue
    path: /api/jobs
    methods: [POST]
    amqp:
      enabled: true
      url: "${url}"
      producer:
        exchange: ""
        routing_key: jobs
  - id: dequeue
    path: /api/jobs
    methods: [GET]
    amqp:
      enabled: true
      url: "${url}"
      consumer:
        queue: jobs
        auto_ack: true
`;

describe("the publisher and consumer example", () => {
  let gateway: RunningGateway;
  beforeAll(async () => {
    await withChannel(async (channel) => {
      await channel.exchangeDeclare("events", "topic", { durable: true });
      await channel.queueDeclare("events-queue", { durable: true });
      await channel.queueBind("events-queue", "events", "user.created");
    }, broker.url);
    gateway = await npmStart(PUBLISHER_AND_CONSUMER(broker.url));
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  // One test, since each step depends on the one before: publish, consume, then the counts.
  it("publishes a POST and a PUT with 202, consumes them in order (200, then 204), and counts them at /amqp", async () => {
    for (const method of ["POST", "PUT"]) {
      const response = await fetch(`${gateway.url}/publish`, {
        method,
        body: JSON.stringify({ user: method }),
        headers: { "content-type": "application/json" },
      });
      expect(response.status).toBe(202);
      expect(await response.json()).toEqual({ status: "published", exchange: "events", routing_key: "user.created" });
    }
    expect(await messageCount("events-queue", broker.url)).toBe(2);

    const first = await fetch(`${gateway.url}/consume`);
    expect(first.status).toBe(200);
    expect(first.headers.get("content-type")).toBe("application/json");
    expect(await first.json()).toEqual({ user: "POST" });
    expect(await (await fetch(`${gateway.url}/consume`)).json()).toEqual({ user: "PUT" });
    const empty = await fetch(`${gateway.url}/consume`);
    expect(empty.status).toBe(204);

    const stats = await (await fetch(`${gateway.url}/amqp`)).json();
    expect(stats).toMatchObject({
      "message-publisher": { url: `amqp://guest:***@${broker.address}/`, total_requests: 2, total_errors: 0, published: 2, consumed: 0 },
      "message-consumer": { url: `amqp://guest:***@${broker.address}/`, total_requests: 3, total_errors: 0, published: 0, consumed: 2 },
    });
  });
});

// The ws:// relay is one that npm start starts itself, on a port of the test's own, in front of the
// disposable node (AMQP_TCP_ADDRESS).
describe.each([
  ["amqp://", (broker: DisposableBroker) => broker.url],
  ["ws://", () => "ws://guest:guest@127.0.0.1:15683/?vhost=/"],
])("the bidirectional queue bridge example over %s", (_, urlOf) => {
  let gateway: RunningGateway;
  beforeAll(async () => {
    await declareQueue("jobs", {}, broker.url);
    gateway = await npmStart(QUEUE_BRIDGE(urlOf(broker)), { AMQP_TCP_ADDRESS: broker.address });
  });
  afterAll(async () => {
    await gateway?.stop();
    await deleteQueue("jobs", broker.url);
  });

  it("turns 64 concurrent first publishes into 64 queued messages over one connection", async () => {
    // The route's first requests: without a single-flight connect, each would open its own connection.
    const answers = await Promise.all(
      Array.from({ length: 64 }, (_, i) =>
        fetch(`${gateway.url}/api/jobs`, {
          method: "POST",
          body: JSON.stringify({ i }),
          headers: { "content-type": "application/json" },
        }).then((r) => r.status),
      ),
    );
    expect(answers).toEqual(Array(64).fill(202));
    const bodies = (await drain("jobs")).map((message) => (JSON.parse(message.bodyString() ?? "null") as { i: number }).i);
    expect(bodies.sort((a, b) => a - b)).toEqual(Array.from({ length: 64 }, (_, i) => i));
    expect(await broker.connectionsNamed("amqp-edge-gateway enqueue publish")).toBe(1);
  });

  it("enqueues with POST and dequeues with GET", async () => {
    const posted = await fetch(`${gateway.url}/api/jobs`, {
      method: "POST",
      body: '{"task":"resize"}',
      headers: { "content-type": "application/json" },
    });
    expect(posted.status).toBe(202);
    expect(await posted.json()).toEqual({ status: "published", exchange: "", routing_key: "jobs" });
    const taken = await fetch(`${gateway.url}/api/jobs`);
    expect(taken.status).toBe(200);
    expect(await taken.text()).toBe('{"task":"resize"}');
    expect((await fetch(`${gateway.url}/api/jobs`)).status).toBe(204);
  });

  it("answers PUT with 405, since the example routes only POST and GET", async () => {
    const response = await fetch(`${gateway.url}/api/jobs`, { method: "PUT", body: "{}" });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("POST, GET, OPTIONS");
  });

  it("carries a binary body byte for byte", async () => {
    const bytes = new Uint8Array(4096).map((_, i) => (i * 31 + 7) % 256);
    expect(
      (await fetch(`${gateway.url}/api/jobs`, { method: "POST", body: bytes, headers: { "content-type": "application/octet-stream" } }))
        .status,
    ).toBe(202);
    const [message] = await drain("jobs");
    expect(message?.body).toEqual(bytes);
    expect(message?.properties.contentType).toBe("application/octet-stream");
  });
});
