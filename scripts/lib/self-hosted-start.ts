import { join, resolve } from "node:path";
import { envReferences } from "../../src/config/env-references";
import { resolveConfig } from "../../src/config/resolve-config";
import type { LocalRoutesOptions } from "../../src/server/local-routes";
import { selfHostedGateway, type SelfHostedGateway } from "../../src/server/self-hosted";
import { startBanner } from "./banner";
import { deployProblems } from "./deploy-safety";
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

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

export type Serve = (gateway: SelfHostedGateway, host: string, port: number) => Promise<Listener>;

/** A host as a URL names it (an IPv6 address in brackets). */
export const urlHost = (host: string): string => (host.includes(":") && !host.startsWith("[") ? `[${host}]` : host);

/** How long a stop waits for requests in flight: `DRAIN_TIMEOUT_S` (0 to 3600, default 10), or `refuse`. */
const drainBoundMs = (refuse: (line: string) => never): number => {
  const text = process.env.DRAIN_TIMEOUT_S ?? "10";
  const seconds = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || seconds > 3600) refuse(`DRAIN_TIMEOUT_S must be a number of seconds from 0 to 3600, not "${text}"`);
  return seconds * 1000;
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
  const refuse: (line: string) => never = refuser(command);
  const host = process.env.HOST ?? "127.0.0.1";
  const port = portFromEnvironment(refuse);
  const bound = drainBoundMs(refuse);
  const path = routesPath();
  const config = loadRoutesOrExit(path);
  const env: Record<string, string> = {};
  for (const name of [...envReferences(config), "ADMIN_TOKEN", "LOG_LEVEL", "LOG_FORMAT"]) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  const resolved = resolveConfig(config, env);
  if (!resolved.ok) refuse(resolved.problems.map((problem) => `${path}: ${problem}`).join("\n"));
  // Reachable from other machines: /amqp must not be public by accident, as npm run deploy insists.
  if (!LOOPBACK.has(host)) {
    const [problem] = deployProblems(config, env, true);
    if (problem) refuse(`HOST=${host} serves other machines, and ${problem}`);
  }
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
  let gateway: SelfHostedGateway;
  try {
    gateway = selfHostedGateway(config, { ...options, env, stateDir });
  } catch (error) {
    refuse(`cannot use STATE_DIR ${stateDir}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const listener = await serve(gateway, host, port);
  process.stdout.write(startBanner(path, listener.url, config, relays));

  let stopping = false;
  let askedAt = 0;
  const stop = async () => {
    if (stopping) {
      // npm passes a signal on and its process group gets it too: a repeat within 2 s is that.
      // Later, it is an operator who will not wait: what is still open is cut (the broker puts
      // back what was handed out and not settled), and the exit says so.
      if (Date.now() - askedAt < 2000) return;
      process.stderr.write(`${command}: asked again to stop; cutting what is still open\n`);
      listener.closeAll();
      process.exit(1);
    }
    stopping = true;
    askedAt = Date.now();
    gateway.stopTaking();
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
  setInterval(() => process.ppid !== parent && !stopping && void stop(), 500).unref();
};
