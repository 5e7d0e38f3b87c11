/**
 * `npm start`: serves `$ROUTES` (default routes.yaml) on http://127.0.0.1:$PORT (default 8787),
 * starting a Web-AMQP relay for `ws://` URLs on this machine if none is listening. The route
 * objects' storage (the `/amqp` counters) is kept in `$STATE_DIR` (default
 * .wrangler/state/durable-objects), so it survives a restart as it would on Cloudflare. With
 * $INSPECTOR_PORT set, workerd's inspector listens there for Chrome DevTools.
 */
import { startLocalGateway, type LocalGateway } from "./lib/local-gateway";

const host = process.env.HOST ?? "127.0.0.1";
const port = Number(process.env.PORT ?? 8787);

// Stops everything it started (workerd, any relay, the bundle) on what a terminal or a process
// manager sends, also while it is still starting. `npm start` execs this process (package.json),
// so the signal reaches it rather than a shell that would not pass it on.
let starting: Promise<LocalGateway> | undefined;
let stopping = false;
const shutdown = () => {
  // npm passes a signal on, and a process group gets it too: act on the first one only.
  if (stopping) return;
  stopping = true;
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

try {
  const inspectorPort = process.env.INSPECTOR_PORT ? Number(process.env.INSPECTOR_PORT) : undefined;
  const persistTo = process.env.STATE_DIR ?? ".wrangler/state/durable-objects";
  starting = startLocalGateway({ host, port, persistTo, inspectorPort });
  const gateway = await starting;
  process.stdout.write(`amqp-edge-gateway serving ${process.env.ROUTES ?? "routes.yaml"} on ${gateway.url}\n`);
} catch (error) {
  process.stderr.write(`npm start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
