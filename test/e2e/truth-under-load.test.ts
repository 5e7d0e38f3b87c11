/**
 * No false 202 under load: publishers with unique bodies and consumers on one small queue that
 * refuses what it cannot hold (x-max-length 50, reject-publish, so RabbitMQ nacks, often many at
 * once), while the broker cuts the gateway's connections and then blocks publishers with a memory
 * alarm. An AMQP client of the test's own takes what is left, and every answer is held to its
 * promise. Faults run on a disposable broker of the test's own, never the user's.
 */
import { AMQPClient } from "@cloudamqp/amqp-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCuttableLink, type CuttableLink } from "../helpers/cuttable-link";
import { startDisposableBroker, type DisposableBroker } from "../helpers/disposable-broker";
import { truthUnderLoad } from "../helpers/truth-under-load";
import { npmStart, type RunningGateway } from "./npm-start";

const SECONDS = 6;

let broker: DisposableBroker;
/** Links to the broker that the test can cut: one for the publishing routes, one for the consuming ones. */
let publishLink: CuttableLink;
let consumeLink: CuttableLink;
let gateway: RunningGateway;

const routes = (url: string, consumeUrl: string) => `
routes:
  - { id: truth-in, path: /at-most-once, methods: [POST], amqp: { enabled: true, url: "${url}", producer: { routing_key: truth-auto, persistent: false } } }
  - { id: truth-out, path: /at-most-once, methods: [GET], amqp: { enabled: true, url: "${consumeUrl}", consumer: { queue: truth-auto, auto_ack: true } } }
  - { id: truth-settled-in, path: /at-least-once, methods: [POST], amqp: { enabled: true, url: "${url}", producer: { routing_key: truth-settled, persistent: false } } }
  - { id: truth-settled-out, path: /at-least-once, methods: [GET], amqp: { enabled: true, url: "${consumeUrl}", consumer: { queue: truth-settled } } }
`;

const withChannel = async <T>(
  work: (channel: Awaited<ReturnType<Awaited<ReturnType<AMQPClient["connect"]>>["channel"]>>) => Promise<T>,
) => {
  const connection = await new AMQPClient(broker.url).connect();
  try {
    return await work(await connection.channel());
  } finally {
    await connection.close().catch(() => undefined);
  }
};

const drainQueue = (queue: string) => () =>
  withChannel(async (channel) => {
    const bodies: string[] = [];
    for (let message = await channel.basicGet(queue); message; message = await channel.basicGet(queue))
      bodies.push(message.bodyString() ?? "");
    return bodies;
  });

beforeAll(async () => {
  broker = await startDisposableBroker();
  await withChannel(async (channel) => {
    for (const queue of ["truth-auto", "truth-settled"]) {
      // Not durable, and the route publishes transient messages: the promise is about confirms, and
      // this keeps the disk out of the way, so the load is high enough to make RabbitMQ nack in batches.
      await channel.queueDeclare(queue, { durable: false }, { "x-max-length": 50, "x-overflow": "reject-publish" });
    }
  });
  const [host = "", port = ""] = broker.address.split(":");
  publishLink = await startCuttableLink({ host, port: Number(port) });
  consumeLink = await startCuttableLink({ host, port: Number(port) });
  gateway = await npmStart(routes(`amqp://guest:guest@${publishLink.address}/`, `amqp://guest:guest@${consumeLink.address}/`));
}, 180_000);

afterAll(async () => {
  await gateway?.stop();
  await publishLink?.close();
  await consumeLink?.close();
  await broker?.stop();
});

/**
 * With auto-ack (at most once) a message the broker has sent is gone, so a consuming connection cut
 * while a `basic.get-ok` is on the wire loses that message by design: that run cuts the publishing
 * link only. The settled run (at least once) cuts both, and may lose nothing.
 */
const faults = (autoAck: boolean) => [
  {
    afterMs: 1500,
    name: autoAck ? "publishing connections cut" : "all connections cut",
    run: () => Promise.resolve(expect(publishLink.cut() + (autoAck ? 0 : consumeLink.cut())).toBeGreaterThan(0)),
  },
  { afterMs: 1500, name: "memory alarm on", run: () => broker.setMemoryAlarm(true) },
  { afterMs: 1500, name: "memory alarm off", run: () => broker.setMemoryAlarm(false) },
];

describe("under load, while the broker refuses, cuts and blocks", () => {
  it.each([
    { path: "/at-most-once", queue: "truth-auto", autoAck: true },
    { path: "/at-least-once", queue: "truth-settled", autoAck: false },
  ])("every 202 on $path was queued, nothing refused was, and auto_ack $autoAck holds", async ({ path, queue, autoAck }) => {
    const report = await truthUnderLoad({
      gatewayUrl: gateway.url,
      publishPath: path,
      consume: { path, autoAck },
      publishers: 32,
      consumers: 8,
      seconds: SECONDS,
      faults: faults(autoAck),
      drainQueue: drainQueue(queue),
    });
    // What the run saw, shown only when an assertion fails.
    const seen = JSON.stringify({ answers: report.answers, faults: report.faults, consumed: report.consumed, left: report.leftInQueue });
    // Each fault must have happened, and the load must have met each kind of answer, or the test says nothing.
    expect(report.faults, seen).toHaveLength(3);
    expect(report.accepted, seen).toBeGreaterThan(200);
    expect(report.answers["502"] ?? 0, seen).toBeGreaterThan(0); // refused by the full queue (nacks)
    expect(report.answers["503"] ?? 0, seen).toBeGreaterThan(0); // blocked by the alarm, or reconnecting
    expect(report.false202, seen).toEqual([]);
    expect(report.falseRefusals, seen).toEqual([]);
    expect(report.strangers, seen).toEqual([]);
    // At most once: never twice. At least once: a settle lost to the cut may bring a message back.
    if (autoAck) expect(report.duplicates, seen).toEqual([]);
  });
});
