/**
 * Concurrent requests sharing calls to their route's object (src/http/shared-object-calls.ts):
 * the mechanism with a send of its own (how many calls, which items, failures, a call that never
 * answers), then GETs against the real broker, many at once, each answered with its own message.
 */
import { describe, expect, it } from "vitest";
import { MAX_IN_FLIGHT, MAX_ITEMS, SharedCallTimeout, SharedObjectCalls } from "../../src/http/shared-object-calls";
import { BROKER_URL, declareQueue, deleteQueue, messageCount, publishDirect, uniqueName } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

/** A send that answers each item doubled after `delayMs`, and remembers each call and how many were on their way at once. */
const doublingObject = (delayMs = 5) => {
  const calls: number[][] = [];
  let inFlight = 0;
  let mostInFlight = 0;
  const send = async (items: number[]): Promise<number[]> => {
    calls.push(items);
    mostInFlight = Math.max(mostInFlight, ++inFlight);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    inFlight--;
    return items.map((item) => item * 2);
  };
  return { calls, send, mostInFlight: () => mostInFlight };
};

const ignore = () => undefined;

describe("shared calls to an object", () => {
  it("sends a lone call at once, with its item alone", async () => {
    const shared = new SharedObjectCalls<number, number>();
    const object = doublingObject();
    const answer = shared.call("route", 21, object.send, ignore, 1_000);
    // Sent before anything was awaited: a quiet route adds no wait to a call.
    expect(object.calls).toEqual([[21]]);
    expect(await answer).toBe(42);
  });

  it("answers many concurrent calls each with its own result, in far fewer calls, never more than allowed at once", async () => {
    const shared = new SharedObjectCalls<number, number>();
    const object = doublingObject();
    const items = Array.from({ length: 200 }, (_, index) => index);
    const answers = await Promise.all(items.map((item) => shared.call("route", item, object.send, ignore, 5_000)));
    expect(answers).toEqual(items.map((item) => item * 2));
    expect(object.calls.length).toBeLessThan(items.length / 4);
    expect(object.calls.flat().sort((a, b) => a - b)).toEqual(items);
    expect(Math.max(...object.calls.map((call) => call.length))).toBeLessThanOrEqual(MAX_ITEMS);
    expect(object.mostInFlight()).toBeLessThanOrEqual(MAX_IN_FLIGHT);
  });

  it("keeps objects apart: items for one object never go in another's call", async () => {
    const shared = new SharedObjectCalls<number, number>();
    const [one, two] = [doublingObject(), doublingObject()];
    const answers = await Promise.all(
      Array.from({ length: 60 }, (_, index) =>
        index % 2 ? shared.call("one", index, one.send, ignore, 5_000) : shared.call("two", -index, two.send, ignore, 5_000),
      ),
    );
    expect(answers).toEqual(Array.from({ length: 60 }, (_, index) => (index % 2 ? index * 2 : -index * 2)));
    expect(one.calls.flat().every((item) => item > 0)).toBe(true);
    expect(two.calls.flat().every((item) => item <= 0)).toBe(true);
  });

  it("fails every item of a call that fails, with its error, and goes on with later calls", async () => {
    const shared = new SharedObjectCalls<number, number>();
    const reset = Object.assign(new Error("the object was reset"), { retryable: true });
    let failing = true;
    const send = async (items: number[]): Promise<number[]> => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      if (failing) throw reset;
      return items;
    };
    const failed = await Promise.allSettled(Array.from({ length: 20 }, (_, index) => shared.call("route", index, send, ignore, 5_000)));
    expect(failed.every((one) => one.status === "rejected" && one.reason === reset)).toBe(true);
    failing = false;
    expect(await Promise.all([1, 2, 3].map((item) => shared.call("route", item, send, ignore, 5_000)))).toEqual([1, 2, 3]);
  });

  it("fails the items of a call that never answers once their time is up, and the call stops holding its place", async () => {
    const shared = new SharedObjectCalls<number, number>();
    let hang = true;
    const send = (items: number[]): Promise<number[]> => (hang ? new Promise<number[]>(() => undefined) : Promise.resolve(items));
    const hung = await Promise.allSettled(Array.from({ length: 10 }, (_, index) => shared.call("route", index, send, ignore, 100)));
    expect(hung.every((one) => one.status === "rejected" && one.reason instanceof SharedCallTimeout && one.reason.sent)).toBe(true);
    hang = false;
    expect(await shared.call("route", 7, send, ignore, 1_000)).toBe(7);
  });

  it("keeps the request that sends a call going until the call is done", async () => {
    const shared = new SharedObjectCalls<number, number>();
    const object = doublingObject();
    const kept: Array<Promise<unknown>> = [];
    await Promise.all([1, 2, 3].map((item) => shared.call("route", item, object.send, (call) => kept.push(call), 1_000)));
    expect(kept.length).toBe(object.calls.length);
  });
});

describe("GETs sharing calls, against the real broker", () => {
  const withMessages = async (count: number, test: (queue: string, bodies: string[]) => Promise<void>) => {
    const queue = uniqueName("shared");
    await declareQueue(queue);
    try {
      const bodies = Array.from({ length: count }, (_, index) => `message ${index} ${crypto.randomUUID()}`);
      for (const body of bodies) await publishDirect(queue, body);
      await test(queue, bodies);
    } finally {
      await deleteQueue(queue);
    }
  };

  for (const autoAck of [true, false]) {
    it(`hands each of ${120} concurrent GETs its own message, every message once (auto_ack: ${autoAck})`, () =>
      withMessages(120, async (queue, bodies) => {
        const send = gatewayFor(
          `routes:\n  - { id: ${uniqueRouteId("shared")}, path: /jobs, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, auto_ack: ${autoAck} } } }\n`,
        );
        const answers = await Promise.all(bodies.map(() => send("GET", "/jobs")));
        expect(answers.map((answer) => answer.status)).toEqual(bodies.map(() => 200));
        const received = await Promise.all(answers.map((answer) => answer.text()));
        expect([...received].sort()).toEqual([...bodies].sort());
        // Without auto-ack, each is acknowledged once its body is written: none comes back.
        await expect.poll(() => messageCount(queue), { timeout: 5_000 }).toBe(0);
        expect((await send("GET", "/jobs")).status).toBe(204);
      }));
  }

  it("hands 40 concurrent GETs of 1 MiB messages each its own, none lost: what does not fit beside the others in one answer is taken again alone", () =>
    withMessages(0, async (queue) => {
      const bodies = Array.from({ length: 40 }, (_, index) => `${index}:${crypto.randomUUID()}:`.padEnd(1024 * 1024, "x"));
      for (const body of bodies) await publishDirect(queue, body);
      const send = gatewayFor(
        `routes:\n  - { id: ${uniqueRouteId("shared-large")}, path: /jobs, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, auto_ack: true } } }\n`,
      );
      const answers = await Promise.all(bodies.map(() => send("GET", "/jobs")));
      expect(answers.map((answer) => answer.status)).toEqual(bodies.map(() => 200));
      const received = await Promise.all(answers.map((answer) => answer.text()));
      expect([...received].sort()).toEqual([...bodies].sort());
      expect(await messageCount(queue)).toBe(0);
    }));

  it("answers concurrent GETs for different queues of one route, in shared calls, each from the queue it asked for", async () => {
    const queues = [uniqueName("shared-a"), uniqueName("shared-b"), uniqueName("shared-c")];
    for (const queue of queues) await declareQueue(queue);
    try {
      for (const queue of queues) for (let index = 0; index < 20; index++) await publishDirect(queue, `${queue}/${index}`);
      const send = gatewayFor(
        `routes:\n  - { id: ${uniqueRouteId("shared")}, path: "/inbox/:name", amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: "{name}", auto_ack: true } } }\n`,
      );
      const asked = queues.flatMap((queue) => Array.from({ length: 20 }, () => queue));
      const answers = await Promise.all(asked.map((queue) => send("GET", `/inbox/${queue}`).then((answer) => answer.text())));
      answers.forEach((body, index) => expect(body.startsWith(`${asked[index]}/`)).toBe(true));
      for (const queue of queues) expect(await messageCount(queue)).toBe(0);
    } finally {
      for (const queue of queues) await deleteQueue(queue);
    }
  });
});
