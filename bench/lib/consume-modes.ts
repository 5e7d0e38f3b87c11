/**
 * The bench's `consume` section: the gateway's consuming modes (issue 11), each measured side by
 * side with what a user would weigh it against, on a gateway of its own with routes of its own:
 *
 * - batch consume: messages per second drained with `GET ?max=50` (auto-ack route, 1 and 4
 *   clients, autocannon) against amqp-client's own `basic.consume` with a prefetch of 50 and an
 *   ack per message, each draining a queue pre-filled with the same number of messages;
 * - long-poll: a client waits with `GET ?wait=10` on an empty queue; one message is published
 *   with amqp-client and the time from the publish call to the client's answer (its body read) is
 *   taken, sequentially; against the same for an amqp-client consumer (the broker's own latency);
 * - SSE: messages per second over Server-Sent Events (`consumer.stream`), 1 and 16 clients reading
 *   the stream with Node's fetch and counting events, from a pre-filled queue. Each run has a
 *   route (so a Durable Object) and a queue of its own: what closed streams leave behind on a
 *   route is checked separately (2 s after the clients closed: the route's consumer must be gone,
 *   and every message received or back in the queue), not folded into the next run's rate.
 *
 * Every message carries a unique `message_id`, so that each variant's messages are counted and
 * checked for duplicates by id, and the queue's depth afterwards says whether any went missing.
 * Compared variants run in rotating order over the rounds, as in the throughput sections.
 */
import { spawnSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import autocannon from "autocannon";
import { startLocalGateway, type LocalGateway } from "../../scripts/lib/local-gateway";
import { PAYLOADS, writeRoutes } from "./bench-routes";
import { BATCH, BATCH_CLIENTS, SSE_CLIENTS, VARIANTS, WAIT_S } from "./consume-mode-names";
import { AMQP_URL, deleteQueues, freshQueues, publishNumbered, queueDepth, withChannel } from "./broker";
import type { Measurement } from "./report";

/** What a route held 2 s after the clients of an SSE run closed their streams. */
export interface AfterClose {
  clients: number;
  round: number;
  /** Consumers left on the run's queue (the route's long-poll consumer, for a client that is gone). */
  consumers: number;
  /** Messages neither received by a client nor back in the queue: held for a stream that is gone. */
  held: number;
}

export interface ConsumeModeFigures {
  measurements: Measurement[];
  afterClose: AfterClose[];
}

export interface ConsumeModesOptions {
  port: number;
  /** Messages each batch-consume run drains (rounded up to a multiple of {@link BATCH}). */
  messages: number;
  /** Messages each SSE run drains. */
  sseMessages: number;
  /** Sequential long-poll samples per round. */
  samples: number;
  rounds: number;
  log: (line: string) => void;
}

const PAYLOAD = "250 B";
/** The longest an SSE run may take before it is cut short (and reported as such). */
const SSE_LIMIT_MS = 60_000;
const BODY = PAYLOADS[PAYLOAD];

type Channel = Parameters<Parameters<typeof withChannel>[0]>[0];

/** The section's measurements; its queues (unique names, `gw-bench-` prefix) are deleted at the end. */
export const consumeModesSection = async (options: ConsumeModesOptions): Promise<ConsumeModeFigures> => {
  const { port, rounds, log } = options;
  const messages = Math.ceil(options.messages / BATCH) * BATCH;
  const tag = `${process.pid}-${Date.now().toString(36)}`;
  const Q = {
    batch: `gw-bench-batch-${tag}`,
    direct: `gw-bench-direct-${tag}`,
    wait: `gw-bench-wait-${tag}`,
    waitDirect: `gw-bench-wait-direct-${tag}`,
    sseWarmUp: `gw-bench-sse-${tag}`,
  };
  /** One SSE route and queue per run: `sse[round][clients]`. */
  const sseRoute = (round: number, clients: number) => ({
    id: `gw-bench-sse-${round}-${clients}`,
    queue: `gw-bench-sse-${round}-${clients}-${tag}`,
  });
  const sseRoutes = Array.from({ length: rounds }, (_, round) => SSE_CLIENTS.map((clients) => sseRoute(round, clients))).flat();
  const queues = [...Object.values(Q), ...sseRoutes.map((route) => route.queue)];
  const afterClose: AfterClose[] = [];
  const measurements: Measurement[] = [];
  let gateway: LocalGateway | undefined;
  try {
    // Every route's queue must exist before its first request.
    await freshQueues(...queues);
    writeRoutes(`
routes:
  - { id: gw-bench-batch, path: /consume/batch, methods: [GET], amqp: { enabled: true, url: "${AMQP_URL}", consumer: { queue: ${Q.batch}, auto_ack: true } } }
  - { id: gw-bench-wait, path: /consume/wait, methods: [GET], amqp: { enabled: true, url: "${AMQP_URL}", consumer: { queue: ${Q.wait}, auto_ack: true } } }
  - { id: gw-bench-sse, path: /consume/sse, methods: [GET], amqp: { enabled: true, url: "${AMQP_URL}", consumer: { queue: ${Q.sseWarmUp}, stream: true } } }
${sseRoutes
  .map(
    ({ id, queue }) =>
      `  - { id: ${id}, path: /consume/${id}, methods: [GET], amqp: { enabled: true, url: "${AMQP_URL}", consumer: { queue: ${queue}, stream: true } } }`,
  )
  .join("\n")}
`);
    gateway = await startLocalGateway({ host: "127.0.0.1", port });
    const base = gateway.url;

    // Warm up: each route's object and connection opened, the code paths compiled.
    await fill(Q.batch, 2_000);
    await gatewayDrain(`${base}/consume/batch?max=${BATCH}`, 2_000 / BATCH, 4);
    await fill(Q.sseWarmUp, 200);
    await sseDrain(`${base}/consume/sse`, 200, 4, 30_000);
    await longPollSamples(`${base}/consume/wait`, Q.wait, 10);

    log(`batch consume (${messages} messages a run, ${PAYLOAD}, queue filled before each run)`);
    type Run = {
      msgs: number;
      rps: number;
      p50: number;
      p99: number;
      errors: number;
      lost: number;
      unanswered: number;
      duplicated: number;
    };
    const batchRuns = new Map<string, { connections: number; runs: Run[] }>();
    const batchVariants = [
      ...BATCH_CLIENTS.map((connections) => ({
        key: `${VARIANTS.batchGateway} c=${connections}`,
        variant: VARIANTS.batchGateway,
        connections,
        queue: Q.batch,
        run: () => gatewayDrain(`${base}/consume/batch?max=${BATCH}`, messages / BATCH, connections),
      })),
      {
        key: VARIANTS.batchDirect,
        variant: VARIANTS.batchDirect,
        connections: 1,
        queue: Q.direct,
        run: () => directDrain(Q.direct, messages),
      },
    ];
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < batchVariants.length; i++) {
        const v = batchVariants[(i + round) % batchVariants.length];
        if (!v) continue;
        await freshQueues(v.queue);
        await fill(v.queue, messages);
        // Let the broker write the fill out: a drain right after a persistent fill competes with that flush.
        await delay(1_000);
        const result = await v.run();
        const left = await queueDepth(v.queue);
        const removed = messages - left;
        // Auto-ack: a message gone from the queue that no answer brought is lost (a fixed number
        // of requests, every one answered, so none was abandoned).
        const lost = Math.max(0, removed - result.unique);
        const run: Run = {
          msgs: result.received / result.seconds,
          rps: result.requests / result.seconds,
          p50: result.p50,
          p99: result.p99,
          errors: result.errors,
          lost,
          unanswered: 0,
          duplicated: result.received - result.unique,
        };
        const entry = batchRuns.get(v.key) ?? { connections: v.connections, runs: [] };
        entry.runs.push(run);
        batchRuns.set(v.key, entry);
        log(
          `  batch consume | ${v.variant} | c=${v.connections} | ${run.msgs.toFixed(0)} msg/s (${result.received} in ${result.seconds.toFixed(2)} s)` +
            `${Number.isFinite(run.rps) ? ` ${run.rps.toFixed(0)} req/s p50 ${run.p50} ms p99 ${run.p99} ms` : ""} errors ${run.errors} left ${left} lost ${lost} dup ${run.duplicated}`,
        );
      }
    }
    for (const [key, { connections, runs }] of batchRuns) {
      const variant = batchVariants.find((v) => v.key === key)?.variant ?? key;
      measurements.push({
        section: "batch consume",
        variant,
        payload: PAYLOAD,
        connections,
        rps: mean(runs.map((r) => r.rps)),
        msgs: mean(runs.map((r) => r.msgs)),
        p50: mean(runs.map((r) => r.p50)),
        p99: mean(runs.map((r) => r.p99)),
        errors: sum(runs.map((r) => r.errors)),
        lost: sum(runs.map((r) => r.lost)),
        unanswered: 0,
        duplicated: sum(runs.map((r) => r.duplicated)),
        rounds: runs.length,
      });
    }

    log(`long-poll (${options.samples} sequential samples a round: publish → answer of GET ?wait=${WAIT_S} on an empty queue)`);
    const latencies = { gateway: [] as number[], direct: [] as number[] };
    const waitFaults = { errors: 0, lost: 0, duplicated: 0 };
    for (let round = 0; round < rounds; round++) {
      for (const which of round % 2 ? (["direct", "gateway"] as const) : (["gateway", "direct"] as const)) {
        await freshQueues(which === "gateway" ? Q.wait : Q.waitDirect);
        const result =
          which === "gateway"
            ? await longPollSamples(`${base}/consume/wait`, Q.wait, options.samples)
            : await directLatency(Q.waitDirect, options.samples);
        latencies[which].push(...result.ms);
        if (which === "gateway") {
          waitFaults.errors += result.errors;
          waitFaults.lost += result.lost;
          waitFaults.duplicated += result.duplicated;
        }
        const sorted = [...result.ms].sort((a, b) => a - b);
        log(
          `  long-poll | ${which === "gateway" ? VARIANTS.waitGateway : VARIANTS.waitDirect} | p50 ${percentile(sorted, 50).toFixed(2)} ms p99 ${percentile(sorted, 99).toFixed(2)} ms max ${(sorted.at(-1) ?? Number.NaN).toFixed(2)} ms errors ${result.errors} lost ${result.lost} dup ${result.duplicated}`,
        );
      }
    }
    for (const which of ["gateway", "direct"] as const) {
      const sorted = [...latencies[which]].sort((a, b) => a - b);
      measurements.push({
        section: "long-poll",
        variant: which === "gateway" ? VARIANTS.waitGateway : VARIANTS.waitDirect,
        payload: PAYLOAD,
        connections: 1,
        rps: Number.NaN,
        msgs: Number.NaN,
        p50: percentile(sorted, 50),
        p99: percentile(sorted, 99),
        ...(which === "gateway" ? waitFaults : { errors: 0, lost: 0, duplicated: 0 }),
        unanswered: 0,
        rounds,
      });
    }

    log(`SSE (${options.sseMessages} messages a run, ${PAYLOAD}, queue filled before each run)`);
    const sseRuns = new Map<number, Run[]>();
    for (let round = 0; round < rounds; round++) {
      for (const clients of round % 2 ? [...SSE_CLIENTS].reverse() : SSE_CLIENTS) {
        const { id, queue } = sseRoute(round, clients);
        await fill(queue, options.sseMessages);
        await delay(1_000);
        const result = await sseDrain(`${base}/consume/${id}`, options.sseMessages, clients, SSE_LIMIT_MS);
        // The streams are closed: 2 s later the route should hold nothing for them.
        await delay(2_000);
        const { messageCount: left, consumerCount } = await withChannel((channel) => channel.queueDeclare(queue, { passive: true }));
        const held = Math.max(0, options.sseMessages - result.unique - left);
        afterClose.push({ clients, round, consumers: consumerCount, held });
        const run: Run = {
          msgs: result.unique / result.seconds,
          rps: Number.NaN,
          p50: Number.NaN,
          p99: Number.NaN,
          errors: result.errors,
          // Not received and not back in the queue: counted by the after-close check, not as lost
          // (a held message goes back to the queue when its hold ends).
          lost: 0,
          unanswered: 0,
          duplicated: result.received - result.unique,
        };
        sseRuns.set(clients, [...(sseRuns.get(clients) ?? []), run]);
        if (result.unique < options.sseMessages)
          log(`  warning: the SSE run stopped at its time limit with ${result.unique} of ${options.sseMessages} messages`);
        log(
          `  sse | ${VARIANTS.sse} | ${clients} client${clients > 1 ? "s" : ""} | ${run.msgs.toFixed(0)} msg/s (${result.unique} in ${result.seconds.toFixed(2)} s; per client ${result.perClient.join("/")}) heartbeats ${result.heartbeats} errors ${run.errors} dup ${run.duplicated}; 2 s after closing: ${left} in the queue, ${held} held, ${consumerCount} consumers`,
        );
      }
    }
    for (const clients of SSE_CLIENTS) {
      const runs = sseRuns.get(clients) ?? [];
      measurements.push({
        section: "sse",
        variant: VARIANTS.sse,
        payload: PAYLOAD,
        connections: clients,
        rps: Number.NaN,
        msgs: mean(runs.map((r) => r.msgs)),
        p50: Number.NaN,
        p99: Number.NaN,
        errors: sum(runs.map((r) => r.errors)),
        lost: sum(runs.map((r) => r.lost)),
        unanswered: sum(runs.map((r) => r.unanswered)),
        duplicated: sum(runs.map((r) => r.duplicated)),
        rounds: runs.length,
      });
    }
    return { measurements, afterClose };
  } finally {
    await gateway?.stop();
    await deleteQueues(...queues);
  }
};

/** Fills `queue` with `count` persistent copies of the payload, `message_id` 0 to count-1, 256 in flight with confirms. */
const fill = (queue: string, count: number) =>
  publishNumbered(queue, count, (i) => ({
    body: BODY,
    properties: { deliveryMode: 2, contentType: "application/json", messageId: String(i) },
  }));

interface DrainResult {
  /** Messages received, counting duplicates; `unique` by message id. */
  received: number;
  unique: number;
  seconds: number;
  requests: number;
  p50: number;
  p99: number;
  errors: number;
}

/** `requests` × `GET ?max=50` through autocannon on `connections`, counting the messages of each answer by id. */
const gatewayDrain = async (url: string, requests: number, connections: number): Promise<DrainResult> => {
  const seen = new Set<string>();
  let received = 0;
  let errors = 0;
  const started = performance.now();
  // The run ends at its last answer: autocannon itself notices a finished `amount` only at its
  // next one-second tick, which would round every drain up to whole seconds.
  let last = started;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    autocannon(
      {
        url,
        connections,
        amount: requests,
        timeout: 30,
        requests: [
          {
            method: "GET",
            onResponse: (status, body) => {
              last = performance.now();
              if (status !== 200) {
                errors++;
                return;
              }
              const { messages } = JSON.parse(body) as { messages: Array<{ properties: { message_id?: string } }> };
              for (const message of messages) {
                received++;
                seen.add(message.properties.message_id ?? "");
              }
            },
          },
        ],
      },
      (error, finished) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(finished)),
    );
  });
  const seconds = (last - started) / 1000;
  return {
    received,
    unique: seen.size,
    seconds,
    requests: result.requests.total,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: errors + result.errors + result.timeouts,
  };
};

/** amqp-client's own consumer: prefetch 50, an ack per message, until `count` distinct messages came. */
const directDrain = (queue: string, count: number): Promise<DrainResult> =>
  withChannel(async (channel) => {
    await channel.basicQos(BATCH);
    const seen = new Set<string>();
    let received = 0;
    let done = () => undefined as void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    const started = performance.now();
    const consumer = await channel.basicConsume(queue, { noAck: false }, (message) => {
      received++;
      seen.add(message.properties.messageId ?? "");
      void message.ack().catch(() => undefined);
      if (seen.size >= count) done();
    });
    const timedOut = await Promise.race([finished.then(() => false), delay(120_000).then(() => true)]);
    const seconds = (performance.now() - started) / 1000;
    await consumer.cancel();
    return { received, unique: seen.size, seconds, requests: Number.NaN, p50: Number.NaN, p99: Number.NaN, errors: timedOut ? 1 : 0 };
  });

interface LatencyResult {
  /** Publish call → answer, per sample, in ms. */
  ms: number[];
  errors: number;
  /** Samples whose message did not come back (or another did). */
  lost: number;
  duplicated: number;
}

/**
 * `samples` times: `GET <url>?wait=10` on the empty queue; once the route's consumer is on the
 * queue (the broker's consumer count), one message is published and the time from the publish
 * call to the client's answer (body read) is taken. The next sample starts once the gateway has
 * cancelled its consumer, so that every sample starts from the same state.
 */
const longPollSamples = (url: string, queue: string, samples: number): Promise<LatencyResult> =>
  withChannel(async (channel) => {
    const out: LatencyResult = { ms: [], errors: 0, lost: 0, duplicated: 0 };
    for (let i = 0; i < samples; i++) {
      await consumersBecome(channel, queue, (n) => n === 0);
      const id = `wait-${i}`;
      const answer = fetch(`${url}?wait=${WAIT_S}`).then(
        async (response) => {
          await response.arrayBuffer();
          return { at: performance.now(), status: response.status, id: response.headers.get("x-message-id") };
        },
        () => ({ at: performance.now(), status: 0, id: null }),
      );
      const waiting = await consumersBecome(channel, queue, (n) => n >= 1);
      if (!waiting) {
        // The wait never reached the broker as a consumer: publish anyway, so the request ends.
        out.errors++;
      }
      const publishedAt = performance.now();
      await channel.basicPublish("", queue, BODY, { contentType: "application/json", messageId: id });
      const got = await answer;
      if (got.status !== 200) {
        out.errors++;
        out.lost++;
        await channel.queuePurge(queue);
        continue;
      }
      if (got.id !== id) out.duplicated++;
      out.ms.push(got.at - publishedAt);
    }
    return out;
  });

/** The same measure for amqp-client's own consumer on another connection: the broker's part of it. */
const directLatency = (queue: string, samples: number): Promise<LatencyResult> =>
  withChannel(async (publisher) =>
    withChannel(async (channel) => {
      const out: LatencyResult = { ms: [], errors: 0, lost: 0, duplicated: 0 };
      let arrived: (id: string | undefined) => void = () => undefined;
      const consumer = await channel.basicConsume(queue, { noAck: true }, (message) => arrived(message.properties.messageId));
      for (let i = 0; i < samples; i++) {
        const id = `wait-${i}`;
        const came = new Promise<{ at: number; id: string | undefined }>(
          (resolve) => (arrived = (got) => resolve({ at: performance.now(), id: got })),
        );
        const publishedAt = performance.now();
        await publisher.basicPublish("", queue, BODY, { contentType: "application/json", messageId: id });
        const got = await Promise.race([came, delay(5_000).then(() => undefined)]);
        if (!got) {
          out.lost++;
          continue;
        }
        if (got.id !== id) out.duplicated++;
        out.ms.push(got.at - publishedAt);
      }
      await consumer.cancel();
      return out;
    }),
  );

/** Polls the queue's consumer count (every ms) until `wanted` holds, for up to 5 s; whether it did. */
const consumersBecome = async (channel: Channel, queue: string, wanted: (count: number) => boolean): Promise<boolean> => {
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    if (wanted((await channel.queueDeclare(queue, { passive: true })).consumerCount)) return true;
    await delay(1);
  }
  return false;
};

interface SseResult extends DrainResult {
  heartbeats: number;
  perClient: number[];
}

/**
 * `clients` concurrent `GET`s with `Accept: text/event-stream`, each reading its stream and
 * counting events with data, until `count` distinct messages came (or `limitMs` passed); then
 * every stream is closed. The time is from the first request to the last of those events.
 */
const sseDrain = async (url: string, count: number, clients: number, limitMs: number): Promise<SseResult> => {
  const seen = new Set<string>();
  let received = 0;
  let heartbeats = 0;
  let errors = 0;
  const perClient = Array.from({ length: clients }, () => 0);
  let done = () => undefined as void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const controllers = Array.from({ length: clients }, () => new AbortController());
  const started = performance.now();
  let last = started;
  const readers = controllers.map(async (controller, client) => {
    const response = await fetch(url, { headers: { accept: "text/event-stream" }, signal: controller.signal });
    if (response.status !== 200 || !response.body) {
      errors++;
      await response.body?.cancel();
      return;
    }
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let id: string | undefined;
        let data = false;
        for (const line of event.split("\n")) {
          if (line.startsWith("id: ")) id = line.slice(4);
          else if (line.startsWith("data:")) data = true;
          else if (line === ": heartbeat") heartbeats++;
        }
        if (!data) continue;
        received++;
        perClient[client] = (perClient[client] ?? 0) + 1;
        seen.add(id ?? "");
        if (seen.size >= count) {
          last = performance.now();
          done();
        }
      }
    }
  });
  const stopped = Promise.allSettled(readers);
  await Promise.race([finished, stopped, delay(limitMs)]);
  if (seen.size < count) last = performance.now();
  for (const controller of controllers) controller.abort();
  for (const outcome of await stopped) {
    if (outcome.status === "rejected" && (outcome.reason as { name?: unknown } | undefined)?.name !== "AbortError") errors++;
  }
  return {
    received,
    unique: seen.size,
    seconds: (last - started) / 1000,
    requests: clients,
    p50: Number.NaN,
    p99: Number.NaN,
    errors,
    heartbeats,
    perClient,
  };
};

/** RabbitMQ's version from `rabbitmqctl`, for a run without the management API; "unknown" without it. */
export const rabbitmqctlVersion = (): string => {
  const result = spawnSync("rabbitmqctl", ["version"], { encoding: "utf8", timeout: 10_000 });
  return result.status === 0 ? result.stdout.trim() || "unknown" : "unknown";
};

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
/** The nearest-rank percentile of sorted values. */
const percentile = (sorted: number[], p: number): number =>
  sorted.length === 0 ? Number.NaN : (sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN);
