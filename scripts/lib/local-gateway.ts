import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { convertV4MiniflareOptions, Miniflare, type V4MiniflareOptions } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { envReferences } from "../../src/config/env-references";
import { resolveConfig } from "../../src/config/resolve-config";
import { compileRoutes } from "../compile-routes";
import { fail, loadRoutesOrExit, routesPath } from "./routes-file";
import { ensureWebAmqpRelays, type LocalRelay } from "./web-amqp-relay";

const ROOT = resolve(import.meta.dirname, "../..");

export interface LocalGateway {
  url: string;
  /** The Web-AMQP relays the routes use on this machine, started or found. */
  relays: LocalRelay[];
  /** The workerd process serving it, for the benchmark's memory figures. */
  runtimePid: number | undefined;
  /** The bundle workerd runs (with its `.map` beside it), until `stop()` removes it. */
  bundle: string;
  stop(): Promise<void>;
}

/**
 * The Worker as `npm start` serves it: the routes validated and compiled, bundled by wrangler
 * exactly as `wrangler deploy` would bundle it, and run in workerd through Miniflare with the
 * bindings of wrangler.toml. Environment references are filled from the process environment.
 * (Miniflare directly rather than `wrangler dev`: the same runtime without the dev proxy in
 * front of it, which costs more than half the throughput here.)
 */
export const startLocalGateway = async (options: {
  host: string;
  port: number;
  /** Where the route objects keep their storage between runs (Miniflare puts it under do/); in memory without. */
  persistTo?: string;
  /** Another entry point than wrangler.toml's `main` (the benchmark's, which adds a baseline route). */
  main?: string;
  /** Opens workerd's inspector (Chrome DevTools protocol) on this port: debugging and CPU profiles. */
  inspectorPort?: number | undefined;
  /** Aborted when the caller wants to stop while it is still starting: what was started is removed. */
  signal?: AbortSignal;
}): Promise<LocalGateway> => {
  const path = routesPath();
  const config = loadRoutesOrExit(path);
  const resolved = resolveConfig(config, process.env);
  if (!resolved.ok) fail(resolved.problems.map((problem) => `${path}: ${problem}`));
  compileRoutes(path);

  mkdirSync(join(ROOT, ".wrangler"), { recursive: true });
  removeOrphanedBundles();
  // The bundle holds the routes: named after this process, so a later run can tell it is orphaned.
  const outdir = mkdtempSync(join(ROOT, ".wrangler", `bundle-${process.pid}-`));
  // What this start owns, removed on any exit from here on, even one in the middle of starting.
  // Miniflare exits the process itself on SIGINT and SIGTERM, before an async stop could finish,
  // so this runs synchronously on "exit".
  const relays: LocalRelay[] = [];
  let runtimePid: number | undefined = undefined;
  const cleanUp = () => {
    if (runtimePid !== undefined && isAlive(runtimePid)) process.kill(runtimePid, "SIGKILL");
    for (const relay of relays) relay.process?.kill();
    rmSync(outdir, { recursive: true, force: true });
  };
  process.once("exit", cleanUp);
  const stopIfAborted = () => {
    if (!options.signal?.aborted) return;
    cleanUp();
    process.off("exit", cleanUp);
    throw new Error("stopped while starting");
  };

  const entry = options.main ? [resolve(options.main)] : [];
  // Asynchronously, so that a signal during the build is handled at once.
  const build = await run(
    "npx",
    ["wrangler", "deploy", ...entry, "--dry-run", "--outdir", outdir, "--config", join(ROOT, "wrangler.toml")],
    { ...process.env, ROUTES: path, WRANGLER_SEND_METRICS: "false" },
    options.signal,
  );
  stopIfAborted();
  if (build.status !== 0) {
    cleanUp();
    fail([`bundling the Worker failed:\n${build.output}`]);
  }

  await ensureWebAmqpRelays(resolved.config, (relay) => relays.push(relay));
  stopIfAborted();
  const { workerOptions } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml"));
  const bindings: Record<string, string> = {};
  for (const name of [...envReferences(config), "ADMIN_TOKEN", "LOG_LEVEL", "LOG_FORMAT"]) {
    const value = process.env[name];
    if (value !== undefined) bindings[name] = value;
  }
  // Miniflare 5 takes Cloudflare-config-shaped options, and wrangler still gives the v4 shape,
  // which Miniflare converts. The module rules are left out: they cannot be converted, and the
  // bundle is one module that imports no other file. (Cast: wrangler's type for its options is an
  // Omit<> of a union, which TypeScript no longer sees as one of the union's members.)
  const { modulesRules: _moduleRules, ...fromWrangler } = workerOptions;
  // wrangler names the bundle after the entry point (index.js for src/index.ts).
  const bundle = join(outdir, readdirSync(outdir).find((file) => file.endsWith(".js")) ?? "index.js");
  const miniflare = new Miniflare(
    convertV4MiniflareOptions({
      ...fromWrangler,
      name: "amqp-edge-gateway",
      modules: true,
      scriptPath: bundle,
      modulesRoot: outdir,
      bindings: { ...((workerOptions.bindings ?? {}) as Record<string, unknown>), ...bindings },
      // The Worker gets its own socket, so requests reach it without passing through Miniflare's
      // entry worker first (measured: ~1.6x the requests per second). Miniflare's entry socket, with
      // its dev conveniences, is moved to a free port of its own.
      unsafeDirectSockets: [{ host: options.host, port: options.port }],
      host: options.host,
      port: 0,
      ...(options.inspectorPort ? { inspectorPort: options.inspectorPort } : {}),
      // The route objects' storage, under do/ (Miniflare 5 has one root for every kind of state).
      ...(options.persistTo ? { resourcePersistencePath: options.persistTo } : {}),
    } as V4MiniflareOptions),
  );
  await miniflare.ready;
  runtimePid = workerdChildPid();
  if (options.signal?.aborted) await miniflare.dispose().catch(() => undefined);
  stopIfAborted();
  const url = (await miniflare.unsafeGetDirectURL("amqp-edge-gateway")).toString().replace(/\/$/, "");
  // Cloudflare runs the Worker's cron trigger (wrangler.toml) every minute, which starts the push
  // routes; Miniflare does not, so it is run here: now, and every minute.
  const pushing = resolved.config.routes.some((route) => route.amqp.consumer?.push);
  const triggerCron = () =>
    void miniflare
      .getWorker()
      .then((worker) => worker.scheduled({ cron: "* * * * *" }))
      .catch(() => undefined);
  if (pushing) triggerCron();
  const cronTimer = pushing ? setInterval(triggerCron, 60_000) : undefined;
  cronTimer?.unref();
  let stopping: Promise<void> | undefined;
  return {
    url,
    relays,
    runtimePid,
    bundle,
    stop() {
      clearInterval(cronTimer);
      stopping ??= (async () => {
        // Bounded: a supervisor that asked us to stop must not wait on a runtime that hangs.
        await Promise.race([miniflare.dispose().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 5000))]);
        cleanUp();
        process.off("exit", cleanUp);
      })();
      return stopping;
    },
  };
};

/** Runs a command to completion without blocking the event loop; its output is kept for errors. */
const run = (
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  signal?: AbortSignal,
): Promise<{ status: number | null; output: string }> =>
  new Promise((resolveRun) => {
    // Its own process group: npx runs wrangler in a grandchild, which must not go on writing the
    // bundle after we stopped; on abort the whole group is killed at once.
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    const kill = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    };
    signal?.addEventListener("abort", kill, { once: true });
    process.once("exit", kill);
    child.once("close", () => {
      signal?.removeEventListener("abort", kill);
      process.off("exit", kill);
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.once("error", (error) => resolveRun({ status: null, output: String(error) }));
    child.once("close", (status) => resolveRun({ status, output }));
  });

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * Removes the bundles of earlier runs whose process is gone (killed before it could clean up):
 * `bundle-<pid>-*` of a dead pid, and bundles from before they were named after a pid.
 */
const removeOrphanedBundles = (): void => {
  for (const name of readdirSync(join(ROOT, ".wrangler"))) {
    const match = /^bundle-(?:(\d+)-)?/.exec(name);
    if (!match) continue;
    const pid = match[1] === undefined ? undefined : Number(match[1]);
    if (pid === undefined || (pid !== process.pid && !isAlive(pid)))
      rmSync(join(ROOT, ".wrangler", name), { recursive: true, force: true });
  }
};

/** The workerd process this Node process started (Miniflare runs it as a direct child). */
const workerdChildPid = (): number | undefined => {
  const listing = spawnSync("ps", ["-o", "pid=,comm=", "--ppid", String(process.pid)], { encoding: "utf8" });
  const line = listing.stdout.split("\n").find((row) => row.trim().endsWith("workerd"));
  return line ? Number(line.trim().split(/\s+/)[0]) : undefined;
};
