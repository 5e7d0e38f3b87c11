/**
 * `npm start`: serves `$ROUTES` (default routes.yaml) on http://127.0.0.1:$PORT (default 8787),
 * starting a Web-AMQP relay for `ws://` URLs on this machine if none is listening. The route
 * objects' storage (the `/amqp` counters) is kept in `$STATE_DIR` (default
 * .wrangler/state/durable-objects), so it survives a restart as it would on Cloudflare. With
 * $INSPECTOR_PORT set, workerd's inspector listens there for Chrome DevTools.
 */
import { startLocalGateway } from "./lib/local-gateway";

const host = process.env.HOST ?? "127.0.0.1";
const port = Number(process.env.PORT ?? 8787);

try {
  const inspectorPort = process.env.INSPECTOR_PORT ? Number(process.env.INSPECTOR_PORT) : undefined;
  const persistTo = process.env.STATE_DIR ?? ".wrangler/state/durable-objects";
  const gateway = await startLocalGateway({ host, port, persistTo, inspectorPort });
  process.stdout.write(`amqp-edge-gateway serving ${process.env.ROUTES ?? "routes.yaml"} on ${gateway.url}\n`);
  const shutdown = () => {
    void gateway.stop().finally(() => process.exit(0));
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
} catch (error) {
  process.stderr.write(`npm start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
