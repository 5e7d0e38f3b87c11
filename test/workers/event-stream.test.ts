/**
 * Server-Sent Events (`consumer.stream`, `Accept: text/event-stream`) inside workerd against the
 * real broker: one event per message (text as data lines, binary as base64 with `event: binary`),
 * messages that arrive while the stream is open, and a client that goes away mid-stream without
 * any message being lost.
 */
import { describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, drain, publishDirect, uniqueName, withChannel } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

interface ServerEvent {
  id?: string;
  event?: string;
  data: string;
}

const route = (id: string, queue: string, consumer = "stream: true") =>
  `routes:\n  - { id: ${id}, path: /events, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, ${consumer} } } }\n`;

const withQueue = async (test: (queue: string) => Promise<void>) => {
  const queue = uniqueName("sse");
  await declareQueue(queue);
  try {
    await test(queue);
  } finally {
    await deleteQueue(queue);
  }
};

/** Reads events from an SSE body until `count` have come (comments skipped), then stops reading. */
const readEvents = async (reader: ReadableStreamDefaultReader<Uint8Array>, count: number): Promise<ServerEvent[]> => {
  const decoder = new TextDecoder();
  const events: ServerEvent[] = [];
  let buffered = "";
  while (events.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffered.indexOf("\n\n")) >= 0) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      const lines = block.split("\n").filter((line) => !line.startsWith(":") && !line.startsWith("retry:"));
      if (lines.length === 0) continue;
      const event: ServerEvent = { data: "" };
      const data: string[] = [];
      for (const line of lines) {
        const [field, ...rest] = line.split(": ");
        const value = rest.join(": ");
        if (field === "data") data.push(value);
        else if (field === "id") event.id = value;
        else if (field === "event") event.event = value;
      }
      event.data = data.join("\n");
      events.push(event);
    }
  }
  return events;
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("GET with Accept: text/event-stream", () => {
  it("with ?envelope=json, each event's data is the message as a batch shows it, delivery_count included", () =>
    withQueue(async (queue) => {
      await withChannel(async (channel) => {
        await channel.basicPublish("", queue, "again", { messageId: "m-9" });
        // Delivered once already: put back by the broker.
        const got = await channel.basicGet(queue, { noAck: false });
        await channel.basicNack(got?.deliveryTag ?? 0, true);
        await channel.basicPublish("", queue, new Uint8Array([0, 255]));
      });
      const send = gatewayFor(route(uniqueRouteId("sse-json"), queue));
      expect((await send("GET", "/events?envelope=xml", { headers: { accept: "text/event-stream" } })).status).toBe(400);
      const response = await send("GET", "/events?envelope=json", { headers: { accept: "text/event-stream" } });
      expect(response.status).toBe(200);
      const reader = response.body!.getReader() as ReadableStreamDefaultReader<Uint8Array>;
      const events = await readEvents(reader, 2);
      await reader.cancel();
      expect(events[0]?.id).toBe("m-9");
      expect(JSON.parse(events[0]?.data ?? "")).toMatchObject({
        body: "again",
        body_encoding: "utf8",
        redelivered: true,
        delivery_count: 2,
      });
      expect(JSON.parse(events[1]?.data ?? "")).toMatchObject({
        body: btoa(String.fromCharCode(0, 255)),
        body_encoding: "base64",
        delivery_count: 1,
      });
    }));

  it("streams one event per message: text as data lines, binary as base64, the message id as the event id", () =>
    withQueue(async (queue) => {
      await withChannel(async (channel) => {
        await channel.basicPublish("", queue, "first", { messageId: "m-1" });
        await channel.basicPublish("", queue, "two\nlines");
        await channel.basicPublish("", queue, new Uint8Array([0, 255, 1]));
      });
      const send = gatewayFor(route(uniqueRouteId("sse"), queue));
      const response = await send("GET", "/events", { headers: { accept: "text/event-stream" } });
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
      const reader = response.body!.getReader() as ReadableStreamDefaultReader<Uint8Array>;
      const events = await readEvents(reader, 3);
      expect(events[0]).toEqual({ id: "m-1", data: "first" });
      expect(events[1]?.data).toBe("two\nlines");
      expect(events[2]).toMatchObject({ event: "binary", data: btoa(String.fromCharCode(0, 255, 1)) });
      // A message published while the stream is open arrives on it.
      await publishDirect(queue, "live");
      expect((await readEvents(reader, 1))[0]?.data).toBe("live");
      await reader.cancel();
    }));

  it("loses nothing when the client goes away mid-stream: every message was read, or is back in the queue", () =>
    withQueue(async (queue) => {
      const bodies = Array.from({ length: 6 }, (_, i) => `e${i}`);
      for (const body of bodies) await publishDirect(queue, body);
      const send = gatewayFor(route(uniqueRouteId("cut"), queue));
      const response = await send("GET", "/events", { headers: { accept: "text/event-stream" } });
      const reader = response.body!.getReader() as ReadableStreamDefaultReader<Uint8Array>;
      const read = (await readEvents(reader, 2)).map((event) => event.data);
      expect(read).toEqual(["e0", "e1"]);
      // Time for the stream to take the next message and try to write it: it must not count as
      // sent (and be acknowledged) until the client has read it.
      await sleep(300);
      await reader.cancel();
      await sleep(500);
      const left = await drain(queue);
      const leftBodies = left.map((message) => message.bodyString());
      // At least once: each message was read by the client or is in the queue again (the one
      // whose event was being read when the client left may be both).
      for (const body of bodies) expect(read.includes(body) || leftBodies.includes(body), body).toBe(true);
      expect(leftBodies).toEqual(bodies.slice(bodies.length - leftBodies.length));
    }));

  it("is one request: counted once and held to the rate limit once, however many messages it carries", () =>
    withQueue(async (queue) => {
      for (let i = 0; i < 4; i++) await publishDirect(queue, `r${i}`);
      const id = uniqueRouteId("limited");
      const send = gatewayFor(
        `routes:\n  - { id: ${id}, path: /events, rate_limit: { requests: 1, period_s: 60 }, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, stream: true } } }\n`,
      );
      const response = await send("GET", "/events", { headers: { accept: "text/event-stream" } });
      const reader = response.body!.getReader() as ReadableStreamDefaultReader<Uint8Array>;
      expect((await readEvents(reader, 4)).map((event) => event.data)).toEqual(["r0", "r1", "r2", "r3"]);
      await reader.cancel();
      expect((await send("GET", "/events", { headers: { accept: "text/event-stream" } })).status).toBe(429);
      const stats = (await (await send("GET", "/amqp")).json()) as Record<string, { total_requests: number; rejected: number }>;
      expect(stats[id]).toMatchObject({ total_requests: 1, rejected: 1 });
    }));

  it("is not served on a route without consumer.stream: the message comes as a plain answer", () =>
    withQueue(async (queue) => {
      await publishDirect(queue, "plain");
      const send = gatewayFor(route(uniqueRouteId("nostream"), queue, "auto_ack: true"));
      const response = await send("GET", "/events", { headers: { accept: "text/event-stream" } });
      expect(await response.text()).toBe("plain");
    }));
});
