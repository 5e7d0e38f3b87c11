/**
 * No false 202 under load: publishers with unique bodies and consumers on one small queue that
 * refuses what it cannot hold (x-max-length 50, reject-publish, so RabbitMQ nacks, often many at
 * once), while the gateway's links to the broker are cut and then a memory alarm blocks
 * publishers. An AMQP client of the test's own takes what is left, and every answer is held to its
 * promise. Faults run on a disposable broker of the test's own, never the user's. Over both
 * transports: TCP, and Web-AMQP through a websockify relay of the rig's own.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTruthRig, TRUTH_MODES, truthUnderLoad, type TruthRig, type TruthTransport } from "../helpers/truth-under-load";
import { npmStart, type RunningGateway } from "./npm-start";

const SECONDS = 6;

describe.each<TruthTransport>(["amqp", "ws"])("over %s://, under load, while the broker refuses, cuts and blocks", (transport) => {
  let rig: TruthRig;
  let gateway: RunningGateway;

  beforeAll(async () => {
    rig = await startTruthRig(transport);
    gateway = await npmStart(rig.routes);
  }, 180_000);

  afterAll(async () => {
    await gateway?.stop();
    await rig?.stop();
  });

  it.each(TRUTH_MODES)(
    "every 202 on $path was queued, nothing refused was, and auto_ack $autoAck holds",
    async ({ path, queue, autoAck }) => {
      const report = await truthUnderLoad({
        gatewayUrl: gateway.url,
        publishPath: path,
        consume: { path, autoAck },
        publishers: 32,
        consumers: 8,
        seconds: SECONDS,
        faults: rig.faults(autoAck, 1500),
        drainQueue: rig.drainQueue(queue),
      });
      // What the run saw, shown only when an assertion fails.
      const seen = JSON.stringify({
        answers: report.answers,
        consumeAnswers: report.consumeAnswers,
        faults: report.faults,
        consumed: report.consumed,
        left: report.leftInQueue,
      });
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
    },
  );
});
