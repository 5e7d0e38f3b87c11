/**
 * `npm run check -- FILE --live`, black-box: it connects to the routes' broker and verifies the
 * topology without creating anything, printing one line per problem (exit 1) or a summary (exit 0).
 * The queues are gw-test-* ones of the test's own on the local broker, deleted afterwards.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, queueExists, uniqueName, withChannel } from "../helpers/broker";
import { routesFile } from "./npm-start";

const ROOT = new URL("../..", import.meta.url).pathname;

const checkLive = (yaml: string) => {
  const result = spawnSync("npx", ["tsx", "scripts/check.ts", routesFile(yaml), "--live"], {
    cwd: ROOT,
    env: { ...process.env, ROUTES: "" },
    encoding: "utf8",
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr.replace(/^npm warn.*\n/gm, "") };
};

/** One route consuming from `queue`, with `topology` (YAML lines indented under it). */
const routes = (url: string, queue: string, topology: string) => `routes:
  - id: live
    path: /live
    amqp:
      enabled: true
      url: "${url}"
      consumer: { queue: ${queue} }
      topology:
${topology}`;

describe("npm run check -- FILE --live", () => {
  it("exits 1 with one line for a queue that is not as routes.yaml says, naming it and the difference", async () => {
    const [classic, matching] = [uniqueName("live-classic"), uniqueName("live-ttl")];
    await declareQueue(classic);
    await declareQueue(matching, { "x-message-ttl": 1000 });
    try {
      const { status, stdout, stderr } = checkLive(
        routes(
          BROKER_URL,
          classic,
          `        mode: verify
        queues:
          - { name: ${classic}, arguments: { x-queue-type: quorum } }
          - { name: ${matching}, arguments: { x-message-ttl: 1000 } }
`,
        ),
      );
      expect(stdout).toMatch(/1 route\(s\), valid/);
      expect(status).toBe(1);
      const lines = stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        new RegExp(
          `routes\\.yaml: route "live": queue ${classic}: x-queue-type is (classic|not set) on the broker, quorum in routes\\.yaml$`,
        ),
      );
      expect(stderr).not.toContain(matching);
      expect(stderr).not.toMatch(/\n\s+at /);
      // Verified, not declared: the classic queue is still classic.
      await expect(withChannel((channel) => channel.queueDeclare(classic, { durable: true }, {}))).resolves.toBeDefined();
    } finally {
      await deleteQueue(classic);
      await deleteQueue(matching);
    }
  });

  it("names the differing value of an argument", async () => {
    const queue = uniqueName("live-ttl");
    await declareQueue(queue, { "x-message-ttl": 1000 });
    try {
      const { status, stderr } = checkLive(
        routes(BROKER_URL, queue, `        mode: verify\n        queues: [{ name: ${queue}, arguments: { x-message-ttl: 2000 } }]\n`),
      );
      expect(status).toBe(1);
      expect(stderr.trim().split("\n")).toEqual([
        expect.stringMatching(
          new RegExp(`routes\\.yaml: route "live": queue ${queue}: x-message-ttl is 1000 on the broker, 2000 in routes\\.yaml$`),
        ),
      ]);
    } finally {
      await deleteQueue(queue);
    }
  });

  it("exits 0 when everything matches, and creates nothing that a declare block would", async () => {
    const queue = uniqueName("live-ok");
    const declared = uniqueName("live-later");
    await declareQueue(queue, { "x-message-ttl": 1000 });
    try {
      const { status, stdout, stderr } = checkLive(`topology:
  queues: [{ name: ${declared} }]
${routes(BROKER_URL, queue, `        mode: verify\n        queues: [{ name: ${queue}, arguments: { x-message-ttl: 1000 } }]\n`).trimEnd()}
`);
      expect(stderr).toBe("");
      expect(status).toBe(0);
      expect(stdout).toMatch(/the brokers have everything the routes need/);
      // The gateway will declare it; the check does not.
      expect(await queueExists(declared)).toBe(false);
    } finally {
      await deleteQueue(queue);
      await deleteQueue(declared);
    }
  });

  it("gives one 'cannot connect' line for a broker it cannot reach, with the password hidden", () => {
    const password = "s3cret-topology-pw";
    const { status, stdout, stderr } = checkLive(
      routes(
        `amqp://gwuser:${password}@127.0.0.1:1/`,
        "gw-test-unreachable",
        `        mode: verify\n        queues: [{ name: gw-test-unreachable }]\n`,
      ),
    );
    expect(status).toBe(1);
    const lines = stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/routes\.yaml: route "live": cannot connect to amqp:\/\/gwuser:\*\*\*@127\.0\.0\.1:1\//);
    expect(`${stdout}${stderr}`).not.toContain(password);
  });

  it("reports what a declare block cannot do and what a route names that does not exist: a binding to a missing queue, a default-exchange key with no queue", async () => {
    const [source, missing, keyed] = [uniqueName("live-src"), uniqueName("live-typo"), uniqueName("live-key")];
    const yaml = `routes:
  - id: bindings
    path: /b
    amqp:
      enabled: true
      url: "${BROKER_URL}"
      producer: { exchange: ${source}, routing_key: k }
      topology:
        exchanges: [{ name: ${source} }]
        bindings: [{ source: ${source}, destination: ${missing} }]
  - id: keyed
    path: /k
    amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${keyed} } }
`;
    const { status, stderr } = checkLive(yaml);
    expect(status).toBe(1);
    const lines = stderr.trim().split("\n");
    expect(lines).toEqual([
      expect.stringMatching(new RegExp(`route "bindings": queue ${missing}: does not exist on the broker$`)),
      expect.stringMatching(new RegExp(`route "keyed": queue ${keyed}: does not exist on the broker$`)),
    ]);
    // Nothing was created by the check: the declared exchange is still missing.
    expect(await queueExists(missing)).toBe(false);
  });
});
