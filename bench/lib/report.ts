import { cpus, totalmem } from "node:os";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { format, resolveConfig } from "prettier";
import type { MemoryFigures, TruthFigures } from "./pressure";
import type { CallersFigures } from "./callers";
import { BROKER_FLOOR, RUNTIME_CONNECTIONS, RUNTIME_VARIANT, type Runtime, type RuntimePeaks } from "./runtime-names";
import type { AfterClose } from "./consume-modes";
import { BATCH_CLIENTS, SSE_CLIENTS, VARIANTS } from "./consume-mode-names";

/** The `push` section's rows (bench/lib/push.ts). */
const isPush = (m: Measurement) => m.section === "push";
/** The throughput section's rows. */
type ThroughputSection = "publish" | "floor" | "consume" | "shards" | "batch";
/** The `consume` section's rows (bench/lib/consume-modes.ts): batches, long-poll, Server-Sent Events. */
type ConsumeModeSection = "batch consume" | "long-poll" | "sse";
const CONSUME_MODE_SECTIONS: ReadonlySet<Measurement["section"]> = new Set<ConsumeModeSection>(["batch consume", "long-poll", "sse"]);
const isConsumeMode = (m: Measurement) => CONSUME_MODE_SECTIONS.has(m.section);
/** The `routing` section's rows (bench/lib/routing.ts): a templated routing key, and request/reply. */
type RoutingSection = "routing" | "request/reply";
const ROUTING_SECTIONS: ReadonlySet<Measurement["section"]> = new Set<RoutingSection>(["routing", "request/reply"]);
const isRouting = (m: Measurement) => ROUTING_SECTIONS.has(m.section);
/** The `runtimes` section's rows (bench/lib/runtimes.ts): workerd, Node and Deno side by side. */
const isRuntimes = (m: Measurement) => m.section === "runtimes";
/** The throughput section's rows: what latest.json, throughput.svg and the main block show. */
const isMain = (m: Measurement) => !isConsumeMode(m) && !isRouting(m) && !isRuntimes(m) && !isPush(m);

/** The throughput sections' reference variants, named once for the runner that measures them and the verdicts that read them. */
export const THROUGHPUT = {
  publishNoAmqp: "gateway, no AMQP",
  publishCeiling: "ceiling (no AMQP)",
  consumeNoAmqp: "gateway GET, no AMQP",
  consumeCeiling: "ceiling (object call, no AMQP)",
  /** The broker's management API requests, answered by the gateway's `management_api`. */
  publishManagementDialect: "gateway management_api",
  consumeManagementDialect: "gateway management_api get",
} as const;

/**
 * The `routing` section's shape and variant names, shared with bench/lib/routing.ts, which
 * measures them (here rather than there, so that judging them does not load the gateway's runner).
 */
export const ROUTING = {
  connections: 64,
  payload: "250 B",
  fixed: "gateway, fixed routing_key",
  templated: "gateway, routing_key {key} from the path",
  replyGateway: "gateway POST, reply: true",
  replyDirect: "amqp-client RPC, direct reply-to",
  ceiling: THROUGHPUT.publishCeiling,
  /** `producer.schema`: the same 2 KB JSON document to a route with a 20-property schema and to one without. */
  schemaPayload: "2 KB JSON document",
  withSchema: "gateway, producer.schema (20 properties)",
  withoutSchema: "gateway, no schema",
} as const;

/** The `push` section's shape and variant names, shared with bench/lib/push.ts. */
export const PUSH = {
  concurrencies: [1, 16],
  gateway: "gateway push (npm start)",
  direct: "amqp-client consumer + fetch",
  ceiling: "workerd fetch alone (no AMQP)",
} as const;

/** One compared figure: the mean over its rounds (and each round's, where judged ratios pair them). */
export interface Measurement {
  section: ThroughputSection | ConsumeModeSection | RoutingSection | "runtimes" | "push";
  variant: string;
  payload: string;
  /** HTTP connections, or publishes in flight for the direct client. */
  connections: number;
  rps: number;
  /** Messages per second (differs from rps for batches). */
  msgs: number;
  p50: number;
  p99: number;
  errors: number;
  /** 2xx answers whose message is not in the queue. Must be 0. */
  lost: number;
  /**
   * Messages in the queue beyond the 2xx answers, up to one per connection: requests still in
   * flight when the load generator stopped at its deadline, which the gateway completed but
   * nobody waited for. Not a fault.
   */
  unanswered: number;
  /** Messages beyond even that bound: duplicates. Must be 0. */
  duplicated: number;
  rounds: number;
  /** The gateway's workerd: CPU microseconds (all its threads) per answered request, where it served the variant. */
  cpuUs?: number;
  /**
   * Each round's own figures, in round order. Every variant of a comparison runs once a round, so
   * round i of two variants ran minutes apart at most: a judged ratio pairs them (see `paired`).
   */
  perRound?: Array<{ rps: number; cpuUs?: number }>;
}

export interface Report {
  date: string;
  /** The sections that ran (BENCH_SECTIONS); without it, the throughput, truth and memory ones. */
  sections?: string[];
  seconds: number;
  rounds: number;
  rabbitmq: string;
  measurements: Measurement[];
  /** workerd's RSS before the run and after each quarter of it. */
  memory: { publishes: number; stepsMb: number[]; lost: number; duplicated: number; errors: number };
  /** Truth under load at full size, per consume mode; absent when the section was skipped. */
  truth?: TruthFigures[];
  /** What each SSE run's route held 2 s after its clients closed; absent when `consume` was skipped. */
  sseAfterClose?: AfterClose[];
  /** The sizes of the `consume` section's runs; absent when it was skipped. */
  consumeSizes?: { messages: number; sseMessages: number; samples: number };
  /** RSS of a fresh gateway idle and after each kind of pressure; absent when skipped. */
  pressureMemory?: MemoryFigures;
  /** Many callers on one route: memory, fairness, the rig at full size; absent when `callers` was skipped. */
  callers?: CallersFigures;
  /** Each runtime's peak resident set over the `runtimes` section, in MB; absent when it was skipped. */
  runtimePeaks?: RuntimePeaks;
}

/** How far above the idle gateway workerd's peak may go under many callers' large requests at once. */
export const CALLERS_MEMORY_MB = 96;
/** A Cloudflare isolate's memory: the bound of the many-callers rig's mixed load on one route object. */
const ISOLATE_MB = 128;

/** How far above its idle figure workerd's RSS may be after any pressure (a Cloudflare isolate has 128 MB). */
export const MEMORY_HEADROOM_MB = 64;

export interface Verdict {
  target: string;
  measured: string;
  met: boolean;
  /** Reported without a target to meet: shown as "measured". */
  info?: boolean;
}

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const RESULTS = `${ROOT}bench/results`;

const find = (report: Report, section: Measurement["section"], variant: string, payload: string, connections: number) =>
  report.measurements.find((m) => m.section === section && m.variant === variant && m.payload === payload && m.connections === connections);

type Ratio = (a: number | undefined, b: number | undefined) => number;

const ratio: Ratio = (a, b) => (a && b ? a / b : Number.NaN);

/** One run of a variant, as `summarize` takes it (the CPU where the gateway served it). */
export type RoundFigures = Pick<Measurement, "rps" | "p50" | "p99" | "errors" | "lost" | "unanswered" | "duplicated" | "cpuUs">;

/** One measurement from a variant's rounds: means of the rates and latencies, sums of the counts, and each round's own rate and CPU. */
export const summarize = (
  section: Measurement["section"],
  variant: string,
  payload: string,
  connections: number,
  results: RoundFigures[],
): Measurement => ({
  section,
  variant,
  payload,
  connections,
  rps: mean(results.map((r) => r.rps)),
  msgs: mean(results.map((r) => r.rps)),
  p50: mean(results.map((r) => r.p50)),
  p99: mean(results.map((r) => r.p99)),
  errors: sum(results.map((r) => r.errors)),
  lost: sum(results.map((r) => r.lost)),
  unanswered: sum(results.map((r) => r.unanswered)),
  duplicated: sum(results.map((r) => r.duplicated)),
  rounds: results.length,
  ...(results.some((r) => Number.isFinite(r.cpuUs)) ? { cpuUs: mean(results.map((r) => r.cpuUs ?? Number.NaN)) } : {}),
  perRound: results.map((r) => (r.cpuUs !== undefined && Number.isFinite(r.cpuUs) ? { rps: r.rps, cpuUs: r.cpuUs } : { rps: r.rps })),
});

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

/** A judged ratio: its value, and the lowest and highest of the rounds it was taken from. */
export interface PairedRatio {
  value: number;
  low: number;
  high: number;
  /** Rounds paired; 0 when the figures had none and the ratio is of their means. */
  rounds: number;
}

/**
 * `figure(a) / figure(b)` as the median of the rounds' own ratios (round i of `a` over round i of
 * `b`; with an even count, the geometric mean of the middle two). Every variant of a comparison
 * runs once a round, all of a round's runs within half a minute, while the machine's rate moved
 * ±15% from one run to the next here: a round the machine spoiled for one side is one ratio among
 * several, not a share of both means. A round without a figure on either side (a NaN CPU, a 0
 * rate of the reference) makes the whole ratio NaN: never met. Only a report without rounds on
 * both sides (older ones) gets the ratio of the means.
 */
export const paired = (
  a: Measurement | undefined,
  b: Measurement | undefined,
  figure: (round: { rps: number; cpuUs?: number }) => number | undefined,
): PairedRatio => {
  if (!a?.perRound || !b?.perRound) {
    const value = ratio(a && figure(a), b && figure(b));
    return { value, low: value, high: value, rounds: 0 };
  }
  const roundsOfB = b.perRound;
  const ratios =
    a.perRound.length === roundsOfB.length
      ? a.perRound.map((round, i) => roundRatio(figure(round), roundsOfB[i] && figure(roundsOfB[i])))
      : [Number.NaN];
  const sorted = [...ratios].sort((x, y) => x - y);
  const middle = Math.floor(sorted.length / 2);
  const value = ratios.some(Number.isNaN)
    ? Number.NaN
    : sorted.length % 2 === 1
      ? (sorted[middle] as number)
      : Math.sqrt((sorted[middle - 1] as number) * (sorted[middle] as number));
  return { value, low: sorted[0] ?? Number.NaN, high: sorted[sorted.length - 1] ?? Number.NaN, rounds: ratios.length };
};

/** One round's ratio: 0 for a side that did nothing, NaN for a reference that did nothing or a missing figure. */
const roundRatio = (a: number | undefined, b: number | undefined): number =>
  a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b <= 0 ? Number.NaN : a / b;

/**
 * How far below a target one round may fall while the median meets it: the machine's own
 * run-to-run noise (±15%) and a little more. A gateway that stalled for a round (a ratio near 0)
 * fails, whatever the other rounds did.
 */
const ROUND_SLACK = 0.8;

/** A judged ratio meets `target`: its median does, and no round is below {@link ROUND_SLACK} of it. */
const meets = ({ value, low }: PairedRatio, target: number): boolean => value >= target && low >= ROUND_SLACK * target;

/** "0.88× (median of 3 rounds, 0.81–0.93×)", or "0.88× (of the means)" for a report without rounds. */
const showPaired = ({ value, low, high, rounds }: PairedRatio): string =>
  rounds === 0
    ? `${value.toFixed(2)}× (of the means)`
    : Number.isNaN(value)
      ? `no figure (a round of ${rounds} had none to compare)`
      : `${value.toFixed(2)}× (median of ${rounds} rounds, ${low.toFixed(2)}–${high.toFixed(2)}×)`;

/** The targets, each checked against this run's figures; a section that did not run has none. */
export const verdicts = (report: Report): Verdict[] => [
  ...mainVerdicts(report),
  ...consumeVerdicts(report),
  ...routingVerdicts(report),
  ...callersVerdicts(report),
  ...runtimesVerdicts(report),
];

/** How many times the workerd gateway's rate each self-hosted runtime must reach, for publish and for consume (250 B). */
const RUNTIME_SPEEDUP: Record<Exclude<Runtime, "workerd">, number> = { node: 2, deno: 1.5 };
/** Every runtime's gateway against the most it could do: the lower of its own no-AMQP ceiling and the broker's floor. */
const RUNTIME_OF_CEILING = 0.8;

/**
 * Round by round, the lower rate of `a` and `b`: what a gateway could reach at most, when `a` is
 * its HTTP side alone and `b` the broker's side alone on the same cores.
 */
export const lowerOf = (a: Measurement | undefined, b: Measurement | undefined): Measurement | undefined => {
  if (!a || !b) return undefined;
  const { perRound: roundsOfA, ...rest } = a;
  const roundsOfB = b.perRound;
  // Rounds that do not pair up leave a round with no figure: the ratio to it is never met.
  const perRound =
    roundsOfA && roundsOfB
      ? roundsOfA.length === roundsOfB.length
        ? roundsOfA.map((round, i) => ({ rps: Math.min(round.rps, roundsOfB[i]?.rps ?? Number.NaN) }))
        : [{ rps: Number.NaN }]
      : undefined;
  return { ...rest, variant: `lower of ${a.variant} and ${b.variant}`, rps: Math.min(a.rps, b.rps), ...(perRound ? { perRound } : {}) };
};

/** The `runtimes` section's targets, when it ran. */
export const runtimesVerdicts = (report: Report): Verdict[] => {
  const rows = report.measurements.filter(isRuntimes);
  if (rows.length === 0) return [];
  const row = (variant: string, payload: string) =>
    rows.find((m) => m.variant === variant && m.payload === payload && m.connections === RUNTIME_CONNECTIONS);
  const list: Verdict[] = [];
  for (const [runtime, speedup] of Object.entries(RUNTIME_SPEEDUP) as Array<[Exclude<Runtime, "workerd">, number]>) {
    for (const [what, variant] of [
      ["publish", RUNTIME_VARIANT.publish],
      ["consume", RUNTIME_VARIANT.consume],
    ] as const) {
      const judged = paired(row(variant(runtime), "250 B"), row(variant("workerd"), "250 B"), (round) => round.rps);
      list.push({
        target: `${runtime} ${what} ≥ ${speedup}× the workerd gateway (250 B, c=${RUNTIME_CONNECTIONS})`,
        measured: showPaired(judged),
        met: meets(judged, speedup),
      });
    }
  }
  for (const runtime of ["workerd", "node", "deno"] as const) {
    for (const payload of ["250 B", "16 KiB"]) {
      for (const [what, variant, ceiling, floor] of [
        ["publish", RUNTIME_VARIANT.publish, RUNTIME_VARIANT.publishCeiling, BROKER_FLOOR.publish],
        ["consume", RUNTIME_VARIANT.consume, RUNTIME_VARIANT.consumeCeiling, BROKER_FLOOR.consume],
      ] as const) {
        const gateway = row(variant(runtime), payload);
        const judged = paired(gateway, lowerOf(row(ceiling(runtime), payload), row(floor, payload)), (round) => round.rps);
        const ofCeiling = paired(gateway, row(ceiling(runtime), payload), (round) => round.rps);
        list.push({
          target: `${runtime} ${what} ≥ ${RUNTIME_OF_CEILING}× the lower of its own no-AMQP ceiling and the broker's floor (${payload})`,
          measured: `${showPaired(judged)}; of the ceiling alone ${ofCeiling.value.toFixed(2)}×`,
          met: meets(judged, RUNTIME_OF_CEILING),
        });
      }
    }
    const own = rows.filter((m) => m.variant.startsWith(`${runtime} `));
    const lost = sum(own.map((m) => m.lost));
    const duplicated = sum(own.map((m) => m.duplicated));
    list.push({
      target: `${runtime}: 0 false 2xx (lost) and 0 duplicated`,
      measured: `${lost} lost, ${duplicated} duplicated`,
      met: lost === 0 && duplicated === 0,
    });
    const peak = report.runtimePeaks?.[runtime];
    if (peak !== undefined)
      list.push({ target: `${runtime}: peak resident set over the section`, measured: `${peak.toFixed(0)} MB`, met: true, info: true });
  }
  return list;
};

/** The `callers` section's targets, when it ran. */
export const callersVerdicts = (report: Report): Verdict[] => {
  const callers = report.callers;
  if (!callers) return [];
  const list: Verdict[] = [];
  for (const run of callers.memory) {
    const above = run.peakMb - run.idleMb;
    const smallFailures = Object.entries(run.small)
      .filter(([status]) => !/^2\d\d$/.test(status))
      .reduce((sum, [, count]) => sum + count, 0);
    const ceiling = /ceiling/.test(run.name);
    list.push({
      target: ceiling
        ? `${run.name}: the runtime's own peak above idle (shown)`
        : `${run.name}: workerd's peak RSS < ${CALLERS_MEMORY_MB} MB above the idle gateway, and every small publish beside them succeeds`,
      measured: `+${above.toFixed(1)} MB (${run.idleMb.toFixed(0)} → ${run.peakMb.toFixed(0)} MB); large ${JSON.stringify(run.large)}; small ${JSON.stringify(run.small)}`,
      met: ceiling || (above < CALLERS_MEMORY_MB && smallFailures === 0),
      ...(ceiling ? { info: true } : {}),
    });
  }
  const alone = callers.fairness.find((run) => run.flood === "none");
  for (const run of callers.fairness) {
    list.push({
      target:
        run.flood === "none"
          ? "an honest caller alone on the route: its success and latency (the baseline)"
          : `an honest caller beside a flood of ${run.flood} on the same route: every request succeeds (p99 shown against the baseline)`,
      measured: `${run.requests - run.failures} of ${run.requests} succeeded${run.failures > 0 ? ` (failed: ${JSON.stringify(run.failed)})` : ""}; p50 ${run.p50} ms, p99 ${run.p99} ms${alone && run !== alone ? ` (alone: ${alone.p99} ms)` : ""}`,
      met: run.failures === 0 && run.requests > 0,
    });
  }
  for (const run of callers.many) {
    const { live } = run;
    list.push({
      // One route object and the Worker share the isolate here as they would share nothing on
      // Cloudflare (an isolate of 128 MB each): with one shard, what they hold alive is held to one
      // isolate's size. The RSS peak is shown: mostly garbage V8 had not collected yet, which an
      // isolate's limit does not count (V8 collects before it would exceed it); with a collection
      // every half second the same load peaks far lower.
      target: `many callers, ${run.transport}://, ${run.shards} shard(s), auto_ack ${run.autoAck}, ${run.seconds} s: every honest 2xx true, no honest failure, no stranger${run.autoAck ? ", no duplicate" : ""}${live ? `; the same load again with a full collection every ${live.everyMs} ms: no false 202, no stranger${run.autoAck ? ", no duplicate" : ""}, and the isolate's live memory (JS heap and buffers after each collection) < ${ISOLATE_MB} MB (RSS peaks and that run's honest failures shown)` : " (RSS peak shown)"}`,
      measured: `${run.accepted} honest 202s, ${run.consumed} consumed, ${run.leftInQueue} left; false 202s ${run.false202.length}, honest failures ${run.honestFailures.length}, strangers ${run.strangers.length}, duplicates ${run.duplicates.length}; honest p99 ${run.honestP99} ms; RSS peak +${run.peakAboveIdleMb.toFixed(1)} MB${
        live
          ? `; collected: live at most ${live.liveMaxMb.toFixed(1)} MB (heap ${live.heapMb.toFixed(1)}, buffers ${live.buffersMb.toFixed(1)}) over ${live.samples} collections, RSS peak +${live.peakAboveIdleMb.toFixed(1)} MB, ${live.accepted} honest 202s, honest failures ${live.honestFailures.length}${live.honestFailures.length > 0 ? ` (${live.honestFailures.join("; ")})` : ""}, false 202s ${live.false202}, strangers ${live.strangers}, duplicates ${live.duplicates}`
          : ""
      }`,
      met:
        run.false202.length === 0 &&
        run.honestFailures.length === 0 &&
        run.strangers.length === 0 &&
        (!run.autoAck || run.duplicates.length === 0) &&
        (run.shards > 1 ||
          (live !== undefined &&
            live.samples > 0 &&
            live.liveMaxMb < ISOLATE_MB &&
            live.false202 === 0 &&
            live.strangers === 0 &&
            (!run.autoAck || live.duplicates === 0))),
    });
  }
  return list;
};

/** The throughput, truth and memory sections' targets. */
const mainVerdicts = (report: Report): Verdict[] => [
  ...(report.measurements.some(isMain) ? throughputVerdicts(report, ratio) : []),
  ...pressureVerdicts(report),
];

/** The `consume` section's targets, when it ran. */
const consumeVerdicts = (report: Report): Verdict[] => (report.measurements.some(isConsumeMode) ? consumeModeVerdicts(report, ratio) : []);

/**
 * The `push` section's targets, when it ran: the push route ≥ 0.7× amqp-client's own consumer
 * feeding the same endpoint at concurrency 16; at 1, and the latencies, reported; nothing lost.
 */
export const pushVerdicts = (report: Report): Verdict[] => {
  const rows = report.measurements.filter(isPush);
  if (rows.length === 0) return [];
  const row = (variant: string, concurrency: number) => rows.find((m) => m.variant === variant && m.connections === concurrency);
  const list: Verdict[] = PUSH.concurrencies.map((concurrency) => {
    const gateway = row(PUSH.gateway, concurrency);
    const direct = row(PUSH.direct, concurrency);
    const ceiling = row(PUSH.ceiling, concurrency);
    const vsDirect = paired(gateway, direct, (round) => round.rps);
    // The gateway's fetches are workerd's: where workerd's fetch alone is slower than the direct
    // client, 0.7× of the direct client is out of any push's reach here, and the lower one judges.
    const vsBound = paired(gateway, lowerOf(direct, ceiling), (round) => round.rps);
    const vsCeiling = paired(gateway, ceiling, (round) => round.rps);
    const judged = concurrency === 16;
    return {
      target: `push at concurrency ${concurrency}: the gateway ${judged ? "≥ 0.7×" : "against"} amqp-client's own consumer + fetch, or workerd's own fetch alone where that is lower (msg/s, 250 B, the same endpoint)`,
      measured: `${vsBound.value.toFixed(2)}× the lower (rounds ${vsBound.low.toFixed(2)}–${vsBound.high.toFixed(2)}); ${vsDirect.value.toFixed(2)}× the direct client, ${vsCeiling.value.toFixed(2)}× workerd's fetch alone; latency publish → receipt p50 ${ms(gateway?.p50)} ms, p99 ${ms(gateway?.p99)} ms`,
      met: judged ? vsBound.value >= 0.7 : true,
      ...(judged ? {} : { info: true }),
    };
  });
  const delivering = rows.filter((m) => m.variant !== PUSH.ceiling);
  const lost = sum(delivering.map((m) => m.lost));
  const duplicated = sum(delivering.map((m) => m.duplicated));
  const left = sum(delivering.map((m) => m.unanswered));
  list.push({
    target: "push: every message delivered once, none left in its queue",
    measured: `${lost} lost, ${duplicated} delivered twice, ${left} left`,
    met: lost === 0 && duplicated === 0 && left === 0,
  });
  return list;
};

/** The `routing` section's targets, when it ran. */
const routingVerdicts = (report: Report): Verdict[] => {
  if (!report.measurements.some(isRouting)) return [];
  const { connections, payload } = ROUTING;
  const fixed = find(report, "routing", ROUTING.fixed, payload, connections);
  const templated = find(report, "routing", ROUTING.templated, payload, connections);
  const vsFixed = ratio(templated?.rps, fixed?.rps);
  const gateway = find(report, "request/reply", ROUTING.replyGateway, payload, connections);
  const direct = find(report, "request/reply", ROUTING.replyDirect, payload, connections);
  const vsDirect = ratio(gateway?.rps, direct?.rps);
  // The direct client pays for no HTTP. A round trip through the gateway is an HTTP request that
  // publishes and then waits for a reply: it cannot be faster than the same request answered
  // without AMQP work (the ceiling, bench/bench-worker.ts), nor than a plain publish on this
  // machine. The higher of the two is the bound.
  const ceilingRow = find(report, "routing", ROUTING.ceiling, payload, connections);
  const bound = ceilingRow && fixed ? Math.max(ceilingRow.rps, fixed.rps) : Number.NaN;
  const wanted = 0.3 * (direct?.rps ?? Number.NaN);
  const unreachable = wanted > bound;
  const vsCeiling = ratio(gateway?.rps, bound);
  const rows = report.measurements.filter(isRouting);
  const lost = rows.reduce((total, m) => total + m.lost, 0);
  const duplicated = rows.reduce((total, m) => total + m.duplicated, 0);
  const errors = rows.reduce((total, m) => total + m.errors, 0);
  return [
    {
      target: `templated publish (routing_key {key} from the path) within 10% of a fixed-key publish: ≥ 0.9× its req/s (${connections} connections, ${payload})`,
      measured: `${vsFixed.toFixed(2)}× (${fmt(templated?.rps ?? Number.NaN)} vs ${fmt(fixed?.rps ?? Number.NaN)} req/s)`,
      met: vsFixed >= 0.9,
    },
    {
      target: `request/reply through the gateway ≥ 0.3× amqp-client's direct RPC (round trips/s, ${connections} in flight, ${payload}); where 0.3× is above what one request through the gateway can do on the machine (the higher of the no-AMQP ceiling and a fixed-key publish), ≥ 0.6× that`,
      measured:
        `${vsDirect.toFixed(2)}× (${fmt(gateway?.rps ?? Number.NaN)} vs ${fmt(direct?.rps ?? Number.NaN)} round trips/s); gateway p50 ${ms(gateway?.p50)} ms, p99 ${ms(gateway?.p99)} ms (amqp-client: p50 ${ms(direct?.p50)} ms, p99 ${ms(direct?.p99)} ms)` +
        (unreachable
          ? `; 0.3× is ${fmt(wanted)}/s, above the bound of ${fmt(bound)} req/s (ceiling ${fmt(ceilingRow?.rps ?? Number.NaN)}, fixed-key publish ${fmt(fixed?.rps ?? Number.NaN)}), of which the gateway's round trips are ${vsCeiling.toFixed(2)}×`
          : ""),
      met: vsDirect >= 0.3 || (unreachable && vsCeiling >= 0.6),
    },
    schemaCost(report),
    {
      target: "routing and request/reply: zero lost, duplicated or failed",
      measured: `${lost} lost, ${duplicated} duplicated, ${errors} errors`,
      met: lost === 0 && duplicated === 0 && errors === 0,
    },
  ];
};

/**
 * What `producer.schema` costs a publish: the same 2 KB document to a route with a 20-property
 * schema and to one without, alternating; per request, the difference in the gateway's CPU and
 * the ratio of the rates (no target: measured).
 */
const schemaCost = (report: Report): Verdict => {
  const { connections } = ROUTING;
  const withSchema = find(report, "routing", ROUTING.withSchema, ROUTING.schemaPayload, connections);
  const without = find(report, "routing", ROUTING.withoutSchema, ROUTING.schemaPayload, connections);
  const cpu = (withSchema?.cpuUs ?? Number.NaN) - (without?.cpuUs ?? Number.NaN);
  return {
    target: `producer.schema, cost per publish (no target: measured; ${ROUTING.schemaPayload}, 20-property schema, ${connections} connections)`,
    measured: `${ratio(withSchema?.rps, without?.rps).toFixed(2)}× the req/s without a schema (${fmt(withSchema?.rps ?? Number.NaN)} vs ${fmt(without?.rps ?? Number.NaN)}); ${Number.isNaN(cpu) ? "?" : cpu.toFixed(0)} µs more CPU per publish in workerd (${withSchema?.cpuUs?.toFixed(0) ?? "?"} vs ${without?.cpuUs?.toFixed(0) ?? "?"} µs)`,
    met: true,
    info: true,
  };
};

/** The `consume` section's targets. */
const consumeModeVerdicts = (report: Report, ratio: Ratio): Verdict[] => {
  const out: Verdict[] = [];
  const direct = find(report, "batch consume", VARIANTS.batchDirect, "250 B", 1);
  const gateway = BATCH_CLIENTS.map((clients) => ({ clients, m: find(report, "batch consume", VARIANTS.batchGateway, "250 B", clients) }));
  const judged = gateway.at(-1);
  const vsDirect = ratio(judged?.m?.msgs, direct?.msgs);
  out.push({
    target: `batch consume \`GET ?max=50\` ≥ 0.5× amqp-client basic.consume, prefetch 50 (msg/s, ${judged?.clients} clients)`,
    measured: `${vsDirect.toFixed(2)}× (${gateway.map(({ clients, m }) => `${fmt(m?.msgs ?? Number.NaN)} msg/s at ${clients}`).join(", ")} vs ${fmt(direct?.msgs ?? Number.NaN)} msg/s)`,
    met: vsDirect >= 0.5,
  });
  const wait = find(report, "long-poll", VARIANTS.waitGateway, "250 B", 1);
  const broker = find(report, "long-poll", VARIANTS.waitDirect, "250 B", 1);
  out.push({
    target: "long-poll `GET ?wait=10`: publish → answer p50 < 5 ms",
    measured: `p50 ${ms(wait?.p50)} ms, p99 ${ms(wait?.p99)} ms (amqp-client consumer alone: p50 ${ms(broker?.p50)} ms, p99 ${ms(broker?.p99)} ms)`,
    met: (wait?.p50 ?? Number.NaN) < 5,
  });
  out.push({
    target: "SSE throughput (no target: measured)",
    measured: SSE_CLIENTS.map(
      (clients) => `${fmt(find(report, "sse", VARIANTS.sse, "250 B", clients)?.msgs ?? Number.NaN)} msg/s with ${clients}`,
    ).join(", "),
    met: true,
    info: true,
  });
  const afterClose = report.sseAfterClose ?? [];
  const consumers = afterClose.reduce((total, run) => total + run.consumers, 0);
  const held = afterClose.reduce((total, run) => total + run.held, 0);
  out.push({
    target: "SSE: 2 s after its clients close, the route keeps no consumer and holds no message",
    measured:
      afterClose.length === 0
        ? "–"
        : afterClose
            .map(
              (run) =>
                `${run.clients} client${run.clients === 1 ? "" : "s"}: ${run.consumers} consumer${run.consumers === 1 ? "" : "s"}, ${run.held} held`,
            )
            .join("; "),
    met: afterClose.length > 0 && consumers === 0 && held === 0,
  });
  const rows = report.measurements.filter(isConsumeMode);
  const lost = rows.reduce((total, m) => total + m.lost, 0);
  const duplicated = rows.reduce((total, m) => total + m.duplicated, 0);
  const errors = rows.reduce((total, m) => total + m.errors, 0);
  out.push({
    target: "consume modes: zero lost, duplicated or failed",
    measured: `${lost} lost, ${duplicated} duplicated, ${errors} errors`,
    met: lost === 0 && duplicated === 0 && errors === 0,
  });
  return out;
};

/**
 * What share of its own no-AMQP ceiling a route's publishes and GETs must reach: the same route,
 * served by the same Worker path (middleware, access checks, memory accounting, the call to the
 * object with the route's settings, the answer's headers), whose object answers without the
 * broker (and without its own handling of the request: counters, rate limit). What is below it is
 * what the broker work, and the object's handling of it, cost the gateway.
 *
 * Not the bare runtime ceilings (a request with one object call and nothing else): the
 * gateway's HTTP path alone is ~0.6× of those on workerd 1.20261117, so a ratio against them
 * says more about the runtime's price of a request than about the gateway's AMQP path. They are
 * shown (BENCHMARKS.md, "What a request costs above the runtime").
 */
const CEILING_SHARE = 0.85;
/** The rate a 16 KiB publish must keep of the no-AMQP route's, beside its CPU (see throughputVerdicts). */
const LARGE_RATE_FLOOR = 0.7;

/**
 * "" when both rows of a comparison answered without errors, else what to add to its figure. A
 * failure answered fast is neither throughput nor cheap: any error fails the comparison.
 */
const errorNote = (gateway: Measurement | undefined, reference: Measurement | undefined): string =>
  gateway?.errors === 0 && reference?.errors === 0
    ? ""
    : `; errors: ${gateway?.errors ?? "no figure"} and ${reference?.errors ?? "no figure"}`;

const throughputVerdicts = (report: Report, ratio: Ratio): Verdict[] => {
  const out: Verdict[] = [];
  for (const payload of ["250 B", "16 KiB"]) {
    const gateway = find(report, "publish", "gateway amqp://", payload, 64);
    const management = find(report, "publish", "management API", payload, 64);
    const noAmqp = find(report, "publish", THROUGHPUT.publishNoAmqp, payload, 64);
    const ceiling = find(report, "publish", THROUGHPUT.publishCeiling, payload, 64);
    // Judged against ceilings measured in the same run: the management API's rate moves ±15%
    // between runs and machines, and says more about RabbitMQ than the gateway.
    const vsNoAmqp = paired(gateway, noAmqp, (round) => round.rps);
    const cpuShare = paired(noAmqp, gateway, (round) => round.cpuUs);
    const cpu = `workerd ${gateway?.cpuUs?.toFixed(0)} vs ${noAmqp?.cpuUs?.toFixed(0)} µs CPU a request, means of the rounds`;
    const errors = errorNote(gateway, noAmqp);
    const clean = errors === "";
    if (payload === "250 B") {
      out.push({
        target: `publish ≥ ${CEILING_SHARE}× the gateway's own no-AMQP ceiling, no errors (64 connections, ${payload})`,
        measured: `${showPaired(vsNoAmqp)}; ${cpu}, ${cpuShare.value.toFixed(2)}×${errors}`,
        met: clean && meets(vsNoAmqp, CEILING_SHARE),
      });
    } else {
      // At 16 KiB the broker's per-byte work (a third of a core here) runs on the same two cores
      // as workerd and the load generator, and the no-AMQP route gives it none: the rate would
      // judge the machine. What the gateway spends is judged instead, its CPU per request, with a
      // looser floor on the rate, so that a gateway that waits rather than works is caught too.
      out.push({
        target: `publish costs workerd ≤ 1/${CEILING_SHARE} of the gateway's own no-AMQP ceiling's CPU per request, at ≥ ${LARGE_RATE_FLOOR}× its rate, no errors (64 connections, ${payload})`,
        measured: `${showPaired(cpuShare)}; ${cpu}; rate ${vsNoAmqp.value.toFixed(2)}×${errors}`,
        met: clean && meets(cpuShare, CEILING_SHARE) && meets(vsNoAmqp, LARGE_RATE_FLOOR),
      });
    }
    out.push({
      target: `publish against the runtime's bare ceiling (no gateway, no AMQP; 64 connections, ${payload}) (shown, not judged)`,
      measured: `${ratio(gateway?.rps, ceiling?.rps).toFixed(2)}× (the gateway without AMQP: ${ratio(noAmqp?.rps, ceiling?.rps).toFixed(2)}×)`,
      met: true,
      info: true,
    });
    const vsManagement = ratio(gateway?.rps, management?.rps);
    out.push({
      target: `publish against the management API (64 connections, ${payload}) (shown, not judged)`,
      measured: `${vsManagement.toFixed(2)}×`,
      met: true,
      info: true,
    });
    // The same management API request, answered by the gateway's management_api and by the broker.
    const dialect = find(report, "publish", THROUGHPUT.publishManagementDialect, payload, 64);
    out.push({
      target: `the management API's publish request served by the gateway's management_api against the broker's own API (64 connections, ${payload}) (shown, not judged)`,
      measured: `${ratio(dialect?.rps, management?.rps).toFixed(2)}× (${dialect?.rps.toFixed(0)} vs ${management?.rps.toFixed(0)} req/s; p99 ${dialect?.p99.toFixed(0)} vs ${management?.p99.toFixed(0)} ms)`,
      met: true,
      info: true,
    });
    // The Web-AMQP transport against TCP, on the same kind of route. Judged at 250 B, the load the
    // target was set for; at 16 KiB the local relay's per-byte cost (websockify, a Python process
    // on the same two cores) is measured and shown, not judged (BENCHMARKS.md).
    const vsTcp = ratio(find(report, "publish", "gateway ws://", payload, 64)?.rps, gateway?.rps);
    const judged = payload === "250 B";
    out.push({
      target: `publish over ws:// ≥ 0.8× over amqp:// (64 connections, ${payload})${judged ? "" : " (no target: measured)"}`,
      measured: `${vsTcp.toFixed(2)}×`,
      met: judged ? vsTcp >= 0.8 : true,
      ...(judged ? {} : { info: true }),
    });
    const p99 = ratio(gateway?.p99, noAmqp?.p99);
    out.push({
      target: `publish p99 ≤ 2× the no-AMQP ceiling's p99 (64 connections, ${payload})`,
      measured: `${gateway?.p99.toFixed(0)} ms vs ${noAmqp?.p99.toFixed(0)} ms (${p99.toFixed(2)}×)`,
      met: p99 <= 2,
    });
  }
  const tcpConsumeRow = find(report, "consume", "gateway GET", "250 B", 64);
  const consumeNoAmqpRow = find(report, "consume", THROUGHPUT.consumeNoAmqp, "250 B", 64);
  const tcpConsume = tcpConsumeRow?.rps;
  const consumeNoAmqp = consumeNoAmqpRow?.rps;
  const vsConsumeNoAmqp = paired(tcpConsumeRow, consumeNoAmqpRow, (round) => round.rps);
  const consumeErrors = errorNote(tcpConsumeRow, consumeNoAmqpRow);
  out.push({
    target: `consume ≥ ${CEILING_SHARE}× the gateway's own no-AMQP ceiling, no errors (64 connections)`,
    measured: `${showPaired(vsConsumeNoAmqp)}${consumeErrors}`,
    met: consumeErrors === "" && meets(vsConsumeNoAmqp, CEILING_SHARE),
  });
  const objectCall = find(report, "consume", THROUGHPUT.consumeCeiling, "250 B", 64)?.rps;
  out.push({
    target: "consume against the runtime's bare object-call ceiling (`get-object-call`, 64 connections) (shown, not judged)",
    measured: `${ratio(tcpConsume, objectCall).toFixed(2)}× (the gateway without AMQP: ${ratio(consumeNoAmqp, objectCall).toFixed(2)}×)`,
    met: true,
    info: true,
  });
  const consume = ratio(tcpConsume, find(report, "consume", "management API get", "250 B", 64)?.rps);
  out.push({
    target: "consume against the management API (64 connections) (shown, not judged)",
    measured: `${consume.toFixed(2)}×`,
    met: true,
    info: true,
  });
  const managementGetRow = find(report, "consume", "management API get", "250 B", 64);
  const dialectGet = find(report, "consume", THROUGHPUT.consumeManagementDialect, "250 B", 64);
  out.push({
    target:
      "the management API's get request (count 1, ack_requeue_false) served by the gateway's management_api against the broker's own API (64 connections) (shown, not judged)",
    measured: `${ratio(dialectGet?.rps, managementGetRow?.rps).toFixed(2)}× (${dialectGet?.rps.toFixed(0)} vs ${managementGetRow?.rps.toFixed(0)} msg/s; p99 ${dialectGet?.p99.toFixed(0)} vs ${managementGetRow?.p99.toFixed(0)} ms)`,
    met: true,
    info: true,
  });
  const wsConsume = ratio(find(report, "consume", "gateway GET ws://", "250 B", 64)?.rps, tcpConsume);
  out.push({
    target: "consume over ws:// ≥ 0.8× over amqp:// (64 connections)",
    measured: `${wsConsume.toFixed(2)}×`,
    met: wsConsume >= 0.8,
  });
  // The consume and routing sections judge their own rows.
  const rows = report.measurements.filter(isMain);
  const lost = rows.reduce((sum, m) => sum + m.lost, 0) + report.memory.lost;
  const duplicated = rows.reduce((sum, m) => sum + m.duplicated, 0) + report.memory.duplicated;
  out.push({
    target: "zero lost or duplicated messages",
    measured: `${lost} lost, ${duplicated} duplicated`,
    met: lost === 0 && duplicated === 0,
  });
  const steps = report.memory.stepsMb;
  const before = steps[0] ?? Number.NaN;
  const after = steps.at(-1) ?? Number.NaN;
  const growth = after - before;
  out.push({
    target: `workerd RSS grows < 30 MB over ${report.memory.publishes} publishes`,
    measured: `${growth.toFixed(1)} MB (${before.toFixed(0)} → ${after.toFixed(0)} MB)`,
    met: growth < 30,
  });
  const batches = report.measurements.filter((m) => m.section === "batch");
  const batch = batches.reduce((sum, m) => sum + m.msgs, 0) / Math.max(1, batches.length);
  const floor = find(report, "floor", "amqp-client direct", "250 B", 64)?.msgs;
  const vsFloor = ratio(batch, floor);
  out.push({
    target: "batch publish ≥ 0.5× amqp-client direct (msg/s)",
    measured: `${vsFloor.toFixed(2)}× (${batch.toFixed(0)} vs ${floor?.toFixed(0)} msg/s)`,
    met: vsFloor >= 0.5,
  });
  return out;
};

const pressureVerdicts = (report: Report): Verdict[] => {
  const out: Verdict[] = [];
  for (const truth of report.truth ?? []) {
    out.push({
      target: `no false 202 under load and faults (${truth.transport ?? "amqp"}://, auto_ack ${truth.autoAck})`,
      measured: `${truth.false202} false 202s of ${truth.accepted}; ${truth.falseRefusals} false refusals; ${truth.duplicates} duplicates; ${truth.strangers} strangers`,
      met: truth.false202 === 0 && truth.falseRefusals === 0 && truth.strangers === 0 && (!truth.autoAck || truth.duplicates === 0),
    });
  }
  const memory = report.pressureMemory;
  if (memory) {
    // workerd's RSS grows with load whether or not a route touches AMQP (the heap sizes itself,
    // and memory once taken is rarely given back): what is judged is what the gateway adds to the
    // runtime's own growth under the same load, on the no-AMQP ceiling route.
    const batchIdleMb = memory.batchIdleMb ?? memory.idleMb;
    const batchGrowth = memory.batchMb - batchIdleMb;
    out.push({
      target: `RSS after a batch of ${memory.batchSize} < ${MEMORY_HEADROOM_MB} MB above idle`,
      measured: `+${batchGrowth.toFixed(1)} MB (${batchIdleMb.toFixed(0)} → ${memory.batchMb.toFixed(0)} MB)`,
      met: batchGrowth < MEMORY_HEADROOM_MB,
    });
    const ws = memory.ws;
    for (const [what, idleMb, mb, ceilingMb] of [
      [`${memory.publishes} publishes at 64 connections`, memory.idleMb, memory.manyMb, memory.ceiling.manyMb],
      ["64 concurrent 1 MiB publishes", memory.idleMb, memory.largeMb, memory.ceiling.largeMb],
      ...(ws
        ? ([
            [`${ws.publishes} publishes at 64 connections over ws://`, ws.idleMb, ws.manyMb, memory.ceiling.manyMb],
            ["64 concurrent 1 MiB publishes over ws://", ws.idleMb, ws.largeMb, memory.ceiling.largeMb],
          ] as const)
        : []),
    ] as const) {
      const growth = mb - idleMb;
      const runtime = ceilingMb - memory.ceiling.idleMb;
      out.push({
        target: `RSS after ${what}: < ${MEMORY_HEADROOM_MB} MB above idle, beyond the runtime's own growth (ceiling route)`,
        measured: `+${growth.toFixed(1)} MB; ceiling +${runtime.toFixed(1)} MB; the gateway's own ${(growth - runtime).toFixed(1)} MB`,
        met: growth - runtime < MEMORY_HEADROOM_MB,
      });
    }
  }
  return out;
};

const fmt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–");
/** A latency: with two decimals below 10 ms, where a whole millisecond would hide the figure. */
const ms = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? "–" : n < 10 ? n.toFixed(2) : fmt(n));

export const markdownTable = (measurements: Measurement[]): string => {
  const rows = measurements.map(
    (m) =>
      `| ${m.section} | ${m.variant} | ${m.payload} | ${m.connections} | ${fmt(m.rps)} | ${fmt(m.msgs)} | ${ms(m.p50)} | ${ms(m.p99)} | ${m.errors} | ${m.lost} / ${m.duplicated} | ${m.unanswered} |`,
  );
  return [
    "| section | variant | payload | connections | req/s | msg/s | p50 ms | p99 ms | errors | lost / dup | unanswered |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows,
  ].join("\n");
};

const verdictTable = (list: Verdict[]) =>
  [
    "| target | measured | met |",
    "| --- | --- | --- |",
    ...list.map((v) => `| ${v.target} | ${v.measured} | ${v.info ? "measured" : v.met ? "yes" : "**no**"} |`),
  ].join("\n");

/** A horizontal bar chart of throughput (msg/s) per measurement, as SVG. */
export const throughputSvg = (report: Report): string => {
  const rows = report.measurements.filter(isMain);
  const max = Math.max(...rows.map((m) => m.msgs).filter(Number.isFinite), 1);
  const rowHeight = 18;
  const labelWidth = 330;
  const barWidth = 420;
  const height = rows.length * rowHeight + 40;
  const colors: Record<Measurement["section"], string> = {
    publish: "#2f6fdf",
    floor: "#7a7a7a",
    consume: "#2f9e5a",
    shards: "#b86a1e",
    batch: "#8a3fbf",
    runtimes: "#3f8abf",
    "batch consume": "#2f9e5a",
    "long-poll": "#2f9e5a",
    sse: "#2f9e5a",
    routing: "#2f6fdf",
    "request/reply": "#2f6fdf",
    push: "#b86a1e",
  };
  const bars = rows
    .map((m, i) => {
      const y = 30 + i * rowHeight;
      const width = Number.isFinite(m.msgs) ? (m.msgs / max) * barWidth : 0;
      const label = `${m.section}: ${m.variant}, ${m.payload}, c=${m.connections}`;
      return [
        `<text x="${labelWidth - 6}" y="${y + 12}" text-anchor="end">${escapeXml(label)}</text>`,
        `<rect x="${labelWidth}" y="${y + 2}" width="${width.toFixed(1)}" height="${rowHeight - 5}" fill="${colors[m.section]}"/>`,
        `<text x="${labelWidth + width + 4}" y="${y + 12}">${fmt(m.msgs)}</text>`,
      ].join("");
    })
    .join("\n");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${labelWidth + barWidth + 90}" height="${height}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="18" font-size="13" font-weight="bold">Throughput, messages per second (${escapeXml(report.date.slice(0, 10))}, ${report.seconds} s × ${report.rounds} rounds)</text>
${bars}
</svg>
`;
};

const escapeXml = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export const machineLine = (report: Report): string =>
  `${report.date.slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model.trim() ?? "unknown CPU"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, RabbitMQ ${report.rabbitmq}; gateway in workerd via \`npm start\`'s runtime (Miniflare, direct socket); ${report.seconds} s per run, ${report.rounds} alternating rounds, load from autocannon on the same machine`;

/** The machine and the sizes of the `consume` section's runs. */
const consumeMachineLine = (report: Report): string => {
  const sizes = report.consumeSizes;
  return `${report.date.slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model.trim() ?? "unknown CPU"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, RabbitMQ ${report.rabbitmq}; gateway in workerd via \`npm start\`'s runtime; ${report.rounds} alternating round${report.rounds === 1 ? "" : "s"}${sizes ? `; ${sizes.messages} messages a batch-consume run, ${sizes.sseMessages} a SSE run, ${sizes.samples} long-poll samples a round` : ""}; clients in the same Node process on the same machine`;
};

/** The machine and the shape of the `routing` section's runs. */
const routingMachineLine = (report: Report): string =>
  `${machineBase(report)}; ${report.seconds} s per run, ${report.rounds} alternating round${report.rounds === 1 ? "" : "s"}; load from autocannon, the RPC responder and amqp-client's RPC client in the same Node process on the same machine`;

const machineBase = (report: Report): string =>
  `${report.date.slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model.trim() ?? "unknown CPU"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, RabbitMQ ${report.rabbitmq}; gateway in workerd via \`npm start\`'s runtime (Miniflare, direct socket)`;

/** The machine and the shape of the `push` section's runs. */
const pushMachineLine = (report: Report): string =>
  `${machineBase(report)}; ${report.rounds} alternating round${report.rounds === 1 ? "" : "s"}; the direct consumer in the bench's Node process, the endpoint in a worker thread of it, on the same machine`;

/** The pressure sections' figures as Markdown, when they ran. */
const pressureLines = (report: Report): string => {
  const lines: string[] = [];
  for (const truth of report.truth ?? []) {
    const answers = Object.entries(truth.answers)
      .map(([status, count]) => `${count} × ${status}`)
      .join(", ");
    lines.push(
      `Truth under load (${truth.transport ?? "amqp"}://, auto_ack ${truth.autoAck}, ${truth.seconds.toFixed(0)} s, 48 publishers, 16 consumers; ${truth.faults.join(", ")}): ${answers}; ${truth.consumed} consumed, ${truth.leftInQueue} left in the queue; **${truth.false202} false 202s**, ${truth.falseRefusals} false refusals, ${truth.duplicates} duplicates.`,
    );
  }
  const memory = report.pressureMemory;
  if (memory) {
    lines.push(
      `Memory under pressure: a fresh gateway idle ${(memory.batchIdleMb ?? memory.idleMb).toFixed(1)} MB, after a batch of ${memory.batchSize} (answered ${memory.batchStatus}) ${memory.batchMb.toFixed(1)} MB; another idle ${memory.idleMb.toFixed(1)} MB, after ${memory.publishes} publishes at 64 connections ${memory.manyMb.toFixed(1)} MB; after 64 concurrent 1 MiB publishes (${memory.largeAccepted} × 202) ${memory.largeMb.toFixed(1)} MB. The same loads on the no-AMQP ceiling route, on a fresh gateway of its own: idle ${memory.ceiling.idleMb.toFixed(1)} MB, ${memory.ceiling.manyMb.toFixed(1)} MB, ${memory.ceiling.largeMb.toFixed(1)} MB.`,
    );
  }
  return lines.map((line) => `${line}\n\n`).join("");
};

/** Text as the project's Prettier settings format it, so the written files pass `npm run lint`. */
const formatted = async (path: string, text: string): Promise<string> => format(text, { ...(await resolveConfig(path)), filepath: path });

/** Replaces the text between `start` and `end` in `current` (both kept), or appends the block. */
const replaceBlock = (current: string, start: string, end: string, body: string): string => {
  const block = `${start}\n${body}\n${end}`;
  const from = current.indexOf(start);
  const to = current.indexOf(end);
  return from >= 0 && to > from ? current.slice(0, from) + block + current.slice(to + end.length) : `${current}\n${block}\n`;
};

/** The sections whose figures go to latest.json, throughput.svg and the main generated block. */
const MAIN_SECTIONS = ["throughput", "truth", "memory"];

/**
 * Prints the tables and the verdicts. When the throughput, truth or memory sections ran, writes
 * bench/results/latest.json and throughput.svg and replaces the main generated part of
 * BENCHMARKS.md; when the `consume` or the `routing` section ran, writes
 * bench/results/consume.json or routing.json and replaces that section's own generated part. A run
 * of one kind leaves the others' figures as they were. Returns the verdicts.
 */
export const writeReport = async (report: Report): Promise<Verdict[]> => {
  const mainList = mainVerdicts(report);
  const consumeList = consumeVerdicts(report);
  const routingList = routingVerdicts(report);
  const callersList = callersVerdicts(report);
  const runtimesList = runtimesVerdicts(report);
  const pushList = pushVerdicts(report);
  const list = [...mainList, ...consumeList, ...routingList, ...callersList, ...runtimesList, ...pushList];
  const sections = report.sections ?? MAIN_SECTIONS;
  const mainRan = MAIN_SECTIONS.some((name) => sections.includes(name));
  const consumeRan = sections.includes("consume");
  const routingRan = sections.includes("routing");
  const callersRan = sections.includes("callers") && report.callers !== undefined;
  const runtimeRows = report.measurements.filter(isRuntimes);
  const runtimesRan = sections.includes("runtimes") && runtimeRows.length > 0;
  const pushRows = report.measurements.filter(isPush);
  const pushRan = sections.includes("push") && pushRows.length > 0;
  const mainRows = report.measurements.filter(isMain);
  const consumeRows = report.measurements.filter(isConsumeMode);
  const routingRows = report.measurements.filter(isRouting);
  const table = markdownTable(mainRows);
  const targets = verdictTable(mainList);
  if (mainRows.length > 0) process.stdout.write(`\n${table}\n`);
  if (consumeRows.length > 0) process.stdout.write(`\n${markdownTable(consumeRows)}\n`);
  if (routingRows.length > 0) process.stdout.write(`\n${markdownTable(routingRows)}\n`);
  if (runtimeRows.length > 0) process.stdout.write(`\n${markdownTable(runtimeRows)}\n`);
  if (pushRows.length > 0) process.stdout.write(`\n${markdownTable(pushRows)}\n`);
  process.stdout.write(`\n${verdictTable(list)}\n`);
  mkdirSync(RESULTS, { recursive: true });
  const path = `${ROOT}BENCHMARKS.md`;
  let updated = readFileSync(path, "utf8");
  const written: string[] = [];
  if (mainRan) {
    writeFileSync(`${RESULTS}/latest.json`, await formatted(`${RESULTS}/latest.json`, JSON.stringify({ ...report, verdicts: list })));
    writeFileSync(`${RESULTS}/throughput.svg`, throughputSvg(report));
    const generated = `_Generated by \`npm run bench\`: ${machineLine(report)}._\n\n![throughput](bench/results/throughput.svg)\n\n${table}\n\nMemory: workerd's resident set, before and after each quarter of ${report.memory.publishes} publishes (${report.memory.errors} errors): ${report.memory.stepsMb.map((mb) => `${mb.toFixed(1)}`).join(" → ")} MB.\n\n${pressureLines(report)}### Targets\n\n${targets}`;
    updated = replaceBlock(updated, "<!-- bench:start -->", "<!-- bench:end -->", generated);
    written.push("bench/results/latest.json", "bench/results/throughput.svg");
  }
  if (consumeRan) {
    writeFileSync(
      `${RESULTS}/consume.json`,
      await formatted(`${RESULTS}/consume.json`, JSON.stringify({ ...report, measurements: consumeRows, verdicts: consumeList })),
    );
    const generated = `_Generated by \`npm run bench\` (\`consume\` section): ${consumeMachineLine(report)}._\n\n${markdownTable(consumeRows)}\n\n### Targets\n\n${verdictTable(consumeList)}`;
    updated = replaceBlock(updated, "<!-- bench:consume:start -->", "<!-- bench:consume:end -->", generated);
    written.push("bench/results/consume.json");
  }
  if (routingRan) {
    writeFileSync(
      `${RESULTS}/routing.json`,
      await formatted(`${RESULTS}/routing.json`, JSON.stringify({ ...report, measurements: routingRows, verdicts: routingList })),
    );
    // The block carries its own heading: it is appended at the end of BENCHMARKS.md the first time.
    const generated = `### Routing and request/reply\n\n_Generated by \`npm run bench\` (\`routing\` section, \`bench/lib/routing.ts\`): ${routingMachineLine(report)}._\n\nA producer whose \`routing_key\` is \`{key}\`, taken from the path, against one with a fixed \`routing_key\`, both to the default exchange; and \`producer.reply: true\` (round trips per second, 200s only) against amqp-client calling the same responder itself with direct reply-to. The responder is an amqp-client consumer in the bench process that publishes each request's body back to its \`reply_to\`.\n\n${markdownTable(routingRows)}\n\n#### Targets\n\n${verdictTable(routingList)}`;
    updated = replaceBlock(updated, "<!-- bench:routing:start -->", "<!-- bench:routing:end -->", generated);
    written.push("bench/results/routing.json");
  }
  if (callersRan) {
    writeFileSync(
      `${RESULTS}/callers.json`,
      await formatted(`${RESULTS}/callers.json`, JSON.stringify({ ...report, measurements: [], verdicts: callersList })),
    );
    // The block carries its own heading: it is appended at the end of BENCHMARKS.md the first time.
    const generated = `### Many callers on one route\n\n_Generated by \`npm run bench\` (\`callers\` section, \`bench/lib/callers.ts\`): ${routingMachineLine(report)}._\n\nMemory: workerd's peak resident set (VmHWM, reset as the load starts) above the same gateway idle after it served the route's messages one at a time, with a small caller publishing beside the load. Fairness: an honest caller's small publishes and GETs (8 at a time) on its own queue of a route, alone and beside each flood a hostile caller can make on the same route. Many callers: test/helpers/many-callers.ts at full size.\n\n#### Targets\n\n${verdictTable(callersList)}`;
    updated = replaceBlock(updated, "<!-- bench:callers:start -->", "<!-- bench:callers:end -->", generated);
    written.push("bench/results/callers.json");
  }
  if (runtimesRan) {
    writeFileSync(
      `${RESULTS}/runtimes.json`,
      await formatted(`${RESULTS}/runtimes.json`, JSON.stringify({ ...report, measurements: runtimeRows, verdicts: runtimesList })),
    );
    // The block carries its own heading: it is appended at the end of BENCHMARKS.md the first time.
    const generated = `### Three runtimes: workerd, Node, Deno\n\n_Generated by \`npm run bench\` (\`runtimes\` section, \`bench/lib/runtimes.ts\`): ${routingMachineLine(report)}._\n\nThe same routes served by \`npm start\` (workerd), \`npm run start:node\` and \`npm run start:deno\`, all three running at once and loaded in alternating rounds at ${RUNTIME_CONNECTIONS} connections: a publish (\`POST\`, every 2xx found in its queue afterwards) and an \`auto_ack\` consume (\`GET\`, rates of 200s), each beside the same runtime's no-AMQP ceiling (the same routes answering without the broker, \`bench/lib/no-amqp.ts\`) and the broker's own floor in the same rounds (amqp-client publishing with confirms, or taking with \`basic.get\`, straight over TCP, ${RUNTIME_CONNECTIONS} operations in flight). CPU is the runtime process's own per answer.\n\n${markdownTable(runtimeRows)}\n\n#### Targets\n\n${verdictTable(runtimesList)}`;
    updated = replaceBlock(updated, "<!-- bench:runtimes:start -->", "<!-- bench:runtimes:end -->", generated);
    written.push("bench/results/runtimes.json");
  }
  if (pushRan) {
    writeFileSync(
      `${RESULTS}/push.json`,
      await formatted(`${RESULTS}/push.json`, JSON.stringify({ ...report, measurements: pushRows, verdicts: pushList })),
    );
    // The block carries its own heading: it is appended at the end of BENCHMARKS.md the first time.
    const generated = `### Push to a webhook\n\n_Generated by \`npm run bench\` (\`push\` section, \`bench/lib/push.ts\`): ${pushMachineLine(report)}._\n\nA push route served by \`npm start\` (workerd) against amqp-client's own consumer in the bench process with the same prefetch, POSTing each message with \`fetch\`, signed with the \`standardwebhooks\` package, and acknowledging it on a 2xx. Both feed the same endpoint, which answers 204 at once from a worker thread of its own; so does workerd's own fetch alone (a route object POSTing the same bodies at the same concurrency, without AMQP, signing or headers), the ceiling of any push from workerd here. Throughput (msg/s; the connections column is the concurrency): the queue filled while the consumer is off, then the time until the endpoint has every message. p50 and p99: publish → the endpoint's receipt, with the consumer running and one message published every 10 ms.\n\n${markdownTable(pushRows)}\n\n#### Targets\n\n${verdictTable(pushList)}`;
    updated = replaceBlock(updated, "<!-- bench:push:start -->", "<!-- bench:push:end -->", generated);
    written.push("bench/results/push.json");
  }
  if (written.length > 0) {
    writeFileSync(path, await formatted(path, updated));
    process.stdout.write(`\nwrote ${[...written, "BENCHMARKS.md"].join(", ")}\n`);
  }
  return list;
};
