/**
 * The benchmark's judgements, which decide what BENCHMARKS.md claims: how a run's queue is
 * counted against its 2xx answers, which targets a set of figures meets, and how a CPU profile
 * is summarised.
 */
import { describe, expect, it } from "vitest";
import { account } from "../../bench/lib/accounting";
import { summarizeProfile, type CpuProfile } from "../../bench/lib/cpu-profile";
import { paired, ROUTING, summarize, THROUGHPUT, verdicts, type Measurement, type Report } from "../../bench/lib/report";
import { BROKER_FLOOR, RUNTIME_CONNECTIONS, RUNTIME_VARIANT } from "../../bench/lib/runtime-names";

describe("account: a run's queue against its 2xx answers", () => {
  it("fewer messages than 2xx answers is a loss", () => {
    expect(account(98, 100, 16)).toEqual({ lost: 2, unanswered: 0, duplicated: 0 });
  });

  it("extra messages up to one per connection were unanswered requests, beyond that duplicates", () => {
    expect(account(110, 100, 16)).toEqual({ lost: 0, unanswered: 10, duplicated: 0 });
    expect(account(120, 100, 16)).toEqual({ lost: 0, unanswered: 16, duplicated: 4 });
  });

  it("with no bound (a fixed number of requests), any extra message is a duplicate", () => {
    expect(account(101, 100, 0)).toEqual({ lost: 0, unanswered: 0, duplicated: 1 });
  });
});

const measurement = (section: Measurement["section"], variant: string, payload: string, rps: number, p99 = 50): Measurement => ({
  section,
  variant,
  payload,
  connections: 64,
  rps,
  msgs: rps,
  p50: p99 / 2,
  p99,
  errors: 0,
  lost: 0,
  unanswered: 0,
  duplicated: 0,
  rounds: 2,
});

/** A run that meets every target, which each test then spoils in one way. */
const passingReport = (): Report => ({
  date: "2026-11-25T00:00:00.000Z",
  seconds: 5,
  rounds: 2,
  rabbitmq: "3.10.8",
  measurements: ["250 B", "16 KiB"]
    .flatMap((payload) => [
      { ...measurement("publish", "gateway amqp://", payload, 3_000, 40), cpuUs: 400 },
      measurement("publish", "gateway ws://", payload, 2_400, 40),
      measurement("publish", "management API", payload, 1_000),
      // The gateway exactly at 0.85× of its own no-AMQP ceiling; the bare ceiling is only shown.
      // At 16 KiB its CPU per request is judged: exactly 0.85× of it too.
      { ...measurement("publish", THROUGHPUT.publishNoAmqp, payload, 3_000 / 0.85, 30), cpuUs: 400 * 0.85 },
      measurement("publish", THROUGHPUT.publishCeiling, payload, 10_000, 20),
    ])
    .concat([
      measurement("floor", "amqp-client direct", "250 B", 10_000),
      measurement("consume", "gateway GET", "250 B", 3_300),
      measurement("consume", "gateway GET ws://", "250 B", 2_640),
      measurement("consume", "management API get", "250 B", 1_000),
      measurement("consume", THROUGHPUT.consumeNoAmqp, "250 B", 3_300 / 0.85),
      measurement("consume", THROUGHPUT.consumeCeiling, "250 B", 12_000),
      { ...measurement("batch", "gateway batch of 100", "250 B", 60), msgs: 6_000, connections: 16 },
    ]),
  memory: { publishes: 200_000, stepsMb: [500, 505, 503, 508, 510], lost: 0, duplicated: 0, errors: 0 },
});

const unmet = (report: Report) =>
  verdicts(report)
    .filter((verdict) => !verdict.met)
    .map((verdict) => verdict.target);

describe("verdicts: the issue's targets", () => {
  it("a run that meets every target, publish and consume exactly at 0.85× of their ceilings, ws:// at 0.8× of amqp://, is met", () => {
    expect(unmet(passingReport())).toEqual([]);
  });

  it("publish below 0.85× the gateway's own no-AMQP ceiling is not met, whatever the management API did", () => {
    const report = passingReport();
    const gateway = report.measurements.find((m) => m.variant === "gateway amqp://" && m.payload === "250 B");
    if (gateway) gateway.rps = 2_990;
    const management = report.measurements.find((m) => m.variant === "management API" && m.payload === "250 B");
    if (management) management.rps = 100;
    expect(unmet(report)).toEqual(["publish ≥ 0.85× the gateway's own no-AMQP ceiling, no errors (64 connections, 250 B)"]);
  });

  it("at 16 KiB the CPU a publish costs workerd is judged, with a looser floor on the rate", () => {
    const large =
      "publish costs workerd ≤ 1/0.85 of the gateway's own no-AMQP ceiling's CPU per request, at ≥ 0.7× its rate, no errors (64 connections, 16 KiB)";
    const report = passingReport();
    const gateway = report.measurements.find((m) => m.variant === "gateway amqp://" && m.payload === "16 KiB");
    if (!gateway) throw new Error("no 16 KiB row");
    gateway.rps = (0.71 * 3_000) / 0.85;
    expect(unmet(report)).toEqual([]);
    gateway.rps = (0.69 * 3_000) / 0.85;
    expect(unmet(report)).toEqual([large]);
    gateway.rps = 3_000;
    gateway.cpuUs = (0.85 * 400) / 0.84;
    expect(unmet(report)).toEqual([large]);
    delete gateway.cpuUs;
    expect(unmet(report)).toEqual([large]);
  });

  it("at 250 B the rate is judged, not the CPU", () => {
    const report = passingReport();
    const gateway = report.measurements.find((m) => m.variant === "gateway amqp://" && m.payload === "250 B");
    if (gateway) gateway.cpuUs = 10_000;
    expect(unmet(report)).toEqual([]);
  });

  it("errors on either side of a comparison fail it, however fast they were answered", () => {
    const report = passingReport();
    for (const m of report.measurements) if (m.variant === "gateway amqp://" || m.variant === THROUGHPUT.consumeNoAmqp) m.errors = 1;
    expect(unmet(report)).toEqual([
      "publish ≥ 0.85× the gateway's own no-AMQP ceiling, no errors (64 connections, 250 B)",
      "publish costs workerd ≤ 1/0.85 of the gateway's own no-AMQP ceiling's CPU per request, at ≥ 0.7× its rate, no errors (64 connections, 16 KiB)",
      "consume ≥ 0.85× the gateway's own no-AMQP ceiling, no errors (64 connections)",
    ]);
  });

  it("the management API ratios are shown, never judged", () => {
    const report = passingReport();
    for (const m of report.measurements) if (m.variant.startsWith("management API")) m.rps = 1_000_000;
    expect(unmet(report)).toEqual([]);
    const shown = verdicts(report).filter((verdict) => verdict.target.includes("management API"));
    // Publish and get against the gateway, and the same requests served by its management_api dialect.
    expect(shown.map((verdict) => verdict.info)).toEqual([true, true, true, true, true, true]);
  });

  it("the runtime's bare ceilings are shown, never judged", () => {
    const report = passingReport();
    for (const m of report.measurements)
      if (m.variant === THROUGHPUT.publishCeiling || m.variant === THROUGHPUT.consumeCeiling) m.rps = 1_000_000;
    expect(unmet(report)).toEqual([]);
    const shown = verdicts(report).filter((verdict) => verdict.target.includes("bare"));
    expect(shown.map((verdict) => verdict.info)).toEqual([true, true, true]);
  });

  it("a p99 over twice the no-AMQP ceiling's is not met", () => {
    const report = passingReport();
    const gateway = report.measurements.find((m) => m.variant === "gateway amqp://" && m.payload === "250 B");
    if (gateway) gateway.p99 = 61;
    expect(unmet(report)).toEqual(["publish p99 ≤ 2× the no-AMQP ceiling's p99 (64 connections, 250 B)"]);
  });

  it("a missing figure is never counted as met", () => {
    const report = passingReport();
    report.measurements = report.measurements.filter((m) => m.variant !== THROUGHPUT.consumeNoAmqp);
    expect(unmet(report)).toEqual(["consume ≥ 0.85× the gateway's own no-AMQP ceiling, no errors (64 connections)"]);
    const withoutPublishCeiling = passingReport();
    withoutPublishCeiling.measurements = withoutPublishCeiling.measurements.filter(
      (m) => !(m.variant === THROUGHPUT.publishNoAmqp && m.payload === "250 B"),
    );
    expect(unmet(withoutPublishCeiling)).toEqual([
      "publish ≥ 0.85× the gateway's own no-AMQP ceiling, no errors (64 connections, 250 B)",
      "publish p99 ≤ 2× the no-AMQP ceiling's p99 (64 connections, 250 B)",
    ]);
  });

  it("consume under 0.85× the gateway's own no-AMQP ceiling, or ws:// under 0.8× amqp://, is not met", () => {
    const report = passingReport();
    const find = (variant: string, payload = "250 B") => report.measurements.find((m) => m.variant === variant && m.payload === payload);
    const tcpConsume = find("gateway GET");
    if (tcpConsume) tcpConsume.rps = 3_290;
    const wsPublish = find("gateway ws://", "250 B");
    if (wsPublish) wsPublish.rps = 2_399;
    // At 16 KiB the ratio is shown, not judged.
    const wsLarge = find("gateway ws://", "16 KiB");
    if (wsLarge) wsLarge.rps = 1_000;
    expect(unmet(report)).toEqual([
      "publish over ws:// ≥ 0.8× over amqp:// (64 connections, 250 B)",
      "consume ≥ 0.85× the gateway's own no-AMQP ceiling, no errors (64 connections)",
    ]);
    if (tcpConsume) tcpConsume.rps = 3_300;
    const wsConsume = find("gateway GET ws://");
    if (wsConsume) wsConsume.rps = 2_639;
    expect(unmet(report)).toContain("consume over ws:// ≥ 0.8× over amqp:// (64 connections)");
  });

  describe("with each round's figures, a judged ratio pairs the rounds", () => {
    const rows = (report: Report, payload = "250 B") => {
      const find = (variant: string) => report.measurements.find((m) => m.variant === variant && m.payload === payload);
      const gateway = find("gateway amqp://");
      const noAmqp = find(THROUGHPUT.publishNoAmqp);
      if (!gateway || !noAmqp) throw new Error(`no ${payload} rows`);
      return { gateway, noAmqp };
    };
    const rounds = (...rates: number[]) => rates.map((rps) => ({ rps }));
    const publish250 = "publish ≥ 0.85× the gateway's own no-AMQP ceiling, no errors (64 connections, 250 B)";

    it("the median of the rounds' own ratios decides: one round the machine spoiled does not", () => {
      const report = passingReport();
      const { gateway, noAmqp } = rows(report);
      // Rounds 1 and 3 at 0.9×; in round 2 the no-AMQP route ran on a quiet machine (0.72×). The
      // means (3,000 vs 3,667: 0.82×) would fail; the median of the paired rounds (0.9×) is met.
      gateway.perRound = rounds(2_700, 3_600, 2_700);
      noAmqp.perRound = rounds(3_000, 5_000, 3_000);
      gateway.rps = 3_000;
      noAmqp.rps = 3_667;
      expect(unmet(report)).toEqual([]);
      const shown = verdicts(report).find((verdict) => verdict.target === publish250);
      expect(shown?.measured).toMatch(/^0\.90× \(median of 3 rounds, 0\.72–0\.90×\)/);
      // Two of three rounds below the target: not met.
      gateway.perRound = rounds(2_500, 4_500, 2_500);
      expect(unmet(report)).toEqual([publish250]);
    });

    it("a round in which the gateway stalled fails the target, however good the median", () => {
      const report = passingReport();
      const { gateway, noAmqp } = rows(report);
      noAmqp.perRound = rounds(3_000, 3_000, 3_000);
      gateway.perRound = rounds(2_700, 60, 2_700);
      expect(unmet(report)).toEqual([publish250]);
      // 0.8 of the target (0.68×) is the most a round may fall.
      gateway.perRound = rounds(2_700, 2_050, 2_700);
      expect(unmet(report)).toEqual([]);
    });

    it("a round with no figure (a reference that did nothing, a missing CPU figure, unmatched rounds) is never met", () => {
      const report = passingReport();
      const { gateway, noAmqp } = rows(report);
      gateway.perRound = rounds(2_700, 2_700, 2_700);
      noAmqp.perRound = rounds(3_000, 0, 3_000);
      expect(unmet(report)).toEqual([publish250]);
      noAmqp.perRound = rounds(3_000, 3_000);
      expect(unmet(report)).toEqual([publish250]);
      const large = rows(report, "16 KiB");
      large.gateway.perRound = [
        { rps: 3_000, cpuUs: 400 },
        { rps: 3_000, cpuUs: 400 },
      ];
      large.noAmqp.perRound = [{ rps: 3_000, cpuUs: 300 }, { rps: 3_000 }];
      expect(unmet(report)).toContain(
        "publish costs workerd ≤ 1/0.85 of the gateway's own no-AMQP ceiling's CPU per request, at ≥ 0.7× its rate, no errors (64 connections, 16 KiB)",
      );
    });

    it("at 16 KiB the CPU is paired the right way round (the ceiling's CPU over the gateway's), and consume pairs its rounds too", () => {
      const report = passingReport();
      const large = rows(report, "16 KiB");
      large.gateway.perRound = [400, 500, 400].map((cpuUs) => ({ rps: 3_000, cpuUs }));
      large.noAmqp.perRound = [360, 300, 360].map((cpuUs) => ({ rps: 3_300, cpuUs }));
      // Per round 0.9×, 0.6×, 0.9×: the median is met, but round 2 is below 0.68×.
      expect(unmet(report)).toEqual([
        "publish costs workerd ≤ 1/0.85 of the gateway's own no-AMQP ceiling's CPU per request, at ≥ 0.7× its rate, no errors (64 connections, 16 KiB)",
      ]);
      large.noAmqp.perRound = [360, 450, 360].map((cpuUs) => ({ rps: 3_300, cpuUs }));
      expect(unmet(report)).toEqual([]);

      const find = (variant: string) => report.measurements.find((m) => m.variant === variant && m.section === "consume");
      const consume = find("gateway GET");
      const consumeNoAmqp = find(THROUGHPUT.consumeNoAmqp);
      if (!consume || !consumeNoAmqp) throw new Error("no consume rows");
      consume.perRound = rounds(3_000, 3_000, 3_000);
      consumeNoAmqp.perRound = rounds(3_600, 3_600, 3_400);
      expect(unmet(report)).toEqual(["consume ≥ 0.85× the gateway's own no-AMQP ceiling, no errors (64 connections)"]);
    });

    it("paired: rounds matched in order; an even count takes the geometric mean of the middle two; reports without rounds use the means", () => {
      const row = (rps: number, perRound?: number[]): Measurement => ({
        ...measurement("publish", "x", "250 B", rps),
        ...(perRound ? { perRound: perRound.map((value) => ({ rps: value, cpuUs: 1_000 / value })) } : {}),
      });
      const rps = (round: { rps: number }) => round.rps;
      expect(paired(row(0, [100, 200, 300, 400]), row(0, [100, 100, 100, 100]), rps)).toEqual({
        value: Math.sqrt(2 * 3),
        low: 1,
        high: 4,
        rounds: 4,
      });
      expect(paired(row(0, [250]), row(0, [100]), rps)).toEqual({ value: 2.5, low: 2.5, high: 2.5, rounds: 1 });
      expect(paired(row(0, [0, 100, 100]), row(0, [100, 100, 100]), rps)).toMatchObject({ value: 1, low: 0 });
      expect(paired(row(300, [100, 200]), row(400), rps)).toEqual({ value: 0.75, low: 0.75, high: 0.75, rounds: 0 });
      expect(paired(row(300), undefined, rps).value).toBeNaN();
    });
  });

  it("summarize keeps each round's rate and CPU beside the means, which the judged ratios pair", () => {
    const run = { p50: 10, p99: 20, errors: 0, lost: 0, unanswered: 1, duplicated: 0 };
    const summary = summarize("publish", "gateway amqp://", "250 B", 64, [
      { ...run, rps: 3_000, cpuUs: 300 },
      { ...run, rps: 2_000, cpuUs: Number.NaN },
    ]);
    expect(summary.perRound).toEqual([{ rps: 3_000, cpuUs: 300 }, { rps: 2_000 }]);
    expect(summary).toMatchObject({ rps: 2_500, rounds: 2, unanswered: 2 });
  });

  it("a lost or duplicated message anywhere fails the run", () => {
    const report = passingReport();
    const floor = report.measurements.find((m) => m.section === "floor");
    if (floor) floor.duplicated = 1;
    expect(unmet(report)).toEqual(["zero lost or duplicated messages"]);
  });

  it("memory is judged from the first reading to the last", () => {
    const report = passingReport();
    report.memory.stepsMb = [500, 510, 520, 525, 531];
    expect(unmet(report)).toEqual(["workerd RSS grows < 30 MB over 200000 publishes"]);
  });

  it("batch publish under half the direct client's rate is not met", () => {
    const report = passingReport();
    const batch = report.measurements.find((m) => m.section === "batch");
    if (batch) batch.msgs = 4_999;
    expect(unmet(report)).toEqual(["batch publish ≥ 0.5× amqp-client direct (msg/s)"]);
  });
});

describe("summarizeProfile", () => {
  // root → fetch → publish → serialize, and fetch → parse; publish also recurses into itself.
  const frame = (functionName: string) => ({ functionName, url: "file:///bundle/worker.js", lineNumber: 9 });
  const profile: CpuProfile = {
    nodes: [
      { id: 1, callFrame: { functionName: "(root)", url: "", lineNumber: -1 }, children: [2, 6] },
      { id: 2, callFrame: frame("fetch"), children: [3, 5] },
      { id: 3, callFrame: frame("publish"), children: [4, 7] },
      { id: 4, callFrame: frame("serialize") },
      { id: 5, callFrame: frame("parse") },
      { id: 6, callFrame: { functionName: "(idle)", url: "", lineNumber: -1 } },
      { id: 7, callFrame: frame("publish"), children: [8] },
      { id: 8, callFrame: frame("serialize") },
    ],
    samples: [4, 4, 8, 5, 6, 6, 6, 3, 2, 2],
    startTime: 0,
    endTime: 1,
  };

  it("self time is where the sample fell; inclusive counts a recursive function once per sample", () => {
    const { self, inclusive } = summarizeProfile(profile);
    const percent = (entries: typeof self, name: string) => entries.find((entry) => entry.name.startsWith(name))?.percent;
    expect(percent(self, "serialize")).toBe(30);
    expect(percent(self, "(idle)")).toBe(30);
    expect(percent(self, "fetch")).toBe(20);
    expect(percent(inclusive, "fetch")).toBe(70);
    expect(percent(inclusive, "publish")).toBe(40);
    expect(self[0]?.name).toMatch(/^(serialize worker\.js:10|\(idle\))$/);
    expect(inclusive.some((entry) => entry.name === "(root)")).toBe(false);
  });

  it("with the bundle's source map, names frames by the file and line they came from", () => {
    // Line 10 of the bundle, column 0, comes from line 5 of ../../node_modules/hono/dist/compose.js.
    const sourceMap = JSON.stringify({
      version: 3,
      sources: ["../../node_modules/hono/dist/compose.js"],
      names: ["dispatch"],
      mappings: ";;;;;;;;;AAIAA",
    });
    const { self, files } = summarizeProfile(profile, 25, sourceMap);
    // V8's function names stay; every frame of the bundle is on that line here: all but the idle samples.
    expect(self.find((entry) => entry.name === "serialize hono/dist/compose.js:5")?.percent).toBe(30);
    expect(self.find((entry) => entry.name === "fetch hono/dist/compose.js:5")?.percent).toBe(20);
    expect(files.find((entry) => entry.name === "hono/dist/compose.js")?.percent).toBe(70);
    expect(files.find((entry) => entry.name === "(idle)")?.percent).toBe(30);
  });
});

describe("the pressure targets", () => {
  const truth = (false202: number, duplicates: number, autoAck: boolean) => ({
    autoAck,
    seconds: 20,
    answers: { "202": 100 },
    accepted: 100,
    consumed: 90,
    leftInQueue: 10,
    faults: [],
    false202,
    falseRefusals: 0,
    duplicates,
    strangers: 0,
  });
  const pressureOnly = (extra: Partial<Report>): Report => ({ ...passingReport(), measurements: [], ...extra });

  it("one false 202 fails the truth target; duplicates fail it only with auto_ack", () => {
    const met = (report: Report) => verdicts(report).map((verdict) => verdict.met);
    expect(met(pressureOnly({ truth: [truth(0, 0, true), truth(0, 5, false)] }))).toEqual([true, true]);
    expect(met(pressureOnly({ truth: [truth(1, 0, true)] }))).toEqual([false]);
    expect(met(pressureOnly({ truth: [truth(0, 1, true)] }))).toEqual([false]);
  });

  it("memory is judged by what the gateway adds to the runtime's own growth on the ceiling route", () => {
    const memory = (manyMb: number, ceilingManyMb: number) => ({
      idleMb: 100,
      batchMb: 150,
      batchSize: 10_000,
      batchStatus: 202,
      manyMb,
      publishes: 200_000,
      largeMb: 200,
      largeAccepted: 64,
      ceiling: { idleMb: 90, manyMb: ceilingManyMb, largeMb: 190 },
    });
    const manyVerdict = (report: Report) => verdicts(report).find((verdict) => verdict.target.includes("200000 publishes"))?.met;
    expect(manyVerdict(pressureOnly({ pressureMemory: memory(300, 250) }))).toBe(true); // +200 vs the runtime's +160
    expect(manyVerdict(pressureOnly({ pressureMemory: memory(300, 120) }))).toBe(false); // +200 vs the runtime's +30
  });

  it("a batch is judged against its own gateway's idle figure when it had a gateway of its own", () => {
    const batchVerdict = (report: Report) => verdicts(report).find((verdict) => verdict.target.includes("batch of"));
    const base = { idleMb: 100, batchSize: 10_000, batchStatus: 202, manyMb: 110, publishes: 200_000, largeMb: 120, largeAccepted: 64 };
    const ceiling = { idleMb: 90, manyMb: 100, largeMb: 110 };
    // Its own gateway idled at 40 MB: +70 MB is over the 64 MB headroom, though only +10 above the other gateway's idle.
    const own = batchVerdict(pressureOnly({ pressureMemory: { ...base, ceiling, batchIdleMb: 40, batchMb: 110 } }));
    expect(own?.met).toBe(false);
    expect(own?.measured).toContain("(40 → 110 MB)");
    // Runs from before: the batch against the one gateway's idle.
    expect(batchVerdict(pressureOnly({ pressureMemory: { ...base, ceiling, batchMb: 110 } }))?.met).toBe(true);
  });
});

describe("the routing targets", () => {
  const REPLY_TARGET =
    "request/reply through the gateway ≥ 0.3× amqp-client's direct RPC (round trips/s, 64 in flight, 250 B); where 0.3× is above what one request through the gateway can do on the machine (the higher of the no-AMQP ceiling and a fixed-key publish), ≥ 0.6× that";
  /** A `routing`-only run: templated at `templated` req/s against 1,000 fixed; replies at `replies` round trips/s against 1,000 direct. */
  const routingOnly = (templated: number, replies: number): Report => ({
    ...passingReport(),
    sections: ["routing"],
    measurements: [
      measurement("routing", ROUTING.fixed, ROUTING.payload, 1_000),
      measurement("routing", ROUTING.templated, ROUTING.payload, templated),
      measurement("request/reply", ROUTING.replyGateway, ROUTING.payload, replies),
      measurement("request/reply", ROUTING.replyDirect, ROUTING.payload, 1_000),
    ],
  });
  const unmetTargets = (report: Report) =>
    verdicts(report)
      .filter((verdict) => !verdict.met)
      .map((verdict) => verdict.target.split(":")[0]);

  it("templated exactly at 0.9× the fixed key and replies exactly at 0.3× amqp-client's RPC are met; only the routing targets are judged", () => {
    const report = routingOnly(900, 300);
    // Three judged targets, and the schema cost, measured only.
    expect(verdicts(report)).toHaveLength(4);
    expect(verdicts(report).filter((verdict) => !verdict.info)).toHaveLength(3);
    expect(unmetTargets(report)).toEqual([]);
  });

  it("below either ratio, or a lost request, is not met", () => {
    expect(unmetTargets(routingOnly(899, 300))).toEqual([
      "templated publish (routing_key {key} from the path) within 10% of a fixed-key publish",
    ]);
    expect(unmetTargets(routingOnly(900, 299))).toEqual([REPLY_TARGET]);
    const report = routingOnly(900, 300);
    const reply = report.measurements.find((m) => m.variant === ROUTING.replyGateway);
    if (reply) reply.lost = 1;
    expect(unmetTargets(report)).toEqual(["routing and request/reply"]);
  });

  it("where 0.3× amqp-client's RPC is above both the no-AMQP ceiling and a fixed-key publish, replies at 0.6× the higher are met, and below it not", () => {
    const withCeiling = (replies: number, ceiling: number) => {
      const report = routingOnly(900, replies);
      report.measurements.push(measurement("routing", ROUTING.ceiling, ROUTING.payload, ceiling));
      return report;
    };
    // Fixed-key publish at 1,000 (routingOnly): 0.3× of a direct RPC at 5,000 is 1,500, above it.
    const direct = (report: Report) => {
      const row = report.measurements.find((m) => m.variant === ROUTING.replyDirect);
      if (row) row.rps = 5_000;
      return report;
    };
    expect(unmetTargets(direct(withCeiling(600, 800)))).toEqual([]); // bound max(800, 1000) = 1000; 600 = 0.6×
    expect(unmetTargets(direct(withCeiling(599, 800)))).toEqual([REPLY_TARGET]);
    expect(unmetTargets(direct(withCeiling(720, 1_200)))).toEqual([]); // bound 1200; 720 = 0.6×
    expect(unmetTargets(direct(withCeiling(719, 1_200)))).toEqual([REPLY_TARGET]);
    // A ceiling above 0.3× changes nothing: the direct ratio decides.
    expect(unmetTargets(withCeiling(299, 1_000))).toEqual([REPLY_TARGET]);
  });

  it("a missing figure is never counted as met", () => {
    const report = routingOnly(900, 300);
    report.measurements = report.measurements.filter((m) => m.variant !== ROUTING.replyDirect);
    expect(unmetTargets(report)).toEqual([REPLY_TARGET]);
  });
});

describe("the runtimes targets", () => {
  const rounds = (...rates: number[]) => rates.map((rps) => ({ rps }));
  const row = (variant: string, payload: string, ...rates: number[]): Measurement => ({
    ...measurement("runtimes", variant, payload, rates[1] ?? 0),
    connections: RUNTIME_CONNECTIONS,
    perRound: rounds(...rates),
  });
  /** Node's publish at 250 B: gateway, its no-AMQP ceiling and the broker's floor, round by round. */
  const nodePublish = (gateway: number[], ceiling: number[], floor: number[] | undefined): Report => ({
    ...passingReport(),
    sections: ["runtimes"],
    measurements: [
      row(RUNTIME_VARIANT.publish("node"), "250 B", ...gateway),
      row(RUNTIME_VARIANT.publishCeiling("node"), "250 B", ...ceiling),
      ...(floor ? [row(BROKER_FLOOR.publish, "250 B", ...floor)] : []),
    ],
  });
  const target = (report: Report) =>
    verdicts(report).find((verdict) => verdict.target.startsWith("node publish ≥ 0.8× the lower of") && verdict.target.endsWith("(250 B)"));

  it("a runtime is judged against the lower of its no-AMQP ceiling and the broker's floor, round by round", () => {
    // A ceiling far above what the broker confirms: the floor is what a gateway could reach.
    const met = target(nodePublish([6_000, 6_000, 6_000], [15_000, 15_000, 15_000], [7_000, 7_500, 7_000]));
    expect(met?.met).toBe(true);
    expect(met?.measured).toMatch(/^0\.86× \(median of 3 rounds, 0\.80–0\.86×\); of the ceiling alone 0\.40×/);
    // A floor higher than the ceiling in one round: that round is judged against the ceiling.
    expect(target(nodePublish([6_000, 6_000, 6_000], [15_000, 6_500, 15_000], [7_000, 9_000, 7_000]))?.met).toBe(true);
    expect(target(nodePublish([6_000, 6_000, 6_000], [15_000, 15_000, 15_000], [8_000, 8_000, 8_000]))?.met).toBe(false);
  });

  it("without the broker's floor, or with rounds that do not pair up, the target is never met", () => {
    expect(target(nodePublish([6_000, 6_000, 6_000], [6_500, 6_500, 6_500], undefined))?.met).toBe(false);
    expect(target(nodePublish([6_000, 6_000, 6_000], [6_500, 6_500, 6_500], [6_500, 6_500]))?.met).toBe(false);
  });
});
