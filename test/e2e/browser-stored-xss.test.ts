/**
 * A message is a producer's bytes, served in the gateway's origin: in a real browser (Debian's
 * Chromium, driven by playwright-core), through `npm start`, opening a consuming URL whose
 * message is HTML or SVG with a script runs nothing. The browser is an admin's: it has logged in
 * to the status page at `/amqp` (basic credentials, which Chromium then sends on its own to every
 * path of the origin), so a script running in the gateway's origin could read `/amqp`. Each
 * script would also call `/xss-ran-<kind>`: the gateway's own request log shows whether any of it
 * ran. A message of a type the browser shows inline (JSON) is shown in an opaque origin.
 */
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, messageCount, uniqueName } from "../helpers/broker";
import { npmStart, type RunningGateway } from "./npm-start";
import { launchChromium } from "./browser";

const TOKEN = `xss-admin-${crypto.randomUUID().slice(0, 8)}`;
const queue = uniqueName("stored-xss");
const route = `xss-${queue.slice(-8)}`;

/** What the script does when it runs: reads /amqp with the browser's credentials, and says so. */
const payload = (kind: string) =>
  `fetch("/amqp", { headers: { accept: "application/json" } }).then((r) => fetch("/xss-ran-${kind}-" + r.status)); document.documentElement.setAttribute("data-xss", "ran");`;

const MESSAGES = {
  html: { contentType: "text/html; charset=utf-8", body: `<!doctype html><title>job</title><script>${payload("html")}</script>` },
  svg: {
    contentType: "image/svg+xml",
    body: `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>${payload("svg")}</script></svg>`,
  },
  xhtml: {
    contentType: "application/xhtml+xml",
    body: `<html xmlns="http://www.w3.org/1999/xhtml"><head><title>job</title></head><body><script>${payload("xhtml")}</script></body></html>`,
  },
};

/** What the tests read of a page (this file is compiled without the DOM types). */
interface PageWindow {
  origin: string;
  document: { documentElement: { getAttribute(name: string): string | null }; body: { textContent: string | null } };
}

let gateway: RunningGateway;
let browser: Browser;

beforeAll(async () => {
  await declareQueue(queue);
  gateway = await npmStart(
    `routes:
  - { id: ${route}, path: /jobs, amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} }, consumer: { queue: ${queue}, auto_ack: true } } }
`,
    { ADMIN_TOKEN: TOKEN },
  );
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await gateway?.stop();
  await deleteQueue(queue);
});

/** The paths of the gateway's request log lines, in order. */
const loggedPaths = (): string[] =>
  gateway
    .output()
    .split("\n")
    .flatMap((line) => {
      try {
        const entry = JSON.parse(line) as { event?: string; path?: string; status?: number };
        return entry.event === "request" && entry.path ? [`${entry.path} ${entry.status}`] : [];
      } catch {
        return [];
      }
    });

describe("an admin's browser opening a consuming URL whose message carries a script", () => {
  it.each(Object.keys(MESSAGES) as Array<keyof typeof MESSAGES>)("runs nothing of it (%s)", async (kind) => {
    const { contentType, body } = MESSAGES[kind];
    // A producer of the route publishes it, as any caller may.
    const published = await fetch(`${gateway.url}/jobs`, { method: "POST", headers: { "content-type": contentType }, body });
    expect(published.status).toBe(202);
    const context = await browser.newContext({ httpCredentials: { username: "admin", password: TOKEN } });
    try {
      const page = await context.newPage();
      // The admin has the status page open: Chromium now holds basic credentials for the gateway's origin.
      const status = await page.goto(`${gateway.url}/amqp`);
      expect(status?.status()).toBe(200);
      // Away from the status page, whose own calls to /amqp are not the script's, once the last has been answered.
      await page.goto("about:blank");
      await new Promise((resolve) => setTimeout(resolve, 500));
      const before = loggedPaths().length;
      // The admin opens the consuming URL (typed, or from a bookmark): it takes the message.
      let opened: string;
      try {
        opened = `rendered ${(await page.goto(`${gateway.url}/jobs`))?.status()}`;
      } catch (error) {
        // A download is not a page: Chromium aborts the navigation.
        opened = `not rendered: ${(error as Error).message.split("\n")[0]}`;
      }
      // Time for a script to have run and called the gateway, had it run.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const after = loggedPaths().slice(before);
      expect(after.filter((line) => line.startsWith("/jobs "))).toEqual(["/jobs 200"]);
      // The script's own call, which it makes once it has read /amqp (the status page's late calls to /amqp aside).
      const calls = after.filter((line) => line.startsWith("/xss-ran-"));
      expect({ opened, calls }).toEqual({ opened: expect.stringMatching(/^not rendered: .*[Dd]ownload/), calls: [] });
      expect(await page.evaluate(() => (globalThis as unknown as PageWindow).document.documentElement.getAttribute("data-xss"))).toBeNull();
    } finally {
      await context.close();
    }
    expect(await messageCount(queue)).toBe(0);
  });
});

describe("a message a browser shows inline (JSON)", () => {
  it("is shown in an opaque origin of its own, not the gateway's", async () => {
    const published = await fetch(`${gateway.url}/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"job":1}',
    });
    expect(published.status).toBe(202);
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      expect((await page.goto(`${gateway.url}/jobs`))?.status()).toBe(200);
      expect(await page.evaluate(() => (globalThis as unknown as PageWindow).document.body.textContent)).toBe('{"job":1}');
      // The sandbox: the document's origin is "null", so nothing in it could call the gateway as the gateway's own page.
      expect(await page.evaluate(() => (globalThis as unknown as PageWindow).origin)).toBe("null");
    } finally {
      await context.close();
    }
  });
});
