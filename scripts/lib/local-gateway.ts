import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { Miniflare } from "miniflare";
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
  persistTo?: string;
  /** Another entry point than wrangler.toml's `main` (the benchmark's, which adds a baseline route). */
  main?: string;
  /** Opens workerd's inspector (Chrome DevTools protocol) on this port: debugging and CPU profiles. */
  inspectorPort?: number | undefined;
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
  const entry = options.main ? [resolve(options.main)] : [];
  const build = spawnSync(
    "npx",
    ["wrangler", "deploy", ...entry, "--dry-run", "--outdir", outdir, "--config", join(ROOT, "wrangler.toml")],
    {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, ROUTES: path, WRANGLER_SEND_METRICS: "false" },
    },
  );
  if (build.status !== 0) fail([`bundling the Worker failed:\n${build.stdout}${build.stderr}`]);

  const relays = await ensureWebAmqpRelays(resolved.config);
  const { workerOptions } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml"));
  const bindings: Record<string, string> = {};
  for (const name of [...envReferences(config), "ADMIN_TOKEN"]) {
    const value = process.env[name];
    if (value !== undefined) bindings[name] = value;
  }
  const miniflare = new Miniflare({
    ...workerOptions,
    name: "amqp-edge-gateway",
    modules: true,
    // wrangler names the bundle after the entry point (index.js for src/index.ts).
    scriptPath: join(outdir, readdirSync(outdir).find((file) => file.endsWith(".js")) ?? "index.js"),
    modulesRoot: outdir,
    bindings: { ...(workerOptions.bindings ?? {}), ...bindings },
    // The Worker gets its own socket, so requests reach it without passing through Miniflare's
    // entry worker first (measured: ~1.6x the requests per second). Miniflare's entry socket, with
    // its dev conveniences, is moved to a free port of its own.
    unsafeDirectSockets: [{ host: options.host, port: options.port }],
    host: options.host,
    port: 0,
    ...(options.inspectorPort ? { inspectorPort: options.inspectorPort } : {}),
    ...(options.persistTo ? { durableObjectsPersist: options.persistTo } : {}),
  });
  await miniflare.ready;
  const url = (await miniflare.unsafeGetDirectURL("amqp-edge-gateway")).toString().replace(/\/$/, "");
  const runtimePid = workerdChildPid();
  // Miniflare exits the process itself on SIGINT and SIGTERM, before an async stop could finish:
  // what must not outlive the process (the bundle holds the routes; relays are our children) is
  // also removed synchronously on exit.
  const cleanUp = () => {
    if (runtimePid !== undefined && isAlive(runtimePid)) process.kill(runtimePid, "SIGKILL");
    for (const relay of relays) relay.process?.kill();
    rmSync(outdir, { recursive: true, force: true });
  };
  process.once("exit", cleanUp);
  let stopping: Promise<void> | undefined;
  return {
    url,
    relays,
    runtimePid,
    stop() {
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
