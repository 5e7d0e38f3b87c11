/**
 * W3C trace context through `npm start` (and the Node and Deno servers), checked on both sides with
 * OpenTelemetry's own propagator (`@opentelemetry/api` with `@opentelemetry/core`'s
 * W3CTraceContextPropagator): a publish's trace context is in the message's headers table, a
 * consumed or pushed message's comes back as `traceparent`/`tracestate`, and a request without one
 * gets a trace of the gateway's own.
 */
import {
  ROOT_CONTEXT,
  TraceFlags,
  defaultTextMapGetter,
  defaultTextMapSetter,
  isSpanContextValid,
  trace,
  type TextMapGetter,
} from "@opentelemetry/api";
import { TraceState, W3CTraceContextPropagator } from "@opentelemetry/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, drain, uniqueName, withChannel } from "../helpers/broker";
import { startWebhookEndpoint, type WebhookEndpoint } from "../helpers/webhook-endpoint";
import { npmStart, waitFor, type RunningGateway } from "./npm-start";

const propagator = new W3CTraceContextPropagator();
const SECRET = `whsec_${Buffer.from("trace-context e2e key, 32 bytes!").toString("base64")}`;
const queue = uniqueName("traced");
const pushed = uniqueName("traced-push");
let gateway: RunningGateway;
let hook: WebhookEndpoint;

beforeAll(async () => {
  await declareQueue(queue);
  await declareQueue(pushed);
  hook = await startWebhookEndpoint(SECRET);
  gateway = await npmStart(`routes:
  - id: traced
    path: /traced
    amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} }, consumer: { queue: ${queue} } }
  - id: traced-push
    path: /traced-push
    amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${pushed}, push: { url: "${hook.url}/traced", secret: "${SECRET}" } } }
`);
}, 180_000);

afterAll(async () => {
  await gateway?.stop();
  await hook?.close();
  await deleteQueue(queue);
  await deleteQueue(pushed);
});

const hex = (bytes: number) => Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("hex");

/** A sampled span context with a trace state, as a client's tracer would have it. */
const clientContext = () => {
  const spanContext = {
    traceId: hex(16),
    spanId: hex(8),
    traceFlags: TraceFlags.SAMPLED,
    traceState: new TraceState("vendor=abc,other=1"),
  };
  const carrier: Record<string, string> = {};
  propagator.inject(trace.setSpanContext(ROOT_CONTEXT, spanContext), carrier, defaultTextMapSetter);
  return { spanContext, carrier };
};

/** The span context OpenTelemetry extracts from `carrier`. */
const extracted = <C>(carrier: C, getter: TextMapGetter<C>) => trace.getSpanContext(propagator.extract(ROOT_CONTEXT, carrier, getter));

const headersGetter: TextMapGetter<Headers> = {
  get: (carrier, key) => carrier.get(key) ?? undefined,
  keys: (carrier) => [...carrier.keys()],
};

/** A message's headers table as strings, the carrier an AMQP instrumentation reads. */
const tableOf = (headers: Record<string, unknown> | undefined): Record<string, string> =>
  Object.fromEntries(Object.entries(headers ?? {}).flatMap(([key, value]) => (typeof value === "string" ? [[key, value]] : [])));

describe("W3C trace context", () => {
  it("a publish's traceparent and tracestate are in the message's headers table", async () => {
    const { spanContext, carrier } = clientContext();
    const response = await fetch(`${gateway.url}/traced`, { method: "POST", headers: carrier, body: "traced publish" });
    expect(response.status).toBe(202);
    const [message] = await drain(queue);
    const found = extracted(tableOf(message?.properties.headers), defaultTextMapGetter);
    expect(found).toMatchObject({ traceId: spanContext.traceId, spanId: spanContext.spanId, traceFlags: TraceFlags.SAMPLED });
    expect(found?.traceState?.serialize()).toBe("vendor=abc,other=1");
    // The request's log line names the trace.
    await waitFor(() => gateway.output().includes(spanContext.traceId), 5000);
  });

  it("without one (or with a malformed one), the gateway starts a valid trace of its own", async () => {
    for (const headers of [{}, { traceparent: "00-00000000000000000000000000000000-0000000000000000-01" }, { traceparent: "garbage" }]) {
      expect((await fetch(`${gateway.url}/traced`, { method: "POST", headers, body: "untraced" })).status).toBe(202);
      const [message] = await drain(queue);
      const found = extracted(tableOf(message?.properties.headers), defaultTextMapGetter);
      expect(found && isSpanContextValid(found)).toBe(true);
    }
  });

  it("a consumed message's trace context comes back as traceparent and tracestate", async () => {
    const { spanContext, carrier } = clientContext();
    await withChannel((channel) => channel.basicPublish("", queue, "traced consume", { headers: carrier }));
    const response = await fetch(`${gateway.url}/traced`);
    expect(await response.text()).toBe("traced consume");
    const found = extracted(response.headers, headersGetter);
    expect(found).toMatchObject({ traceId: spanContext.traceId, spanId: spanContext.spanId });
    expect(found?.traceState?.serialize()).toBe("vendor=abc,other=1");
  });

  it("a message whose traceparent has a later version's extra fields (any bytes) is answered with the first 55 characters", async () => {
    const traceparent = `01-${hex(16)}-${hex(8)}-01`;
    for (const tail of ["-\u20ac", "-\u0000", `-${"a".repeat(20_000)}`]) {
      await withChannel((channel) =>
        channel.basicPublish("", queue, "odd traceparent", { headers: { traceparent: `${traceparent}${tail}` } }),
      );
      const response = await fetch(`${gateway.url}/traced`);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe("odd traceparent");
      expect(response.headers.get("traceparent")).toBe(traceparent);
    }
  });

  it("a pushed message carries its trace context to the endpoint", async () => {
    const { spanContext, carrier } = clientContext();
    await withChannel((channel) => channel.basicPublish("", pushed, "traced push", { headers: carrier }));
    await waitFor(() => hook.received.some((entry) => entry.body === "traced push"), 15_000);
    const entry = hook.received.find((one) => one.body === "traced push");
    const found = extracted(entry?.headers ?? {}, defaultTextMapGetter);
    expect(found).toMatchObject({ traceId: spanContext.traceId, spanId: spanContext.spanId });
  });
});
