/**
 * The tests' own AMQP client (amqp-client over TCP), to set up and check the broker independently
 * of the gateway. Works in Node and inside workerd (nodejs_compat).
 */
import { AMQPClient, type AMQPMessage } from "@cloudamqp/amqp-client";

/**
 * The broker the non-destructive tests use: `$AMQP_TEST_URL`, default the local RabbitMQ. They only
 * declare, use and delete queues named `gw-test-*` there. (Inside workerd, process.env holds the
 * bindings, which test/workers/vitest.config.ts fills from the environment.)
 */
export const BROKER_URL = (typeof process !== "undefined" && process.env?.AMQP_TEST_URL) || "amqp://guest:guest@127.0.0.1:5672/";

/** Where the tests' own Web-AMQP relay listens (started by test/workers/web-amqp-relay.setup.ts). */
export const TEST_RELAY_ADDRESS = "127.0.0.1:15679";

/** The broker's AMQP `host:port`, which the tests' relay forwards to. */
export const brokerAddress = (url = BROKER_URL): string => {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port || (parsed.protocol === "amqps:" ? "5671" : "5672")}`;
};

/** The same broker through the tests' own Web-AMQP relay, with the same credentials and vhost. */
export const WEB_AMQP_URL = (() => {
  const parsed = new URL(BROKER_URL);
  const vhost = decodeURIComponent(parsed.pathname.slice(1)) || "/";
  return `ws://${parsed.username}:${parsed.password}@${TEST_RELAY_ADDRESS}/?vhost=${encodeURIComponent(vhost)}`;
})();
/** A port where nothing listens, for "broker unreachable". */
export const DEAD_URL = "amqp://guest:guest@127.0.0.1:1/";

const withFrameMax = (url: string): string => `${url}${url.includes("?") ? "&" : "?"}frameMax=131072`;

/** A queue name no other test uses. */
export const uniqueName = (prefix: string): string => `gw-test-${prefix}-${crypto.randomUUID().slice(0, 8)}`;

/** Runs `work` with a channel on a fresh connection, closing it afterwards. */
export const withChannel = async <T>(
  work: (channel: Awaited<ReturnType<Awaited<ReturnType<AMQPClient["connect"]>>["channel"]>>) => Promise<T>,
  url = BROKER_URL,
): Promise<T> => {
  // RabbitMQ's largest frame, as the gateway uses: amqp-client's default (4 KiB) cannot carry big headers.
  const connection = await new AMQPClient(withFrameMax(url)).connect();
  try {
    return await work(await connection.channel());
  } finally {
    await connection.close().catch(() => undefined);
  }
};

export const declareQueue = (name: string, args: Record<string, unknown> = {}, url = BROKER_URL) =>
  withChannel((channel) => channel.queueDeclare(name, { durable: true }, args), url);

export const deleteQueue = (name: string, url = BROKER_URL) =>
  withChannel((channel) => channel.queueDelete(name), url).catch(() => undefined);

/** Ready messages in `queue` (not counting unacknowledged ones). */
export const messageCount = (queue: string, url = BROKER_URL) =>
  withChannel(async (channel) => (await channel.queueDeclare(queue, { passive: true })).messageCount, url);

/** Takes every ready message from `queue`. */
export const drain = (queue: string, url = BROKER_URL) =>
  withChannel(async (channel) => {
    const messages: AMQPMessage[] = [];
    for (let message = await channel.basicGet(queue); message; message = await channel.basicGet(queue)) messages.push(message);
    return messages;
  }, url);

export const publishDirect = (queue: string, body: string | Uint8Array, contentType?: string) =>
  withChannel((channel) => channel.basicPublish("", queue, body, contentType ? { contentType } : {}));

/** Index of the first byte where `a` and `b` differ, or -1 when they are equal (cheaper than a deep equal on a MiB). */
export const firstDifference = (a: Uint8Array, b: Uint8Array): number => {
  const length = Math.max(a.byteLength, b.byteLength);
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return i;
  return -1;
};

/** Runs `test` with a fresh durable queue (`args` are its arguments), deleting it afterwards. */
export const withQueue = async (
  prefix: string,
  test: (queue: string) => Promise<void>,
  args: Record<string, unknown> = {},
): Promise<void> => {
  const queue = uniqueName(prefix);
  await declareQueue(queue, args);
  try {
    await test(queue);
  } finally {
    await deleteQueue(queue);
  }
};

/** Whether a passive declare finds it: false on NOT_FOUND, anything else rethrown. Creates nothing. */
const exists = (declare: Parameters<typeof withChannel>[0], url: string): Promise<boolean> =>
  withChannel(declare, url).then(
    () => true,
    (error: Error) => {
      if (/NOT_FOUND/.test(error.message)) return false;
      throw error;
    },
  );

/** Whether the queue exists on the broker at `url`. */
export const queueExists = (name: string, url = BROKER_URL) => exists((channel) => channel.queueDeclare(name, { passive: true }), url);

/** Whether the exchange exists on the broker at `url`. */
export const exchangeExists = (name: string, url = BROKER_URL) =>
  exists((channel) => channel.exchangeDeclare(name, "direct", { passive: true }), url);

/** A TCP socket's write, as amqp-client calls it. */
export type SocketWrite = (data: Uint8Array, cb?: (error?: Error) => void) => boolean;

/**
 * Puts `wrap(write)` in place of the write of an amqp-client TCP connection's socket, `write`
 * being the socket's own: what the tests of the patched client watch or hold back.
 */
export const wrapSocketWrite = (connection: unknown, wrap: (write: SocketWrite) => SocketWrite): void => {
  const socket = (connection as { socket: { write: SocketWrite } }).socket;
  socket.write = wrap(socket.write.bind(socket));
};
