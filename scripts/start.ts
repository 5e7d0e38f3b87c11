/**
 * `npm start [-- FILE | --routes FILE]`: serves the routes file (the argument, else `$ROUTES`,
 * else routes.yaml) on http://127.0.0.1:$PORT (default 8787), starting a Web-AMQP relay for
 * `ws://` URLs on this machine if none is listening. The route objects' storage (the `/amqp`
 * counters) is kept in `$STATE_DIR` (default .wrangler/state; the objects' storage is in its do/), so it survives a
 * restart as it would on Cloudflare. With $INSPECTOR_PORT set, workerd's inspector listens there
 * for Chrome DevTools.
 */
import { createServer } from "node:net";
import { redactUrl } from "../src/contract/redaction";
import type { GatewayConfig } from "../src/config/schema";
import { startLocalGateway, type LocalGateway } from "./lib/local-gateway";
import { displayPath, loadRoutesOrExit, routesPath } from "./lib/routes-file";

const host = process.env.HOST ?? "127.0.0.1";

// Stops everything it started (workerd, any relay, the bundle) on what a terminal or a process
// manager sends, also while it is still starting. `npm start` execs this process (package.json),
// so the signal reaches it rather than a shell that would not pass it on.
let starting: Promise<LocalGateway> | undefined;
const startup = new AbortController();
let stopping = false;
const shutdown = () => {
  // npm passes a signal on, and a process group gets it too: act on the first one only.
  if (stopping) return;
  stopping = true;
  // A start in progress stops at its next step and removes what it had started.
  startup.abort();
  const stopped = starting ? starting.then((gateway) => gateway.stop()) : Promise.resolve();
  // A start that hangs must not keep the process alive: the next run removes what is left.
  void Promise.race([stopped, new Promise((resolve) => setTimeout(resolve, 10_000))])
    .catch(() => undefined)
    .finally(() => process.exit(0));
};
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, shutdown);
// npm does not pass every signal on (SIGHUP, SIGKILL): when the process that started us is gone,
// stop as if we had been asked to, rather than serve on as an orphan.
const parent = process.ppid;
setInterval(() => process.ppid !== parent && shutdown(), 500).unref();

const refuse = (line: string): never => {
  process.stderr.write(`npm start: ${line}\n`);
  process.exit(1);
};

/** `$PORT` as a port number, or one clear line and exit 1. */
const portFromEnvironment = (): number => {
  const text = process.env.PORT ?? "8787";
  const port = Number(text);
  if (!/^\d+$/.test(text) || port < 1 || port > 65535) refuse(`PORT must be a port number from 1 to 65535, not "${text}"`);
  return port;
};

/** Whether `host:port` can be listened on now (nothing else holds it). */
const portIsFree = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", () => resolve(false));
    probe.listen(port, host, () => probe.close(() => resolve(true)));
  });

/** One line per route: what it serves and where it goes, the password hidden. */
const describeRoutes = (config: GatewayConfig): string[] =>
  config.routes.map((route) => {
    const amqp = route.amqp;
    const producer = amqp.producer;
    const objects = amqp.topology.flatMap((topology) => [
      ...topology.exchanges.map((exchange) => `${topology.mode} exchange ${exchange.name}`),
      ...topology.queues.map((queue) => `${topology.mode} queue ${queue.name}`),
      ...topology.bindings.map((binding) => `${topology.mode} binding ${binding.source} → ${binding.destination}`),
    ]);
    const roles = [
      producer
        ? `${producer.reply ? "calls (request/reply) via" : "publishes to"} exchange "${producer.exchange}" with routing key "${producer.routing_key}"` +
          (producer.dedupe_window_s > 0 ? ` (Idempotency-Key remembered ${producer.dedupe_window_s} s)` : "")
        : undefined,
      amqp.consumer ? `consumes from queue "${amqp.consumer.queue}"${amqp.consumer.auto_ack ? " (auto_ack)" : ""}` : undefined,
      objects.length > 0 ? `topology: ${objects.join(", ")}` : undefined,
    ].filter(Boolean);
    const path = `${route.path}${route.path_prefix ? "/*" : ""}`;
    const access = [
      `auth ${route.auth.kind}`,
      // Without cors no origin is listed, the gateway's own included: every page request is refused.
      route.cors ? `cors ${route.cors.allow_origins.join(" ")}` : "cors none: requests from web pages refused",
      ...(route.rate_limit ? [`rate limit ${route.rate_limit.requests}/${route.rate_limit.period_s}s per ${route.rate_limit.key}`] : []),
    ];
    return `  ${route.id}: ${route.methods.join(", ")} ${path}: ${roles.join("; ")}, via ${redactUrl(amqp.url)} (${access.join(", ")})`;
  });

const port = portFromEnvironment();
const path = routesPath();
const config = loadRoutesOrExit(path);
if (!(await portIsFree(port))) refuse(`${host}:${port} is already in use by another process; set PORT to a free port`);

try {
  const inspectorPort = process.env.INSPECTOR_PORT ? Number(process.env.INSPECTOR_PORT) : undefined;
  const persistTo = process.env.STATE_DIR ?? ".wrangler/state";
  starting = startLocalGateway({ host, port, persistTo, inspectorPort, signal: startup.signal });
  const gateway = await starting;
  const lines = [`amqp-edge-gateway serving ${displayPath(path)} on ${gateway.url}`, ...describeRoutes(config)];
  for (const relay of gateway.relays) {
    lines.push(
      relay.process
        ? `  Web-AMQP relay: started websockify on ${relay.address}, forwarding to ${relay.target} (stopped with the gateway)`
        : `  Web-AMQP relay: found one listening on ${relay.address}; using it`,
    );
  }
  process.stdout.write(`${lines.join("\n")}\n`);
} catch (error) {
  // Stopped while starting: shutdown() exits once the start has cleaned up.
  if (!startup.signal.aborted) refuse(error instanceof Error ? error.message : String(error));
}
