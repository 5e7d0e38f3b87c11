/**
 * Server-Sent Events received by a real `EventSource` in a real browser (Debian's Chromium,
 * driven by playwright-core), through `npm start`. The route streams (`consumer.stream: true`),
 * lists the page's origin in `cors`, and takes its API key from the query (`?key=`), since an
 * EventSource cannot send headers. The tests' own AMQP client publishes text and binary messages
 * before and after the page connects; the page gets them all, in order, with their ids, and once
 * it has closed the stream the queue holds nothing, acknowledged or held. A page on an origin the
 * route does not list, or without the key, cannot open the stream and takes nothing.
 */
import type { Server } from "node:http";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, drain, messageCount, uniqueName, withChannel } from "../helpers/broker";
import { npmStart, waitFor, type RunningGateway } from "./npm-start";
import { closeServer, launchChromium, pageServer } from "./browser";

const KEY = `sse-key-${crypto.randomUUID().slice(0, 8)}`;
const queue = uniqueName("browser-sse");
const route = `sse-${queue.slice(-8)}`;
/** Every byte value once: a body that is not UTF-8, so it comes as `event: binary`, base64. */
const ALL_BYTES = Array.from({ length: 256 }, (_, i) => i);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Outgoing {
  body: string | Uint8Array;
  messageId?: string;
  contentType: string;
}

const publish = (messages: Outgoing[]) =>
  withChannel(async (channel) => {
    for (const { body, messageId, contentType } of messages) {
      await channel.basicPublish("", queue, body, { contentType, ...(messageId ? { messageId } : {}) });
    }
  });

/** What the page records of each event. */
interface Seen {
  type: string;
  data: string;
  lastEventId: string;
  origin: string;
  /** For `binary` events: the base64 data decoded in the page. */
  bytes?: number[];
}

/** The page's `EventSource` as the test uses it (this file is compiled without the DOM types). */
interface PageEventSource {
  readonly readyState: number;
  onopen: (() => void) | null;
  onerror: (() => void) | null;
  onmessage: ((event: PageMessageEvent) => void) | null;
  addEventListener(type: string, listener: (event: PageMessageEvent) => void): void;
  close(): void;
}
interface PageMessageEvent {
  type: string;
  data: string;
  lastEventId: string;
  origin: string;
}
/** The page's global scope: its EventSource, and what the test keeps there. */
interface PageGlobals {
  EventSource: new (url: string) => PageEventSource;
  stream?: PageEventSource;
  seen: Seen[];
  opened: boolean;
  errors: { readyState: number }[];
}

/** Opens `new EventSource(url)` in the page, recording its events, opens and errors. */
const openEventSource = (page: Page, url: string) =>
  page.evaluate((url) => {
    const w = globalThis as unknown as PageGlobals;
    w.seen = [];
    w.opened = false;
    w.errors = [];
    const stream = new w.EventSource(url);
    w.stream = stream;
    stream.onopen = () => (w.opened = true);
    stream.onerror = () => w.errors.push({ readyState: stream.readyState });
    stream.onmessage = (event) => w.seen.push({ type: event.type, data: event.data, lastEventId: event.lastEventId, origin: event.origin });
    stream.addEventListener("binary", (event) =>
      w.seen.push({
        type: event.type,
        data: event.data,
        lastEventId: event.lastEventId,
        origin: event.origin,
        bytes: Array.from(atob(event.data), (c) => c.charCodeAt(0)),
      }),
    );
  }, url);

let allowed: { server: Server; origin: string };
let foreign: { server: Server; origin: string };
let gateway: RunningGateway;
let browser: Browser;

beforeAll(async () => {
  await declareQueue(queue);
  allowed = await pageServer();
  foreign = await pageServer();
  gateway = await npmStart(
    `cors:
  allow_origins: ["${allowed.origin}"]
auth:
  api_key: { query: key, keys: ["\${APP_KEY}"] }
routes:
  - { id: ${route}, path: /events, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, stream: true } } }
`,
    { APP_KEY: KEY },
  );
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await gateway?.stop();
  await closeServer(allowed?.server);
  await closeServer(foreign?.server);
  await deleteQueue(queue);
});

/** A fresh page at `origin` with the statuses Chromium saw for the gateway's `/events`, closed after `work`. */
const onPage = async <T>(origin: string, work: (page: Page, statuses: () => number[]) => Promise<T>): Promise<T> => {
  const context: BrowserContext = await browser.newContext();
  try {
    const page = await context.newPage();
    // From Chromium's own network log: a page never sees the status of a refused EventSource.
    const statuses = new Map<string, number>();
    const urls = new Map<string, string>();
    const cdp = await context.newCDPSession(page);
    await cdp.send("Network.enable");
    cdp.on("Network.requestWillBeSent", (event) => urls.set(event.requestId, event.request.url));
    cdp.on("Network.responseReceivedExtraInfo", (event) => statuses.set(event.requestId, event.statusCode));
    expect((await page.goto(origin))?.status()).toBe(200);
    const toEvents = () =>
      [...statuses.entries()].filter(([id]) => urls.get(id)?.startsWith(`${gateway.url}/events`)).map(([, status]) => status);
    return await work(page, toEvents);
  } finally {
    await context.close();
  }
};

describe("an EventSource that may not open the stream", () => {
  it("fails on an origin the route does not list, and without the key, and takes nothing from the queue", async () => {
    await publish([
      { body: "not for foreign eyes", messageId: "guarded-1", contentType: "text/plain" },
      { body: "nor for keyless ones", messageId: "guarded-2", contentType: "text/plain" },
    ]);
    expect(await messageCount(queue)).toBe(2);
    const attempts = [
      { origin: foreign.origin, url: `${gateway.url}/events?key=${KEY}`, status: 403 },
      { origin: allowed.origin, url: `${gateway.url}/events`, status: 401 },
      { origin: allowed.origin, url: `${gateway.url}/events?key=wrong-${KEY}`, status: 401 },
    ];
    for (const attempt of attempts) {
      await onPage(attempt.origin, async (page, statuses) => {
        await openEventSource(page, attempt.url);
        await page.waitForFunction(() => (globalThis as unknown as PageGlobals).errors.length > 0, undefined, { timeout: 10_000 });
        // Give a reconnection time to happen, if Chromium were to make one.
        await sleep(1_500);
        const state = await page.evaluate(() => {
          const w = globalThis as unknown as PageGlobals;
          return { opened: w.opened, seen: w.seen.length, errors: w.errors, readyState: w.stream?.readyState };
        });
        // Never open, nothing received, and given up on: CLOSED (2), not reconnecting.
        expect(state).toEqual({ opened: false, seen: 0, errors: [{ readyState: 2 }], readyState: 2 });
        await expect.poll(statuses, { timeout: 5_000 }).toEqual([attempt.status]);
        await page.evaluate(() => (globalThis as unknown as PageGlobals).stream?.close());
      });
    }
    // Nothing was taken, not even for a moment: both still there, never delivered.
    await sleep(500);
    expect(await messageCount(queue)).toBe(2);
    const left = await drain(queue);
    expect(left.map((m) => [m.properties.messageId, m.redelivered])).toEqual([
      ["guarded-1", false],
      ["guarded-2", false],
    ]);
  });
});

describe("an EventSource on a page of an allowed origin, with the key in the query", () => {
  it("receives text and binary messages published before and after it connected, in order, with their ids; the queue ends empty", async () => {
    const run = crypto.randomUUID().slice(0, 8);
    const json = JSON.stringify({ hello: "wörld ✓", run });
    const multiLine = `first line ${run}\nsecond line\n\nfourth line after an empty one`;
    const earlyBytes = new Uint8Array(ALL_BYTES);
    const lateBytes = new Uint8Array([0xff, 0x00, 0x80, 0xc3, 0x28, 0x0a, 0x0d, 0x00]);
    const early: Outgoing[] = [
      { body: json, messageId: `json-${run}`, contentType: "application/json" },
      { body: multiLine, contentType: "text/plain" },
      { body: earlyBytes, messageId: `bytes-${run}`, contentType: "application/octet-stream" },
    ];
    const late: Outgoing[] = [
      { body: `ünïcödé ✓ ${run}`, messageId: `late-text-${run}`, contentType: "text/plain; charset=utf-8" },
      { body: lateBytes, contentType: "application/octet-stream" },
      { body: `last ${run}`, messageId: `last-${run}`, contentType: "text/plain" },
    ];
    await publish(early);
    expect(await messageCount(queue)).toBe(3);

    const seen = await onPage(allowed.origin, async (page, statuses) => {
      await openEventSource(page, `${gateway.url}/events?key=${encodeURIComponent(KEY)}`);
      await page.waitForFunction(() => (globalThis as unknown as PageGlobals).seen.length >= 3, undefined, { timeout: 15_000 });
      expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).opened)).toBe(true);
      // Connected and caught up: now the rest, published while the page listens.
      await publish(late);
      await page.waitForFunction(() => (globalThis as unknown as PageGlobals).seen.length >= 6, undefined, { timeout: 15_000 });
      // A moment for a duplicate or a stray event to show up, then the page closes the stream.
      await sleep(500);
      const result = await page.evaluate(() => {
        const w = globalThis as unknown as PageGlobals;
        w.stream?.close();
        return { seen: w.seen, errors: w.errors, readyState: w.stream?.readyState };
      });
      expect(result.errors).toEqual([]);
      expect(result.readyState).toBe(2);
      expect(statuses()).toEqual([200]);
      return result.seen;
    });

    const origin = new URL(gateway.url).origin;
    expect(seen).toEqual([
      { type: "message", data: json, lastEventId: `json-${run}`, origin },
      // Without a message_id, the id is the stream's own count.
      { type: "message", data: multiLine, lastEventId: "2", origin },
      { type: "binary", data: Buffer.from(earlyBytes).toString("base64"), lastEventId: `bytes-${run}`, origin, bytes: ALL_BYTES },
      { type: "message", data: `ünïcödé ✓ ${run}`, lastEventId: `late-text-${run}`, origin },
      { type: "binary", data: Buffer.from(lateBytes).toString("base64"), lastEventId: "5", origin, bytes: [...lateBytes] },
      { type: "message", data: `last ${run}`, lastEventId: `last-${run}`, origin },
    ]);
    // Every message was taken off the queue.
    await sleep(500);
    expect(await messageCount(queue)).toBe(0);
  });

  it("loses no message published after the page closed its stream", async () => {
    // The page above closed its EventSource; a message now has nobody to go to.
    await sleep(500);
    await publish([{ body: "after the page closed", messageId: "after-close", contentType: "text/plain" }]);
    await sleep(1_500);
    // Nobody may keep it: it is there, or back there (npm start notices the page's clean close
    // only when a write to it fails, so the stream may have taken it and put it back).
    await waitFor(async () => (await messageCount(queue)) === 1, 10_000);
    const left = await drain(queue);
    expect(left.map((m) => [m.bodyToString(), m.properties.messageId])).toEqual([["after the page closed", "after-close"]]);
  });

  it("held nothing back unacknowledged: once the gateway stops, the queue is still empty", async () => {
    // A message taken but not acknowledged would go back to the queue when the gateway's
    // connection closes; every one the page received was acknowledged, so none comes back.
    await gateway.stop();
    await waitFor(async () => (await withChannel((channel) => channel.queueDeclare(queue, { passive: true }))).consumerCount === 0, 10_000);
    await sleep(500);
    const left = await drain(queue);
    expect(left.map((m) => m.properties.messageId ?? m.bodyToString())).toEqual([]);
  });
});
