/**
 * Message bodies are a producer's bytes, served in the gateway's origin: every answer that carries
 * one says so to the browser, inside workerd against the real broker. A plain GET, a batch, a
 * stream, and a reply (at once and fetched later) all carry `Content-Security-Policy: sandbox`
 * and `X-Content-Type-Options: nosniff`; a type a browser would open as a document (HTML, SVG,
 * XML, multipart, anything unknown or malformed) also `Content-Disposition: attachment`, while
 * JSON, text, images and media stay inline. The bytes are delivered unchanged either way.
 */
import { describe, expect, it } from "vitest";
import { BROKER_URL, publishDirect, uniqueName, withQueue } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";
import { withResponder } from "./responder";

const SCRIPTED_HTML = "<!doctype html><script>document.title = 'ran'</script>";

const consumer = (queue: string, extra = "") =>
  gatewayFor(`routes:
  - { id: ${uniqueRouteId("untrusted")}, path: /out, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, auto_ack: true${extra} } } }
`);

const expectSandboxed = (answer: Response) => {
  expect(answer.headers.get("content-security-policy")).toBe("sandbox; default-src 'none'");
  expect(answer.headers.get("x-content-type-options")).toBe("nosniff");
};

describe("a consumed message whose type a browser would open as a document", () => {
  it.each([
    "text/html",
    "TEXT/HTML; charset=utf-8",
    "application/xhtml+xml",
    "image/svg+xml",
    "text/xml",
    "application/xml",
    "application/rss+xml",
    "text/xsl",
    "multipart/x-mixed-replace; boundary=x",
    "application/x-unknown-to-the-gateway",
    // Sent percent-encoded (not a plain header value): no type a browser knows.
    "text/html\r\nX-Injected: 1",
  ])("is sandboxed and served as an attachment: %j", (contentType) =>
    withQueue("untrusted-active", async (queue) => {
      await publishDirect(queue, SCRIPTED_HTML, contentType);
      const answer = await consumer(queue)("GET", "/out");
      expect(answer.status).toBe(200);
      expectSandboxed(answer);
      expect(answer.headers.get("content-disposition")).toBe("attachment");
      expect(await answer.text()).toBe(SCRIPTED_HTML);
    }),
  );
});

describe("a consumed message whose type a browser shows as text, an image or media", () => {
  it.each([
    "application/json",
    "text/plain; charset=utf-8",
    "application/problem+json",
    "image/png",
    "video/mp4",
    "application/octet-stream",
  ])("is sandboxed and stays inline: %s", (contentType) =>
    withQueue("untrusted-passive", async (queue) => {
      await publishDirect(queue, "{}", contentType);
      const answer = await consumer(queue)("GET", "/out");
      expect(answer.status).toBe(200);
      expectSandboxed(answer);
      expect(answer.headers.get("content-disposition")).toBeNull();
      expect(await answer.text()).toBe("{}");
    }),
  );
});

describe("other answers that carry message bodies", () => {
  it("a batch (?max=N) is sandboxed", () =>
    withQueue("untrusted-batch", async (queue) => {
      await publishDirect(queue, SCRIPTED_HTML, "text/html");
      const answer = await consumer(queue)("GET", "/out?max=5");
      expect(answer.status).toBe(200);
      expectSandboxed(answer);
      expect(((await answer.json()) as { messages: Array<{ body: string }> }).messages.map((one) => one.body)).toEqual([SCRIPTED_HTML]);
    }));

  it("an event stream is sandboxed", () =>
    withQueue("untrusted-stream", async (queue) => {
      await publishDirect(queue, SCRIPTED_HTML, "text/html");
      const answer = await consumer(queue, ", stream: true")("GET", "/out", { headers: { accept: "text/event-stream" } });
      expect(answer.status).toBe(200);
      expectSandboxed(answer);
      await answer.body?.cancel();
    }));

  it("a reply, answered at once or fetched from its Location, is sandboxed and, as HTML, an attachment", async () => {
    const queue = uniqueName("untrusted-rpc");
    await withResponder(
      queue,
      () => ({ body: SCRIPTED_HTML, properties: { contentType: "text/html" } }),
      async () => {
        const send = gatewayFor(`routes:
  - { id: ${uniqueRouteId("untrusted-rpc")}, path: /rpc, methods: [POST], amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue}, reply: true } } }
`);
        const now = await send("POST", "/rpc", { body: "x" });
        expect(now.status).toBe(200);
        expectSandboxed(now);
        expect(now.headers.get("content-disposition")).toBe("attachment");
        expect(await now.text()).toBe(SCRIPTED_HTML);

        const accepted = await send("POST", "/rpc", { body: "y", headers: { prefer: "respond-async" } });
        expect(accepted.status).toBe(202);
        const location = accepted.headers.get("location") ?? "";
        let later = await send("GET", location);
        for (let tries = 0; later.status === 202 && tries < 50; tries++) {
          await later.arrayBuffer();
          await new Promise((resolve) => setTimeout(resolve, 100));
          later = await send("GET", location);
        }
        expect(later.status).toBe(200);
        expectSandboxed(later);
        expect(later.headers.get("content-disposition")).toBe("attachment");
        expect(await later.text()).toBe(SCRIPTED_HTML);
      },
    );
  });
});
