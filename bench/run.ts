/**
 * `npm run bench`: the gateway measured against RabbitMQ's management HTTP API, the no-AMQP
 * ceiling of the local runtime, and amqp-client publishing directly, side by side in one run.
 *
 * Variants that are compared run in alternating rounds (A B C D, then B C D A, ...) so that drift
 * of a shared, noisy machine lands on all of them alike. Every publish run is checked: the 2xx
 * answers must equal the messages that arrived in its queue (nothing lost, nothing duplicated).
 *
 * Then the pressure sections (bench/lib/pressure.ts), each on a gateway of its own: truth under
 * load with faults on a disposable RabbitMQ node (false 202s must be 0), and workerd's RSS after a
 * max_batch batch, 64 concurrent 1 MiB publishes and 200k publishes.
 *
 * Then the consume modes (bench/lib/consume-modes.ts), on a gateway of its own: `GET ?max=50`
 * against amqp-client's own consumer, long-poll latency (`GET ?wait=10`, publish → answer), and
 * Server-Sent Events throughput with 1 and 16 clients.
 *
 * Then routing (bench/lib/routing.ts), on a gateway of its own: a `routing_key` templated from the
 * path against a fixed one, and `producer.reply: true` against amqp-client's own RPC (direct
 * reply-to), both calling the same responder in this process.
 *
 * Then many callers on one route (bench/lib/callers.ts), on gateways of their own: workerd's peak
 * memory under large requests from many callers at once, an honest caller's success and latency
 * during each flood a hostile caller can make, and the many-callers rig at full size.
 *
 * Then the three runtimes (bench/lib/runtimes.ts): the same routes on workerd, Node and Deno at
 * once, publish and consume at 250 B and 16 KiB against each runtime's own no-AMQP ceiling.
 *
 * Then push to a webhook (bench/lib/push.ts), on a gateway of its own: a push route against
 * amqp-client's own consumer + fetch feeding the same endpoint, at concurrency 1 and 16, and the
 * latency from publish to the endpoint's receipt.
 *
 * The gateways run with LOG_LEVEL=none unless it is set. Knobs: BENCH_SECONDS (per run, default 5), BENCH_ROUNDS (default 3; judged ratios are the median of the rounds' own), BENCH_MEMORY_PUBLISHES
 * (default 200000), BENCH_TRUTH_SECONDS (default 30), BENCH_PORT (default 8790), BENCH_SECTIONS
 * (default "throughput,truth,memory,consume,routing,callers,runtimes,push"; a subset runs only those, and judges only their
 * targets), BENCH_CONSUME_MESSAGES (per batch-consume run, default 30000), BENCH_SSE_MESSAGES
 * (per SSE run, default 10000), BENCH_LONGPOLL_SAMPLES (per round, default 200), BENCH_CALLERS_SECONDS (per fairness run; the
 * many-callers rig runs three times as long; default 8), BENCH_CALLERS_PARTS (default
 * "memory,fairness,many"), BENCH_PUSH_MESSAGES (per push run at concurrency 16, a quarter at 1; default
 * 20000), BENCH_PUSH_SAMPLES (latency samples per push variant, default 300).
 */
import { startLocalGateway, type LocalGateway } from "../scripts/lib/local-gateway";
import { account, type Accounting } from "./lib/accounting";
import { BENCH_WORKER, CEILING_PATH, NO_AMQP_PATHS, PAYLOADS, QUEUES, useBenchRoutes } from "./lib/bench-routes";
import { BASELINE_PREFIX } from "./lib/worker-paths";
import {
  deleteQueues,
  directPublishRate,
  ensureManagementApi,
  freshQueues,
  managementGet,
  managementPublish,
  prefill,
  queueDepth,
  settledDepth,
  rabbitmqVersion,
} from "./lib/broker";
import { load, type LoadResult } from "./lib/load";
import { cpuSeconds } from "./lib/cpu-profile";
import { consumeModesSection, rabbitmqctlVersion } from "./lib/consume-modes";
import { memorySection, truthSection } from "./lib/pressure";
import { routingSection } from "./lib/routing";
import { callersSection } from "./lib/callers";
import { runtimesSection } from "./lib/runtimes";
import { pushSection } from "./lib/push";
import { rssMb } from "./lib/proc-status";
import { summarize, THROUGHPUT, writeReport, type Measurement, type Report } from "./lib/report";

// The gateways measured here log nothing per request (LOG_LEVEL=none), as the figures from before
// request logs existed did; at the default, info, each request also writes one console line.
process.env.LOG_LEVEL ??= "none";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const MEMORY_PUBLISHES = Number(process.env.BENCH_MEMORY_PUBLISHES ?? 200_000);
const MEMORY_WARM_UP = 20_000;
const PORT = Number(process.env.BENCH_PORT ?? 8790);
const BATCH_SIZE = 100;
const TRUTH_SECONDS = Number(process.env.BENCH_TRUTH_SECONDS ?? 30);
const SECTIONS = new Set(
  (process.env.BENCH_SECTIONS ?? "throughput,truth,memory,consume,routing,callers,runtimes,push").split(",").map((name) => name.trim()),
);
const CALLERS_SECONDS = Number(process.env.BENCH_CALLERS_SECONDS ?? 8);
const CALLERS_PARTS = (process.env.BENCH_CALLERS_PARTS ?? "memory,fairness,many").split(",").map((name) => name.trim());
const CONSUME_MESSAGES = Number(process.env.BENCH_CONSUME_MESSAGES ?? 30_000);
const SSE_MESSAGES = Number(process.env.BENCH_SSE_MESSAGES ?? 10_000);
const LONGPOLL_SAMPLES = Number(process.env.BENCH_LONGPOLL_SAMPLES ?? 200);
const PUSH_MESSAGES = Number(process.env.BENCH_PUSH_MESSAGES ?? 20_000);
const PUSH_SAMPLES = Number(process.env.BENCH_PUSH_SAMPLES ?? 300);

const Q = QUEUES;

interface Variant {
  name: string;
  /** The queue its publishes land in, checked after each run; none for the ceiling. */
  queue?: string;
  request: (payload: string) => { url: string; method: "GET" | "POST"; headers: Record<string, string>; body?: string };
  /** The process serving it (the gateway's workerd), whose CPU per answered request is measured too. */
  servedBy?: number | undefined;
}

/**
 * CPU microseconds `pid` spent per successful answer while `run` loaded it (NaN without a
 * process): per 2xx, or per `counted` (a consume's 200s), so that fast failures never look cheap.
 */
const withCpu = async (
  pid: number | undefined,
  run: () => Promise<LoadResult>,
  counted: (result: LoadResult) => number = (result) => result.ok,
): Promise<LoadResult & { cpuUs: number }> => {
  const before = pid ? cpuSeconds(pid) : Number.NaN;
  const result = await run();
  const answered = counted(result);
  return { ...result, cpuUs: pid && answered > 0 ? ((cpuSeconds(pid) - before) * 1e6) / answered : Number.NaN };
};

const measurements: Measurement[] = [];
const log = (line: string) => process.stdout.write(`${line}\n`);

/** Runs each variant ROUNDS times, rotating the order each round, and records the means. */
const compare = async (section: Measurement["section"], variants: Variant[], payloadName: string, payload: string, connections: number) => {
  const runs = new Map<string, Array<LoadResult & Accounting & { cpuUs?: number }>>();
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < variants.length; i++) {
      const variant = variants[(i + round) % variants.length];
      if (!variant) continue;
      if (variant.queue) await freshQueues(variant.queue);
      const result = await withCpu(variant.servedBy, () => load({ ...variant.request(payload), connections, seconds: SECONDS }));
      const accounted = variant.queue ? account(await settledDepth(variant.queue), result.ok, connections) : account(0, 0, 0);
      runs.set(variant.name, [...(runs.get(variant.name) ?? []), { ...result, ...accounted }]);
      log(
        `  ${section} | ${variant.name} | ${payloadName} | c=${connections} | ${result.rps.toFixed(0)} req/s p99 ${result.p99} ms errors ${result.errors} lost ${accounted.lost} dup ${accounted.duplicated}`,
      );
    }
  }
  for (const [name, results] of runs) measurements.push(summarize(section, name, payloadName, connections, results));
};

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

const main = async () => {
  log(`amqp-edge-gateway benchmark: ${[...SECTIONS].join(", ")}; ${SECONDS} s per run, ${ROUNDS} alternating rounds`);
  const report: Report = {
    date: new Date().toISOString(),
    sections: [...SECTIONS],
    seconds: SECONDS,
    rounds: ROUNDS,
    rabbitmq: await rabbitmqVersion(),
    measurements,
    memory: { publishes: 0, stepsMb: [], lost: 0, duplicated: 0, errors: 0 },
  };
  if (SECTIONS.has("throughput")) report.memory = await throughput();
  if (SECTIONS.has("truth")) {
    log(`truth under load (${TRUTH_SECONDS} s per consume mode, faults on a disposable RabbitMQ node)`);
    report.truth = await truthSection(PORT, TRUTH_SECONDS, log);
  }
  if (SECTIONS.has("memory")) {
    log("memory under pressure (a fresh gateway)");
    report.pressureMemory = await memorySection(PORT, MEMORY_PUBLISHES, PAYLOADS["250 B"], log);
  }
  if (SECTIONS.has("consume")) {
    log("consume modes (a fresh gateway): batches, long-poll, Server-Sent Events");
    if (report.rabbitmq === "unknown") report.rabbitmq = rabbitmqctlVersion();
    report.consumeSizes = { messages: CONSUME_MESSAGES, sseMessages: SSE_MESSAGES, samples: LONGPOLL_SAMPLES };
    const figures = await consumeModesSection({
      port: PORT,
      messages: CONSUME_MESSAGES,
      sseMessages: SSE_MESSAGES,
      samples: LONGPOLL_SAMPLES,
      rounds: ROUNDS,
      log,
    });
    measurements.push(...figures.measurements);
    report.sseAfterClose = figures.afterClose;
  }
  if (SECTIONS.has("routing")) {
    log("routing (a fresh gateway): templated vs fixed routing key, request/reply vs amqp-client's own RPC");
    if (report.rabbitmq === "unknown") report.rabbitmq = rabbitmqctlVersion();
    measurements.push(...(await routingSection({ port: PORT, seconds: SECONDS, rounds: ROUNDS, log })));
  }
  if (SECTIONS.has("callers")) {
    log("many callers on one route (fresh gateways): memory under large requests at once, fairness under floods, the many-callers rig");
    if (report.rabbitmq === "unknown") report.rabbitmq = rabbitmqctlVersion();
    report.callers = await callersSection(PORT, CALLERS_SECONDS, log, CALLERS_PARTS);
  }
  if (SECTIONS.has("runtimes")) {
    log("three runtimes (fresh gateways on workerd, Node and Deno, at once): publish and consume against each one's no-AMQP ceiling");
    if (report.rabbitmq === "unknown") report.rabbitmq = rabbitmqctlVersion();
    const figures = await runtimesSection({ port: PORT, seconds: SECONDS, rounds: ROUNDS, log });
    measurements.push(...figures.measurements);
    report.runtimePeaks = figures.peaks;
  }
  if (SECTIONS.has("push")) {
    log("push to a webhook (a fresh gateway): a push route against amqp-client's own consumer + fetch, at concurrency 1 and 16");
    if (report.rabbitmq === "unknown") report.rabbitmq = rabbitmqctlVersion();
    measurements.push(...(await pushSection({ port: PORT, messages: PUSH_MESSAGES, samples: PUSH_SAMPLES, rounds: ROUNDS, log })));
  }
  const verdicts = await writeReport(report);
  process.exitCode = verdicts.every((verdict) => verdict.met) ? 0 : 1;
};

/** The compared throughput sections, on the bench routes; returns the memory run's figures. */
const throughput = async (): Promise<Report["memory"]> => {
  await ensureManagementApi();
  useBenchRoutes();
  let gateway: LocalGateway | undefined;
  try {
    gateway = await startLocalGateway({ host: "127.0.0.1", port: PORT, main: BENCH_WORKER });
    const base = gateway.url;
    const json = { "content-type": "application/json" };
    /** A JSON POST to one of the gateway's routes, counted in `queue` unless it is the ceiling. */
    const post = (name: string, path: string, queue?: string): Variant => ({
      name,
      servedBy: gateway?.runtimePid,
      ...(queue === undefined ? {} : { queue }),
      request: (body) => ({ url: `${base}${path}`, method: "POST", headers: json, body }),
    });
    const gatewayTcp = post("gateway amqp://", "/pub/tcp", Q.tcp);
    const gatewayWs = post("gateway ws://", "/pub/ws", Q.ws);
    const management: Variant = { name: "management API", queue: Q.mgmt, request: (body) => managementPublish(Q.mgmt, body) };
    // The same request, answered by the gateway's management_api (the dialect, with its confirm).
    const managementDialect: Variant = {
      name: THROUGHPUT.publishManagementDialect,
      queue: Q.mgmtGateway,
      servedBy: gateway.runtimePid,
      request: (body) => managementPublish(Q.mgmtGateway, body, base),
    };
    const noAmqp = post(THROUGHPUT.publishNoAmqp, NO_AMQP_PATHS.publish);
    const ceiling = post(THROUGHPUT.publishCeiling, CEILING_PATH);
    const publishers = [gatewayTcp, gatewayWs, noAmqp, management, managementDialect, ceiling];

    // Warm up: connections open, code paths compiled.
    for (const variant of publishers) {
      if (variant.queue) await freshQueues(variant.queue);
      await load({ ...variant.request(PAYLOADS["250 B"]), connections: 16, seconds: 1 });
    }

    log("publish");
    await freshQueues(Q.noAmqp);
    for (const [payloadName, payload] of Object.entries(PAYLOADS)) {
      for (const connections of [16, 64]) await compare("publish", publishers, payloadName, payload, connections);
    }
    // The no-AMQP route is a ceiling only if it really published nothing.
    const leaked = await queueDepth(Q.noAmqp);
    if (leaked !== 0) throw new Error(`the no-AMQP publish route put ${leaked} messages in ${Q.noAmqp}: its ceiling is not one`);

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
      servedBy: gateway.runtimePid,
      name: "gateway GET",
      queue: Q.subGateway,
      request: () => ({ url: `${base}/sub`, method: "GET", headers: {} }),
    };
    const consumeGatewayWs: Variant = {
      servedBy: gateway.runtimePid,
      name: "gateway GET ws://",
      queue: Q.subGatewayWs,
      request: () => ({ url: `${base}/sub/ws`, method: "GET", headers: {} }),
    };
    // The gateway's own no-AMQP ceiling: a consume route whose object answers a canned message.
    const consumeNoAmqp: Variant = {
      servedBy: gateway.runtimePid,
      name: THROUGHPUT.consumeNoAmqp,
      request: () => ({ url: `${base}${NO_AMQP_PATHS.consume}`, method: "GET", headers: {} }),
    };
    // The runtime's bare ceiling: a GET answered after one empty call to the route's object, what
    // the runtime alone can do for a request that needs the object (`get-object-call`).
    const consumeCeiling: Variant = {
      servedBy: gateway.runtimePid,
      name: THROUGHPUT.consumeCeiling,
      request: () => ({ url: `${base}${BASELINE_PREFIX}object-call`, method: "GET", headers: {} }),
    };
    const consumeManagement: Variant = {
      name: "management API get",
      queue: Q.subManagement,
      request: () => managementGet(Q.subManagement),
    };
    const consumeManagementDialect: Variant = {
      servedBy: gateway.runtimePid,
      name: THROUGHPUT.consumeManagementDialect,
      queue: Q.subManagementGateway,
      request: () => managementGet(Q.subManagementGateway, base),
    };
    // Both queues are filled before any consume run, and the broker is given time to write them
    // out: a run that starts right after a large persistent fill competes with that flush.
    // Sized for up to 7,500 msg/s over every run of a variant (both connection counts).
    const fill = Math.ceil(7_500 * SECONDS * ROUNDS * 2);
    await freshQueues(Q.subGateway, Q.subGatewayWs, Q.subManagement, Q.subManagementGateway);
    await prefill(Q.subGateway, fill, PAYLOADS["250 B"]);
    await prefill(Q.subGatewayWs, fill, PAYLOADS["250 B"]);
    await prefill(Q.subManagement, fill, PAYLOADS["250 B"]);
    await prefill(Q.subManagementGateway, fill, PAYLOADS["250 B"]);
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    for (const connections of [16, 64]) {
      const runs = new Map<string, Array<LoadResult & Accounting & { cpuUs?: number }>>();
      for (let round = 0; round < ROUNDS; round++) {
        const consumers = [consumeGateway, consumeGatewayWs, consumeNoAmqp, consumeManagement, consumeManagementDialect, consumeCeiling];
        for (const variant of consumers.map((_, i) => consumers[(i + round) % consumers.length] as Variant)) {
          const queue = variant.queue;
          const before = queue === undefined ? 0 : await queueDepth(queue);
          const result = await withCpu(
            variant.servedBy,
            () => load({ ...variant.request(""), connections, seconds: SECONDS }),
            (answered) => answered.status200,
          );
          const left = queue === undefined ? 0 : await queueDepth(queue);
          if (queue !== undefined && left === 0) log(`  warning: ${queue} ran dry; the figure is a lower bound`);
          // Each 200 took one message; messages gone beyond that were taken for requests the load
          // generator stopped waiting for at its deadline (at most one per connection). The
          // ceilings take none.
          const accounted = queue === undefined ? account(0, 0, 0) : account(before - left, result.status200, connections);
          runs.set(variant.name, [...(runs.get(variant.name) ?? []), { ...result, rps: result.status200 / result.seconds, ...accounted }]);
          log(
            `  consume | ${variant.name} | c=${connections} | ${(result.status200 / result.seconds).toFixed(0)} msg/s p99 ${result.p99} ms (${left} left) dup ${accounted.duplicated}`,
          );
        }
      }
      for (const [name, results] of runs) measurements.push(summarize("consume", name, "250 B", connections, results));
    }

    log("shards (64 connections, 250 B)");
    const shard2 = post("2 shards", "/pub/s2", Q.s2);
    const shard4 = post("4 shards", "/pub/s4", Q.s4);
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
      const accounted = account(await settledDepth(Q.batch), result.ok * BATCH_SIZE, 16 * BATCH_SIZE);
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

    log(`memory (${MEMORY_PUBLISHES} publishes, after ${MEMORY_WARM_UP} to warm up)`);
    // The warm-up lets the heap settle after the earlier sections' garbage; RSS is then read every
    // quarter of the run, so a leak shows as a steady climb rather than one noisy difference.
    await load({ ...gatewayTcp.request(PAYLOADS["250 B"]), connections: 64, amount: MEMORY_WARM_UP });
    await freshQueues(Q.tcp);
    const steps = [rssMb(gateway.runtimePid)];
    const memoryRuns: LoadResult[] = [];
    for (let quarter = 0; quarter < 4; quarter++) {
      memoryRuns.push(await load({ ...gatewayTcp.request(PAYLOADS["250 B"]), connections: 64, amount: MEMORY_PUBLISHES / 4 }));
      steps.push(rssMb(gateway.runtimePid));
    }
    const memoryOk = sum(memoryRuns.map((run) => run.ok));
    // A fixed number of requests: every one is answered, so the queue must match the 2xx exactly.
    const memoryAccount = account(await settledDepth(Q.tcp), memoryOk, 0);
    log(
      `  workerd RSS ${steps.map((mb) => mb.toFixed(1)).join(" -> ")} MB over ${memoryOk} publishes (lost ${memoryAccount.lost} dup ${memoryAccount.duplicated})`,
    );

    return {
      publishes: memoryOk,
      stepsMb: steps,
      lost: memoryAccount.lost,
      duplicated: memoryAccount.duplicated,
      errors: sum(memoryRuns.map((run) => run.errors)),
    };
  } finally {
    await gateway?.stop();
    await deleteQueues(...Object.values(Q));
  }
};

await main();
