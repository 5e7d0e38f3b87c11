/**
 * The gateway's central promise, checked the way it breaks: many publishers with unique bodies and
 * many consumers on one queue, against a real broker that refuses, cuts and blocks meanwhile, and
 * afterwards an independent AMQP client that takes what is left in the queue. Every body answered
 * 202 must have been consumed or be in the queue; every body answered "not published" (4xx, 502,
 * 503) must be in neither; with auto-ack no body is delivered twice. Used by the test suite at a
 * size that fits CI and by `npm run bench` at full size.
 */
import type { ChildProcess } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { startRelay } from "../../scripts/lib/web-amqp-relay";
import { AMQPClient } from "@cloudamqp/amqp-client";
import { startCuttableLink } from "./cuttable-link";
import { startDisposableBroker } from "./disposable-broker";

/** One consuming route under load. */
export interface ConsumePath {
  path: string;
  /** Whether the route consumes with auto_ack (at most once) or settled (at least once). */
  autoAck: boolean;
}

export interface TruthUnderLoadOptions {
  /** The gateway's base URL, `http://127.0.0.1:PORT`. */
  gatewayUrl: string;
  publishPath: string;
  consume: ConsumePath;
  publishers: number;
  consumers: number;
  /** Shortest run in seconds; it also lasts until `tailMs` after the last fault. */
  seconds: number;
  /**
   * Faults to inject while the load runs, one after the other, each `afterMs` after the previous
   * one took effect (a fault's `run` resolves once it has). Sequenced rather than timed from the
   * start, since a broker's command-line tools take seconds to act on a busy machine.
   */
  faults?: Array<{ afterMs: number; name: string; run: () => Promise<unknown> }>;
  /** How long the load goes on after the last fault (default 2000 ms). */
  tailMs?: number;
  /** Takes every message left in the queue, with a client of the caller's own; returns the bodies. */
  drainQueue: () => Promise<string[]>;
}

export interface TruthUnderLoadReport {
  /** Answers to the publishers by status ("error" for a request that got no answer). */
  answers: Record<string, number>;
  /**
   * Answers to the consumers by status, likewise. With auto_ack a GET not answered 200 may have
   * taken a message no one got (at most once): where a false 202 of that mode went.
   */
  consumeAnswers: Record<string, number>;
  /** Bodies answered 202. */
  accepted: number;
  /** Bodies answered 202 that were neither consumed nor left in the queue: the promise broken. */
  false202: string[];
  /** Bodies answered as not published (400, 413, 422, 502, 503) that were consumed or queued all the same. */
  falseRefusals: string[];
  /** Bodies consumed more than once: never allowed with auto-ack; at least once allows them otherwise. */
  duplicates: string[];
  /** Bodies consumed or queued that no publisher ever sent. */
  strangers: string[];
  consumed: number;
  leftInQueue: number;
  faults: string[];
}

/** Statuses that promise nothing was published. */
const NOT_PUBLISHED = new Set([400, 413, 422, 502, 503]);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs the load, injects the faults, drains the queue and reports what each answer promised
 * against what happened. The accounting is taken the moment the load ends: when the last request
 * has been answered (none is ever abandoned: a request the client gives up on can take a message
 * that nobody then gets), the queue is drained at once, with no grace period in which the
 * gateway could still put something back.
 */
export const truthUnderLoad = async (options: TruthUnderLoadOptions): Promise<TruthUnderLoadReport> => {
  const run = crypto.randomUUID().slice(0, 8);
  const statusOf = new Map<string, number | "error">();
  const deliveries = new Map<string, number>();
  const consumeAnswers: Record<string, number> = {};
  const countAnswer = (status: number | "error") => (consumeAnswers[String(status)] = (consumeAnswers[String(status)] ?? 0) + 1);
  let deadline = Date.now() + options.seconds * 1000;
  let faultsDone = false;
  let publishersDone = false;

  const publisher = async (index: number) => {
    for (let n = 0; !faultsDone || Date.now() < deadline; n++) {
      const body = JSON.stringify({ run, publisher: index, n });
      try {
        const response = await fetch(`${options.gatewayUrl}${options.publishPath}`, {
          method: "POST",
          body,
          headers: { "content-type": "application/json" },
          signal: AbortSignal.timeout(30_000),
        });
        await response.arrayBuffer();
        statusOf.set(body, response.status);
        // The broker refusing or blocking answers at once: do not spin on it.
        if (response.status >= 500) await sleep(5);
      } catch {
        statusOf.set(body, "error");
      }
    }
  };

  const consumer = async () => {
    while (!publishersDone) {
      try {
        const response = await fetch(`${options.gatewayUrl}${options.consume.path}`, { signal: AbortSignal.timeout(30_000) });
        const text = await response.text();
        countAnswer(response.status);
        if (response.status === 200) deliveries.set(text, (deliveries.get(text) ?? 0) + 1);
        else await sleep(response.status === 204 ? 2 : 10);
      } catch {
        countAnswer("error");
        await sleep(10);
      }
    }
  };

  const started = Date.now();
  const injected: string[] = [];
  const faults = (async () => {
    try {
      for (const fault of options.faults ?? []) {
        await sleep(fault.afterMs);
        await fault.run();
        injected.push(`${fault.name} at ${Date.now() - started} ms`);
      }
    } finally {
      deadline = Math.max(deadline, Date.now() + (options.tailMs ?? 2000));
      faultsDone = true;
    }
  })();
  const consumers = Array.from({ length: options.consumers }, consumer);
  await Promise.all(Array.from({ length: options.publishers }, (_, i) => publisher(i)));
  publishersDone = true;
  // Each consumer's last GET is awaited, whatever it took.
  await Promise.all(consumers);
  await faults;

  // The load has ended: count now.
  const queued = await options.drainQueue();
  const queuedSet = new Set(queued);
  const present = new Set([...deliveries.keys(), ...queued]);
  const answers: Record<string, number> = {};
  for (const status of statusOf.values()) answers[String(status)] = (answers[String(status)] ?? 0) + 1;
  const accepted = [...statusOf].filter(([, status]) => status === 202).map(([body]) => body);
  return {
    answers,
    consumeAnswers,
    accepted: accepted.length,
    false202: accepted.filter((body) => !present.has(body)),
    falseRefusals: [...statusOf]
      .filter(([body, status]) => typeof status === "number" && NOT_PUBLISHED.has(status) && present.has(body))
      .map(([body]) => body),
    // Consumed twice, or consumed and still queued (so it would be delivered again).
    duplicates: [...deliveries].filter(([body, count]) => count > 1 || queuedSet.has(body)).map(([body]) => body),
    strangers: [...present].filter((body) => !statusOf.has(body)),
    consumed: [...deliveries.values()].reduce((a, b) => a + b, 0),
    leftInQueue: queued.length,
    faults: injected,
  };
};

/** One consume mode of the rig: its path (POST publishes, GET consumes) and queue. */
export interface TruthMode {
  path: string;
  queue: string;
  autoAck: boolean;
}

/** The rig's two modes: at most once (auto-ack) and at least once (settled). */
export const TRUTH_MODES: readonly TruthMode[] = [
  { path: "/at-most-once", queue: "truth-auto", autoAck: true },
  { path: "/at-least-once", queue: "truth-settled", autoAck: false },
];

/**
 * What truth under load runs against, for the test suite and the bench alike: a disposable
 * RabbitMQ node of its own, two links to it that can be cut (one for the publishing routes, one
 * for the consuming ones), a refusing queue per mode (`x-max-length` 50, `reject-publish`), the
 * routes to serve, and the faults.
 */
export interface TruthRig {
  /** The routes.yaml for the gateway under test. */
  routes: string;
  /**
   * Cut, then a memory alarm on after `spacingMs` each, then off after `alarmMs`. With auto-ack (at most once) a
   * message the broker has put on the wire is lost when its consuming connection is cut, by
   * design: that mode cuts the publishing link only; the settled mode cuts both.
   */
  faults(autoAck: boolean, spacingMs: number, alarmMs?: number): NonNullable<TruthUnderLoadOptions["faults"]>;
  /** Takes every message left in `queue` with an AMQP client of the rig's own. */
  drainQueue(queue: string): () => Promise<string[]>;
  stop(): Promise<void>;
}

/** How the gateway reaches the rig's broker: TCP (`amqp://`), or Web-AMQP through a websockify relay of the rig's own in front of each link (`ws://`). */
export type TruthTransport = "amqp" | "ws";

export const startTruthRig = async (transport: TruthTransport = "amqp"): Promise<TruthRig> => {
  const broker = await startDisposableBroker();
  const [host = "", port = ""] = broker.address.split(":");
  const publishLink = await startCuttableLink({ host, port: Number(port) });
  const consumeLink = await startCuttableLink({ host, port: Number(port) });
  // A cut link closes the relay's TCP connection, and the relay then closes the gateway's WebSocket.
  const relays = transport === "ws" ? await Promise.all([publishLink, consumeLink].map(async (link) => relayTo(link.address))) : [];
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
  await withChannel(async (channel) => {
    for (const { queue } of TRUTH_MODES) {
      // Not durable, and the routes publish transient messages: the promise is about confirms, and
      // this keeps the disk out of the way, so the load is high enough to make RabbitMQ nack in batches.
      await channel.queueDeclare(queue, { durable: false }, { "x-max-length": 50, "x-overflow": "reject-publish" });
    }
  });
  const [publishUrl, consumeUrl] =
    transport === "ws"
      ? relays.map((relay) => `ws://guest:guest@${relay.address}/?vhost=/`)
      : [publishLink, consumeLink].map((link) => `amqp://guest:guest@${link.address}/`);
  const routes = `routes:\n${TRUTH_MODES.map(
    ({ path, queue, autoAck }) =>
      `  - { id: ${queue}-in, path: ${path}, methods: [POST], amqp: { enabled: true, url: "${publishUrl}", producer: { routing_key: ${queue}, persistent: false } } }\n` +
      `  - { id: ${queue}-out, path: ${path}, methods: [GET], amqp: { enabled: true, url: "${consumeUrl}", consumer: { queue: ${queue}, auto_ack: ${autoAck} } } }\n`,
  ).join("")}`;
  return {
    routes,
    faults: (autoAck, spacingMs, alarmMs = spacingMs) => [
      {
        afterMs: spacingMs,
        name: autoAck ? "publishing link cut" : "both links cut",
        run: () => {
          const cut = publishLink.cut() + (autoAck ? 0 : consumeLink.cut());
          return cut > 0 ? Promise.resolve() : Promise.reject(new Error("the link had no connection to cut"));
        },
      },
      { afterMs: spacingMs, name: "memory alarm on", run: () => broker.setMemoryAlarm(true) },
      { afterMs: alarmMs, name: "memory alarm off", run: () => broker.setMemoryAlarm(false) },
    ],
    drainQueue: (queue) => () =>
      withChannel(async (channel) => {
        const bodies: string[] = [];
        for (let message = await channel.basicGet(queue); message; message = await channel.basicGet(queue))
          bodies.push(message.bodyString() ?? "");
        return bodies;
      }),
    async stop() {
      for (const relay of relays) relay.process.kill();
      await publishLink.close();
      await consumeLink.close();
      await broker.stop();
    },
  };
};

/** A websockify relay on a free local port, forwarding to `target`. */
const relayTo = async (target: string): Promise<{ address: string; process: ChildProcess }> => {
  const port = await new Promise<number>((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port: free } = probe.address() as AddressInfo;
      probe.close(() => resolve(free));
    });
  });
  const address = `127.0.0.1:${port}`;
  return { address, process: await startRelay(address, target) };
};
