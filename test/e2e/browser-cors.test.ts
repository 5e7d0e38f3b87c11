/**
 * The gateway's `cors` and `auth` seen from a real browser (Debian's Chromium, driven by
 * playwright-core). A page on an allowed origin publishes with `fetch` (JSON, and binary bytes),
 * with an API key, and consumes both back byte for byte; it reads an exposed header and a 401's
 * JSON. A page on another origin cannot publish, with or without the key, and the tests' own AMQP
 * client sees that nothing from it reached the queue.
 */
import type { Server } from "node:http";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, messageCount, uniqueName } from "../helpers/broker";
import { npmStart, type RunningGateway } from "./npm-start";
import { closeServer, launchChromium, pageServer } from "./browser";

const KEY = `browser-cors-key-${crypto.randomUUID().slice(0, 8)}`;
const queue = uniqueName("browser-cors");
const [publisher, consumer] = [`cors-in-${queue.slice(-8)}`, `cors-out-${queue.slice(-8)}`];
/** Every byte value once: the body a text decoding anywhere on the way would spoil. */
const ALL_BYTES = Array.from({ length: 256 }, (_, i) => i);
const JSON_BODY = JSON.stringify({ hello: "wörld ✓", n: 1 });

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
  api_key: { header: X-API-Key, keys: ["\${APP_KEY}"] }
routes:
  - { id: ${publisher}, path: /in, amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} } } }
  - { id: ${consumer}, path: /out, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, auto_ack: true } } }
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

/** A fresh page at `origin`, closed (with its context) after `work`. */
const onPage = async <T>(origin: string, work: (page: Page) => Promise<T>): Promise<T> => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    expect((await page.goto(origin))?.status()).toBe(200);
    return await work(page);
  } finally {
    await context.close();
  }
};

describe("a page on an allowed origin", () => {
  it("publishes JSON and binary bytes with the API key, and consumes both back byte for byte", async () => {
    const seen = await onPage(allowed.origin, (page) =>
      page.evaluate(
        async ({ gw, key, json, bytes }) => {
          const publish = async (body: string | Uint8Array, contentType: string) => {
            const response = await fetch(`${gw}/in`, {
              method: "POST",
              headers: { "X-API-Key": key, "Content-Type": contentType },
              body,
            });
            return { status: response.status, requestId: response.headers.get("X-Request-Id"), body: await response.json() };
          };
          const consume = async () => {
            const response = await fetch(`${gw}/out`, { headers: { "X-API-Key": key } });
            return {
              status: response.status,
              contentType: response.headers.get("Content-Type"),
              routingKey: response.headers.get("X-Routing-Key"),
              requestId: response.headers.get("X-Request-Id"),
              bytes: Array.from(new Uint8Array(await response.arrayBuffer())),
            };
          };
          const published = [await publish(json, "application/json"), await publish(new Uint8Array(bytes), "application/octet-stream")];
          const consumed = [await consume(), await consume(), await consume()];
          return { published, consumed };
        },
        { gw: gateway.url, key: KEY, json: JSON_BODY, bytes: ALL_BYTES },
      ),
    );
    for (const answer of seen.published) {
      expect(answer.status).toBe(202);
      expect(answer.body).toMatchObject({ status: "published" });
      // Not a CORS-safelisted header: the page reads it only because the gateway exposes it.
      expect(answer.requestId).toEqual(expect.any(String));
    }
    const [json, binary, empty] = seen.consumed;
    expect(json).toMatchObject({ status: 200, routingKey: queue, requestId: expect.any(String) });
    expect(json?.contentType).toMatch(/^application\/json/);
    expect(json?.bytes).toEqual([...Buffer.from(JSON_BODY, "utf8")]);
    expect(binary).toMatchObject({ status: 200, routingKey: queue, contentType: "application/octet-stream" });
    expect(binary?.bytes).toEqual(ALL_BYTES);
    expect(empty).toMatchObject({ status: 204, bytes: [] });
    expect(await messageCount(queue)).toBe(0);
  });

  it("reads the JSON of a 401 when the key is missing or wrong", async () => {
    const answers = await onPage(allowed.origin, (page) =>
      page.evaluate(
        async ({ gw }) => {
          const read = async (response: Response) => ({
            status: response.status,
            challenge: response.headers.get("WWW-Authenticate"),
            requestId: response.headers.get("X-Request-Id"),
            body: await response.json(),
          });
          return [
            await read(await fetch(`${gw}/in`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" })),
            await read(await fetch(`${gw}/in`, { method: "POST", headers: { "X-API-Key": "wrong" }, body: "{}" })),
            await read(await fetch(`${gw}/out`)),
          ];
        },
        { gw: gateway.url },
      ),
    );
    const [missing, wrong, missingOnGet] = answers;
    expect(missing).toMatchObject({ status: 401, body: { error: expect.stringContaining("API key"), route: publisher } });
    expect(wrong).toMatchObject({ status: 401, body: { error: expect.stringContaining("not valid"), route: publisher } });
    expect(missingOnGet).toMatchObject({ status: 401, body: { error: expect.stringContaining("API key"), route: consumer } });
    for (const answer of answers) {
      expect(answer.challenge).toMatch(/^ApiKey /);
      expect(answer.requestId).toEqual(expect.any(String));
    }
    expect(await messageCount(queue)).toBe(0);
  });
});

describe("a page on an origin that is not allowed", () => {
  it("cannot publish, with the key or with a simple text/plain POST, and nothing reaches the queue", async () => {
    expect(await messageCount(queue)).toBe(0);
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      // What went over the wire, from Chromium's own network log: the page itself sees none of it.
      // (Chromium may report a response's raw headers before the request itself: merge by id.)
      const wire = new Map<string, { method?: string; url?: string; status?: number; corsError?: string }>();
      const note = (id: string, fields: { method?: string; url?: string; status?: number; corsError?: string }) =>
        wire.set(id, { ...wire.get(id), ...fields });
      const cdp = await context.newCDPSession(page);
      await cdp.send("Network.enable");
      cdp.on("Network.requestWillBeSent", (event) => note(event.requestId, { method: event.request.method, url: event.request.url }));
      cdp.on("Network.responseReceivedExtraInfo", (event) => note(event.requestId, { status: event.statusCode }));
      cdp.on("Network.loadingFailed", (event) => {
        if (event.corsErrorStatus) note(event.requestId, { corsError: event.corsErrorStatus.corsError });
      });
      expect((await page.goto(foreign.origin))?.status()).toBe(200);
      const outcomes = await page.evaluate(
        async ({ gw, key }) => {
          const attempt = async (init: RequestInit) => {
            try {
              const response = await fetch(`${gw}/in`, { method: "POST", ...init });
              return { kind: "answered", type: response.type, status: response.status, text: await response.text() };
            } catch (error) {
              return { kind: "rejected", name: (error as Error).name, message: (error as Error).message };
            }
          };
          return {
            withKey: await attempt({ headers: { "X-API-Key": key, "Content-Type": "application/json" }, body: '{"from":"foreign"}' }),
            simple: await attempt({ headers: { "Content-Type": "text/plain" }, body: "simple from foreign" }),
            // no-cors sends the request all the same and hands the page an opaque answer.
            noCors: await attempt({ mode: "no-cors", headers: { "Content-Type": "text/plain" }, body: "no-cors from foreign" }),
          };
        },
        { gw: gateway.url, key: KEY },
      );
      expect(outcomes.withKey).toEqual({ kind: "rejected", name: "TypeError", message: "Failed to fetch" });
      expect(outcomes.simple).toEqual({ kind: "rejected", name: "TypeError", message: "Failed to fetch" });
      expect(outcomes.noCors).toEqual({ kind: "answered", type: "opaque", status: 0, text: "" });
      // The preflight of the keyed POST was refused, so that POST never left the browser; the
      // two simple POSTs did, and the gateway refused them by their Origin.
      const toGateway = () =>
        [...wire.values()]
          .filter((entry) => entry.url?.startsWith(gateway.url))
          .map(({ method, status, corsError }) => `${method} ${status ?? "-"} ${corsError ?? "-"}`)
          .sort();
      await expect
        .poll(toGateway, { timeout: 5000 })
        .toEqual(["OPTIONS 403 -", "POST - PreflightMissingAllowOriginHeader", "POST 403 -", "POST 403 MissingAllowOriginHeader"]);
    } finally {
      await context.close();
    }
    // Give a publish that slipped through time to land before looking.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await messageCount(queue)).toBe(0);
  });

  it("is refused with 403 before the key is looked at, and the answer carries no Access-Control-Allow-Origin", async () => {
    // What the browser above could not show its page: the gateway's answer to that origin.
    const post = await fetch(`${gateway.url}/in`, {
      method: "POST",
      headers: { origin: foreign.origin, "x-api-key": KEY, "content-type": "text/plain" },
      body: "direct from foreign",
    });
    expect(post.status).toBe(403);
    expect(await post.json()).toEqual({ error: expect.stringContaining(foreign.origin), route: publisher });
    expect(post.headers.get("access-control-allow-origin")).toBeNull();
    expect(post.headers.get("x-request-id")).toEqual(expect.any(String));
    const preflight = await fetch(`${gateway.url}/in`, {
      method: "OPTIONS",
      headers: { origin: foreign.origin, "access-control-request-method": "POST", "access-control-request-headers": "x-api-key" },
    });
    expect(preflight.status).toBe(403);
    expect(preflight.headers.get("access-control-allow-origin")).toBeNull();
    await preflight.arrayBuffer();
    // The allowed origin's preflight, for contrast.
    const allowedPreflight = await fetch(`${gateway.url}/in`, {
      method: "OPTIONS",
      headers: { origin: allowed.origin, "access-control-request-method": "POST", "access-control-request-headers": "x-api-key" },
    });
    expect(allowedPreflight.status).toBe(204);
    expect(allowedPreflight.headers.get("access-control-allow-origin")).toBe(allowed.origin);
    expect(allowedPreflight.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("x-api-key");
    await allowedPreflight.arrayBuffer();
    expect(await messageCount(queue)).toBe(0);
  });
});
