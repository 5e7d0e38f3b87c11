/**
 * Many callers, one route: honest callers, whose every answer is held to its promise by an AMQP
 * client of the rig's own, beside hostile ones doing, all at once, each thing one caller could
 * once do to the others (missing queues and exchanges, reply-to and expiration values the broker
 * closes channels over, other callers' Idempotency-Keys, 1 MiB bodies, large batch GETs, long-polls
 * and streams on many queues, a request flood, uploads that break off). Used by the test suite
 * at a size that fits CI and by `npm run bench` at full size, where it also measures the honest
 * callers' latency (the fairness figures).
 */
import { connect } from "node:net";
import { AMQPClient } from "@cloudamqp/amqp-client";

/** The rig's broker-side names, all its own (`gw-test-many-<run>...`). */
export interface ManyCallersNames {
  run: string;
  /** A direct exchange every box's queue is bound to, with the queue's name as its key. */
  exchange: string;
  /** An internal exchange: publishing to it is refused by the broker (ACCESS_REFUSED). */
  internal: string;
  /** The queue of box `name`. */
  queue: (box: string) => string;
}

export interface ManyCallersOptions {
  /** `amqp://` or `ws://` URL of the broker, as the route should use it. */
  brokerUrl: string;
  /** The broker for the rig's own client (always TCP). */
  adminUrl: string;
  shards: number;
  autoAck: boolean;
}

export const HONEST_KEY = "honest-caller-key";
export const HOSTILE_KEY = "hostile-caller-key";

/** The boxes (queues) of the rig: the honest one, the hostile one with large messages, and queues to long-poll. */
export const WAIT_BOXES = 8;

export const manyCallersNames = (run = crypto.randomUUID().slice(0, 8)): ManyCallersNames => ({
  run,
  exchange: `gw-test-many-${run}`,
  internal: `gw-test-many-${run}-internal`,
  queue: (box) => `gw-test-many-${run}.${box}`,
});

/**
 * The route under test: one route, with everything a caller can reach from the request (the box
 * names a queue, `?ex` the exchange), `auth` telling the two callers apart, a `rate_limit` that
 * counts each of them (with a dedupe window on one shard; the check refuses both on several).
 */
export const manyCallersRoutes = (names: ManyCallersNames, options: ManyCallersOptions): string => {
  const dedupe = options.shards === 1 ? ", dedupe_window_s: 60" : "";
  const rateLimit = options.shards === 1 ? "    rate_limit: { requests: 2000, period_s: 1, key: api_key, open_waits: 32 }\n" : "";
  return `routes:
  - id: many-${names.run}
    path: /many/:box
${rateLimit}    auth: { api_key: { header: X-API-Key, keys: [${HONEST_KEY}, ${HOSTILE_KEY}] } }
    amqp:
      enabled: true
      url: "${options.brokerUrl}"
      shards: ${options.shards}
      producer: { exchange: "{query.ex}", routing_key: "${names.queue("{box}")}", mandatory: true, max_body_bytes: 2097152${dedupe} }
      consumer: { queue: "${names.queue("{box}")}", auto_ack: ${options.autoAck}, stream: true }
`;
};

type Channel = Awaited<ReturnType<Awaited<ReturnType<AMQPClient["connect"]>>["channel"]>>;

const withChannel = async <T>(url: string, work: (channel: Channel) => Promise<T>): Promise<T> => {
  const connection = await new AMQPClient(`${url}${url.includes("?") ? "&" : "?"}frameMax=131072`).connect();
  try {
    return await work(await connection.channel());
  } finally {
    await connection.close().catch(() => undefined);
  }
};

const BOXES = ["honest", "big", ...Array.from({ length: WAIT_BOXES }, (_, index) => `w${index}`)];

/** Declares the rig's exchanges and queues, and fills the hostile box with `bigMessages` of 1 MiB. */
export const setUpManyCallers = async (names: ManyCallersNames, adminUrl: string, bigMessages: number): Promise<void> => {
  await withChannel(adminUrl, async (channel) => {
    await channel.exchangeDeclare(names.exchange, "direct", { durable: false, autoDelete: false });
    await channel.exchangeDeclare(names.internal, "direct", { durable: false, autoDelete: false, internal: true });
    for (const box of BOXES) {
      await channel.queueDeclare(names.queue(box), { durable: false });
      await channel.queueBind(names.queue(box), names.exchange, names.queue(box));
    }
    await channel.confirmSelect();
    const mebibyte = "b".repeat(1024 * 1024);
    await Promise.all(Array.from({ length: bigMessages }, () => channel.basicPublish("", names.queue("big"), mebibyte)));
  });
};

export const tearDownManyCallers = (names: ManyCallersNames, adminUrl: string): Promise<void> =>
  withChannel(adminUrl, async (channel) => {
    for (const box of BOXES) await channel.queueDelete(names.queue(box)).catch(() => undefined);
    await channel.exchangeDelete(names.exchange).catch(() => undefined);
    await channel.exchangeDelete(names.internal).catch(() => undefined);
  }).catch(() => undefined);

export interface ManyCallersReport {
  /** Every honest publish's answer, by status. */
  honestPublishes: Record<string, number>;
  /** Every honest consume's answer, by status. */
  honestConsumes: Record<string, number>;
  /** Honest answers that were not 2xx (status and reason), at most 20 of them. */
  honestFailures: string[];
  /** Bodies answered 202 to an honest publisher that were neither consumed nor left in the honest queue. */
  false202: string[];
  /** Honest bodies consumed more than once (never allowed with auto_ack) or consumed and still queued. */
  duplicates: string[];
  /** Bodies in the honest queue, or handed to an honest consumer, that no honest publisher sent. */
  strangers: string[];
  /** Every hostile answer, by what it did and its status. */
  hostile: Record<string, Record<string, number>>;
  /** Latency of the honest requests in ms (publish and consume together). */
  honestP50: number;
  honestP99: number;
  accepted: number;
  consumed: number;
  leftInQueue: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const percentile = (values: number[], p: number): number => {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
};

/** The hostile things the rig does; each runs in loops of its own for the whole run. */
export const HOSTILE_ACTS = [
  "missing-queues",
  "reply-to",
  "expiration",
  "bad-exchanges",
  "idempotency-keys",
  "large-bodies",
  "large-batches",
  "long-polls",
  "streams",
  "unroutable-twins",
  "broken-uploads",
  "flood",
] as const;
export type HostileAct = (typeof HOSTILE_ACTS)[number];

export interface ManyCallersRun {
  gatewayUrl: string;
  names: ManyCallersNames;
  adminUrl: string;
  autoAck: boolean;
  /** Whether the route has a dedupe window (one shard). */
  dedupe: boolean;
  seconds: number;
  honestPublishers: number;
  honestConsumers: number;
  /** Loops per hostile act. */
  hostileLoops: number;
  /** Which hostile acts run (default: all). */
  acts?: readonly HostileAct[];
}

/** Runs honest and hostile callers together on the route, then holds every honest answer to its promise. */
export const runManyCallers = async (options: ManyCallersRun): Promise<ManyCallersReport> => {
  const { gatewayUrl, names, seconds } = options;
  // Bodies and keys of this run only: an earlier run on the same route (a warm-up) had its own.
  const phase = crypto.randomUUID().slice(0, 8);
  const base = `${gatewayUrl}/many`;
  const honest = { "x-api-key": HONEST_KEY };
  const hostileHeaders = { "x-api-key": HOSTILE_KEY };
  const deadline = Date.now() + seconds * 1000;
  const running = () => Date.now() < deadline;
  const latencies: number[] = [];
  const publishStatus = new Map<string, number>();
  const consumeStatuses: number[] = [];
  const honestFailures: string[] = [];
  const deliveries = new Map<string, number>();
  const hostile: Record<string, Record<string, number>> = {};
  const count = (act: string, status: number | string) => {
    const byStatus = (hostile[act] ??= {});
    byStatus[String(status)] = (byStatus[String(status)] ?? 0) + 1;
  };
  const failed = async (what: string, response: Response) => {
    if (honestFailures.length < 20) honestFailures.push(`${what}: ${response.status} ${(await response.text()).slice(0, 300)}`);
  };

  /** An honest publisher: unique bodies, some with an Idempotency-Key a hostile caller uses too, each key sent twice. */
  const publisher = async (index: number) => {
    for (let n = 0; running(); n++) {
      const body = JSON.stringify({ run: names.run, phase, publisher: index, n });
      const key = options.dedupe && n % 4 === 0 ? `order-${phase}-${index}-${n}` : undefined;
      for (let attempt = 0; attempt < (key ? 2 : 1); attempt++) {
        const started = Date.now();
        try {
          const response = await fetch(`${base}/honest?ex=${names.exchange}`, {
            method: "POST",
            body,
            headers: { ...honest, "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) },
            signal: AbortSignal.timeout(30_000),
          });
          latencies.push(Date.now() - started);
          if (response.status !== 202) await failed(`publish ${body}`, response);
          else await response.arrayBuffer();
          // A replay of the same key must answer as the first did.
          if (attempt === 0 || response.status !== 202) publishStatus.set(body, response.status);
        } catch (error) {
          publishStatus.set(body, -1);
          if (honestFailures.length < 20) honestFailures.push(`publish ${body}: ${String(error)}`);
        }
      }
    }
  };

  /** An honest consumer: plain GETs, batches and long-polls in turn. */
  const consumer = async (index: number) => {
    for (let n = 0; running(); n++) {
      const form = (index + n) % 3;
      const query = form === 0 ? "" : form === 1 ? "?max=10" : "?wait=0.5";
      const started = Date.now();
      try {
        const response = await fetch(`${base}/honest${query}`, { headers: honest, signal: AbortSignal.timeout(30_000) });
        latencies.push(Date.now() - started);
        consumeStatuses.push(response.status);
        if (response.status === 200) {
          const bodies =
            form === 1
              ? ((await response.json()) as { messages: Array<{ body: string }> }).messages.map((m) => m.body)
              : [await response.text()];
          for (const body of bodies) deliveries.set(body, (deliveries.get(body) ?? 0) + 1);
        } else if (response.status === 204) await sleep(5);
        else await failed(`consume${query}`, response);
      } catch (error) {
        consumeStatuses.push(-1);
        if (honestFailures.length < 20) honestFailures.push(`consume${query}: ${String(error)}`);
      }
    }
  };

  const hostileFetch = async (act: HostileAct, url: string, init: RequestInit = {}) => {
    try {
      const response = await fetch(url, {
        ...init,
        headers: { ...hostileHeaders, ...(init.headers as Record<string, string>) },
        signal: AbortSignal.timeout(30_000),
      });
      count(act, response.status);
      await response.arrayBuffer();
    } catch {
      count(act, "error");
    }
  };

  const mebibyte = "h".repeat(1024 * 1024);
  const acts: Record<HostileAct, () => Promise<void>> = {
    "missing-queues": () => hostileFetch("missing-queues", `${base}/missing-${crypto.randomUUID().slice(0, 8)}`),
    "reply-to": () =>
      hostileFetch("reply-to", `${base}/big?ex=${names.exchange}`, {
        method: "POST",
        body: "x",
        headers: { "x-reply-to": "amq.rabbitmq.reply-to" },
      }),
    expiration: () =>
      hostileFetch("expiration", `${base}/big?ex=${names.exchange}`, {
        method: "POST",
        body: "x",
        headers: { "x-expiration": "99999999999" },
      }),
    "bad-exchanges": () =>
      hostileFetch(
        "bad-exchanges",
        `${base}/big?ex=${Math.random() < 0.5 ? names.internal : `gw-test-missing-${crypto.randomUUID().slice(0, 8)}`}`,
        {
          method: "POST",
          body: "x",
        },
      ),
    // The honest publishers' keys, with bodies of the hostile caller's own, to its own box.
    "idempotency-keys": () =>
      hostileFetch("idempotency-keys", `${base}/big?ex=${names.exchange}`, {
        method: "POST",
        body: `"hostile ${crypto.randomUUID()}"`,
        headers: {
          "idempotency-key": `order-${Math.floor(Math.random() * options.honestPublishers)}-${4 * Math.floor(Math.random() * 50)}`,
        },
      }),
    "large-bodies": () =>
      hostileFetch("large-bodies", `${base}/big?ex=${names.exchange}`, {
        method: "POST",
        body: mebibyte,
        headers: { "content-type": "text/plain" },
      }),
    "large-batches": () => hostileFetch("large-batches", `${base}/big?max=100`),
    "long-polls": () => hostileFetch("long-polls", `${base}/w${Math.floor(Math.random() * WAIT_BOXES)}?wait=1`),
    streams: async () => {
      // A stream on the large messages, left after a moment (the client goes away).
      const controller = new AbortController();
      try {
        const response = await fetch(`${base}/big`, {
          headers: { ...hostileHeaders, accept: "text/event-stream" },
          signal: controller.signal,
        });
        count("streams", response.status);
        const reader = response.body?.getReader();
        await Promise.race([reader?.read(), sleep(300)]);
      } catch {
        count("streams", "error");
      } finally {
        controller.abort();
      }
    },
    // The same body an honest publisher might send, to a box no queue is bound for: 422, its own.
    "unroutable-twins": () =>
      hostileFetch("unroutable-twins", `${base}/nowhere?ex=${names.exchange}`, {
        method: "POST",
        body: JSON.stringify({ run: names.run, phase, publisher: 0, n: Math.floor(Math.random() * 100) }),
        headers: { "content-type": "application/json" },
      }),
    "broken-uploads": async () => {
      // Headers and half a body, then the connection closed.
      const { hostname, port } = new URL(gatewayUrl);
      await new Promise<void>((resolve) => {
        const socket = connect({ host: hostname, port: Number(port) }, () => {
          socket.write(
            `POST /many/big?ex=${names.exchange} HTTP/1.1\r\nHost: ${hostname}\r\nX-API-Key: ${HOSTILE_KEY}\r\nContent-Length: 100000\r\n\r\n${"x".repeat(50_000)}`,
            () => setTimeout(() => socket.destroy(), 20),
          );
        });
        socket.on("close", () => resolve());
        socket.on("error", () => resolve());
      });
      count("broken-uploads", "sent");
    },
    flood: () => hostileFetch("flood", `${base}/w0`),
  };

  const hostileLoops = (options.acts ?? HOSTILE_ACTS).flatMap((act) =>
    Array.from({ length: options.hostileLoops }, async () => {
      while (running()) await acts[act]();
    }),
  );
  await Promise.all([
    ...Array.from({ length: options.honestPublishers }, (_, index) => publisher(index)),
    ...Array.from({ length: options.honestConsumers }, (_, index) => consumer(index)),
    ...hostileLoops,
  ]);

  // Counted at the moment the load ends: what the honest consumers got, and what is left.
  const left = await withChannel(options.adminUrl, async (channel) => {
    const bodies: string[] = [];
    for (let message = await channel.basicGet(names.queue("honest")); message; message = await channel.basicGet(names.queue("honest"))) {
      bodies.push(message.bodyString() ?? "");
    }
    return bodies;
  });
  const leftSet = new Set(left);
  const accepted = [...publishStatus].filter(([, status]) => status === 202).map(([body]) => body);
  const present = new Set([...deliveries.keys(), ...left]);
  const tally = (statuses: number[]) =>
    statuses.reduce<Record<string, number>>((all, status) => ({ ...all, [String(status)]: (all[String(status)] ?? 0) + 1 }), {});
  return {
    honestPublishes: tally([...publishStatus.values()]),
    honestConsumes: tally(consumeStatuses),
    honestFailures,
    false202: accepted.filter((body) => !present.has(body)),
    duplicates: [...deliveries].filter(([body, times]) => times > 1 || leftSet.has(body)).map(([body]) => body),
    strangers: [...present].filter((body) => !publishStatus.has(body)),
    hostile,
    honestP50: percentile(latencies, 50),
    honestP99: percentile(latencies, 99),
    accepted: accepted.length,
    consumed: [...deliveries.values()].reduce((a, b) => a + b, 0),
    leftInQueue: left.length,
  };
};
