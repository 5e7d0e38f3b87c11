/**
 * The bench's `callers` section: many callers on one route, each part on a gateway of its own.
 *
 * - Memory: workerd's peak resident set (VmHWM, reset when the load starts) above the same
 *   gateway idle once it has served the route's messages one at a time (pools, code and heaps
 *   sized, as a gateway in service is), for 200 concurrent 1 MiB publishes, 100 concurrent
 *   `GET ?max=100` of 1 MiB messages, and both at once, with a small caller publishing beside
 *   them all along (every one of its publishes must succeed). The same 200 publishes on the
 *   no-AMQP ceiling route show what the runtime alone takes for them.
 * - Fairness: an honest caller (small publishes and GETs on its own queue of the route) alone,
 *   then during each flood a hostile caller can make on the same route: 1 MiB bodies, missing
 *   queues, 1,000 long-polls, 200 streams. Its success and p99 latency during each.
 * - The many-callers rig (test/helpers/many-callers.ts) at full size, over both transports; on one
 *   shard, again while workerd's inspector collects garbage every half second, for the isolate's
 *   live memory (its RSS peak is mostly garbage not collected yet).
 */
import { procStatusMb } from "./proc-status";
import { writeFileSync } from "node:fs";
import { Agent, fetch as fetchOwnConnections } from "undici";
import { startLocalGateway, type LocalGateway } from "../../scripts/lib/local-gateway";
import {
  HONEST_KEY,
  HOSTILE_KEY,
  manyCallersNames,
  manyCallersRoutes,
  runManyCallers,
  setUpManyCallers,
  tearDownManyCallers,
  type ManyCallersReport,
} from "../../test/helpers/many-callers";
import { AMQP_URL, withChannel } from "./broker";
import { BENCH_WORKER, writeRoutes } from "./bench-routes";
import { connectInspector, mostAliveDuring } from "../../test/e2e/inspector";
import { CEILING_PREFIX } from "./worker-paths";

export interface MemoryRun {
  name: string;
  idleMb: number;
  peakMb: number;
  /** Answers of the large requests, by status. */
  large: Record<string, number>;
  /** Answers of the small caller beside them, by status. */
  small: Record<string, number>;
}

export interface FairnessRun {
  flood: string;
  /** The honest caller's requests and how many were not 2xx. */
  requests: number;
  failures: number;
  /** The honest caller's answers that were not 2xx, by status. */
  failed: Record<string, number>;
  p50: number;
  p99: number;
  /** The hostile caller's answers, by status. */
  hostile: Record<string, number>;
}

/**
 * The many-callers rig again, its isolate's live memory read through workerd's inspector: a full
 * garbage collection every {@link LIVE_EVERY_MS}, then the JS heap in use and the bytes of
 * ArrayBuffers, the most of them over the run.
 */
export interface LiveRun {
  /** The most the isolate held alive after a collection, JS heap and ArrayBuffers (MB). */
  liveMaxMb: number;
  /** Its two parts at that moment (MB). */
  heapMb: number;
  buffersMb: number;
  /** Collections made during the run, and how often. */
  samples: number;
  everyMs: number;
  /** Workerd's peak RSS above idle during this run (with the collections). */
  peakAboveIdleMb: number;
  accepted: number;
  /** Honest answers that were not 2xx in this run (shown: the plain run is the one judged on them). */
  honestFailures: string[];
  false202: number;
  strangers: number;
  duplicates: number;
}

export interface CallersFigures {
  memory: MemoryRun[];
  fairness: FairnessRun[];
  many: Array<
    ManyCallersReport & {
      transport: string;
      shards: number;
      autoAck: boolean;
      seconds: number;
      peakAboveIdleMb: number;
      /** The same load again with a full garbage collection each half second (one shard only). */
      live?: LiveRun;
    }
  >;
}

const MiB = 1024 * 1024;
const mebibyte = "m".repeat(MiB);

const resetPeak = (pid: number | undefined) => {
  if (pid) writeFileSync(`/proc/${pid}/clear_refs`, "5");
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const tally = (values: Array<number | string>) =>
  values.reduce<Record<string, number>>((all, value) => ({ ...all, [String(value)]: (all[String(value)] ?? 0) + 1 }), {});
const percentile = (values: number[], p: number) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))] ?? 0;

const status = async (request: Promise<Response>): Promise<number | string> => {
  try {
    const response = await request;
    await response.arrayBuffer();
    return response.status;
  } catch {
    return "error";
  }
};

/** Runs the section's `parts` (default all three). */
export const callersSection = async (
  port: number,
  seconds: number,
  log: (line: string) => void,
  parts: readonly string[] = ["memory", "fairness", "many"],
): Promise<CallersFigures> => ({
  memory: parts.includes("memory") ? await memoryRuns(port, log) : [],
  fairness: parts.includes("fairness") ? await fairnessRuns(port, seconds, log) : [],
  many: parts.includes("many") ? await manyRuns(port, seconds * 3, log) : [],
});

/** Peak RSS above idle for the large loads, with a small caller beside them. */
const memoryRuns = async (port: number, log: (line: string) => void): Promise<MemoryRun[]> => {
  const run = crypto.randomUUID().slice(0, 8);
  const [pubQueue, subQueue] = [`bench-callers-pub-${run}`, `bench-callers-sub-${run}`];
  writeRoutes(`
routes:
  - { id: callers-pub, path: /pub, amqp: { enabled: true, url: "${AMQP_URL}", producer: { routing_key: ${pubQueue}, max_body_bytes: 2097152 } } }
  - { id: callers-sub, path: /sub, amqp: { enabled: true, url: "${AMQP_URL}", consumer: { queue: ${subQueue}, auto_ack: true } } }
  - { id: callers-small, path: /small, amqp: { enabled: true, url: "${AMQP_URL}", producer: { routing_key: ${pubQueue} } } }
`);
  const fill = (count: number) =>
    withChannel(async (channel) => {
      await channel.confirmSelect();
      await Promise.all(Array.from({ length: count }, () => channel.basicPublish("", subQueue, mebibyte)));
    });
  const runs: MemoryRun[] = [];
  const measure = async (name: string, options: { publishes: number; gets: number; ceiling?: boolean }) => {
    await withChannel(async (channel) => {
      await channel.queueDeclare(pubQueue, { durable: false });
      await channel.queueDeclare(subQueue, { durable: false });
      await channel.queuePurge(pubQueue);
      await channel.queuePurge(subQueue);
    });
    const gateway = await startLocalGateway({ host: "127.0.0.1", port, main: BENCH_WORKER });
    const pid = gateway.runtimePid;
    const pubPath = options.ceiling ? `${CEILING_PREFIX}callers-pub` : "/pub";
    try {
      // Served before, one at a time: small publishes, then the large messages the run will carry.
      for (let index = 0; index < 200; index++) await status(fetch(`${gateway.url}/small`, { method: "POST", body: "warm" }));
      for (let index = 0; index < 20; index++) await status(fetch(`${gateway.url}${pubPath}`, { method: "POST", body: mebibyte }));
      if (options.gets > 0) {
        await fill(1200);
        for (let index = 0; index < 5; index++) await status(fetch(`${gateway.url}/sub?max=100`));
      }
      await sleep(3000);
      const idleMb = procStatusMb(pid, "VmRSS");
      resetPeak(pid);
      let loading = true;
      const small: Array<number | string> = [];
      const beside = (async () => {
        while (loading) {
          small.push(await status(fetch(`${gateway.url}/small`, { method: "POST", body: "small" })));
          await sleep(20);
        }
      })();
      const large = await Promise.all([
        ...Array.from({ length: options.publishes }, () =>
          status(fetch(`${gateway.url}${pubPath}`, { method: "POST", body: mebibyte, headers: { "content-type": "text/plain" } })),
        ),
        ...Array.from({ length: options.gets }, () => status(fetch(`${gateway.url}/sub?max=100`))),
      ]);
      loading = false;
      await beside;
      const result: MemoryRun = { name, idleMb, peakMb: procStatusMb(pid, "VmHWM"), large: tally(large), small: tally(small) };
      log(
        `  callers | memory | ${name}: idle ${idleMb.toFixed(1)} MB, peak ${result.peakMb.toFixed(1)} MB (+${(result.peakMb - idleMb).toFixed(1)}) | large ${JSON.stringify(result.large)} | small beside ${JSON.stringify(result.small)}`,
      );
      runs.push(result);
    } finally {
      await gateway.stop();
    }
  };
  try {
    await measure("200 concurrent 1 MiB publishes", { publishes: 200, gets: 0 });
    await measure("100 concurrent GET ?max=100 of 1 MiB messages", { publishes: 0, gets: 100 });
    await measure("both at once", { publishes: 200, gets: 100 });
    await measure("200 concurrent 1 MiB publishes on the no-AMQP ceiling route", { publishes: 200, gets: 0, ceiling: true });
  } finally {
    await withChannel(async (channel) => {
      await channel.queueDelete(pubQueue).catch(() => undefined);
      await channel.queueDelete(subQueue).catch(() => undefined);
    });
  }
  return runs;
};

/** An honest caller's success and latency alone, and during each flood of a hostile caller on the same route. */
const fairnessRuns = async (port: number, seconds: number, log: (line: string) => void): Promise<FairnessRun[]> => {
  const names = manyCallersNames();
  await setUpManyCallers(names, AMQP_URL, 300);
  // One shard, auto_ack, no rate_limit for the hostile caller to hit: what the floods do with nothing but the gateway's own bounds.
  writeRoutes(
    manyCallersRoutes(names, { brokerUrl: AMQP_URL, adminUrl: AMQP_URL, shards: 1, autoAck: true }).replace(/ {4}rate_limit: .*\n/, ""),
  );
  const gateway = await startLocalGateway({ host: "127.0.0.1", port });
  const base = `${gateway.url}/many`;
  const honest = { "x-api-key": HONEST_KEY };
  const hostile = { "x-api-key": HOSTILE_KEY };
  const floods: Record<string, { loops: number; act: () => Promise<number | string> }> = {
    none: { loops: 0, act: () => Promise.resolve("none") },
    "1 MiB bodies": {
      loops: 64,
      act: () =>
        status(
          fetch(`${base}/big?ex=${names.exchange}`, {
            method: "POST",
            body: mebibyte,
            headers: { ...hostile, "content-type": "text/plain" },
          }),
        ),
    },
    "missing queues": { loops: 64, act: () => status(fetch(`${base}/missing-${crypto.randomUUID().slice(0, 8)}`, { headers: hostile })) },
    "1,000 long-polls": { loops: 1000, act: () => status(fetch(`${base}/w${Math.floor(Math.random() * 8)}?wait=2`, { headers: hostile })) },
    "200 streams": {
      loops: 200,
      act: async () => {
        const controller = new AbortController();
        try {
          const response = await fetch(`${base}/w1`, { headers: { ...hostile, accept: "text/event-stream" }, signal: controller.signal });
          const reader = response.body?.getReader();
          await Promise.race([reader?.read(), sleep(2000)]);
          return response.status;
        } catch {
          return "error";
        } finally {
          controller.abort();
        }
      },
    },
  };
  const runs: FairnessRun[] = [];
  try {
    for (const [flood, { loops, act }] of Object.entries(floods)) {
      const deadline = Date.now() + seconds * 1000;
      const hostileAnswers: Array<number | string> = [];
      const latencies: number[] = [];
      const failed: Array<number | string> = [];
      const flooding = Array.from({ length: loops }, async () => {
        while (Date.now() < deadline) hostileAnswers.push(await act());
      });
      // Let the flood build up before the honest caller is measured.
      await sleep(loops > 0 ? 1000 : 0);
      // The honest caller has connections of its own, as a caller elsewhere would: on the
      // process's shared pool, a socket the gateway closed under a hostile upload (a 503 before
      // the body was read) could be handed to an honest request, whose "failure" would be ours.
      const ownConnections = new Agent({ connections: 8 });
      const honestFetch = (url: string, init: RequestInit = {}) =>
        fetchOwnConnections(url, { ...(init as object), dispatcher: ownConnections }) as unknown as Promise<Response>;
      const honestLoops = Array.from({ length: 8 }, async (_, index) => {
        for (let n = 0; Date.now() < deadline; n++) {
          const started = Date.now();
          const answer =
            (index + n) % 2 === 0
              ? await status(
                  honestFetch(`${base}/honest?ex=${names.exchange}`, {
                    method: "POST",
                    body: JSON.stringify({ index, n }),
                    headers: { ...honest, "content-type": "application/json" },
                  }),
                )
              : await status(honestFetch(`${base}/honest`, { headers: honest }));
          latencies.push(Date.now() - started);
          if (typeof answer !== "number" || answer >= 300) failed.push(answer);
        }
      });
      await Promise.all([...flooding, ...honestLoops]);
      await ownConnections.close();
      const result: FairnessRun = {
        flood,
        requests: latencies.length,
        failures: failed.length,
        failed: tally(failed),
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        hostile: tally(hostileAnswers),
      };
      log(
        `  callers | fairness | flood: ${flood} | honest ${result.requests} requests, ${result.failures} failed ${JSON.stringify(result.failed)}, p50 ${result.p50} ms, p99 ${result.p99} ms | hostile ${JSON.stringify(result.hostile)}`,
      );
      runs.push(result);
      await sleep(2500);
    }
  } finally {
    await gateway.stop();
    await tearDownManyCallers(names, AMQP_URL);
  }
  return runs;
};

/** How often the live-memory run collects the isolate's garbage and reads what is left. */
const LIVE_EVERY_MS = 500;

/**
 * The many-callers rig at full size: honest callers beside a hostile one doing everything at once.
 * Workerd's peak RSS is read for each; with one shard (the Worker and one route object, as one
 * isolate of 128 MB would hold them) the rig runs again on the same gateway while its inspector
 * collects garbage every half second, for what the isolate holds alive: the RSS peak is mostly
 * garbage V8 had not collected yet, which the isolate's limit does not count against it (V8
 * collects before it would exceed its heap's limit).
 */
const manyRuns = async (port: number, seconds: number, log: (line: string) => void): Promise<CallersFigures["many"]> => {
  const runs: CallersFigures["many"] = [];
  for (const { transport, shards, autoAck } of [
    { transport: "amqp", shards: 1, autoAck: true },
    { transport: "ws", shards: 4, autoAck: false },
  ]) {
    const names = manyCallersNames();
    await setUpManyCallers(names, AMQP_URL, 100);
    const brokerUrl = transport === "ws" ? "ws://guest:guest@127.0.0.1:15670/?vhost=/" : AMQP_URL;
    writeRoutes(manyCallersRoutes(names, { brokerUrl, adminUrl: AMQP_URL, shards, autoAck }));
    const inspectorPort = shards === 1 ? port + 1 : undefined;
    let gateway: LocalGateway | undefined;
    try {
      gateway = await startLocalGateway({ host: "127.0.0.1", port, inspectorPort });
      const pid = gateway.runtimePid;
      const common = { gatewayUrl: gateway.url, names, adminUrl: AMQP_URL, autoAck, dedupe: shards === 1 };
      const full = { ...common, seconds, honestPublishers: 32, honestConsumers: 16, hostileLoops: 4 };
      await runManyCallers({ ...common, seconds: 2, honestPublishers: 1, honestConsumers: 1, hostileLoops: 1 });
      await sleep(2000);
      const idle = procStatusMb(pid, "VmRSS");
      resetPeak(pid);
      const report = await runManyCallers(full);
      const peakAboveIdleMb = procStatusMb(pid, "VmHWM") - idle;
      log(
        `  callers | many callers | ${transport}://, ${shards} shard(s), auto_ack ${autoAck} | honest ${JSON.stringify(report.honestPublishes)} ${JSON.stringify(report.honestConsumes)}, p99 ${report.honestP99} ms | false 202s ${report.false202.length}, honest failures ${report.honestFailures.length}, duplicates ${report.duplicates.length}, strangers ${report.strangers.length} | peak +${peakAboveIdleMb.toFixed(1)} MB`,
      );
      const live = inspectorPort === undefined ? undefined : await liveRun(inspectorPort, pid, () => runManyCallers(full));
      if (live) {
        log(
          `  callers | many callers | ${transport}://, ${shards} shard(s), collected every ${LIVE_EVERY_MS} ms | live at most ${live.liveMaxMb.toFixed(1)} MB (heap ${live.heapMb.toFixed(1)}, buffers ${live.buffersMb.toFixed(1)}) over ${live.samples} collections | peak +${live.peakAboveIdleMb.toFixed(1)} MB | honest failures ${live.honestFailures.length} ${JSON.stringify(live.honestFailures)}`,
        );
      }
      runs.push({ ...report, transport, shards, autoAck, seconds, peakAboveIdleMb, ...(live ? { live } : {}) });
    } finally {
      await gateway?.stop();
      await tearDownManyCallers(names, AMQP_URL);
    }
  }
  return runs;
};

/** Runs `load` while collecting the isolate's garbage every {@link LIVE_EVERY_MS} and reading what is alive. */
const liveRun = async (inspectorPort: number, pid: number | undefined, load: () => Promise<ManyCallersReport>): Promise<LiveRun> => {
  const inspector = await connectInspector(inspectorPort);
  try {
    // Idle again, without the first run's garbage.
    await inspector.liveHeap();
    await sleep(2000);
    const idle = procStatusMb(pid, "VmRSS");
    resetPeak(pid);
    const { result: report, most } = await mostAliveDuring(inspector, LIVE_EVERY_MS, load);
    return {
      liveMaxMb: most.liveMb,
      heapMb: most.heapMb,
      buffersMb: most.buffersMb,
      samples: most.samples,
      everyMs: LIVE_EVERY_MS,
      peakAboveIdleMb: procStatusMb(pid, "VmHWM") - idle,
      accepted: report.accepted,
      honestFailures: report.honestFailures.slice(0, 5),
      false202: report.false202.length,
      strangers: report.strangers.length,
      duplicates: report.duplicates.length,
    };
  } finally {
    inspector.close();
  }
};
