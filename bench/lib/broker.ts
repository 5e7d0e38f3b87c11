/** The broker side of the benchmark: queues, the management API, and the direct-client floor. */
import { spawnSync } from "node:child_process";
import { AMQPClient } from "@cloudamqp/amqp-client";

export const AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/";
export const MANAGEMENT_URL = "http://127.0.0.1:15672";
export const MANAGEMENT_AUTH = `Basic ${Buffer.from("guest:guest").toString("base64")}`;

type Channel = Awaited<ReturnType<Awaited<ReturnType<AMQPClient["connect"]>>["channel"]>>;

export const withChannel = async <T>(work: (channel: Channel) => Promise<T>): Promise<T> => {
  const connection = await new AMQPClient(AMQP_URL).connect();
  try {
    return await work(await connection.channel());
  } finally {
    await connection.close().catch(() => undefined);
  }
};

/** Declares each queue (durable) and empties it. */
export const freshQueues = (...names: string[]) =>
  withChannel(async (channel) => {
    for (const name of names) {
      await channel.queueDeclare(name, { durable: true });
      await channel.queuePurge(name);
    }
  });

export const deleteQueues = (...names: string[]) =>
  withChannel(async (channel) => {
    for (const name of names) await channel.queueDelete(name).catch(() => undefined);
  });

export const queueDepth = (name: string) =>
  withChannel(async (channel) => (await channel.queueDeclare(name, { passive: true })).messageCount);

/**
 * The queue's depth once nothing more arrives: the same count twice, half a second apart. When
 * autocannon stops at its deadline, the requests it abandons are still being published (a batch's
 * messages wait their turn in the publish window); counted too early they would land in the next
 * run's queue, after its purge, and look like duplicates there.
 */
export const settledDepth = async (name: string): Promise<number> => {
  let previous = await queueDepth(name);
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const depth = await queueDepth(name);
    if (depth === previous) return depth;
    previous = depth;
  }
};

/** Fills `queue` with `count` persistent copies of `body`, 256 in flight with confirms. */
export const prefill = (queue: string, count: number, body: string) =>
  publishNumbered(queue, count, () => ({ body, properties: { deliveryMode: 2, contentType: "application/json" } }));

/** Publishes messages 0 to count-1 to `queue`, the i-th as `message(i)` gives it, 256 in flight with confirms. */
export const publishNumbered = (
  queue: string,
  count: number,
  message: (i: number) => { body: string; properties: Parameters<Channel["basicPublish"]>[3] },
) =>
  withChannel(async (channel) => {
    await channel.confirmSelect();
    let next = 0;
    await Promise.all(
      Array.from({ length: 256 }, async () => {
        while (next < count) {
          const { body, properties } = message(next++);
          await channel.basicPublish("", queue, body, properties);
        }
      }),
    );
  });

/**
 * The floor of the broker: amqp-client publishing straight over TCP with confirms, `inFlight`
 * publishes outstanding, for `seconds`. Messages per second.
 */
export const directPublishRate = (queue: string, inFlight: number, seconds: number, body: string) =>
  withChannel(async (channel) => {
    await channel.confirmSelect();
    let confirmed = 0;
    const deadline = Date.now() + seconds * 1000;
    const started = Date.now();
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (Date.now() < deadline) {
          await channel.basicPublish("", queue, body, { deliveryMode: 2, contentType: "application/json" });
          confirmed++;
        }
      }),
    );
    return { rate: confirmed / ((Date.now() - started) / 1000), confirmed };
  });

/**
 * The floor of the broker for a consume: amqp-client taking messages with `basic.get` (no ack),
 * `inFlight` gets outstanding on one channel, for `seconds`, as the gateway pipelines them.
 * Messages per second.
 */
export const directGetRate = (queue: string, inFlight: number, seconds: number) =>
  withChannel(async (channel) => {
    let taken = 0;
    const deadline = Date.now() + seconds * 1000;
    const started = Date.now();
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (Date.now() < deadline) if (await channel.basicGet(queue, { noAck: true })) taken++;
      }),
    );
    return { rate: taken / ((Date.now() - started) / 1000), taken };
  });

/** Enables the management plugin if needed and waits for its HTTP API. */
export const ensureManagementApi = async (): Promise<void> => {
  if (await managementAnswers()) return;
  const enabled = spawnSync("rabbitmq-plugins", ["enable", "rabbitmq_management"], { encoding: "utf8" });
  if (enabled.status !== 0) throw new Error(`rabbitmq-plugins enable rabbitmq_management failed: ${enabled.stderr}`);
  const deadline = Date.now() + 60_000;
  while (!(await managementAnswers())) {
    if (Date.now() > deadline) throw new Error("the management API did not come up on 15672 within 60 s");
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
};

const managementAnswers = async () => {
  try {
    return (await fetch(`${MANAGEMENT_URL}/api/overview`, { headers: { authorization: MANAGEMENT_AUTH } })).ok;
  } catch {
    return false;
  }
};

/**
 * The management API's publish request for `payload` to `queue` through the default exchange; at
 * `base`, the broker's own API or the gateway's `management_api` (same request, same credentials).
 */
export const managementPublish = (queue: string, payload: string, base = MANAGEMENT_URL) => ({
  url: `${base}/api/exchanges/%2F/amq.default/publish`,
  method: "POST" as const,
  headers: { authorization: MANAGEMENT_AUTH, "content-type": "application/json" },
  body: JSON.stringify({
    properties: { delivery_mode: 2, content_type: "application/json" },
    routing_key: queue,
    payload,
    payload_encoding: "string",
  }),
});

/** The management API's get of one message, acknowledged (removed) as it is fetched; at `base`, as above. */
export const managementGet = (queue: string, base = MANAGEMENT_URL) => ({
  url: `${base}/api/queues/%2F/${encodeURIComponent(queue)}/get`,
  method: "POST" as const,
  headers: { authorization: MANAGEMENT_AUTH, "content-type": "application/json" },
  body: JSON.stringify({ count: 1, ackmode: "ack_requeue_false", encoding: "auto" }),
});

export const rabbitmqVersion = async (): Promise<string> => {
  try {
    const overview = (await (await fetch(`${MANAGEMENT_URL}/api/overview`, { headers: { authorization: MANAGEMENT_AUTH } })).json()) as {
      rabbitmq_version?: string;
    };
    return overview.rabbitmq_version ?? "unknown";
  } catch {
    return "unknown";
  }
};
