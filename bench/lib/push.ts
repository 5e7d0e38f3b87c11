/**
 * The bench's `push` section: a push route (`consumer.push`, `npm start`'s workerd) against
 * amqp-client's own consumer with the same prefetch POSTing each message to the same endpoint with
 * `fetch` and acknowledging it on a 2xx, at concurrency (prefetch) 1 and 16, 250 B.
 *
 * - Throughput: the queue is filled with N messages of unique sequence numbers while the consumer
 *   is off (the push paused; the direct consumer not started), then it is started, and the rate is
 *   N over the time until the endpoint has received all N. Every message must arrive; one that
 *   arrived twice is counted as duplicated, and the queue must be empty afterwards.
 * - Latency: with the consumer running, one message published every 10 ms; the endpoint takes its
 *   receipt time minus the publish time the body carries (p50, p99).
 *
 * And workerd's own fetch ceiling: a route object POSTing the same bodies to the same endpoint at
 * the same concurrency, without AMQP, signing or headers (what fetch alone does from an object).
 *
 * Both sign their requests the same way (Standard Webhooks; the direct consumer with the
 * `standardwebhooks` package). The endpoint answers 204 at once, in a worker thread of its own, so
 * the direct consumer in this process does not share its event loop with it.
 *
 * BENCH_PUSH_PROFILE=1: a CPU profile of workerd's isolate over one more gateway run at
 * concurrency 16, its top functions printed (as `npm run profile` does for requests).
 */
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { Worker } from "node:worker_threads";
import { AMQPClient, type AMQPChannel } from "@cloudamqp/amqp-client";
import { Webhook } from "standardwebhooks";
import { startLocalGateway, type LocalGateway } from "../../scripts/lib/local-gateway";
import { BASELINE_PREFIX, BENCH_WORKER, writeRoutes } from "./bench-routes";
import { AMQP_URL, deleteQueues, freshQueues, publishNumbered, queueDepth, withChannel } from "./broker";
import { startCpuProfile, summarizeProfile } from "./cpu-profile";
import { PUSH, summarize, type Measurement, type RoundFigures } from "./report";

export interface PushOptions {
  port: number;
  /** Messages per throughput run at concurrency 16 (a quarter of them at concurrency 1). */
  messages: number;
  rounds: number;
  /** Latency samples per variant and concurrency. */
  samples: number;
  log: (line: string) => void;
}

const SECRET = `whsec_${Buffer.from("the bench's push key, 32 bytes!!").toString("base64")}`;
const ADMIN_TOKEN = "bench-push-admin";
const ADMIN = { authorization: `Bearer ${ADMIN_TOKEN}` };
const PAYLOAD_BYTES = 250;
const queueOf = (concurrency: number) => `bench-push-${concurrency}`;
const PROFILE = process.env.BENCH_PUSH_PROFILE === "1";
const INSPECTOR_PORT = 9231;

/** `seq sentAt` and padding up to 250 B: the endpoint reads both numbers. */
const body = (seq: number, sentAt = 0) => {
  const head = `${seq} ${sentAt.toFixed(3)} `;
  return head + "x".repeat(Math.max(0, PAYLOAD_BYTES - head.length));
};

/** The run-wide clock both sides read: wall time with sub-millisecond resolution. */
const now = () => performance.timeOrigin + performance.now();

/** The endpoint, in a worker thread: it counts distinct sequence numbers and keeps latencies. */
const ENDPOINT_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { createServer } = require("node:http");
const { performance } = require("node:perf_hooks");
let seen = new Set(), received = 0, latencies = [];
const server = createServer((request, response) => {
  let text = "";
  request.setEncoding("utf8");
  request.on("data", (chunk) => (text += chunk));
  request.on("end", () => {
    const at = performance.timeOrigin + performance.now();
    const [seq, sentAt] = text.split(" ", 2).map(Number);
    received++;
    seen.add(seq);
    if (sentAt > 0) latencies.push(at - sentAt);
    response.writeHead(204).end();
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, "127.0.0.1", () => parentPort.postMessage({ port: server.address().port }));
parentPort.on("message", (message) => {
  if (message === "reset") { seen = new Set(); received = 0; latencies = []; parentPort.postMessage({ reset: true }); }
  if (message === "count") parentPort.postMessage({ unique: seen.size, received });
  if (message === "latencies") parentPort.postMessage({ latencies, unique: seen.size, received });
  if (message === "close") server.close(() => parentPort.postMessage({ closed: true }));
});
`;

interface Endpoint {
  url: string;
  ask<T>(question: "reset" | "count" | "latencies" | "close"): Promise<T>;
  stop(): Promise<void>;
}

const startEndpoint = async (): Promise<Endpoint> => {
  const worker = new Worker(ENDPOINT_SOURCE, { eval: true });
  const port = await new Promise<number>((resolve) => worker.once("message", (message: { port: number }) => resolve(message.port)));
  const ask = <T>(question: string) =>
    new Promise<T>((resolve) => {
      worker.once("message", resolve);
      worker.postMessage(question);
    });
  return {
    url: `http://127.0.0.1:${port}`,
    ask,
    stop: async () => {
      await ask("close");
      await worker.terminate();
    },
  };
};

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Fills `queue` with messages 0..count-1, 256 in flight with confirms. */
const fill = (queue: string, count: number) =>
  publishNumbered(queue, count, (i) => ({ body: body(i), properties: { deliveryMode: 2, contentType: "text/plain" } }));

/** Waits until the endpoint has `count` distinct messages (or 120 s passed); the time it took from `since`, in s. */
const untilReceived = async (
  endpoint: Endpoint,
  count: number,
  since: number,
): Promise<{ seconds: number; unique: number; received: number }> => {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const { unique, received } = await endpoint.ask<{ unique: number; received: number }>("count");
    if (unique >= count || Date.now() > deadline) return { seconds: (now() - since) / 1000, unique, received };
    await delay(5);
  }
};

/** One way of consuming a queue into the endpoint: started and stopped around each run. */
interface Consumer {
  name: string;
  start(concurrency: number): Promise<void>;
  stop(concurrency: number): Promise<void>;
}

/** The gateway's push routes, one per concurrency, paused between runs. */
const gatewayConsumer = (gateway: LocalGateway): Consumer => {
  const control = async (concurrency: number, action: "pause" | "resume") => {
    const response = await fetch(`${gateway.url}/push/${concurrency}/${action}`, { method: "POST", headers: ADMIN });
    if (!response.ok) throw new Error(`${action} of the push at ${concurrency} answered ${response.status}: ${await response.text()}`);
  };
  return { name: PUSH.gateway, start: (c) => control(c, "resume"), stop: (c) => control(c, "pause") };
};

/** amqp-client's own consumer: prefetch `concurrency`, each message signed and POSTed with fetch, acked on a 2xx. */
const directConsumer = (client: Awaited<ReturnType<AMQPClient["connect"]>>, url: string): Consumer => {
  const webhook = new Webhook(SECRET);
  let channel: AMQPChannel | undefined;
  return {
    name: PUSH.direct,
    start: async (concurrency) => {
      const open = await client.channel();
      channel = open;
      await open.basicQos(concurrency);
      await open.basicConsume(queueOf(concurrency), { noAck: false }, async (message) => {
        const bytes = message.body ?? new Uint8Array(0);
        const text = new TextDecoder().decode(bytes);
        const id = `msg_${crypto.randomUUID()}`;
        const date = new Date();
        const response = await fetch(`${url}/direct`, {
          method: "POST",
          body: bytes,
          headers: {
            "content-type": "text/plain",
            "webhook-id": id,
            "webhook-timestamp": String(Math.floor(date.getTime() / 1000)),
            "webhook-signature": webhook.sign(id, date, text),
          },
        }).catch(() => undefined);
        await response?.arrayBuffer().catch(() => undefined);
        await (response?.ok ? message.ack() : message.nack(true)).catch(() => undefined);
      });
    },
    stop: async () => {
      await channel?.close().catch(() => undefined);
      channel = undefined;
    },
  };
};

/**
 * workerd's own fetch ceiling: a route object POSTing `count` messages to the endpoint,
 * `concurrency` at a time, without AMQP (bench/bench-worker.ts `fetchLoop`).
 */
const ceilingRun = async (gateway: LocalGateway, endpoint: Endpoint, concurrency: number, count: number): Promise<RoundFigures> => {
  await endpoint.ask("reset");
  const started = now();
  const response = await fetch(`${gateway.url}${BASELINE_PREFIX}fetch-loop`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ url: `${endpoint.url}/ceiling`, count, concurrency, padding: PAYLOAD_BYTES }),
  });
  const { failed } = (await response.json()) as { failed: number };
  const { seconds, unique, received } = await untilReceived(endpoint, count, started);
  return { rps: unique / seconds, p50: Number.NaN, p99: Number.NaN, errors: failed, lost: 0, unanswered: 0, duplicated: received - unique };
};

/** One throughput run: fill while off, start, time until all arrived, stop. */
const throughputRun = async (endpoint: Endpoint, consumer: Consumer, concurrency: number, count: number): Promise<RoundFigures> => {
  const queue = queueOf(concurrency);
  await freshQueues(queue);
  await fill(queue, count);
  await endpoint.ask("reset");
  const started = now();
  await consumer.start(concurrency);
  const { seconds, unique, received } = await untilReceived(endpoint, count, started);
  await consumer.stop(concurrency);
  const left = await queueDepth(queue);
  return {
    rps: unique / seconds,
    p50: Number.NaN,
    p99: Number.NaN,
    errors: 0,
    lost: count - unique - left,
    unanswered: left,
    duplicated: received - unique,
  };
};

/** One latency run: `samples` messages, one every 10 ms, with the consumer running. */
const latencyRun = async (endpoint: Endpoint, consumer: Consumer, concurrency: number, samples: number) => {
  const queue = queueOf(concurrency);
  await freshQueues(queue);
  await consumer.start(concurrency);
  await endpoint.ask("reset");
  await withChannel(async (channel) => {
    for (let seq = 0; seq < samples; seq++) {
      await channel.basicPublish("", queue, body(seq, now()), { contentType: "text/plain" });
      await delay(10);
    }
  });
  const { latencies } = await untilReceivedLatencies(endpoint, samples);
  await consumer.stop(concurrency);
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  return { p50: at(0.5), p99: at(0.99) };
};

const untilReceivedLatencies = async (endpoint: Endpoint, count: number) => {
  await untilReceived(endpoint, count, now());
  return endpoint.ask<{ latencies: number[] }>("latencies");
};

export const pushSection = async (options: PushOptions): Promise<Measurement[]> => {
  const { port, messages, rounds, samples, log } = options;
  const saved = { secret: process.env.BENCH_PUSH_SECRET, admin: process.env.ADMIN_TOKEN };
  const queues = PUSH.concurrencies.map(queueOf);
  const endpoint = await startEndpoint();
  let gateway: LocalGateway | undefined;
  let client: Awaited<ReturnType<AMQPClient["connect"]>> | undefined;
  try {
    await freshQueues(...queues);
    writeRoutes(`routes:
${PUSH.concurrencies
  .map(
    (c) => `  - id: bench-push-${c}
    path: /push/${c}
    amqp: { enabled: true, url: "${AMQP_URL}", consumer: { queue: ${queueOf(c)}, push: { url: "${endpoint.url}/gateway", secret: "\${BENCH_PUSH_SECRET}", concurrency: ${c} } } }`,
  )
  .join("\n")}
`);
    // Read by the routes' ${NAME} and the admin check, in workerd and here alike.
    process.env.BENCH_PUSH_SECRET = SECRET;
    process.env.ADMIN_TOKEN = ADMIN_TOKEN;
    const live = await startLocalGateway({
      host: "127.0.0.1",
      port,
      main: BENCH_WORKER,
      inspectorPort: PROFILE ? INSPECTOR_PORT : undefined,
    });
    gateway = live;
    client = await new AMQPClient(AMQP_URL).connect();
    const consumers = [gatewayConsumer(live), directConsumer(client, endpoint.url)];
    // The push starts with the gateway: paused until its runs.
    for (const c of PUSH.concurrencies) await consumers[0]?.stop(c);

    const measurements: Measurement[] = [];
    for (const concurrency of PUSH.concurrencies) {
      const count = concurrency < 16 ? Math.ceil(messages / 4) : messages;
      // Warm up: both ways's code paths and connections.
      for (const consumer of consumers) await throughputRun(endpoint, consumer, concurrency, Math.min(count, 500));
      log(`push at concurrency ${concurrency} (${count} messages a run, ${PAYLOAD_BYTES} B; latency over ${samples} messages 10 ms apart)`);
      await ceilingRun(live, endpoint, concurrency, Math.min(count, 500));
      const runs = new Map<string, RoundFigures[]>();
      const variants = [
        ...consumers.map((consumer) => ({ name: consumer.name, run: () => throughputRun(endpoint, consumer, concurrency, count) })),
        { name: PUSH.ceiling, run: () => ceilingRun(live, endpoint, concurrency, count) },
      ];
      for (let round = 0; round < rounds; round++) {
        for (let i = 0; i < variants.length; i++) {
          const variant = variants[(i + round) % variants.length];
          if (!variant) continue;
          const run = await variant.run();
          runs.set(variant.name, [...(runs.get(variant.name) ?? []), run]);
          log(
            `  push | ${variant.name} | c=${concurrency} | ${run.rps.toFixed(0)} msg/s errors ${run.errors} lost ${run.lost} dup ${run.duplicated} left ${run.unanswered}`,
          );
        }
      }
      measurements.push(summarize("push", PUSH.ceiling, "250 B", concurrency, runs.get(PUSH.ceiling) ?? []));
      for (const consumer of consumers) {
        const latency = await latencyRun(endpoint, consumer, concurrency, samples);
        log(`  push latency | ${consumer.name} | c=${concurrency} | p50 ${latency.p50.toFixed(2)} ms p99 ${latency.p99.toFixed(2)} ms`);
        const row = summarize("push", consumer.name, "250 B", concurrency, runs.get(consumer.name) ?? []);
        measurements.push({ ...row, p50: latency.p50, p99: latency.p99 });
      }
    }
    if (PROFILE && consumers[0]) await profileRun(live, endpoint, consumers[0], messages, log);
    return measurements;
  } finally {
    await client?.close().catch(() => undefined);
    await gateway?.stop();
    await endpoint.stop();
    await deleteQueues(...queues);
    restore("BENCH_PUSH_SECRET", saved.secret);
    restore("ADMIN_TOKEN", saved.admin);
  }
};

/** One more gateway run at concurrency 16 under workerd's CPU profiler; logs the top functions. */
const profileRun = async (gateway: LocalGateway, endpoint: Endpoint, consumer: Consumer, count: number, log: (line: string) => void) => {
  const profiler = await startCpuProfile(INSPECTOR_PORT, "amqp-edge-gateway");
  const run = await throughputRun(endpoint, consumer, 16, count);
  const profile = await profiler.stop();
  const { self, inclusive } = summarizeProfile(profile, 30, readFileSync(`${gateway.bundle}.map`, "utf8"));
  log(`profiled push run at concurrency 16: ${run.rps.toFixed(0)} msg/s`);
  for (const [title, entries] of [
    ["self", self],
    ["inclusive", inclusive],
  ] as const) {
    log(`  ${title} time`);
    for (const { name, percent } of entries) log(`  ${percent.toFixed(1).padStart(6)}%  ${name}`);
  }
};

const restore = (name: string, value: string | undefined) => {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
};
