/**
 * `GET /amqp` in a real browser (Debian's Chromium, driven by playwright-core): the status page
 * renders each route with its live numbers, behind ADMIN_TOKEN as the basic-auth password; JSON
 * clients keep getting JSON. The test writes a screenshot and prints its path, for a person to look.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, uniqueName } from "../helpers/broker";
import { npmStart, type RunningGateway } from "./npm-start";
import { launchChromium } from "./browser";

const TOKEN = "status-page-token";
const queue = uniqueName("status");
const [publisher, sharded, pushing] = [
  `status-in-${queue.slice(-8)}`,
  `status-sharded-${queue.slice(-8)}`,
  `status-push-${queue.slice(-8)}`,
];
const pushQueue = `${queue}-push`;
let gateway: RunningGateway;
let browser: Browser;

beforeAll(async () => {
  await declareQueue(queue);
  await declareQueue(pushQueue);
  gateway = await npmStart(
    `routes:
  - { id: ${publisher}, path: /in, amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} } } }
  - { id: ${sharded}, path: /out, amqp: { enabled: true, url: "${BROKER_URL}", shards: 2, consumer: { queue: ${queue}, auto_ack: true } } }
  - { id: ${pushing}, path: /hook, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${pushQueue}, push: { url: "http://127.0.0.1:1/", secret: "whsec_${btoa("sixteen bytes or more")}" } } } }
`,
    { ADMIN_TOKEN: TOKEN },
  );
  for (let i = 0; i < 3; i++) await (await fetch(`${gateway.url}/in`, { method: "POST", body: `{"n":${i}}` })).arrayBuffer();
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await gateway?.stop();
  await deleteQueue(queue);
  await deleteQueue(pushQueue);
});

describe("the /amqp status page", () => {
  it("shows each route with its numbers to a browser that gives the token as the basic-auth password", async () => {
    const context = await browser.newContext({ httpCredentials: { username: "admin", password: TOKEN } });
    try {
      const page = await context.newPage();
      const response = await page.goto(`${gateway.url}/amqp`);
      expect(response?.status()).toBe(200);
      expect(response?.headers()["content-type"]).toMatch(/^text\/html/);
      const row = page.locator(`tr[data-route="${publisher}"]`);
      await expect.poll(() => row.locator('[data-field="published"]').textContent(), { timeout: 10_000 }).toBe("3");
      expect(await row.locator('[data-field="connected"]').textContent()).toBe("yes");
      expect(await row.textContent()).toContain("amqp://guest:***@127.0.0.1:5672/");
      expect(await row.textContent()).toContain("POST, PUT");
      // The sharded route lists each shard under it.
      await expect.poll(() => page.locator(`tr.shard[data-of="${sharded}"]`).count(), { timeout: 10_000 }).toBe(2);
      // A push route shows its pushes where others show what they consumed.
      const push = page.locator(`tr[data-route="${pushing}"]`);
      expect(await push.textContent()).toContain("consumer (push)");
      await expect
        .poll(() => push.locator('[data-field="consumed"]').textContent(), { timeout: 10_000 })
        .toBe("0 pushed, 0 failed attempts, 0 dead-lettered");
      const screenshot = join(mkdtempSync(join(tmpdir(), "gw-status-")), "status-page.png");
      await page.screenshot({ path: screenshot, fullPage: true });
      process.stdout.write(`status page screenshot: ${screenshot}\n`);
    } finally {
      await context.close();
    }
  });

  it("asks a browser without the token for basic credentials, and shows nothing", async () => {
    const response = await fetch(`${gateway.url}/amqp`, { headers: { accept: "text/html,application/xhtml+xml,*/*;q=0.8" } });
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toMatch(/^Basic realm="amqp"/);
    expect(await response.text()).not.toContain(publisher);
    // A headless browser with no credentials to give fails the navigation on that challenge.
    const context = await browser.newContext();
    try {
      await expect((await context.newPage()).goto(`${gateway.url}/amqp`)).rejects.toThrow(/ERR_INVALID_AUTH_CREDENTIALS/);
    } finally {
      await context.close();
    }
  });

  it("keeps answering JSON clients with JSON", async () => {
    const response = await fetch(`${gateway.url}/amqp`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    expect(((await response.json()) as Record<string, { published: number }>)[publisher]?.published).toBe(3);
  });
});
