/**
 * The bench's `routing` section, on a gateway of its own with routes of its own, both rows on
 * amqp:// at {@link ROUTING}'s 64 connections and 250 B payload:
 *
 * - routing: a producer whose `routing_key` is `{key}`, taken from the request's path, against one
 *   with a fixed `routing_key`, both publishing to the default exchange, in alternating rounds.
 *   Each run's 2xx answers are counted against its queue, as in the throughput sections: what the
 *   template costs is the figure, so nothing may be lost or duplicated to get it;
 * - request/reply: `producer.reply: true` (round trips per second, 200s only, from autocannon)
 *   against amqp-client doing the same RPC itself (one connection, one channel consuming
 *   `amq.rabbitmq.reply-to`, 64 requests in flight), alternating. Both call the same responder: an
 *   amqp-client consumer in this process that publishes each request's body back to its
 *   `reply_to` with its `correlation_id`. The requests the responder got, plus any left in its
 *   queue, are counted against the 200s.
 */
import { performance } from "node:perf_hooks";
import { CEILING_PREFIX } from "./worker-paths";
import { AMQPClient } from "@cloudamqp/amqp-client";
import { startLocalGateway, type LocalGateway } from "../../scripts/lib/local-gateway";
import { account, type Accounting } from "./accounting";
import { BENCH_WORKER, PAYLOADS, writeRoutes } from "./bench-routes";
import { AMQP_URL, deleteQueues, freshQueues, queueDepth, settledDepth } from "./broker";
import { load } from "./load";
import { ROUTING, summarize, type Measurement } from "./report";
import { cpuSeconds } from "./cpu-profile";

export interface RoutingOptions {
  port: number;
  /** Seconds per run. */
  seconds: number;
  rounds: number;
  log: (line: string) => void;
}

/** The section's queues, one per variant, so that each run's messages are counted on their own. */
const Q = { fixed: "bench-fixed", templated: "bench-templated", rpc: "bench-rpc", schema: "bench-schema", noSchema: "bench-no-schema" };
const { connections: CONNECTIONS, payload: PAYLOAD } = ROUTING;
const BODY = PAYLOADS[PAYLOAD];
const JSON_HEADERS = { "content-type": "application/json" };
/** The route's `reply_timeout_ms`, and how long the direct client waits for a reply too. */
const REPLY_TIMEOUT_MS = 10_000;
/** RabbitMQ's direct reply-to pseudo-queue, as the gateway uses it (src/amqp/reply-channel.ts). */
const DIRECT_REPLY_TO = "amq.rabbitmq.reply-to";

/** A JSON Schema of 20 properties of the usual kinds, and a 2 KB document that matches it. */
const SCHEMA = {
  type: "object",
  required: ["id", "customer", "amount", "currency", "items"],
  additionalProperties: false,
  properties: Object.fromEntries(
    Array.from({ length: 20 }, (_, i) => {
      const kinds = [
        { type: "string", minLength: 1, maxLength: 200 },
        { type: "number", minimum: 0 },
        { type: "string", enum: ["EUR", "USD", "GBP"] },
        {
          type: "array",
          items: {
            type: "object",
            required: ["sku", "qty"],
            properties: { sku: { type: "string", pattern: "^[A-Z0-9-]+$" }, qty: { type: "integer", minimum: 1 } },
          },
        },
      ];
      const names = ["id", "customer", "amount", "currency", "items"];
      return [names[i] ?? `field${i}`, i === 2 ? kinds[1] : i === 3 ? kinds[2] : i === 4 ? kinds[3] : i < 2 ? kinds[0] : kinds[i % 2]];
    }),
  ),
};
const DOCUMENT = JSON.stringify({
  id: "ord_0001",
  customer: "customer with a name long enough to matter",
  amount: 1234.5,
  currency: "EUR",
  items: Array.from({ length: 12 }, (_, i) => ({ sku: `SKU-${1000 + i}`, qty: i + 1 })),
  ...Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`field${i + 5}`, (i + 5) % 2 === 0 ? "x".repeat(200) : i * 10])),
});

/** One run's figures: a rate (req/s, or round trips/s), latencies in ms, and its accounting. */
type Run = Pick<Measurement, "rps" | "p50" | "p99" | "errors"> & Accounting;

/** The section's measurements; its queues are deleted at the end. */
export const routingSection = async (options: RoutingOptions): Promise<Measurement[]> => {
  const { port, seconds, rounds, log } = options;
  const measurements: Measurement[] = [];
  let gateway: LocalGateway | undefined;
  let responder: Responder | undefined;
  try {
    // Every route's queue must exist before its first request.
    await freshQueues(...Object.values(Q));
    writeRoutes(`
routes:
  - { id: bench-fixed, path: /fixed, amqp: { enabled: true, url: "${AMQP_URL}", producer: { routing_key: ${Q.fixed} } } }
  - { id: bench-templated, path: "/tpl/:key", amqp: { enabled: true, url: "${AMQP_URL}", producer: { routing_key: "{key}" } } }
  - { id: bench-rpc, path: /rpc, amqp: { enabled: true, url: "${AMQP_URL}", producer: { routing_key: ${Q.rpc}, reply: true, reply_timeout_ms: ${REPLY_TIMEOUT_MS} } } }
  - { id: bench-schema, path: /schema, amqp: { enabled: true, url: "${AMQP_URL}", producer: { routing_key: ${Q.schema}, schema: ${JSON.stringify(SCHEMA)} } } }
  - { id: bench-no-schema, path: /no-schema, amqp: { enabled: true, url: "${AMQP_URL}", producer: { routing_key: ${Q.noSchema} } } }
`);
    gateway = await startLocalGateway({ host: "127.0.0.1", port, main: BENCH_WORKER });
    const live = await startResponder(Q.rpc);
    responder = live;
    const base = gateway.url;
    const publishes: Array<{ name: string; queue?: string; url: string }> = [
      { name: ROUTING.fixed, queue: Q.fixed, url: `${base}/fixed` },
      { name: ROUTING.templated, queue: Q.templated, url: `${base}/tpl/${Q.templated}` },
      // The same request answered without AMQP: what HTTP and the object call alone allow here.
      { name: ROUTING.ceiling, url: `${base}${CEILING_PREFIX}bench-fixed` },
    ];
    const replies = [
      { name: ROUTING.replyGateway, run: () => gatewayReplies(`${base}/rpc`, live, seconds) },
      { name: ROUTING.replyDirect, run: () => directReplies(seconds) },
    ];

    // Warm up: each route's object and connection opened, the code paths compiled.
    for (const { queue, url } of publishes) {
      await load({ url, method: "POST", headers: JSON_HEADERS, body: BODY, connections: 16, seconds: 1 });
      if (queue === undefined) continue;
      await settledDepth(queue);
      await freshQueues(queue);
    }
    await gatewayReplies(`${base}/rpc`, live, 1);
    await directReplies(1);

    log(
      `producer.schema: the same ${ROUTING.schemaPayload} (${DOCUMENT.length} B) with and without a 20-property schema (c=${CONNECTIONS})`,
    );
    const schemaVariants = [
      { name: ROUTING.withSchema, queue: Q.schema, url: `${base}/schema` },
      { name: ROUTING.withoutSchema, queue: Q.noSchema, url: `${base}/no-schema` },
    ];
    for (const { url } of schemaVariants)
      await load({ url, method: "POST", headers: JSON_HEADERS, body: DOCUMENT, connections: 16, seconds: 1 });
    const schemaRuns = new Map<string, Array<Run & { cpuUs: number }>>();
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < schemaVariants.length; i++) {
        const variant = schemaVariants[(i + round) % schemaVariants.length];
        if (!variant) continue;
        await freshQueues(variant.queue);
        const pid = gateway.runtimePid;
        const cpuBefore = pid ? cpuSeconds(pid) : Number.NaN;
        const result = await load({
          url: variant.url,
          method: "POST",
          headers: JSON_HEADERS,
          body: DOCUMENT,
          connections: CONNECTIONS,
          seconds,
        });
        const cpuUs = pid && result.ok > 0 ? ((cpuSeconds(pid) - cpuBefore) * 1e6) / result.ok : Number.NaN;
        const accounted = account(await settledDepth(variant.queue), result.ok, CONNECTIONS);
        schemaRuns.set(variant.name, [...(schemaRuns.get(variant.name) ?? []), { ...result, ...accounted, cpuUs }]);
        log(
          `  routing | ${variant.name} | c=${CONNECTIONS} | ${result.rps.toFixed(0)} req/s p50 ${result.p50} ms, ${cpuUs.toFixed(0)} µs CPU per publish, errors ${result.errors} lost ${accounted.lost} dup ${accounted.duplicated}`,
        );
      }
    }
    for (const { name } of schemaVariants) {
      measurements.push(summarize("routing", name, ROUTING.schemaPayload, CONNECTIONS, schemaRuns.get(name) ?? []));
    }

    log(`templated vs fixed routing key (c=${CONNECTIONS}, ${PAYLOAD}, counted against each run's queue)`);
    const runs = new Map<string, Run[]>();
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < publishes.length; i++) {
        const variant = publishes[(i + round) % publishes.length];
        if (!variant) continue;
        if (variant.queue) await freshQueues(variant.queue);
        const result = await load({
          url: variant.url,
          method: "POST",
          headers: JSON_HEADERS,
          body: BODY,
          connections: CONNECTIONS,
          seconds,
        });
        // The ceiling publishes nothing: nothing to count.
        const accounted = variant.queue ? account(await settledDepth(variant.queue), result.ok, CONNECTIONS) : account(0, 0, 0);
        runs.set(variant.name, [...(runs.get(variant.name) ?? []), { ...result, ...accounted }]);
        log(
          `  routing | ${variant.name} | c=${CONNECTIONS} | ${result.rps.toFixed(0)} req/s p50 ${result.p50} ms p99 ${result.p99} ms errors ${result.errors} lost ${accounted.lost} dup ${accounted.duplicated}`,
        );
      }
    }
    for (const { name } of publishes) measurements.push(summarize("routing", name, PAYLOAD, CONNECTIONS, runs.get(name) ?? []));

    log(`request/reply (${CONNECTIONS} in flight, ${PAYLOAD}, the same responder for both)`);
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < replies.length; i++) {
        const variant = replies[(i + round) % replies.length];
        if (!variant) continue;
        const run = await variant.run();
        runs.set(variant.name, [...(runs.get(variant.name) ?? []), run]);
        log(
          `  request/reply | ${variant.name} | ${CONNECTIONS} in flight | ${run.rps.toFixed(0)} round trips/s p50 ${run.p50.toFixed(2)} ms p99 ${run.p99.toFixed(2)} ms errors ${run.errors} lost ${run.lost} dup ${run.duplicated}`,
        );
      }
    }
    for (const { name } of replies) measurements.push(summarize("request/reply", name, PAYLOAD, CONNECTIONS, runs.get(name) ?? []));
    return measurements;
  } finally {
    await responder?.close();
    await gateway?.stop();
    await deleteQueues(...Object.values(Q));
  }
};

/** The RPC service both variants call: it answers every request on `queue` with the request's body. */
interface Responder {
  /** Requests received so far. */
  readonly requests: number;
  /** Replies whose publish failed so far. */
  readonly failed: number;
  close(): Promise<void>;
}

/**
 * A consumer on `queue` (noAck: the service itself is not what is measured) that publishes each
 * request's body, through the default exchange, to its `reply_to` with its `correlation_id`.
 */
const startResponder = async (queue: string): Promise<Responder> => {
  const connection = await new AMQPClient(AMQP_URL).connect();
  const channel = await connection.channel();
  const counts = { requests: 0, failed: 0 };
  await channel.basicConsume(queue, { noAck: true }, (request) => {
    counts.requests++;
    const { replyTo, correlationId, contentType } = request.properties;
    if (replyTo === undefined) return;
    const properties = { ...(correlationId === undefined ? {} : { correlationId }), ...(contentType === undefined ? {} : { contentType }) };
    void channel.basicPublish("", replyTo, request.body, properties).catch(() => counts.failed++);
  });
  return {
    get requests() {
      return counts.requests;
    },
    get failed() {
      return counts.failed;
    },
    close: () => connection.close().catch(() => undefined),
  };
};

/**
 * The responder's request count once nothing more arrives (its queue empty, the count the same
 * twice half a second apart), plus what is left in its queue if that does not happen within 30 s.
 * Requests autocannon stopped waiting for at its deadline are still on their way to it.
 */
const settledRequests = async (responder: Responder, queue: string): Promise<number> => {
  let previous = -1;
  for (let tries = 0; ; tries++) {
    const left = await queueDepth(queue);
    const requests = responder.requests;
    if ((left === 0 && requests === previous) || tries >= 60) return requests + left;
    previous = requests;
    await delay(500);
  }
};

/**
 * `POST /rpc` from autocannon for `seconds`: round trips per second are its 200s over the run's
 * time. Every request the gateway published reached the responder: requests beyond the 200s are
 * the ones abandoned at the deadline (at most one per connection) or answered with an error
 * (counted as such), and only beyond those duplicates; 200s beyond the requests would be lost.
 */
const gatewayReplies = async (url: string, responder: Responder, seconds: number): Promise<Run> => {
  const before = await settledRequests(responder, Q.rpc);
  const failedBefore = responder.failed;
  const result = await load({ url, method: "POST", headers: JSON_HEADERS, body: BODY, connections: CONNECTIONS, seconds });
  const requests = (await settledRequests(responder, Q.rpc)) - before;
  // Answers but a 200 (a 504, a refusal, a 2xx that is not the reply), with the connection errors.
  const otherwise = result.errors + (result.ok - result.status200);
  return {
    rps: result.status200 / result.seconds,
    p50: result.p50,
    p99: result.p99,
    errors: otherwise + (responder.failed - failedBefore),
    ...account(requests, result.status200, CONNECTIONS + otherwise),
  };
};

/**
 * amqp-client doing the same RPC as the gateway against the same responder for `seconds`: one
 * connection, one channel that consumes `amq.rabbitmq.reply-to` (noAck, as direct reply-to
 * requires) and publishes the requests persistent and with publisher confirms, as the gateway
 * does (its 200 says the broker took the request and the service answered), `CONNECTIONS` in
 * flight; a round trip ends when both the confirm and the reply are in. (Without confirms the
 * same client measured about the same here: see BENCHMARKS.md.) Each request is waited for to its reply, so a
 * request without one within the reply timeout is lost, and a reply to none in flight a duplicate.
 */
const directReplies = async (seconds: number): Promise<Run> => {
  const connection = await new AMQPClient(AMQP_URL).connect();
  try {
    const channel = await connection.channel();
    await channel.confirmSelect();
    /** The requests in flight, by correlation id: called with the time their reply arrived. */
    const waiting = new Map<string, (at: number) => void>();
    let strays = 0;
    await channel.basicConsume(DIRECT_REPLY_TO, { noAck: true }, (reply) => {
      const id = reply.properties.correlationId ?? "";
      const arrived = waiting.get(id);
      if (!arrived) {
        strays++;
        return;
      }
      waiting.delete(id);
      arrived(performance.now());
    });
    const prefix = `direct-${process.pid}-${Date.now().toString(36)}`;
    const latencies: number[] = [];
    let next = 0;
    let timedOut = 0;
    let failed = 0;
    const started = performance.now();
    const deadline = started + seconds * 1000;
    await Promise.all(
      Array.from({ length: CONNECTIONS }, async () => {
        while (performance.now() < deadline) {
          const id = `${prefix}-${next++}`;
          const sent = performance.now();
          let confirmed: Promise<unknown> = Promise.resolve();
          const replied = await new Promise<number | "timeout" | "failed">((resolve) => {
            const timer = setTimeout(() => {
              waiting.delete(id);
              resolve("timeout");
            }, REPLY_TIMEOUT_MS);
            waiting.set(id, (at) => {
              clearTimeout(timer);
              resolve(at);
            });
            confirmed = channel
              .basicPublish("", Q.rpc, BODY, {
                replyTo: DIRECT_REPLY_TO,
                correlationId: id,
                contentType: "application/json",
                deliveryMode: 2,
              })
              .catch(() => {
                clearTimeout(timer);
                waiting.delete(id);
                resolve("failed");
              });
          });
          const outcome =
            replied === "timeout" || replied === "failed" ? replied : Math.max(replied, await confirmed.then(() => performance.now()));
          if (outcome === "timeout") timedOut++;
          else if (outcome === "failed") failed++;
          else latencies.push(outcome - sent);
        }
      }),
    );
    const elapsed = (performance.now() - started) / 1000;
    const sorted = latencies.sort((a, b) => a - b);
    return {
      rps: latencies.length / elapsed,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      errors: failed,
      lost: timedOut,
      unanswered: 0,
      duplicated: strays,
    };
  } finally {
    await connection.close().catch(() => undefined);
  }
};

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** The nearest-rank percentile of sorted values. */
const percentile = (sorted: number[], p: number): number =>
  sorted.length === 0 ? Number.NaN : (sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN);
