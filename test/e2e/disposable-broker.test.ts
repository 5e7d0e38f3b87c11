/**
 * The disposable broker the fault tests stop, alarm and cut: it must be a node of its own, come and go
 * as told, and leave nothing behind, while the user's broker (rabbit@localhost on 5672) is left alone.
 */
import { AMQPClient } from "@cloudamqp/amqp-client";
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uniqueName } from "../helpers/broker";
import { startDisposableBroker, stopOrphanedBrokers, type DisposableBroker } from "../helpers/disposable-broker";
import { waitFor } from "./npm-start";

const run = promisify(execFile);
const ROOT = new URL("../..", import.meta.url).pathname;
const HELPER = new URL("../helpers/disposable-broker.ts", import.meta.url).pathname;

/** Node names epmd lists, without @host. */
const epmdNames = (): string[] =>
  [...spawnSync("epmd", ["-names"], { encoding: "utf8" }).stdout.matchAll(/^name (\S+) at/gm)].map((m) => m[1] ?? "");

/** Queue names on the user's broker, read-only: the default node, as rabbitmqctl finds it without -n. */
const userQueues = async (): Promise<string[]> =>
  (await run("rabbitmqctl", ["-q", "list_queues", "name", "--no-table-headers"], { encoding: "utf8" })).stdout.split("\n");

const portOpen = (address: string): Promise<boolean> =>
  new Promise((resolve) => {
    const [host = "", port = ""] = address.split(":");
    const socket = connect(Number(port), host);
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
  });

const shortName = (broker: DisposableBroker) => broker.nodeName.replace(/@.*/, "");

let broker: DisposableBroker;

beforeAll(async () => {
  broker = await startDisposableBroker();
});

afterAll(() => broker?.stop());

describe("a disposable broker", () => {
  it("is a node of its own, on its own port, and accepts AMQP connections", async () => {
    expect(broker.url).toBe(`amqp://guest:guest@${broker.address}/`);
    expect(broker.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(broker.address).not.toBe("127.0.0.1:5672");
    expect(broker.nodeName).toMatch(new RegExp(`^gwtest-${process.pid}-\\w+@localhost$`));
    expect(epmdNames()).toContain(shortName(broker));
    expect(await broker.rabbitmqctl("eval", "node().")).toContain(broker.nodeName);
    const connection = await new AMQPClient(broker.url).connect();
    await connection.close();
  });

  it("keeps its queues and connections off the user's broker", async () => {
    const queue = uniqueName("disposable");
    const connection = await new AMQPClient(`${broker.url}?name=${queue}-conn`).connect();
    try {
      await (await connection.channel()).queueDeclare(queue, { autoDelete: true });
      // Side by side: each rabbitmqctl spends a second or so starting up.
      const [connections, queues, users] = await Promise.all([
        broker.connectionsNamed(`${queue}-conn`),
        broker.rabbitmqctl("list_queues", "name", "--no-table-headers"),
        userQueues(),
      ]);
      expect(connections).toBe(1);
      expect(queues.split("\n")).toContain(queue);
      expect(users).not.toContain(queue);
    } finally {
      await connection.close();
    }
  });

  it("closes the connections named with a prefix, and only those", async () => {
    const prefix = uniqueName("cut");
    const [first, second, other] = await Promise.all(
      [`${prefix}-a`, `${prefix}-b`, uniqueName("keep")].map((name) => new AMQPClient(`${broker.url}?name=${name}`).connect()),
    );
    expect(await broker.closeConnectionsNamed(prefix, "cut by the test")).toBe(2);
    await waitFor(() => first?.closed === true && second?.closed === true);
    expect(other?.closed).toBe(false);
    await other?.close();
  });

  it("refuses connections after stopApp and takes them again after startApp", async () => {
    await broker.stopApp();
    await expect(new AMQPClient(broker.url).connect()).rejects.toThrow();
    await broker.startApp();
    await (await new AMQPClient(broker.url).connect()).close();
  });

  it("blocks publishers under a memory alarm, and unblocks them when it clears", async () => {
    const connection = await new AMQPClient(broker.url).connect();
    try {
      const channel = await connection.channel();
      await broker.setMemoryAlarm(true);
      // RabbitMQ blocks a connection once it publishes during the alarm; amqp-client then refuses further publishes.
      await waitFor(async () => {
        await channel.basicPublish("", "gw-test-nowhere", "x").catch(() => undefined);
        return connection.blocked !== undefined;
      });
      expect(connection.blocked).toMatch(/memory/i);
      await expect(channel.basicPublish("", "gw-test-nowhere", "x")).rejects.toThrow(/blocked/);
      await broker.setMemoryAlarm(false);
      await waitFor(() => connection.blocked === undefined);
      await channel.confirmSelect();
      await channel.basicPublish("", "gw-test-nowhere", "x");
    } finally {
      await broker.setMemoryAlarm(false);
      await connection.close().catch(() => undefined);
    }
  });

  it("is gone after stop: port closed, not in epmd, temp dir removed; stop again is a no-op", async () => {
    const dir = join(tmpdir(), `gw-rabbit-${shortName(broker).slice("gwtest-".length)}`);
    expect(existsSync(dir)).toBe(true);
    await broker.stop();
    expect(await portOpen(broker.address)).toBe(false);
    expect(epmdNames()).not.toContain(shortName(broker));
    expect(existsSync(dir)).toBe(false);
    await broker.stop();
  });
});

describe("nodes of an interrupted run", () => {
  let scratch = "";
  const children: ChildProcess[] = [];

  /** Starts a broker in a process of its own; resolves with the process, the node's short name and its dir. */
  const startInChild = async (id: string) => {
    // .mts, so top-level await works outside the repository's "type": "module".
    const script = join(scratch, `${id}.mts`);
    writeFileSync(
      script,
      `import { startDisposableBroker } from ${JSON.stringify(HELPER)};\n` +
        `const broker = await startDisposableBroker();\nconsole.log("up " + broker.nodeName);\nsetInterval(() => undefined, 1000);\n`,
    );
    // Node itself, not npx or the tsx CLI, so the signal reaches the process that started the node.
    const child = spawn(process.execPath, ["--import", "tsx", script], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
    children.push(child);
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    const exited = new Promise((resolve) => child.once("exit", resolve));
    await waitFor(() => {
      if (child.exitCode !== null) throw new Error(`the child exited with ${child.exitCode} before its node was up`);
      return /up \S+/.test(output);
    }, 90_000);
    const name = /up (\S+)@/.exec(output)?.[1] ?? "";
    return { child, name, exited, dir: join(tmpdir(), `gw-rabbit-${name.slice("gwtest-".length)}`) };
  };
  let terminated: Awaited<ReturnType<typeof startInChild>>;
  let killed: Awaited<ReturnType<typeof startInChild>>;

  // Both at once: starting a node is most of these tests' time.
  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), "gw-child-"));
    [terminated, killed] = await Promise.all([startInChild("terminated"), startInChild("killed")]);
  });

  afterAll(async () => {
    for (const child of children) child.kill("SIGKILL");
    await stopOrphanedBrokers();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("stops its node when the process is terminated", async () => {
    expect(epmdNames()).toContain(terminated.name);
    terminated.child.kill("SIGTERM");
    await terminated.exited;
    expect(epmdNames()).not.toContain(terminated.name);
    expect(existsSync(terminated.dir)).toBe(false);
  });

  it("leaves a node behind when killed outright, which stopOrphanedBrokers stops", async () => {
    killed.child.kill("SIGKILL");
    await killed.exited;
    expect(epmdNames()).toContain(killed.name);
    expect(existsSync(killed.dir)).toBe(true);
    await stopOrphanedBrokers();
    expect(epmdNames()).not.toContain(killed.name);
    expect(existsSync(killed.dir)).toBe(false);
  });
});

it("leaves the user's broker running", () => {
  expect(spawnSync("rabbitmqctl", ["-q", "status"], { stdio: "ignore" }).status).toBe(0);
  expect(epmdNames()).toContain("rabbit");
});
