/**
 * The `runtimes` section: the same routes on workerd (`npm start`), Node (`npm run start:node`)
 * and Deno (`npm run start:deno`), side by side in alternating rounds: publish and consume at
 * 250 B and 16 KiB, each against that runtime's own no-AMQP ceiling (the same routes answering
 * without the broker, bench/lib/no-amqp.ts) and the broker's own floor (amqp-client straight to
 * it), with every publish accounted for in its queue, the CPU per answer and each runtime's peak
 * resident set.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startLocalGateway } from "../../scripts/lib/local-gateway";
import { account, type Accounting } from "./accounting";
import { AMQP_URL, deleteQueues, directGetRate, directPublishRate, freshQueues, prefill, queueDepth, settledDepth } from "./broker";
import { BENCH_WORKER, PAYLOADS } from "./bench-routes";
import { cpuSeconds } from "./cpu-profile";
import { procStatusMb } from "./proc-status";
import { load, type LoadResult } from "./load";
import { summarize, type Measurement } from "./report";
import { BROKER_FLOOR, RUNTIME_CONNECTIONS, RUNTIME_VARIANT, RUNTIMES, type Runtime, type RuntimePeaks } from "./runtime-names";
import { NO_AMQP_ROUTES } from "./worker-paths";

const ROOT = resolve(import.meta.dirname, "../..");

interface Running {
  url: string;
  pid: number | undefined;
  stop(): Promise<void>;
}

const queueOf = (runtime: Runtime | "floor", role: "pub" | "sub", payload: string) =>
  `bench-runtime-${runtime}-${role}-${payload === "250 B" ? "250" : "16k"}`;

const routesFor = (runtime: Runtime): string => {
  const path = join(mkdtempSync(join(tmpdir(), `bench-runtime-${runtime}-`)), "routes.yaml");
  const amqp = `enabled: true, url: "${AMQP_URL}"`;
  const lines = Object.keys(PAYLOADS).flatMap((payload) => {
    const size = payload === "250 B" ? "250" : "16k";
    return [
      `  - { id: pub-${size}, path: /pub/${size}, amqp: { ${amqp}, producer: { routing_key: ${queueOf(runtime, "pub", payload)} } } }`,
      `  - { id: sub-${size}, path: /sub/${size}, amqp: { ${amqp}, consumer: { queue: ${queueOf(runtime, "sub", payload)}, auto_ack: true } } }`,
    ];
  });
  writeFileSync(
    path,
    `routes:\n${lines.join("\n")}
  - { id: ${NO_AMQP_ROUTES.publish}, path: /pub/no-amqp, amqp: { ${amqp}, producer: { routing_key: bench-runtime-no-amqp } } }
  - { id: ${NO_AMQP_ROUTES.consume}, path: /sub/no-amqp-250, amqp: { ${amqp}, consumer: { queue: bench-runtime-no-amqp, auto_ack: true } } }
  - { id: ${NO_AMQP_ROUTES.consumeLarge}, path: /sub/no-amqp-16k, amqp: { ${amqp}, consumer: { queue: bench-runtime-no-amqp, auto_ack: true } } }
`,
  );
  return path;
};

/** Starts `runtime` on `port` with the section's routes: workerd as `npm start` runs it, Node and Deno as their start commands do. */
const startRuntime = async (runtime: Runtime, port: number): Promise<Running> => {
  const routes = routesFor(runtime);
  if (runtime === "workerd") {
    process.env.ROUTES = routes;
    const gateway = await startLocalGateway({ host: "127.0.0.1", port, main: BENCH_WORKER });
    return { url: gateway.url, pid: gateway.runtimePid, stop: () => gateway.stop() };
  }
  const entry = join(ROOT, "bench/self-hosted-bench.ts");
  const [command, args] =
    runtime === "node"
      ? [process.execPath, ["--import", "tsx", entry]]
      : [join(ROOT, "node_modules/deno/deno"), ["run", "--allow-all", "--sloppy-imports", "--unstable-no-legacy-abort", entry]];
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, ROUTES: routes, PORT: String(port), STATE_DIR: mkdtempSync(join(tmpdir(), "bench-runtime-state-")) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const deadline = Date.now() + 60_000;
  while (!/serving .* on http/.test(output)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`${runtime} did not start:\n${output}`);
    }
    await new Promise((done) => setTimeout(done, 100));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((done) => child.once("exit", done));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((done) => setTimeout(done, 15_000))]);
      child.kill("SIGKILL");
    },
  };
};

/**
 * Fills `queue` to what the fastest runtime takes in one run (about 25,000 GETs a second at 250 B
 * here, 6,000 at 16 KiB; a run that empties it is flagged), just before that run: one run's
 * worth at a time, so that 16 KiB bodies never pile up in the broker.
 */
const topUp = async (queue: string, payloadName: string, payload: string, seconds: number): Promise<void> => {
  const wanted = Math.ceil((payloadName === "250 B" ? 25_000 : 6_000) * seconds * 1.2);
  const missing = wanted - (await queueDepth(queue));
  if (missing > 0) await prefill(queue, missing, payload);
};

interface Variant {
  name: string;
  /** The gateway loaded over HTTP, or "broker" for the broker's floor (amqp-client, no HTTP). */
  runtime: Running | "broker";
  url: string;
  method: "GET" | "POST";
  /** Where its publishes land (counted), or the queue it consumes (drained); none for a ceiling. */
  queue?: string;
}

type Run = LoadResult & Accounting & { cpuUs: number };

/** One run of `variant`: its load, its CPU per answer, and its messages accounted for. */
const runOnce = async (variant: Variant, payload: string, seconds: number): Promise<Run> => {
  if (variant.runtime === "broker") return brokerFloor(variant, payload, seconds);
  const runtime = variant.runtime;
  const consume = variant.method === "GET";
  if (variant.queue && !consume) await freshQueues(variant.queue);
  const before = variant.queue && consume ? await queueDepth(variant.queue) : 0;
  const cpuBefore = runtime.pid ? cpuSeconds(runtime.pid) : Number.NaN;
  const result = await load({
    url: variant.url,
    method: variant.method,
    connections: RUNTIME_CONNECTIONS,
    seconds,
    headers: consume ? {} : { "content-type": "application/json" },
    ...(consume ? {} : { body: payload }),
  });
  const answered = consume ? result.status200 : result.ok;
  const cpuUs = runtime.pid && answered > 0 ? ((cpuSeconds(runtime.pid) - cpuBefore) * 1e6) / answered : Number.NaN;
  if (!variant.queue) return { ...result, ...account(0, 0, 0), cpuUs, rps: answered / result.seconds };
  if (consume) {
    const left = await settledDepth(variant.queue);
    return { ...result, ...account(before - left, result.status200, RUNTIME_CONNECTIONS), cpuUs, rps: answered / result.seconds };
  }
  return { ...result, ...account(await settledDepth(variant.queue), result.ok, RUNTIME_CONNECTIONS), cpuUs };
};

/** One run of the broker's floor: amqp-client publishing (confirms) or getting, every message accounted for. */
const brokerFloor = async (variant: Variant, payload: string, seconds: number): Promise<Run> => {
  const queue = variant.queue as string;
  const figures = { p50: Number.NaN, p99: Number.NaN, errors: 0, seconds, cpuUs: Number.NaN };
  if (variant.method === "POST") {
    await freshQueues(queue);
    const { rate, confirmed } = await directPublishRate(queue, RUNTIME_CONNECTIONS, seconds, payload);
    return { ...figures, rps: rate, ok: confirmed, status200: 0, ...account(await settledDepth(queue), confirmed, 0) };
  }
  const before = await queueDepth(queue);
  const { rate, taken } = await directGetRate(queue, RUNTIME_CONNECTIONS, seconds);
  return { ...figures, rps: rate, ok: taken, status200: taken, ...account(before - (await settledDepth(queue)), taken, 0) };
};

export const runtimesSection = async (options: {
  port: number;
  seconds: number;
  rounds: number;
  log: (line: string) => void;
}): Promise<{ measurements: Measurement[]; peaks: RuntimePeaks }> => {
  const { seconds, rounds, log } = options;
  const running = new Map<Runtime, Running>();
  const measurements: Measurement[] = [];
  const queues = [...RUNTIMES, "floor" as const].flatMap((runtime) =>
    Object.keys(PAYLOADS).flatMap((payload) => [queueOf(runtime, "pub", payload), queueOf(runtime, "sub", payload)]),
  );
  try {
    await freshQueues(...queues, "bench-runtime-no-amqp");
    for (const [index, runtime] of RUNTIMES.entries()) running.set(runtime, await startRuntime(runtime, options.port + 10 + index));
    for (const [payloadName, payload] of Object.entries(PAYLOADS)) {
      const size = payloadName === "250 B" ? "250" : "16k";
      const floor: Variant = {
        name: BROKER_FLOOR.publish,
        runtime: "broker",
        url: AMQP_URL,
        method: "POST",
        queue: queueOf("floor", "pub", payloadName),
      };
      const variants = (method: "GET" | "POST"): Variant[] => [
        method === "POST" ? floor : { ...floor, name: BROKER_FLOOR.consume, method, queue: queueOf("floor", "sub", payloadName) },
        ...RUNTIMES.flatMap((runtime): Variant[] => {
          const gateway = running.get(runtime) as Running;
          return method === "POST"
            ? [
                {
                  name: RUNTIME_VARIANT.publish(runtime),
                  runtime: gateway,
                  url: `${gateway.url}/pub/${size}`,
                  method,
                  queue: queueOf(runtime, "pub", payloadName),
                },
                { name: RUNTIME_VARIANT.publishCeiling(runtime), runtime: gateway, url: `${gateway.url}/pub/no-amqp`, method },
              ]
            : [
                {
                  name: RUNTIME_VARIANT.consume(runtime),
                  runtime: gateway,
                  url: `${gateway.url}/sub/${size}`,
                  method,
                  queue: queueOf(runtime, "sub", payloadName),
                },
                { name: RUNTIME_VARIANT.consumeCeiling(runtime), runtime: gateway, url: `${gateway.url}/sub/no-amqp-${size}`, method },
              ];
        }),
      ];
      for (const method of ["POST", "GET"] as const) {
        const list = variants(method);
        // Warm-up: connections open, code paths compiled.
        for (const variant of list.filter((variant) => variant.runtime !== "broker"))
          await load({ url: variant.url, method, connections: 16, seconds: 1, ...(method === "POST" ? { body: payload } : {}) });
        const runs = new Map<string, Run[]>();
        for (let round = 0; round < rounds; round++) {
          for (let i = 0; i < list.length; i++) {
            const variant = list[(i + round) % list.length] as Variant;
            if (method === "GET" && variant.queue) await topUp(variant.queue, payloadName, payload, seconds);
            const result = await runOnce(variant, payload, seconds);
            if (variant.queue && method === "GET" && (await queueDepth(variant.queue)) === 0)
              log(`  warning: ${variant.queue} ran dry; the figure is a lower bound`);
            runs.set(variant.name, [...(runs.get(variant.name) ?? []), result]);
            log(
              `  runtimes | ${variant.name} | ${payloadName} | ${result.rps.toFixed(0)} req/s p99 ${result.p99} ms errors ${result.errors} lost ${result.lost} dup ${result.duplicated} cpu ${result.cpuUs.toFixed(0)} µs`,
            );
          }
        }
        for (const [name, results] of runs) measurements.push(summarize("runtimes", name, payloadName, RUNTIME_CONNECTIONS, results));
      }
    }
    const leaked = await queueDepth("bench-runtime-no-amqp");
    if (leaked !== 0) throw new Error(`a no-AMQP route put ${leaked} messages in bench-runtime-no-amqp: its ceiling is not one`);
    const peaks: RuntimePeaks = {};
    for (const [runtime, gateway] of running) peaks[runtime] = procStatusMb(gateway.pid, "VmHWM");
    return { measurements, peaks };
  } finally {
    for (const gateway of running.values()) await gateway.stop().catch(() => undefined);
    await deleteQueues(...queues, "bench-runtime-no-amqp");
  }
};
