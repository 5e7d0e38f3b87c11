/**
 * A Server-Sent Events client that goes away mid-stream, black-box through `npm start`: Node's
 * `fetch` with `Accept: text/event-stream`, aborted with an AbortController. The tests' own AMQP
 * client fills the queue before and publishes after, then drains it: every message is either one
 * the client read or back in the queue (at least once), and nothing published after the client
 * left is taken for it.
 */
import { request as httpRequest, type IncomingMessage } from "node:http";
import { Readable } from "node:stream";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, drain, uniqueName, withChannel } from "../helpers/broker";
import { npmStart, waitFor, type RunningGateway } from "./npm-start";

const queue = uniqueName("sse-disconnect");
const route = `sse-disconnect-${queue.slice(-8)}`;
let gateway: RunningGateway;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The queue's ready messages and consumers, as the broker counts them. */
const depth = () =>
  withChannel(async (channel) => {
    const { messageCount, consumerCount } = await channel.queueDeclare(queue, { passive: true });
    return { messages: messageCount, consumers: consumerCount };
  });

/** Publishes each body with its id as `message_id` (so it is the event's `id:`), in order. */
const publish = (messages: { id: string; body: string }[]) =>
  withChannel(async (channel) => {
    for (const { id, body } of messages) await channel.basicPublish("", queue, body, { messageId: id, contentType: "text/plain" });
  });

/** The ready messages, taken: id, body, redelivered. */
const drainAll = async () =>
  (await drain(queue)).map((m) => ({ id: m.properties.messageId ?? "", body: m.bodyToString() ?? "", redelivered: m.redelivered }));

/**
 * A stream opened with Node's `fetch` (left with its AbortController: the connection is closed),
 * or with node:http (left by resetting the connection, as a client that dies with unread data
 * does). `events` holds every complete event the client has read.
 */
const openStream = async (how: "fetch" | "reset" = "fetch") => {
  let reader: ReadableStreamDefaultReader<Uint8Array>;
  let goAway: () => void;
  if (how === "fetch") {
    const abort = new AbortController();
    const response = await fetch(`${gateway.url}/events`, { headers: { accept: "text/event-stream" }, signal: abort.signal });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    reader = response.body!.getReader();
    goAway = () => abort.abort();
  } else {
    const request = httpRequest(`${gateway.url}/events`, { headers: { accept: "text/event-stream" } });
    request.on("error", () => undefined);
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      request.once("response", resolve);
      request.once("error", reject);
      request.end();
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers["content-type"]).toMatch(/^text\/event-stream/);
    response.on("error", () => undefined);
    reader = (Readable.toWeb(response) as ReadableStream<Uint8Array>).getReader();
    goAway = () => request.socket?.resetAndDestroy();
  }
  const decoder = new TextDecoder();
  let text = "";
  const events: { id: string; data: string }[] = [];
  const take = (chunk: Uint8Array) => {
    text += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = text.indexOf("\n\n")) >= 0) {
      const lines = text.slice(0, end).split("\n");
      text = text.slice(end + 2);
      const id = lines.find((line) => line.startsWith("id: "))?.slice(4);
      const data = lines.filter((line) => line.startsWith("data: ")).map((line) => line.slice(6));
      if (id !== undefined) events.push({ id, data: data.join("\n") });
    }
  };
  // One read outstanding at a time, so that no chunk that reached the client goes unrecorded.
  type ReadResult = Awaited<ReturnType<typeof reader.read>>;
  let pending: Promise<ReadResult> | undefined;
  const next = () => (pending ??= reader.read());
  const consume = (result: ReadResult) => {
    pending = undefined;
    if (result.done) throw new Error(`the stream ended after ${events.length} events`);
    take(result.value);
  };
  /** Reads until `count` events are complete. */
  const readUntil = async (count: number) => {
    while (events.length < count) consume(await next());
  };
  /** Reads whatever comes until nothing has come for `quietMs`. */
  const readWhileComing = async (quietMs: number) => {
    for (;;) {
      const result = await Promise.race([next(), sleep(quietMs).then(() => undefined)]);
      if (!result) return;
      consume(result);
    }
  };
  /** Goes away; a chunk that was being read as it did still counts as read. */
  const leave = async () => {
    goAway();
    const last = await pending?.catch(() => undefined);
    if (last && !last.done) take(last.value);
  };
  return { events, readUntil, readWhileComing, leave };
};

beforeAll(async () => {
  await declareQueue(queue);
  gateway = await npmStart(
    `routes:
  - { id: ${route}, path: /events, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, stream: true } } }
`,
  );
}, 180_000);

afterAll(async () => {
  await gateway?.stop();
  await deleteQueue(queue);
});

beforeEach(async () => {
  await drain(queue);
  await waitFor(async () => (await depth()).consumers === 0, 20_000);
});

describe("a stream client that disconnects mid-stream", () => {
  const leaveMidStream = async (how: "fetch" | "reset") => {
    const run = crypto.randomUUID().slice(0, 8);
    const before = Array.from({ length: 20 }, (_, i) => ({ id: `pre-${i}-${run}`, body: `pre-filled ${i} of ${run}` }));
    await publish(before);
    const stream = await openStream(how);
    await stream.readUntil(3);
    // Whatever is on its way is read too; then the client goes away, the stream still open.
    await stream.readWhileComing(300);
    await stream.leave();
    const read = [...stream.events];

    // Published after the client left: nobody may take these for it.
    await sleep(300);
    const after = Array.from({ length: 3 }, (_, i) => ({ id: `post-${i}-${run}`, body: `published after the client left ${i} of ${run}` }));
    await publish(after);
    await sleep(1_500);
    await waitFor(async () => (await depth()).consumers === 0, 5_000);
    const left = await drainAll();

    // What the client read came in order, each with its body.
    const byId = new Map([...before, ...after].map((m) => [m.id, m.body]));
    expect(read.map((event) => event.data)).toEqual(read.map((event) => byId.get(event.id)));
    expect(read.map((event) => event.id)).toEqual(before.slice(0, read.length).map((m) => m.id));
    // Every pre-filled message is in one place or the other (at least once).
    const missing = before.filter((m) => !read.some((event) => event.id === m.id) && !left.some((l) => l.id === m.id));
    expect(missing.map((m) => m.id)).toEqual([]);
    // The later ones are all there, in order. (After a clean close, which npm start notices only
    // when a write fails, the stream may have taken one and put it back: redelivered.)
    expect(left.filter((m) => m.id.startsWith("post-")).map(({ id, body }) => ({ id, body }))).toEqual(after);
  };

  it("loses nothing when it aborts (fetch): each pre-filled message was read or is back in the queue, and those published after it left stay there", async () => {
    await leaveMidStream("fetch");
  });

  it("loses nothing when it resets its connection: each pre-filled message was read or is back in the queue, and those published after it left stay there", async () => {
    await leaveMidStream("reset");
  });

  it("puts back the event it was writing when the client left, and takes nothing more", async () => {
    // Big enough that the connection fills up: the client stops reading, and the gateway is left
    // blocked writing one event while the rest wait in the queue.
    const run = crypto.randomUUID().slice(0, 8);
    const padding = "x".repeat(1024 * 1024);
    const before = Array.from({ length: 20 }, (_, i) => ({ id: `big-${i}-${run}`, body: `big ${i} of ${run} ${padding}` }));
    await publish(before);
    const stream = await openStream();
    await stream.readUntil(3);
    // The client reads no more: wait until the gateway can write no more either.
    let last = -1;
    await waitFor(async () => {
      const { messages } = await depth();
      const settled = messages === last;
      last = messages;
      return settled;
    }, 15_000);
    await sleep(500);
    const stalled = await depth();
    // Not everything was taken: the stream is stuck mid-way, one message held unacknowledged.
    expect(stalled.messages).toBeGreaterThan(0);
    expect(stalled.messages).toBeLessThan(before.length - stream.events.length);
    await stream.leave();
    const read = [...stream.events];

    await sleep(300);
    const after = [{ id: `post-big-${run}`, body: `published after the client left ${run}` }];
    await publish(after);
    await sleep(1_500);
    await waitFor(async () => (await depth()).consumers === 0, 5_000);
    const left = await drainAll();
    const leftBefore = left.filter((m) => m.id.startsWith("big-"));

    expect(read.map((event) => event.id)).toEqual(before.slice(0, read.length).map((m) => m.id));
    expect(read.every((event) => event.data === before.find((m) => m.id === event.id)?.body)).toBe(true);
    // What is left is the tail of the queue, in order: first the events not yet confirmed when
    // the client left (requeued, so redelivered), then those never taken.
    const first = before.findIndex((m) => m.id === leftBefore[0]?.id);
    expect(first).toBeGreaterThanOrEqual(read.length);
    expect(leftBefore.map(({ id, body }) => ({ id, body }))).toEqual(before.slice(first));
    expect(leftBefore.at(-1)?.redelivered).toBe(false);
    // Between what the client read and that tail: events the gateway had written into the
    // connection's buffers when the client went away (README: what a stream can notice).
    expect(left.filter((m) => m.id.startsWith("post-")).map(({ id, body }) => ({ id, body }))).toEqual(after);
  });
});
