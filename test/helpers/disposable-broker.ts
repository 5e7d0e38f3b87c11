/**
 * A RabbitMQ node of the tests' own, for tests that stop, alarm or cut a broker. The broker on
 * 127.0.0.1:5672 (rabbit@localhost) belongs to the user: nothing here ever addresses it, since every
 * rabbitmqctl call names the disposable node with -n.
 *
 * Node-only: it runs rabbitmq-server and rabbitmqctl, which workerd cannot.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chownSync, closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface DisposableBroker {
  /** amqp://guest:guest@127.0.0.1:<port>/ */
  url: string;
  /** host:port of its AMQP listener, e.g. for a websockify relay in front of it */
  address: string;
  /** Its Erlang node name, gwtest-<pid of this process>-<random>@localhost. */
  nodeName: string;
  /** Runs rabbitmqctl -n <node> -q ...args; rejects with stderr on failure. Async (execFile), so load can keep flowing meanwhile. */
  rabbitmqctl(...args: string[]): Promise<string>;
  /** Closes every connection whose client-provided connection_name starts with prefix; returns how many. */
  closeConnectionsNamed(prefix: string, reason?: string): Promise<number>;
  /** How many connections are open under exactly this connection_name. */
  connectionsNamed(name: string): Promise<number>;
  /** stop_app: the node stays up (so it can be started again) but refuses AMQP connections. */
  stopApp(): Promise<void>;
  /** start_app + await_startup */
  startApp(): Promise<void>;
  /** Memory alarm on (set_vm_memory_high_watermark 0.000001) / off (0.4). */
  setMemoryAlarm(on: boolean): Promise<void>;
  /** Stops the node (rabbitmqctl -n NAME stop, then kill the pid if it is still alive after 20 s) and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

// The pid of the creating process, in both the node's name and its dir's, is what lets a later run tell a live
// run's node from an orphan; the rest of the name is the dir's random part, so an orphan's dir follows from its name.
const NODE_PREFIX = "gwtest-";
const DIR_PREFIX = "gw-rabbit-";
const NODE_NAME = /^gwtest-(\d+)-[A-Za-z0-9]+$/;
// rabbitmqctl's own Erlang distribution listens on one of these, so a node must not take them.
const CLI_DIST_PORTS = { min: 35672, max: 35682 };

const dirOf = (shortName: string): string => join(tmpdir(), `${DIR_PREFIX}${shortName.slice(NODE_PREFIX.length)}`);
const pidFileOf = (dir: string): string => join(dir, "rabbitmq.pid");

const ctl = async (node: string, args: string[], timeoutMs = 120_000): Promise<string> => {
  try {
    return (await run("rabbitmqctl", ["-n", node, "-q", ...args], { encoding: "utf8", timeout: timeoutMs })).stdout;
  } catch (error) {
    const { stderr = "", stdout = "" } = error as { stderr?: string; stdout?: string };
    throw new Error(`rabbitmqctl -n ${node} ${args.join(" ")} failed: ${stderr}${stdout}`, { cause: error });
  }
};

/** Whether `pid` is a live process. A zombie counts as dead: an orphaned beam is reaped by whoever adopted it, maybe late. */
const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true;
  }
};

const readPid = (dir: string): number | undefined => {
  try {
    const pid = Number.parseInt(readFileSync(pidFileOf(dir), "utf8"), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
};

const kill = (pid: number | undefined): void => {
  if (pid === undefined) return;
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const removeDir = (dir: string): void => rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });

/** Stops a node and removes its dir, however far its start got; never throws. */
const stopNode = async (node: string, dir: string): Promise<void> => {
  await ctl(node, ["stop"], 20_000).catch(() => undefined);
  const pid = readPid(dir);
  for (const deadline = Date.now() + 20_000; pid !== undefined && isAlive(pid) && Date.now() < deadline;) {
    await sleep(100);
  }
  kill(pid);
  // Gone from epmd only once the process is gone (a stop refused, e.g. when every CLI distribution
  // port was taken by another rabbitmqctl, left it to the kill).
  for (const deadline = Date.now() + 5_000; pid !== undefined && isAlive(pid) && Date.now() < deadline;) await sleep(50);
  for (const deadline = Date.now() + 5_000; (await epmdNames()).includes(node.split("@")[0] ?? "") && Date.now() < deadline;) {
    await sleep(50);
  }
  removeDir(dir);
};

/** Distinct free ports on 127.0.0.1, all held open until all are found so none is handed out twice. */
const freePorts = async (count: number): Promise<number[]> => {
  const servers: Server[] = [];
  const ports: number[] = [];
  try {
    while (ports.length < count) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve));
      const address = server.address();
      if (typeof address !== "object" || address === null) throw new Error("no port");
      if (address.port < CLI_DIST_PORTS.min || address.port > CLI_DIST_PORTS.max) ports.push(address.port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
};

/** The node runs as the rabbitmq user (the Debian wrapper su's to it when run as root), so it must own its dir. */
const handOver = (dir: string, files: string[]): void => {
  if (process.getuid?.() !== 0) return;
  const id = (flag: string) => Number.parseInt(spawnSync("id", [flag, "rabbitmq"], { encoding: "utf8" }).stdout, 10);
  const [uid, gid] = [id("-u"), id("-g")];
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return;
  for (const path of [dir, ...files]) chownSync(path, uid, gid);
};

// Nodes this process started and has not stopped yet, for the cleanup when it is interrupted.
const live = new Map<string, string>();
const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/** Synchronous, since nothing asynchronous runs in an exit handler; bounded, so an interrupt is not held up for long. */
const cleanUpSync = (): void => {
  for (const [node, dir] of live) {
    spawnSync("rabbitmqctl", ["-n", node, "-q", "stop"], { stdio: "ignore", timeout: 10_000 });
    kill(readPid(dir));
    removeDir(dir);
  }
  live.clear();
};

const onSignal = (signal: NodeJS.Signals): void => {
  cleanUpSync();
  unwatch();
  // Our listener replaced the default action; when nobody else handles the signal, die of it as we would have.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
};

// Listening only while a node is up, so the process's usual signal handling is left alone otherwise.
const watch = (): void => {
  if (live.size !== 1) return;
  process.on("exit", cleanUpSync);
  for (const signal of SIGNALS) process.on(signal, onSignal);
};

function unwatch(): void {
  if (live.size !== 0) return;
  process.off("exit", cleanUpSync);
  for (const signal of SIGNALS) process.off(signal, onSignal);
}

/** The node names `epmd -names` lists on this machine ("name gwtest-1-abc at port 4567"), without @host. */
const epmdNames = async (): Promise<string[]> => {
  const { stdout } = await run("epmd", ["-names"], { encoding: "utf8", timeout: 10_000 }).catch(() => ({ stdout: "" }));
  return [...stdout.matchAll(/^name (\S+) at port \d+$/gm)].map((match) => match[1] ?? "");
};

/**
 * Stops nodes left behind by earlier, interrupted runs: every node named gwtest-* that `epmd -names` lists
 * whose creating process (pid in its name) is no longer alive; removes their temp dirs, and those of such
 * runs whose node is already gone.
 */
export const stopOrphanedBrokers = async (): Promise<void> => {
  const running = new Set(await epmdNames());
  const dirs = readdirSync(tmpdir())
    .filter((name) => name.startsWith(DIR_PREFIX))
    .map((name) => `${NODE_PREFIX}${name.slice(DIR_PREFIX.length)}`);
  for (const name of new Set([...running, ...dirs])) {
    const owner = NODE_NAME.exec(name)?.[1];
    if (owner === undefined || isAlive(Number(owner))) continue;
    // One at a time: each rabbitmqctl takes one of only 11 CLI distribution ports, and orphans are rare.
    if (running.has(name)) await stopNode(`${name}@localhost`, dirOf(name));
    else removeDir(dirOf(name));
  }
};

/** Output of the node's start so far, for the error when it does not come up. */
const startupOutput = (dir: string): string => {
  try {
    return readFileSync(join(dir, "startup.log"), "utf8").slice(-4000);
  } catch {
    return "";
  }
};

/** Resolves once the node takes AMQP connections; rejects with its output when it does not come up. */
const awaitStart = async (server: ChildProcess, nodeName: string, dir: string): Promise<void> => {
  const exited = new Promise<void>((resolve) => server.once("exit", () => resolve()));
  const failed = new Promise<never>((_, reject) => {
    server.once("error", reject);
    void exited.then(() => reject(new Error(`rabbitmq-server exited with ${server.exitCode ?? server.signalCode}`)));
  });
  const waiting = new AbortController();
  const args = ["-n", nodeName, "-q", "wait", pidFileOf(dir), "--timeout", "60"];
  try {
    await Promise.race([run("rabbitmqctl", args, { encoding: "utf8", signal: waiting.signal, timeout: 90_000 }), failed]);
  } catch (error) {
    waiting.abort();
    // A node whose boot failed answers wait with a bare "rabbit_is_not_running"; the reason is in its output, complete
    // only once it has exited.
    await Promise.race([exited, sleep(10_000)]);
    const reason = (error as { stderr?: string }).stderr || String(error);
    throw new Error(`${nodeName} did not start: ${reason.trim()}\n${startupOutput(dir)}`, { cause: error });
  }
};

/** One try at starting a node; see startDisposableBroker. */
const startOnce = async (): Promise<DisposableBroker> => {
  const dir = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
  const nodeName = `${NODE_PREFIX}${basename(dir).slice(DIR_PREFIX.length)}@localhost`;
  const [port, distPort] = await freePorts(2);
  const config = join(dir, "rabbitmq.conf");
  const plugins = join(dir, "enabled_plugins");
  // /etc/rabbitmq/rabbitmq.conf puts the user's node on 5672; a config of its own keeps this one off it.
  writeFileSync(config, `listeners.tcp.local = 127.0.0.1:${port}\n`);
  // No management plugin: it would take 15672 from the user's node, and the tests do not need it.
  writeFileSync(plugins, "[].\n");
  const log = openSync(join(dir, "startup.log"), "a");
  handOver(dir, [config, plugins, join(dir, "startup.log")]);
  live.set(nodeName, dir);
  watch();
  // In the foreground (not -detached), so a node that fails to start shows up as an exit, not as a 60 s timeout.
  // In its own process group, so a Ctrl-C in the terminal reaches it only through our cleanup, in order.
  const server = spawn("rabbitmq-server", [], {
    env: {
      ...process.env,
      // These win over NODENAME in /etc/rabbitmq/rabbitmq-env.conf, which the scripts still source (for ERL_FLAGS too).
      RABBITMQ_NODENAME: nodeName,
      RABBITMQ_NODE_PORT: String(port),
      RABBITMQ_DIST_PORT: String(distPort),
      RABBITMQ_CONFIG_FILE: config,
      RABBITMQ_ENABLED_PLUGINS_FILE: plugins,
      RABBITMQ_MNESIA_BASE: join(dir, "mnesia"),
      RABBITMQ_LOG_BASE: join(dir, "log"),
      RABBITMQ_PID_FILE: pidFileOf(dir),
      // Otherwise a node that dies early dumps into its working directory: /var/lib/rabbitmq, the user's node's home.
      ERL_CRASH_DUMP: join(dir, "erl_crash.dump"),
    },
    detached: true,
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  server.unref();
  const rabbitmqctl = (...args: string[]) => ctl(nodeName, args);
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= stopNode(nodeName, dir).finally(() => {
      // A node that hung before writing its pid file is not found by pid; its process group still is.
      if (server.exitCode === null && server.signalCode === null && server.pid !== undefined) kill(-server.pid);
      live.delete(nodeName);
      unwatch();
    }));

  try {
    await awaitStart(server, nodeName, dir);
  } catch (error) {
    await stop();
    throw error;
  }

  const address = `127.0.0.1:${port}`;
  return {
    url: `amqp://guest:guest@${address}/`,
    address,
    nodeName,
    rabbitmqctl,
    closeConnectionsNamed: async (prefix, reason = "closed by a test") => {
      const listing = await rabbitmqctl("list_connections", "pid", "client_properties", "--no-table-headers");
      const pids = listing
        .split("\n")
        .filter((line) => line.includes(`{"connection_name","${prefix}`))
        .map((line) => line.split("\t")[0] ?? "");
      // A few at a time: each rabbitmqctl takes one of only 11 CLI distribution ports.
      for (let i = 0; i < pids.length; i += 4)
        await Promise.all(pids.slice(i, i + 4).map((pid) => rabbitmqctl("close_connection", pid, reason)));
      return pids.length;
    },
    connectionsNamed: async (name) => {
      const listing = await rabbitmqctl("list_connections", "client_properties", "--no-table-headers");
      return listing.split("\n").filter((line) => line.includes(`{"connection_name","${name}"}`)).length;
    },
    stopApp: async () => void (await rabbitmqctl("stop_app")),
    startApp: async () => {
      await rabbitmqctl("start_app");
      await rabbitmqctl("await_startup", "--timeout", "60");
    },
    setMemoryAlarm: async (on) => void (await rabbitmqctl("set_vm_memory_high_watermark", on ? "0.000001" : "0.4")),
    stop,
  };
};

/**
 * Starts a RabbitMQ node of the tests' own on free ports, with its config, data and logs in a temp dir, and
 * resolves once it accepts AMQP connections. Stops orphans of interrupted earlier runs first.
 */
export const startDisposableBroker = async (): Promise<DisposableBroker> => {
  await stopOrphanedBrokers();
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce();
    } catch (error) {
      // A free port is only free until the node binds it; on a busy machine another process can take it first.
      if (attempt === 3 || !/eaddrinuse|dist_port_already_used/.test(String(error))) throw error;
    }
  }
};
