/**
 * The benchmark's pressure sections, each on a gateway of its own so one cannot skew the other:
 * - truth under load at full size: unique-body publishers and consumers on a refusing queue of a
 *   disposable RabbitMQ node, while the link to it is cut and a memory alarm blocks publishers;
 *   the count of false 202s must be 0;
 * - memory: workerd's RSS after a `max_batch` batch (on a gateway of its own), and after 200k
 *   publishes at 64 connections and then 64 concurrent 1 MiB publishes (in that order: RSS rarely
 *   shrinks, so the largest peak goes last), each against the figure of the same gateway idle
 *   (target: less than 64 MB above it; a Cloudflare isolate has 128 MB), and against the same
 *   loads on the no-AMQP ceiling route. The batch has its own gateway because what it leaves in
 *   the heap stayed counted in the 1 MiB figure, which the ceiling's run (no batch) does not carry:
 *   the gateway's "own" growth there moved from 50 to 85 MB between runs.
 */
import { rssMb } from "./proc-status";
import { startLocalGateway, type LocalGateway } from "../../scripts/lib/local-gateway";
import {
  startTruthRig,
  TRUTH_MODES,
  truthUnderLoad,
  type TruthRig,
  type TruthTransport,
  type TruthUnderLoadReport,
} from "../../test/helpers/truth-under-load";
import { AMQP_URL, deleteQueues, freshQueues } from "./broker";
import { BENCH_WORKER, writeRoutes } from "./bench-routes";
import { load } from "./load";
import { CEILING_PREFIX } from "./worker-paths";

export interface TruthFigures extends Omit<
  TruthUnderLoadReport,
  "false202" | "falseRefusals" | "duplicates" | "strangers" | "consumeAnswers"
> {
  /** How the gateway reached the broker (absent in runs from before both were measured: amqp). */
  transport?: TruthTransport;
  /** The consumers' answers by status (absent in runs from before they were counted). */
  consumeAnswers?: Record<string, number>;
  autoAck: boolean;
  seconds: number;
  false202: number;
  falseRefusals: number;
  duplicates: number;
  strangers: number;
}

export interface MemoryFigures {
  idleMb: number;
  /** RSS after one batch of `batchSize` messages. */
  batchMb: number;
  /** The batch's gateway idle (absent in runs from before the batch had a gateway of its own: `idleMb`). */
  batchIdleMb?: number;
  batchSize: number;
  batchStatus: number;
  /** RSS after 64 concurrent 1 MiB publishes. */
  largeMb: number;
  largeAccepted: number;
  /** RSS after `publishes` publishes at 64 connections. */
  manyMb: number;
  publishes: number;
  /**
   * The same loads on the no-AMQP ceiling route of a fresh gateway of its own (the body carried to
   * the route's object, no broker): how much of the growth is the runtime's own, HTTP and heap.
   */
  ceiling: { idleMb: number; manyMb: number; largeMb: number };
  /** The same publishes and large publishes over the `ws://` transport, on a fresh gateway of its own. */
  ws?: { idleMb: number; manyMb: number; largeMb: number; publishes: number; largeAccepted: number };
}

/** Truth under load at full size, both consume modes, each on its own queue (the test suite's rig). */
export const truthSection = async (port: number, seconds: number, log: (line: string) => void): Promise<TruthFigures[]> => {
  const figures: TruthFigures[] = [];
  // Over both transports, each on a rig and a gateway of its own.
  for (const transport of ["amqp", "ws"] as const) figures.push(...(await truthRun(transport, port, seconds, log)));
  return figures;
};

const truthRun = async (transport: TruthTransport, port: number, seconds: number, log: (line: string) => void): Promise<TruthFigures[]> => {
  let rig: TruthRig | undefined;
  let gateway: LocalGateway | undefined;
  try {
    rig = await startTruthRig(transport);
    writeRoutes(rig.routes);
    gateway = await startLocalGateway({ host: "127.0.0.1", port });
    const figures: TruthFigures[] = [];
    for (const { path, queue, autoAck } of TRUTH_MODES) {
      const started = Date.now();
      const third = (seconds * 1000) / 3;
      const report = await truthUnderLoad({
        gatewayUrl: gateway.url,
        publishPath: path,
        consume: { path, autoAck },
        publishers: 48,
        consumers: 16,
        seconds,
        faults: rig.faults(autoAck, third / 2, third),
        tailMs: third,
        drainQueue: rig.drainQueue(queue),
      });
      const one: TruthFigures = {
        ...report,
        transport,
        autoAck,
        seconds: (Date.now() - started) / 1000,
        false202: report.false202.length,
        falseRefusals: report.falseRefusals.length,
        duplicates: report.duplicates.length,
        strangers: report.strangers.length,
      };
      log(
        `  truth | ${transport}:// | auto_ack ${autoAck} | ${JSON.stringify(one.answers)} | GETs ${JSON.stringify(one.consumeAnswers)} | false 202s ${one.false202}, false refusals ${one.falseRefusals}, duplicates ${one.duplicates}, strangers ${one.strangers} | ${one.faults.join(", ")}`,
      );
      figures.push(one);
    }
    return figures;
  } finally {
    await gateway?.stop();
    await rig?.stop();
  }
};

const MEMORY_QUEUE = "bench-memory";
const MAX_BATCH = 10_000;

/** RSS of a fresh gateway idle, then after each kind of pressure; then the same for the ceiling route. */
export const memorySection = async (
  port: number,
  publishes: number,
  payload: string,
  log: (line: string) => void,
): Promise<MemoryFigures> => {
  writeRoutes(`
routes:
  - { id: memory-one, path: /one, amqp: { enabled: true, url: "${AMQP_URL}", producer: { routing_key: ${MEMORY_QUEUE}, max_body_bytes: 2097152 } } }
  - { id: memory-ws, path: /ws, amqp: { enabled: true, url: "ws://guest:guest@127.0.0.1:15670/?vhost=/", producer: { routing_key: ${MEMORY_QUEUE}, max_body_bytes: 2097152 } } }
  - { id: memory-batch, path: /batch, amqp: { enabled: true, url: "${AMQP_URL}", producer: { routing_key: ${MEMORY_QUEUE}, batch: true, max_batch: ${MAX_BATCH}, max_body_bytes: 16777216 } } }
`);
  const batchFigures = await batchRun(port, payload);
  const gatewayFigures = await pressureRun(port, "/one", publishes, payload);
  const ceilingFigures = await pressureRun(port, `${CEILING_PREFIX}memory-one`, publishes, payload);
  const wsFigures = await pressureRun(port, "/ws", publishes, payload);
  const figures: MemoryFigures = {
    ...gatewayFigures,
    ...batchFigures,
    ceiling: ceilingFigures,
    ws: {
      idleMb: wsFigures.idleMb,
      manyMb: wsFigures.manyMb,
      largeMb: wsFigures.largeMb,
      publishes: wsFigures.publishes,
      largeAccepted: wsFigures.largeAccepted,
    },
  };
  log(
    `  memory | batch: idle ${batchFigures.batchIdleMb.toFixed(1)} MB, after a batch of ${MAX_BATCH} (${figures.batchStatus}) ${figures.batchMb.toFixed(1)} MB | idle ${figures.idleMb.toFixed(1)} MB | ${figures.publishes} publishes ${figures.manyMb.toFixed(1)} MB | 64 × 1 MiB (${figures.largeAccepted} × 202) ${figures.largeMb.toFixed(1)} MB`,
  );
  log(
    `  memory | ws://: idle ${wsFigures.idleMb.toFixed(1)} MB | ${wsFigures.publishes} publishes ${wsFigures.manyMb.toFixed(1)} MB | 64 × 1 MiB (${wsFigures.largeAccepted} × 202) ${wsFigures.largeMb.toFixed(1)} MB`,
  );
  log(
    `  memory | ceiling: idle ${ceilingFigures.idleMb.toFixed(1)} MB | ${publishes} requests ${ceilingFigures.manyMb.toFixed(1)} MB | 64 × 1 MiB ${ceilingFigures.largeMb.toFixed(1)} MB`,
  );
  return figures;
};

/**
 * One fresh gateway (the bench Worker, which has the ceiling route), warmed on `warmPath` as a
 * gateway is once it has served a little (connections open, code compiled), then `measure` from
 * its idle RSS; its queue emptied before and deleted after.
 */
const onFreshGateway = async <T>(
  port: number,
  warmPath: string,
  payload: string,
  measure: (gateway: LocalGateway, idleMb: number) => Promise<T>,
): Promise<T> => {
  await freshQueues(MEMORY_QUEUE);
  const gateway = await startLocalGateway({ host: "127.0.0.1", port, main: BENCH_WORKER });
  try {
    await load({ url: `${gateway.url}${warmPath}`, method: "POST", headers: JSON_BODY, body: payload, connections: 16, amount: 2_000 });
    await settle();
    return await measure(gateway, rssMb(gateway.runtimePid));
  } finally {
    await gateway.stop();
    await deleteQueues(MEMORY_QUEUE);
  }
};

const JSON_BODY = { "content-type": "application/json" };

/** Idle, then after one batch of `max_batch` messages. */
const batchRun = (port: number, payload: string) =>
  onFreshGateway(port, "/one", payload, async (gateway, batchIdleMb) => {
    const batch = `[${Array.from({ length: MAX_BATCH }, () => payload).join(",")}]`;
    const batchAnswer = await fetch(`${gateway.url}/batch`, { method: "POST", body: batch, headers: JSON_BODY });
    await batchAnswer.arrayBuffer();
    await settle();
    return { batchIdleMb, batchMb: rssMb(gateway.runtimePid), batchSize: MAX_BATCH, batchStatus: batchAnswer.status };
  });

/** Idle, after many small publishes, then after 64 large ones, on `path`. */
const pressureRun = (port: number, path: string, publishes: number, payload: string) =>
  onFreshGateway(port, path, payload, async (gateway, idleMb) => {
    const one = `${gateway.url}${path}`;
    let done = 0;
    for (let quarter = 0; quarter < 4; quarter++) {
      done += (await load({ url: one, method: "POST", headers: JSON_BODY, body: payload, connections: 64, amount: publishes / 4 })).ok;
      await freshQueues(MEMORY_QUEUE);
    }
    await settle();
    const manyMb = rssMb(gateway.runtimePid);

    const mebibyte = "x".repeat(1024 * 1024);
    const large = await Promise.all(
      Array.from({ length: 64 }, () =>
        fetch(one, { method: "POST", body: mebibyte, headers: { "content-type": "text/plain" } }).then((r) => r.status),
      ),
    );
    await settle();
    const largeMb = rssMb(gateway.runtimePid);
    return {
      idleMb,
      manyMb,
      publishes: done,
      largeMb,
      largeAccepted: large.filter((status) => status === 202).length,
    };
  });

/** Lets timers and the garbage collector catch up before RSS is read. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 2_000));
