/**
 * `npm start` stops everything it started when a supervisor asks (a signal to the npm process
 * alone, not its group): workerd, the Web-AMQP relay and the bundle holding the routes. And no
 * command ever prints a password, whatever the URL's shape.
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { isListening } from "../../scripts/lib/web-amqp-relay";
import { npmRun, npmStart, routesFile, waitFor } from "./npm-start";

const ROOT = new URL("../..", import.meta.url).pathname;
const bundles = () => new Set(readdirSync(join(ROOT, ".wrangler")).filter((name) => name.startsWith("bundle-")));

describe.each(["SIGTERM", "SIGINT", "SIGHUP"] as const)("npm start, sent %s", (signal) => {
  it("stops workerd and the relay it started, and removes its bundle", async () => {
    const relay = `127.0.0.1:${15690 + ["SIGTERM", "SIGINT", "SIGHUP"].indexOf(signal)}`;
    const gateway = await npmStart(
      `routes:\n  - { id: lifecycle, path: /in, amqp: { enabled: true, url: "ws://guest:guest@${relay}/", producer: { routing_key: unused } } }\n`,
    );
    try {
      // npm execs the gateway's node process (package.json), which names its bundle after its pid.
      const node = spawnSync("ps", ["-o", "pid=", "--ppid", String(gateway.pid)], { encoding: "utf8" }).stdout.trim();
      const mine = [...bundles()].filter((name) => name.startsWith(`bundle-${node}-`));
      expect(mine).toHaveLength(1);
      // What it says at start: each route, and the relay it started.
      expect(gateway.output()).toMatch(
        / {2}lifecycle: POST, PUT \/in: publishes to exchange "" with routing key "unused", via ws:\/\/guest:\*\*\*@/,
      );
      expect(gateway.output()).toContain(`Web-AMQP relay: started websockify on ${relay}`);
      expect(await isListening(relay)).toBe(true);
      expect(await isListening(gateway.url.replace("http://", ""))).toBe(true);
      await gateway.signal(signal);
      const stillListening = async () =>
        (
          await Promise.all(
            [relay, gateway.url.replace("http://", "")].map(async (address) => ((await isListening(address)) ? [address] : [])),
          )
        ).flat();
      await waitFor(async () => (await stillListening()).length === 0, 10_000).catch(async () => {
        throw new Error(`still listening after ${signal}: ${(await stillListening()).join(", ")}\n${gateway.output()}`);
      });
      const left = bundles();
      expect(mine.filter((name) => left.has(name))).toEqual([]);
    } finally {
      await gateway.stop();
    }
  });
});

describe("a password that breaks its URL (an unencoded / or #)", () => {
  const password = "se/cr#t@pw";
  const pieces = [password, "se/cr", "cr#t", "t@pw"];

  it("is not printed by npm run check", () => {
    const { status, stdout, stderr } = npmRun("check", {
      ROUTES: routesFile(
        `routes:\n  - { id: a, path: /a, amqp: { enabled: true, url: "amqp://guest:${password}@127.0.0.1:5672/", producer: {} } }\n`,
      ),
    });
    expect(status).toBe(1);
    expect(stderr).toMatch(/amqp\.url: "amqp:\/\/\*\*\*" is not a URL \(percent-encode/);
    for (const piece of pieces) expect(`${stdout}${stderr}`).not.toContain(piece);
  });

  it("is not printed by npm start when it comes from the environment", async () => {
    const yaml = `routes:\n  - { id: a, path: /a, amqp: { enabled: true, url: "amqp://guest:\${GW_E2E_PASSWORD}@127.0.0.1:5672/", producer: {} } }\n`;
    const error = await npmStart(yaml, { GW_E2E_PASSWORD: password }).then(
      async (gateway) => {
        await gateway.stop();
        return "started";
      },
      (failure: Error) => failure.message,
    );
    expect(error).toMatch(/exited with 1/);
    expect(error).toMatch(/"amqp:\/\/\*\*\*" is not a URL/);
    for (const piece of pieces) expect(error).not.toContain(piece);
  });
});
