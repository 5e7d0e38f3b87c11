/**
 * `npm run bench`: the gateway measured against RabbitMQ's management HTTP API, the no-AMQP
 * ceiling of the local runtime, and amqp-client publishing directly, side by side in one run.
 *
 * Variants that are compared run in alternating rounds (A B C D, then B C D A, ...) so that drift
 * of a shared, noisy machine lands on all of them alike. Every publish run is checked: the 2xx
 * answers must equal the messages that arrived in its queue (nothing lost, nothing duplicated).
 *
 * Knobs: BENCH_SECONDS (per run, default 5), BENCH_ROUNDS (default 2), BENCH_MEMORY_PUBLISHES
 * (default 200000), BENCH_PORT (default 8790).
 */
import { readFileSync } from "node:fs";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalGateway, type LocalGateway } from "../scripts/lib/local-gateway";
import { isListening, startRelay } from "../scripts/lib/web-amqp-relay";
import {
  AMQP_URL,
  deleteQueues,
  directPublishRate,
  ensureManagementApi,
  freshQueues,
  managementGet,
  managementPublish,
  prefill,
  queueDepth,
  rabbitmqVersion,
} from "./lib/broker";
import { load, type LoadResult } from "./lib/load";
import { writeReport, type Measurement, type Report } from "./lib/report";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const MEMORY_PUBLISHES = Number(process.env.BENCH_MEMORY_PUBLISHES ?? 200_000);
const PORT = Number(process.env.BENCH_PORT ?? 8790);
const BATCH_SIZE = 100;

const Q = {
  tcp: "bench-gateway-tcp",
  ws: "bench-gateway-ws",
  mgmt: "bench-management",
  s2: "bench-shards-2",
  s4: "bench-shards-4",
  batch: "bench-batch",
  direct: "bench-direct",
  subGateway: "bench-consume-gateway",
  subManagement: "bench-consume-management",
};

const payloadOf = (bytes: number): string => {
  const skeleton = JSON.stringify({ event: "order.created", id: "0000000000", data: "" });
  return JSON.stringify({ event: "order.created", id: "0000000000", data: "x".repeat(Math.max(0, bytes - skeleton.length)) });
};
const PAYLOADS = { "250 B": payloadOf(250), "16 KiB": payloadOf(16 * 1024) };

const ROUTES = `
routes:
  - { id: bench-tcp, path: /pub/tcp, amqp: { enabled: true, url: "${AMQP_URL}", producer: { routing_key: ${Q.tcp} } } }
  - { id: bench-ws, path: /pub/ws, amqp: { enabled: true, url: "ws://guest:guest@127.0.0.1:15670/?vhost=/", producer: { routing_key: ${Q.ws} } } }
  - { id: bench-s2, path: /pub/s2, amqp: { enabled: true, url: "${AMQP_URL}", shards: 2, producer: { routing_key: ${Q.s2} } } }
  - { id: bench-s4, path: /pub/s4, amqp: { enabled: true, url: "${AMQP_URL}", shards: 4, producer: { routing_key: ${Q.s4} } } }
  - { id: bench-batch, path: /batch, amqp: { enabled: true, url: "${AMQP_URL}", producer: { routing_key: ${Q.batch}, batch: true } } }
  - { id: bench-consume, path: /sub, amqp: { enabled: true, url: "${AMQP_URL}", consumer: { queue: ${Q.subGateway}, auto_ack: true } } }
`;

interface Variant {
  name: string;
  /** The queue its publishes land in, checked after each run; none for the ceiling. */
  queue?: string;
  request: (payload: string) => { url: string; method: "GET" | "POST"; headers: Record<string, string>; body?: string };
}

const measurements: Measurement[] = [];
const log = (line: string) => process.stdout.write(`${line}\n`);

/**
 * Compares the queue with the 2xx answers of a run: fewer messages than 2xx is a loss; more is
 * first the requests in flight at the load generator's deadline (at most `bound`), then duplicates.
 */
const account = (depth: number, ok: number, bound: number) => ({
  lost: Math.max(0, ok - depth),
  unanswered: Math.min(Math.max(0, depth - ok), bound),
  duplicated: Math.max(0, depth - ok - bound),
});

/** Runs each variant ROUNDS times, rotating the order each round, and records the means. */
const compare = async (section: Measurement["section"], variants: Variant[], payloadName: string, payload: string, connections: number) => {
  const runs = new Map<string, Array<LoadResult & ReturnType<typeof account>>>();
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < variants.length; i++) {
      const variant = variants[(i + round) % variants.length];
      if (!variant) continue;
      if (variant.queue) await freshQueues(variant.queue);
      const result = await load({ ...variant.request(payload), connections, seconds: SECONDS });
      const accounted = variant.queue ? account(await queueDepth(variant.queue), result.ok, connections) : account(0, 0, 0);
      runs.set(variant.name, [...(runs.get(variant.name) ?? []), { ...result, ...accounted }]);
      log(
        `  ${section} | ${variant.name} | ${payloadName} | c=${connections} | ${result.rps.toFixed(0)} req/s p99 ${result.p99} ms errors ${result.errors} lost ${accounted.lost} dup ${accounted.duplicated}`,
      );
    }
  }
  for (const [name, results] of runs) measurements.push(summarize(section, name, payloadName, connections, results));
};

/** One measurement from a variant's rounds: means of the rates and latencies, sums of the counts. */
const summarize = (
  section: Measurement["section"],
  variant: string,
  payload: string,
  connections: number,
  results: Array<LoadResult & ReturnType<typeof account>>,
): Measurement => ({
  section,
  variant,
  payload,
  connections,
  rps: mean(results.map((r) => r.rps)),
  msgs: mean(results.map((r) => r.rps)),
  p50: mean(results.map((r) => r.p50)),
  p99: mean(results.map((r) => r.p99)),
  errors: sum(results.map((r) => r.errors)),
  lost: sum(results.map((r) => r.lost)),
  unanswered: sum(results.map((r) => r.unanswered)),
  duplicated: sum(results.map((r) => r.duplicated)),
  rounds: results.length,
});

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

const rssMb = (pid: number | undefined): number => {
  if (!pid) return Number.NaN;
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
  return kb / 1024;
};

const main = async () => {
  log(`amqp-edge-gateway benchmark: ${SECONDS} s per run, ${ROUNDS} alternating rounds`);
  await ensureManagementApi();
  const relay = (await isListening("127.0.0.1:15670")) ? undefined : await startRelay("127.0.0.1:15670");
  const routesFile = join(mkdtempSync(join(tmpdir(), "bench-routes-")), "routes.yaml");
  writeFileSync(routesFile, ROUTES);
  process.env.ROUTES = routesFile;
  let gateway: LocalGateway | undefined;
  try {
    gateway = await startLocalGateway({ host: "127.0.0.1", port: PORT, main: "bench/bench-worker.ts" });
    const base = gateway.url;
    const json = { "content-type": "application/json" };
    const gatewayTcp: Variant = {
      name: "gateway amqp://",
      queue: Q.tcp,
      request: (body) => ({ url: `${base}/pub/tcp`, method: "POST", headers: json, body }),
    };
    const gatewayWs: Variant = {
      name: "gateway ws://",
      queue: Q.ws,
      request: (body) => ({ url: `${base}/pub/ws`, method: "POST", headers: json, body }),
    };
    const management: Variant = { name: "management API", queue: Q.mgmt, request: (body) => managementPublish(Q.mgmt, body) };
    const ceiling: Variant = {
      name: "ceiling (no AMQP)",
      request: (body) => ({ url: `${base}/__ceiling/bench-tcp`, method: "POST", headers: json, body }),
    };

    // Warm up: connections open, code paths compiled.
    for (const variant of [gatewayTcp, gatewayWs, management, ceiling]) {
      if (variant.queue) await freshQueues(variant.queue);
      await load({ ...variant.request(PAYLOADS["250 B"]), connections: 16, seconds: 1 });
    }

    log("publish");
    for (const [payloadName, payload] of Object.entries(PAYLOADS)) {
      for (const connections of [16, 64])
        await compare("publish", [gatewayTcp, gatewayWs, management, ceiling], payloadName, payload, connections);
    }

    log("broker floor (amqp-client direct, confirms)");
    for (const [payloadName, payload] of Object.entries(PAYLOADS)) {
      for (const inFlight of [16, 64]) {
        await freshQueues(Q.direct);
        const { rate, confirmed } = await directPublishRate(Q.direct, inFlight, SECONDS, payload);
        const accounted = account(await queueDepth(Q.direct), confirmed, 0);
        log(`  floor | amqp-client direct | ${payloadName} | in flight ${inFlight} | ${rate.toFixed(0)} msg/s`);
        measurements.push({
          section: "floor",
          variant: "amqp-client direct",
          payload: payloadName,
          connections: inFlight,
          rps: rate,
          msgs: rate,
          p50: Number.NaN,
          p99: Number.NaN,
          errors: 0,
          ...accounted,
          rounds: 1,
        });
      }
    }

    log("consume (queues filled once, then alternating runs)");
    const consumeGateway: Variant = {
      name: "gateway GET",
      queue: Q.subGateway,
      request: () => ({ url: `${base}/sub`, method: "GET", headers: {} }),
    };
    const consumeManagement: Variant = {
      name: "management API get",
      queue: Q.subManagement,
      request: () => managementGet(Q.subManagement),
    };
    // Both queues are filled before any consume run, and the broker is given time to write them
    // out: a run that starts right after a large persistent fill competes with that flush.
    const fill = Math.ceil(2_500 * SECONDS * ROUNDS * 2 * 1.5);
    await freshQueues(Q.subGateway, Q.subManagement);
    await prefill(Q.subGateway, fill, PAYLOADS["250 B"]);
    await prefill(Q.subManagement, fill, PAYLOADS["250 B"]);
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    for (const connections of [16, 64]) {
      const runs = new Map<string, Array<LoadResult & ReturnType<typeof account>>>();
      for (let round = 0; round < ROUNDS; round++) {
        for (const variant of round % 2 ? [consumeManagement, consumeGateway] : [consumeGateway, consumeManagement]) {
          const queue = variant.queue ?? "";
          const before = await queueDepth(queue);
          const result = await load({ ...variant.request(""), connections, seconds: SECONDS });
          const left = await queueDepth(queue);
          if (left === 0) log(`  warning: ${queue} ran dry; the figure is a lower bound`);
          // Each 200 took one message; messages gone beyond that were taken for requests the load
          // generator stopped waiting for at its deadline (at most one per connection).
          const accounted = account(before - left, result.status200, connections);
          runs.set(variant.name, [...(runs.get(variant.name) ?? []), { ...result, rps: result.status200 / result.seconds, ...accounted }]);
          log(
            `  consume | ${variant.name} | c=${connections} | ${(result.status200 / result.seconds).toFixed(0)} msg/s p99 ${result.p99} ms (${left} left) dup ${accounted.duplicated}`,
          );
        }
      }
      for (const [name, results] of runs) measurements.push(summarize("consume", name, "250 B", connections, results));
    }

    log("shards (64 connections, 250 B)");
    const shard2: Variant = {
      name: "2 shards",
      queue: Q.s2,
      request: (body) => ({ url: `${base}/pub/s2`, method: "POST", headers: json, body }),
    };
    const shard4: Variant = {
      name: "4 shards",
      queue: Q.s4,
      request: (body) => ({ url: `${base}/pub/s4`, method: "POST", headers: json, body }),
    };
    await compare("shards", [{ ...gatewayTcp, name: "1 shard" }, shard2, shard4], "250 B", PAYLOADS["250 B"], 64);

    log(`batch publish (${BATCH_SIZE} messages a request, NDJSON)`);
    const ndjson = Array.from({ length: BATCH_SIZE }, () => PAYLOADS["250 B"]).join("\n");
    for (let round = 0; round < ROUNDS; round++) {
      await freshQueues(Q.batch);
      const result = await load({
        url: `${base}/batch`,
        method: "POST",
        headers: { "content-type": "application/x-ndjson" },
        body: ndjson,
        connections: 16,
        seconds: SECONDS,
      });
      const accounted = account(await queueDepth(Q.batch), result.ok * BATCH_SIZE, 16 * BATCH_SIZE);
      const msgs = (result.ok * BATCH_SIZE) / result.seconds;
      log(
        `  batch | c=16 | ${result.rps.toFixed(0)} req/s = ${msgs.toFixed(0)} msg/s p99 ${result.p99} ms lost ${accounted.lost} dup ${accounted.duplicated}`,
      );
      measurements.push({
        section: "batch",
        variant: `gateway batch of ${BATCH_SIZE}`,
        payload: "250 B",
        connections: 16,
        rps: result.rps,
        msgs,
        p50: result.p50,
        p99: result.p99,
        errors: result.errors,
        ...accounted,
        rounds: 1,
      });
    }

    log(`memory (${MEMORY_PUBLISHES} publishes)`);
    await freshQueues(Q.tcp);
    const before = rssMb(gateway.runtimePid);
    const memoryRun = await load({ ...gatewayTcp.request(PAYLOADS["250 B"]), connections: 64, amount: MEMORY_PUBLISHES });
    const after = rssMb(gateway.runtimePid);
    // A fixed number of requests: every one is answered, so the queue must match the 2xx exactly.
    const memoryAccount = account(await queueDepth(Q.tcp), memoryRun.ok, 0);
    log(
      `  workerd RSS ${before.toFixed(1)} MB -> ${after.toFixed(1)} MB over ${memoryRun.ok} publishes (lost ${memoryAccount.lost} dup ${memoryAccount.duplicated})`,
    );

    const report: Report = {
      date: new Date().toISOString(),
      seconds: SECONDS,
      rounds: ROUNDS,
      rabbitmq: await rabbitmqVersion(),
      measurements,
      memory: {
        publishes: memoryRun.ok,
        beforeMb: before,
        afterMb: after,
        lost: memoryAccount.lost,
        duplicated: memoryAccount.duplicated,
        errors: memoryRun.errors,
      },
    };
    const verdicts = writeReport(report);
    process.exitCode = verdicts.every((verdict) => verdict.met) ? 0 : 1;
  } finally {
    await gateway?.stop();
    relay?.kill();
    await deleteQueues(...Object.values(Q));
  }
};

await main();
