/**
 * `npm start [-- FILE | --routes FILE]`: serves the routes file (the argument, else `$ROUTES`,
 * else routes.yaml) on http://127.0.0.1:$PORT (default 8787), starting a Web-AMQP relay for
 * `ws://` URLs on this machine if none is listening. The route objects' storage (the `/amqp`
 * counters) is kept in `$STATE_DIR` (default .wrangler/state; the objects' storage is in its do/), so it survives a
 * restart as it would on Cloudflare. With $INSPECTOR_PORT set, workerd's inspector listens there
 * for Chrome DevTools.
 */
import { startBanner } from "./lib/banner";
import { portFromEnvironment, portIsFree, refuser } from "./lib/listen-address";
import { startLocalGateway, type LocalGateway } from "./lib/local-gateway";
import { loadRoutesOrExit, routesPath } from "./lib/routes-file";

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

const refuse = refuser("npm start");

const port = portFromEnvironment(refuse);
const path = routesPath();
const config = loadRoutesOrExit(path);
if (!(await portIsFree(host, port))) refuse(`${host}:${port} is already in use by another process; set PORT to a free port`);

try {
  const inspectorPort = process.env.INSPECTOR_PORT ? Number(process.env.INSPECTOR_PORT) : undefined;
  const persistTo = process.env.STATE_DIR ?? ".wrangler/state";
  starting = startLocalGateway({ host, port, persistTo, inspectorPort, signal: startup.signal });
  const gateway = await starting;
  process.stdout.write(startBanner(path, gateway.url, config, gateway.relays));
} catch (error) {
  // Stopped while starting: shutdown() exits once the start has cleaned up.
  if (!startup.signal.aborted) refuse(error instanceof Error ? error.message : String(error));
}
