/**
 * CloudEvents through `npm start` (and the Node and Deno servers), judged by the `cloudevents` SDK:
 * an event the SDK emits over HTTP (binary and structured mode) is published as the CloudEvents
 * AMQP binding says (checked with our own AMQP client), and consumed or pushed back through the
 * gateway it is parsed by the SDK into an equal event.
 */
import { CloudEvent, HTTP, Mode, emitterFor, httpTransport } from "cloudevents";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, drain, uniqueName, withChannel } from "../helpers/broker";
import { startWebhookEndpoint, type WebhookEndpoint } from "../helpers/webhook-endpoint";
import { npmStart, waitFor, type RunningGateway } from "./npm-start";

const SECRET = `whsec_${Buffer.from("cloudevents e2e key of 32 bytes!").toString("base64")}`;
const queue = uniqueName("events");
const pushed = uniqueName("events-push");
let gateway: RunningGateway;
let hook: WebhookEndpoint;

beforeAll(async () => {
  await declareQueue(queue);
  await declareQueue(pushed);
  hook = await startWebhookEndpoint(SECRET);
  gateway = await npmStart(`routes:
  - id: events
    path: /events
    amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue}, batch: true }, consumer: { queue: ${queue} } }
  - id: events-push
    path: /events-push
    amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${pushed} }, consumer: { queue: ${pushed}, push: { url: "${hook.url}/events", secret: "${SECRET}" } } }
`);
}, 180_000);

afterAll(async () => {
  await gateway?.stop();
  await hook?.close();
  await deleteQueue(queue);
  await deleteQueue(pushed);
});

const anEvent = (data: unknown, extra: Record<string, unknown> = {}) =>
  new CloudEvent({
    type: "com.example.order.created",
    source: "/orders/eu",
    subject: `order-${crypto.randomUUID()}`,
    datacontenttype: "application/json",
    data,
    region: "eu west",
    ...extra,
  });

/** The event the SDK reads from an HTTP answer. */
const eventOf = async (response: Response) =>
  HTTP.toEvent({ headers: Object.fromEntries(response.headers), body: await response.text() }) as CloudEvent<unknown>;

const same = (a: CloudEvent<unknown>, b: CloudEvent<unknown>) =>
  expect(JSON.parse(JSON.stringify(b))).toEqual(JSON.parse(JSON.stringify(a)));

describe("CloudEvents", () => {
  for (const mode of [Mode.BINARY, Mode.STRUCTURED]) {
    it(`an event emitted in ${mode} mode is published per the AMQP binding, and consumed back equal`, async () => {
      const event = anEvent({ order: 42, items: ["a", "b"] });
      const emit = emitterFor(httpTransport(`${gateway.url}/events`), { mode });
      await emit(event);
      // On the broker: the attributes as cloudEvents: application properties, the data as the body.
      const [message] = await drain(queue);
      expect(message?.properties.contentType).toBe("application/json");
      expect(message?.properties.headers).toMatchObject({
        "cloudEvents:specversion": "1.0",
        "cloudEvents:id": event.id,
        "cloudEvents:type": event.type,
        "cloudEvents:source": event.source,
        "cloudEvents:subject": event.subject,
        "cloudEvents:region": "eu west",
      });
      expect(JSON.parse(message?.bodyToString() ?? "")).toEqual({ order: 42, items: ["a", "b"] });
      // Back on the queue as it was, then consumed through the gateway: HTTP binary mode.
      await withChannel((channel) => channel.basicPublish("", queue, message?.body ?? null, message?.properties ?? {}));
      const response = await fetch(`${gateway.url}/events`);
      expect(response.status).toBe(200);
      expect(response.headers.get("ce-id")).toBe(event.id);
      same(event, await eventOf(response));
    });
  }

  it("a percent-encoded attribute value goes back out as it came", async () => {
    const headers = { "ce-specversion": "1.0", "ce-id": "pct", "ce-source": "/s", "ce-type": "t", "ce-subject": "50%25%20off%2541" };
    expect((await fetch(`${gateway.url}/events`, { method: "POST", headers, body: "{}" })).status).toBe(202);
    const response = await fetch(`${gateway.url}/events`);
    expect(response.headers.get("ce-subject")).toBe("50%25%20off%2541");
    await response.arrayBuffer();
  });

  it("binary data (data_base64 in structured mode) goes as bytes and comes back equal", async () => {
    const event = anEvent(new Uint8Array([0, 1, 2, 255]), { datacontenttype: "application/octet-stream" });
    await emitterFor(httpTransport(`${gateway.url}/events`), { mode: Mode.STRUCTURED })(event);
    const response = await fetch(`${gateway.url}/events`);
    expect(new Uint8Array(await response.clone().arrayBuffer())).toEqual(new Uint8Array([0, 1, 2, 255]));
    const back = await eventOf(response);
    expect(back.id).toBe(event.id);
    expect(back.datacontenttype).toBe("application/octet-stream");
  });

  it("a pushed event reaches the endpoint in binary mode, equal", async () => {
    const event = anEvent({ pushed: true });
    await emitterFor(httpTransport(`${gateway.url}/events-push`), { mode: Mode.BINARY })(event);
    await waitFor(() => hook.received.some((entry) => entry.headers["ce-id"] === event.id), 15_000);
    const entry = hook.received.find((one) => one.headers["ce-id"] === event.id);
    same(event, HTTP.toEvent({ headers: entry?.headers ?? {}, body: entry?.body ?? "" }) as CloudEvent<unknown>);
  });

  it("refuses an event without its required attributes, or of another specversion (400), publishing nothing", async () => {
    const structured = { "content-type": "application/cloudevents+json" };
    const valid = { specversion: "1.0", id: "1", source: "/s", type: "t" };
    let deep = "1";
    for (let i = 0; i < 20_000; i++) deep = `[${deep}]`;
    for (const [headers, body] of [
      [{ "ce-specversion": "0.3", "ce-id": "1", "ce-source": "/s", "ce-type": "t" }, "{}"],
      [{ "ce-specversion": "1.0", "ce-source": "/s", "ce-type": "t" }, "{}"],
      [structured, '{"specversion":"1.0","id":"1"}'],
      [structured, JSON.stringify({ ...valid, data: 1, data_base64: "AA==" })],
      [structured, JSON.stringify({ ...valid, ID: "upper" })],
      [structured, JSON.stringify({ ...valid, id: 1 })],
    ] as const) {
      const response = await fetch(`${gateway.url}/events`, { method: "POST", headers, body });
      expect(response.status, body.slice(0, 80)).toBe(400);
      expect(((await response.json()) as { error: string }).error).toMatch(/^CloudEvent: /);
    }
    expect(await drain(queue)).toEqual([]);
    // Data nested past what the runtime serializes: a 400 where it cannot (Node), published where it can (workerd); never a 500.
    const nested = await fetch(`${gateway.url}/events`, {
      method: "POST",
      headers: structured,
      body: `{"specversion":"1.0","id":"1","source":"/s","type":"t","data":${deep}}`,
    });
    expect([202, 400]).toContain(nested.status);
    expect((await drain(queue)).length).toBe(nested.status === 202 ? 1 : 0);
  });
});
