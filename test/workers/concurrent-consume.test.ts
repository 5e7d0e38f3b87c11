/**
 * Many GETs at once on one route, against the real broker: each answered with its own message,
 * every message taken once, with auto_ack true and false, with 1 MiB messages, and across the
 * queues of a queue template.
 */
import { describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, messageCount, publishDirect, uniqueName, withQueue } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

describe("concurrent GETs against the real broker", () => {
  /** A fresh queue holding `bodies`, in order. */
  const withMessages = (bodies: string[], test: (queue: string) => Promise<void>) =>
    withQueue("concurrent", async (queue) => {
      for (const body of bodies) await publishDirect(queue, body);
      await test(queue);
    });
  const uniqueBodies = (count: number, length = 0) =>
    Array.from({ length: count }, (_, index) => `${index}:${crypto.randomUUID()}:`.padEnd(length, "x"));

  for (const autoAck of [true, false]) {
    const bodies = uniqueBodies(120);
    it(`hands each of ${bodies.length} concurrent GETs its own message, every message once (auto_ack: ${autoAck})`, () =>
      withMessages(bodies, async (queue) => {
        const send = gatewayFor(
          `routes:\n  - { id: ${uniqueRouteId("concurrent")}, path: /jobs, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, auto_ack: ${autoAck} } } }\n`,
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

  it("hands 40 concurrent GETs of 1 MiB messages each its own, none lost", () => {
    const bodies = uniqueBodies(40, 1024 * 1024);
    return withMessages(bodies, async (queue) => {
      const send = gatewayFor(
        `routes:\n  - { id: ${uniqueRouteId("concurrent-large")}, path: /jobs, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, auto_ack: true } } }\n`,
      );
      const answers = await Promise.all(bodies.map(() => send("GET", "/jobs")));
      expect(answers.map((answer) => answer.status)).toEqual(bodies.map(() => 200));
      const received = await Promise.all(answers.map((answer) => answer.text()));
      expect([...received].sort()).toEqual([...bodies].sort());
      expect(await messageCount(queue)).toBe(0);
    });
  });

  it("answers concurrent GETs for different queues of one route (a queue template), each from the queue it asked for", async () => {
    const queues = [uniqueName("template-a"), uniqueName("template-b"), uniqueName("template-c")];
    for (const queue of queues) await declareQueue(queue);
    try {
      for (const queue of queues) for (let index = 0; index < 20; index++) await publishDirect(queue, `${queue}/${index}`);
      const send = gatewayFor(
        `routes:\n  - { id: ${uniqueRouteId("concurrent")}, path: "/inbox/:name", amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: "{name}", auto_ack: true } } }\n`,
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
