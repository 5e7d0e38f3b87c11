import { join, resolve } from "node:path";
import { envReferences } from "../../src/config/env-references";
import { resolveConfig } from "../../src/config/resolve-config";
import type { LocalRoutesOptions } from "../../src/server/local-routes";
import { selfHostedGateway, type SelfHostedGateway } from "../../src/server/self-hosted";
import { startBanner } from "./banner";
import { portFromEnvironment, portIsFree, refuser } from "./listen-address";
import { loadRoutesOrExit, routesPath } from "./routes-file";
import { ensureWebAmqpRelays, type LocalRelay } from "./web-amqp-relay";

/** A runtime's HTTP server, listening. */
export interface Listener {
  url: string;
  /** Stops accepting connections; resolves once the requests in flight have been answered. */
  close(): Promise<void>;
  /** Cuts whatever is still open (the drain's bound has passed). */
  closeAll(): void;
}

export type Serve = (gateway: SelfHostedGateway, host: string, port: number) => Promise<Listener>;

/** How long a stop waits for requests in flight (`DRAIN_TIMEOUT_S`, default 10). */
const drainBoundMs = (): number => {
  const seconds = Number(process.env.DRAIN_TIMEOUT_S ?? "10");
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 10_000;
};

/**
 * `npm run start:node` and `npm run start:deno`: the same routes file, environment, banner and
 * answers as `npm start`, served by `serve` in this process. On SIGTERM (or SIGINT, SIGHUP) it
 * drains: refuses new requests, answers long-polls and ends streams, waits for requests in flight
 * up to `DRAIN_TIMEOUT_S`, closes the broker connections (what was not settled goes back to its
 * queue) and exits 0.
 */
export const startSelfHosted = async (
  command: string,
  serve: Serve,
  options: Pick<LocalRoutesOptions, "makeRoute"> = {},
): Promise<void> => {
  const refuse = refuser(command);
  const host = process.env.HOST ?? "127.0.0.1";
  const port = portFromEnvironment(refuse);
  const path = routesPath();
  const config = loadRoutesOrExit(path);
  const env: Record<string, string> = {};
  for (const name of [...envReferences(config), "ADMIN_TOKEN", "LOG_LEVEL", "LOG_FORMAT"]) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  const resolved = resolveConfig(config, env);
  if (!resolved.ok) refuse(resolved.problems.map((problem) => `${path}: ${problem}`).join("\n"));
  if (!(await portIsFree(host, port))) refuse(`${host}:${port} is already in use by another process; set PORT to a free port`);

  const relays: LocalRelay[] = [];
  const stopRelays = () => relays.forEach((relay) => relay.process?.kill());
  process.once("exit", stopRelays);
  try {
    await ensureWebAmqpRelays(resolved.ok ? resolved.config : config, (relay) => relays.push(relay));
  } catch (error) {
    refuse(error instanceof Error ? error.message : String(error));
  }
  const stateDir = join(resolve(process.env.STATE_DIR ?? ".wrangler/state"), "sqlite");
  const gateway = selfHostedGateway(config, { ...options, env, stateDir });
  const listener = await serve(gateway, host, port);
  process.stdout.write(startBanner(path, listener.url, config, relays));

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    gateway.stopTaking();
    const bound = drainBoundMs();
    const drained = await Promise.race([
      listener.close().then(() => true),
      new Promise<boolean>((done) => setTimeout(() => done(false), bound)),
    ]);
    if (!drained) {
      process.stderr.write(`${command}: requests still open after ${bound / 1000} s; closing them\n`);
      listener.closeAll();
    }
    await Promise.race([gateway.close(), new Promise((done) => setTimeout(done, 5000))]);
    stopRelays();
    process.exit(0);
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => void stop());
  // npm does not pass every signal on: when the process that started us is gone, stop as asked.
  const parent = process.ppid;
  setInterval(() => process.ppid !== parent && void stop(), 500).unref();
};
