/**
 * Runs the README's `npm start` as a user would, with a routes file of the test's own, and stops
 * it afterwards (the whole process group: npm, tsx, workerd and any relay it started). Under
 * `GATEWAY_RUNTIME=node` or `deno` (the e2e-node and e2e-deno projects) it runs
 * `npm run start:node` or `npm run start:deno` instead: the same black-box tests for each runtime.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = new URL("../..", import.meta.url).pathname;

export type Runtime = "workerd" | "node" | "deno";

/** The runtime these tests drive (`GATEWAY_RUNTIME`, default workerd: `npm start`). */
export const RUNTIME: Runtime = ((): Runtime => {
  const named = process.env.GATEWAY_RUNTIME ?? "workerd";
  if (named !== "workerd" && named !== "node" && named !== "deno")
    throw new Error(`GATEWAY_RUNTIME must be workerd, node or deno, not ${named}`);
  return named;
})();

/** The npm arguments that start the gateway on `runtime`. */
export const startCommand = (runtime: Runtime = RUNTIME): string[] =>
  runtime === "workerd" ? ["start"] : ["run", runtime === "node" ? "start:node" : "start:deno"];

export interface RunningGateway {
  url: string;
  /** The `npm start` process. */
  pid: number;
  output: () => string;
  /** Sends `signal` to the `npm start` process alone, as a process manager does, and resolves once it has exited (or after 15 s). */
  signal(signal: NodeJS.Signals): Promise<void>;
  /** The process's exit code once it has exited, else null. */
  exitCode(): number | null;
  stop(): Promise<void>;
}

/** The `event` of each JSON log line the gateway wrote about the connection named `connection`. */
export const connectionEvents = (gateway: RunningGateway, connection: string): string[] =>
  gateway
    .output()
    .split("\n")
    .flatMap((line) => {
      try {
        const entry = JSON.parse(line) as { event?: string; connection?: string };
        return entry.connection === connection && entry.event ? [entry.event] : [];
      } catch {
        return [];
      }
    });

/** Writes `yaml` to a temporary routes file and returns its path. */
export const routesFile = (yaml: string): string => {
  const path = join(mkdtempSync(join(tmpdir(), "gw-routes-")), "routes.yaml");
  writeFileSync(path, yaml);
  return path;
};

/** A port nothing listens on now, for a gateway whose routes must name its own origin before it starts (`PORT`). */
export /** A port nothing listens on now, on 127.0.0.1. */
const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });

export const npmStart = async (yaml: string, env: Record<string, string> = {}, runtime: Runtime = RUNTIME): Promise<RunningGateway> => {
  const port = await freePort();
  const child = spawn("npm", startCommand(runtime), {
    cwd: ROOT,
    env: { ...process.env, ROUTES: routesFile(yaml), PORT: String(port), STATE_DIR: mkdtempSync(join(tmpdir(), "gw-state-")), ...env },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, signal);
    } catch {
      // the whole group is gone already
    }
  };
  const stop = async () => {
    if (child.pid === undefined) return;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      killGroup("SIGTERM");
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
    }
    // What npm left behind if it died first (the gateway's own processes share its group).
    killGroup("SIGKILL");
  };
  const deadline = Date.now() + 90_000;
  while (!/serving .* on http/.test(output)) {
    if (child.exitCode !== null) throw new Error(`npm start exited with ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`npm start did not come up in 90 s:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const signal = async (name: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill(name);
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 15_000))]);
  };
  return { url: `http://127.0.0.1:${port}`, pid: child.pid ?? 0, output: () => output, signal, stop, exitCode: () => child.exitCode };
};

/** Runs an npm script to completion, as `npm run NAME` from the repository. */
export const npmRun = (script: string, env: Record<string, string> = {}) => {
  const result = spawnSync("npm", ["run", "--silent", script], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: 120_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr.replace(/^npm warn.*\n/gm, "") };
};

/** Polls `condition` every 100 ms until it holds, failing after `timeoutMs`. */
export const waitFor = async (condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
};
