/**
 * `npm run bench:idle`: what the first request after an idle disconnect costs. A route with
 * `idle_disconnect_s: 1` is left idle until its object has closed its broker connection, then one
 * publish is timed (connect, AMQP handshake, confirm channel, publish, confirm), then a second
 * one on the open connection; over TCP and over `ws://` (the local Web-AMQP relay). Prints p50
 * and p99 of each, for BENCHMARKS.md ("The first request after an idle disconnect").
 *
 * Knobs: IDLE_SAMPLES (per transport, default 30), BENCH_PORT (default 8790).
 */
import { startLocalGateway } from "../scripts/lib/local-gateway";
import { writeRoutes } from "./lib/bench-routes";
import { AMQP_URL, deleteQueues, freshQueues } from "./lib/broker";

// As in `npm run bench`: no request log line per request.
process.env.LOG_LEVEL ??= "none";

const SAMPLES = Number(process.env.IDLE_SAMPLES ?? 30);
const PORT = Number(process.env.BENCH_PORT ?? 8790);
const QUEUE = { tcp: "bench-idle-tcp", ws: "bench-idle-ws" };
/** The idle time, and what is waited for the disconnect: the idle timer, then a margin. */
const IDLE_S = 1;
const IDLE_WAIT_MS = IDLE_S * 1000 + 1500;

const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
};

const main = async () => {
  writeRoutes(`
routes:
  - { id: idle-tcp, path: /tcp, amqp: { enabled: true, url: "${AMQP_URL}", idle_disconnect_s: ${IDLE_S}, producer: { routing_key: ${QUEUE.tcp} } } }
  - { id: idle-ws, path: /ws, amqp: { enabled: true, url: "ws://guest:guest@127.0.0.1:15670/?vhost=/", idle_disconnect_s: ${IDLE_S}, producer: { routing_key: ${QUEUE.ws} } } }
`);
  await freshQueues(QUEUE.tcp, QUEUE.ws);
  const gateway = await startLocalGateway({ host: "127.0.0.1", port: PORT });
  const timed = async (path: string): Promise<number> => {
    const started = performance.now();
    const response = await fetch(`${gateway.url}${path}`, {
      method: "POST",
      body: '"idle"',
      headers: { "content-type": "application/json" },
    });
    await response.arrayBuffer();
    if (response.status !== 202) throw new Error(`${path}: ${response.status}`);
    return performance.now() - started;
  };
  try {
    const rows: string[] = [];
    for (const [transport, path] of [
      ["amqp:// (TCP)", "/tcp"],
      ["ws:// (Web-AMQP relay)", "/ws"],
    ] as const) {
      await timed(path);
      const cold: number[] = [];
      const warm: number[] = [];
      for (let sample = 0; sample < SAMPLES; sample++) {
        await new Promise((resolve) => setTimeout(resolve, IDLE_WAIT_MS));
        cold.push(await timed(path));
        warm.push(await timed(path));
      }
      const row = (what: string, values: number[]) =>
        `| ${transport} | ${what} | ${percentile(values, 50).toFixed(1)} ms | ${percentile(values, 99).toFixed(1)} ms |`;
      rows.push(row("first publish after an idle disconnect", cold), row("the next publish (connected)", warm));
      process.stdout.write(`${rows.at(-2)}\n${rows.at(-1)}\n`);
    }
    process.stdout.write(
      `\n${SAMPLES} samples each, ${new Date().toISOString().slice(0, 10)}\n\n| transport | publish | p50 | p99 |\n| --- | --- | --- | --- |\n${rows.join("\n")}\n`,
    );
  } finally {
    await gateway.stop();
    await deleteQueues(QUEUE.tcp, QUEUE.ws);
  }
};

await main();
