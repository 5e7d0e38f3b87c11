/**
 * `npm run profile -- <variant>`: where a request's time goes. Serves the benchmark's Worker as
 * `npm run bench` does, loads one variant with autocannon (64 connections), and meanwhile takes a
 * V8 CPU profile of the gateway's isolate through workerd's inspector. Prints the throughput,
 * the CPU that workerd and RabbitMQ used, and the functions with the most samples; writes the
 * profile to .wrangler/profiles/ for Chrome DevTools (Performance → Load profile) or speedscope.
 *
 * Variants: publish (250 B, amqp://), publish-16k, publish-ws, publish-ws-16k, consume,
 * consume-ws; the gateway's own no-AMQP ceilings, publish-no-amqp(-16k) and consume-no-amqp (routes served
 * by the gateway whose object answers without the broker); ceiling (the bare no-AMQP publish,
 * without the gateway's middleware); and three baselines for what a request costs the runtime:
 * get-alone (a GET the Worker answers by itself), get-object-call (the same, after an empty call
 * to a route's object) and get-object-call-route (after a call carrying the route's settings).
 * Knobs: PROFILE_SECONDS (default 10), PROFILE_TOP (rows per table, default 25), PROFILE_ALLOCATIONS
 * (1: where the isolate allocates its bytes, by function, instead of a CPU profile), PROFILE_INSPECTOR_PORT
 * (default 9230), BENCH_PORT (default 8790).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startLocalGateway, type LocalGateway } from "../scripts/lib/local-gateway";
import { BASELINE_PREFIX, BENCH_WORKER, CEILING_PATH, NO_AMQP_PATHS, PAYLOADS, QUEUES, useBenchRoutes } from "./lib/bench-routes";
import { deleteQueues, freshQueues, prefill } from "./lib/broker";
import { cpuSeconds, startAllocationSampling, startCpuProfile, summarizeAllocations, summarizeProfile } from "./lib/cpu-profile";
import { load } from "./lib/load";

// As in `npm run bench`: the request log's one console line per request is not what is profiled.
process.env.LOG_LEVEL ??= "none";

const SECONDS = Number(process.env.PROFILE_SECONDS ?? 10);
const TOP = Number(process.env.PROFILE_TOP ?? 25);
/** PROFILE_ALLOCATIONS=1: V8's sampling heap profiler instead of the CPU profiler (bytes allocated, by function). */
const ALLOCATIONS = process.env.PROFILE_ALLOCATIONS === "1";
if (!Number.isInteger(TOP) || TOP < 1) throw new Error(`PROFILE_TOP must be a whole number of rows, not ${process.env.PROFILE_TOP}`);
const INSPECTOR_PORT = Number(process.env.PROFILE_INSPECTOR_PORT ?? 9230);
const PORT = Number(process.env.BENCH_PORT ?? 8790);
const CONNECTIONS = 64;

interface ProfiledVariant {
  path: string;
  method: "GET" | "POST";
  body?: string;
  /** Emptied before the run (publishes), or filled (a consume). */
  queue?: string;
  fill?: boolean;
}

const VARIANTS: Record<string, ProfiledVariant> = {
  publish: { path: "/pub/tcp", method: "POST", body: PAYLOADS["250 B"], queue: QUEUES.tcp },
  "publish-16k": { path: "/pub/tcp", method: "POST", body: PAYLOADS["16 KiB"], queue: QUEUES.tcp },
  "publish-ws": { path: "/pub/ws", method: "POST", body: PAYLOADS["250 B"], queue: QUEUES.ws },
  "publish-ws-16k": { path: "/pub/ws", method: "POST", body: PAYLOADS["16 KiB"], queue: QUEUES.ws },
  consume: { path: "/sub", method: "GET", queue: QUEUES.subGateway, fill: true },
  "consume-ws": { path: "/sub/ws", method: "GET", queue: QUEUES.subGatewayWs, fill: true },
  "get-alone": { path: `${BASELINE_PREFIX}alone`, method: "GET" },
  "get-object-call": { path: `${BASELINE_PREFIX}object-call`, method: "GET" },
  ceiling: { path: CEILING_PATH, method: "POST", body: PAYLOADS["250 B"] },
  "publish-no-amqp": { path: NO_AMQP_PATHS.publish, method: "POST", body: PAYLOADS["250 B"] },
  "publish-no-amqp-16k": { path: NO_AMQP_PATHS.publish, method: "POST", body: PAYLOADS["16 KiB"] },
  "consume-no-amqp": { path: NO_AMQP_PATHS.consume, method: "GET" },
  "get-object-call-route": { path: `${BASELINE_PREFIX}object-call-route`, method: "GET" },
};

const log = (line: string) => process.stdout.write(`${line}\n`);

const main = async () => {
  const name = process.argv[2] ?? "publish";
  const variant = VARIANTS[name];
  if (!variant) {
    process.stderr.write(`npm run profile -- <variant>: one of ${Object.keys(VARIANTS).join(", ")}\n`);
    process.exit(2);
  }
  useBenchRoutes();
  let gateway: LocalGateway | undefined;
  try {
    gateway = await startLocalGateway({ host: "127.0.0.1", port: PORT, main: BENCH_WORKER, inspectorPort: INSPECTOR_PORT });
    const request = {
      url: `${gateway.url}${variant.path}`,
      method: variant.method,
      headers: { "content-type": "application/json" },
      ...(variant.body === undefined ? {} : { body: variant.body }),
      connections: CONNECTIONS,
    };
    if (variant.queue) await freshQueues(variant.queue);
    // Enough for the warm-up and the run at up to 10,000 messages a second.
    if (variant.queue && variant.fill) {
      await prefill(variant.queue, 10_000 * (SECONDS + 2), PAYLOADS["250 B"]);
      // As in the bench: a run right after a large persistent fill competes with its flush to disk.
      await new Promise((resolve) => setTimeout(resolve, 5_000));
    }
    await load({ ...request, seconds: 2 });

    const workerd = gateway.runtimePid;
    const broker = brokerPid();
    const cpuBefore = { workerd: workerd ? cpuSeconds(workerd) : 0, broker: broker ? cpuSeconds(broker) : 0 };
    const sourceMap = () => readFileSync(`${gateway?.bundle}.map`, "utf8");
    if (ALLOCATIONS) {
      // Where the isolate's bytes are allocated, freed or not: the allocation rate drives how often
      // the young generation is collected, which the CPU profile shows as "(garbage collector)".
      const sampler = await startAllocationSampling(INSPECTOR_PORT, "amqp-edge-gateway");
      const result = await load({ ...request, seconds: SECONDS });
      const head = await sampler.stop();
      const answers = result.rps * result.seconds;
      const { total, self, files } = summarizeAllocations(head, TOP, sourceMap());
      log(
        `${name}: ${result.rps.toFixed(0)} req/s, ${result.errors} errors; ${(total / Math.max(1, answers)).toFixed(0)} bytes sampled per answer`,
      );
      const table = (title: string, entries: typeof self) => {
        log(`\n${title}`);
        for (const { name: fn, percent, bytes } of entries) {
          log(`${percent.toFixed(1).padStart(6)}% ${(bytes / Math.max(1, answers)).toFixed(0).padStart(7)} B/answer  ${fn}`);
        }
      };
      table("bytes allocated by the function itself", self);
      table("bytes allocated by source file", files);
      return;
    }
    const profiler = await startCpuProfile(INSPECTOR_PORT, "amqp-edge-gateway");
    const result = await load({ ...request, seconds: SECONDS });
    const profile = await profiler.stop();
    const share = (pid: number | undefined, before: number) =>
      pid ? `${((100 * (cpuSeconds(pid) - before)) / result.seconds).toFixed(0)}% of a core` : "unknown";

    const directory = join(".wrangler", "profiles");
    mkdirSync(directory, { recursive: true });
    const file = join(directory, `${name}-${new Date().toISOString().replace(/[:.]/g, "-")}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));

    log(
      `${name}: ${result.rps.toFixed(0)} req/s, p50 ${result.p50} ms, p99 ${result.p99} ms, ${result.errors} errors, ${CONNECTIONS} connections`,
    );
    log(`CPU: workerd ${share(workerd, cpuBefore.workerd)}, RabbitMQ ${share(broker, cpuBefore.broker)}`);
    const { self, inclusive, files } = summarizeProfile(profile, TOP, sourceMap());
    // A share of the samples as the isolate's thread time per answer (of any status): comparable
    // across variants that ran at different rates, where percentages are not. (The profile spans
    // the load and a moment more, so these are a little low.)
    const perRequest = (percent: number) => (result.rps > 0 ? (percent / 100) * (1e6 / result.rps) : Number.NaN);
    const table = (title: string, entries: typeof self) => {
      log(`\n${title}`);
      for (const { name: fn, percent } of entries) {
        log(`${percent.toFixed(1).padStart(6)}% ${perRequest(percent).toFixed(1).padStart(7)} µs/answer  ${fn}`);
      }
    };
    table("self time (samples in the function itself)", self);
    table("inclusive time (samples in the function or anything it called)", inclusive);
    table("self time by source file", files);
    log(`\nprofile written to ${file}`);
  } finally {
    await gateway?.stop();
    if (variant.queue) await deleteQueues(variant.queue);
  }
};

/** RabbitMQ's Erlang VM, for its share of the CPU. */
const brokerPid = (): number | undefined => {
  try {
    return Number(execFileSync("pgrep", ["-o", "beam.smp"], { encoding: "utf8" }).trim()) || undefined;
  } catch {
    return undefined;
  }
};

await main();
