/**
 * Many callers, one route, through the gateway as `npm start` runs it: honest callers publishing
 * unique bodies and consuming them (plain, batches, long-polls), beside a hostile caller doing
 * every thing one caller could once do to another, all at once, on 1 and 4 shards, over both
 * transports. Every honest answer must be true (each 202 consumed or still queued, counted the
 * moment the load ends), no honest caller may see an error it did not cause, nothing may be handed
 * out twice with auto_ack, each hostile request gets its own answer, and workerd's memory stays
 * bounded. (The full-size run, with the honest callers' latency, is in `npm run bench`.)
 */
import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLocalGateway, type LocalGateway } from "../../scripts/lib/local-gateway";
import { BROKER_URL } from "../helpers/broker";
import { connectInspector, mostAliveDuring } from "./inspector";
import {
  manyCallersNames,
  manyCallersRoutes,
  runManyCallers,
  setUpManyCallers,
  tearDownManyCallers,
  type ManyCallersNames,
} from "../helpers/many-callers";
import { freePort, routesFile } from "./npm-start";

const status = (pid: number, field: "VmRSS" | "VmHWM") =>
  Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024;

/** What each hostile request may be answered: its own refusal, or the route's limits. */
const EXPECTED: Record<string, number[]> = {
  "missing-queues": [404, 429],
  "reply-to": [400, 429],
  expiration: [400, 429],
  "bad-exchanges": [502, 429],
  // Its own key reused for another body of its own is its own 422.
  "idempotency-keys": [202, 422, 429],
  "large-bodies": [202, 429, 503],
  "large-batches": [200, 204, 429, 503],
  "long-polls": [200, 204, 429, 503],
  streams: [200, 429, 503],
  "unroutable-twins": [422, 429],
  flood: [204, 429],
};

// 1 and 4 shards, both transports and both ack modes, in two runs (the bench runs the same two at full size).
const variants = [
  { transport: "amqp", shards: 1, autoAck: true },
  { transport: "ws", shards: 4, autoAck: false },
] as const;

describe.each(variants)("one route over $transport://, $shards shard(s), auto_ack $autoAck", ({ transport, shards, autoAck }) => {
  let names: ManyCallersNames;
  let gateway: LocalGateway;
  let inspectorPort: number;

  beforeAll(async () => {
    names = manyCallersNames();
    await setUpManyCallers(names, BROKER_URL, 40);
    const brokerUrl = transport === "ws" ? `ws://guest:guest@127.0.0.1:${await freePort()}/?vhost=/` : BROKER_URL;
    const routes = manyCallersRoutes(names, { brokerUrl, adminUrl: BROKER_URL, shards, autoAck });
    process.env.ROUTES = routesFile(routes);
    process.env.LOG_LEVEL = "none";
    inspectorPort = await freePort();
    gateway = await startLocalGateway({ host: "127.0.0.1", port: await freePort(), inspectorPort });
  }, 120_000);

  afterAll(async () => {
    await gateway?.stop();
    await tearDownManyCallers(names, BROKER_URL);
    delete process.env.ROUTES;
  });

  it("keeps every honest answer true beside a hostile caller doing everything at once, within bounded memory", async () => {
    const pid = gateway.runtimePid ?? 0;
    // Idle as a gateway that has served the route: a few requests of each kind, one at a time.
    await runManyCallers({
      gatewayUrl: gateway.url,
      names,
      adminUrl: BROKER_URL,
      autoAck,
      dedupe: shards === 1,
      seconds: 1,
      honestPublishers: 1,
      honestConsumers: 1,
      hostileLoops: 1,
    });
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const idle = status(pid, "VmRSS");
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    const inspector = await connectInspector(inspectorPort);
    const { result: report, most } = await mostAliveDuring(inspector, 500, () =>
      runManyCallers({
        gatewayUrl: gateway.url,
        names,
        adminUrl: BROKER_URL,
        autoAck,
        dedupe: shards === 1,
        seconds: 6,
        honestPublishers: 8,
        honestConsumers: 4,
        hostileLoops: 2,
      }),
    ).finally(() => inspector.close());
    const peakAboveIdle = status(pid, "VmHWM") - idle;
    // Shown only when an assertion fails.
    const seen = JSON.stringify({ ...report, peakAboveIdle: Math.round(peakAboveIdle), mostAlive: most });
    expect(report.accepted, seen).toBeGreaterThan(100);
    expect(report.consumed, seen).toBeGreaterThan(0);
    expect(report.honestFailures, seen).toEqual([]);
    expect(report.false202, seen).toEqual([]);
    expect(report.strangers, seen).toEqual([]);
    if (autoAck) expect(report.duplicates, seen).toEqual([]);
    // Each hostile act ran, and got only its own answers.
    for (const [act, expected] of Object.entries(EXPECTED)) {
      const answers = report.hostile[act] ?? {};
      expect(
        Object.values(answers).reduce((a, b) => a + b, 0),
        `${act} ran: ${seen}`,
      ).toBeGreaterThan(0);
      expect(Object.keys(answers).map(Number), `${act}: ${seen}`).toSatisfy((statuses: number[]) =>
        statuses.every((one) => expected.includes(one)),
      );
    }
    // Bounded: what the isolate (the Worker and the route's objects together, here) holds alive,
    // its garbage collected every 500 ms, stays within one Cloudflare isolate's 128 MB. The RSS
    // peak is mostly garbage not collected yet and memory the allocator keeps (BENCHMARKS.md,
    // "Many callers on one route"): shown, not judged.
    expect(most.samples, seen).toBeGreaterThan(3);
    expect(most.liveMb, seen).toBeLessThan(128);
  }, 90_000);
});
