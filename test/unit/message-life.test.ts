/**
 * The pure parts of a message's life: how a delivery's count is read from what the broker and the
 * gateway put in its headers, which rungs of the delay ladder a delay takes, what a put-back message
 * keeps of its headers, and what `npm run check` warns about `max_deliveries`.
 */
import type { AMQPMessage } from "@cloudamqp/amqp-client";
import { describe, expect, it } from "vitest";
import { deliveryCountOf, republishedHeaders } from "../../src/amqp/delivery-count";
import { MAX_LADDER_S, delayHeaders, delaySeconds, withoutDelayHeaders } from "../../src/amqp/delay-queues";
import { deadLetterWarnings } from "../../src/config/dead-letter-warnings";
import { parseRoutes } from "../../src/config/parse-routes";

const delivery = (headers: Record<string, unknown> | undefined, redelivered = false) =>
  ({ properties: { headers }, redelivered }) as unknown as AMQPMessage;

describe("a delivery's count", () => {
  it("is 1 the first time, and counts the broker's redeliveries and the gateway's put-backs", () => {
    expect(deliveryCountOf(delivery(undefined))).toBe(1);
    // A classic queue says only that it was delivered before.
    expect(deliveryCountOf(delivery(undefined, true))).toBe(2);
    // A quorum queue counts (0 on a first delivery, in RabbitMQ 3.10), 64-bit or not.
    expect(deliveryCountOf(delivery({ "x-delivery-count": 0 }))).toBe(1);
    expect(deliveryCountOf(delivery({ "x-delivery-count": 4n }, true))).toBe(5);
    // Put back by the gateway after its 3rd delivery, then lost once with a connection.
    expect(deliveryCountOf(delivery({ "runway-delivery-count": 3 }))).toBe(4);
    expect(deliveryCountOf(delivery({ "runway-delivery-count": 3 }, true))).toBe(5);
    expect(deliveryCountOf(delivery({ "runway-delivery-count": 3, "x-delivery-count": 2 }, true))).toBe(6);
  });

  it("ignores a count that is not a whole number of 0 or more", () => {
    for (const bad of [-1, 1.5, "x", "1e3", null, { a: 1 }, Number.MAX_VALUE]) {
      expect(deliveryCountOf(delivery({ "runway-delivery-count": bad }))).toBe(1);
    }
    expect(deliveryCountOf(delivery({ "runway-delivery-count": "7" }))).toBe(8);
  });
});

describe("a put-back message's headers", () => {
  it("keep the message's own, drop what dead-lettering and the ladder added, and carry the count", () => {
    const headers = {
      app: "kept",
      "x-death": [{ queue: "runway.delay.2s" }],
      "x-first-death-queue": "q",
      "x-last-death-reason": "expired",
      "x-delivery-count": 2,
      "runway-delivery-count": 1,
      "runway-delay-2s": "1",
      "runway-delay-to": "queue:q",
    };
    expect(republishedHeaders(headers, 3)).toEqual({ app: "kept", "runway-delivery-count": 3 });
    // A redriven message starts counting again.
    expect(republishedHeaders(headers)).toEqual({ app: "kept" });
  });
});

describe("the delay ladder", () => {
  it("takes the rungs whose bits make up the delay, rounded up to whole seconds", () => {
    expect(delaySeconds(1)).toBe(1);
    expect(delaySeconds(1000)).toBe(1);
    expect(delaySeconds(1001)).toBe(2);
    expect(delayHeaders(5, { exchange: "", routingKey: "jobs" })).toEqual({
      "runway-delay-to": "queue:jobs",
      "runway-delay-1s": "1",
      "runway-delay-4s": "1",
    });
    expect(delayHeaders(86_400, { exchange: "events", routingKey: "a.b" })).toEqual({
      "runway-delay-to": "exchange:events",
      "runway-delay-128s": "1",
      "runway-delay-256s": "1",
      "runway-delay-4096s": "1",
      "runway-delay-16384s": "1",
      "runway-delay-65536s": "1",
    });
    // 24 h of X-Delay and 12 h of nack delay both fit.
    expect(MAX_LADDER_S).toBeGreaterThanOrEqual(86_400);
    expect(Object.keys(delayHeaders(MAX_LADDER_S, { exchange: "", routingKey: "q" }))).toHaveLength(18);
  });

  it("drops a publisher's own ladder headers: only the gateway steers a message through it", () => {
    expect(withoutDelayHeaders({ a: "1", "runway-delay-65536s": "1", "runway-delay-to": "queue:other" })).toEqual({ a: "1" });
  });
});

describe("npm run check", () => {
  const routes = (topology: string) =>
    `${topology}routes:\n  - id: r1\n    path: /r1\n    amqp: { enabled: true, url: "amqp://h", consumer: { queue: jobs, ack: lease, max_deliveries: 5 } }\n`;

  it("warns when a max_deliveries route's queue has no dead-letter exchange in the file", () => {
    const plain = parseRoutes(routes(""));
    if (!plain.ok) throw new Error(plain.problems.join("\n"));
    expect(deadLetterWarnings(plain.config)).toEqual([
      expect.stringMatching(/queue jobs has no x-dead-letter-exchange.*delivered 5 times is dropped/),
    ]);
    const withDlx = parseRoutes(
      routes(
        `topology:\n  queues:\n    - { name: jobs, arguments: { x-dead-letter-exchange: "" , x-dead-letter-routing-key: jobs.dead } }\n`,
      ),
    );
    if (!withDlx.ok) throw new Error(withDlx.problems.join("\n"));
    expect(deadLetterWarnings(withDlx.config)).toEqual([]);
  });
});
