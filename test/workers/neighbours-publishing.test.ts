/**
 * One route, many callers who do not trust each other: what one caller sends must not change the
 * answer another caller gets. Each test runs honest callers, whose every answer is checked against
 * the broker with an AMQP client of the test's own, beside a caller doing one hostile (or merely
 * unlucky) thing on the same route, at the same time. Here: publishing.
 */
import { describe, expect, it } from "vitest";
import { BROKER_URL, drain, messageCount, uniqueName, withChannel, withQueue } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";
import { beside, uniqueBodies } from "./neighbours";

describe("a caller publishing to exchanges the broker refuses", () => {
  it("changes nothing for callers publishing on the same route: each 202 is in the queue, nothing is refused", async () => {
    const exchange = uniqueName("ex");
    const internal = uniqueName("ex-internal");
    await withQueue("ex-target", async (queue) => {
      await withChannel(async (channel) => {
        await channel.exchangeDeclare(exchange, "direct", { durable: false, autoDelete: false });
        await channel.exchangeDeclare(internal, "direct", { durable: false, autoDelete: false, internal: true });
        await channel.queueBind(queue, exchange, queue);
      });
      try {
        const routeId = uniqueRouteId("ex");
        const send = gatewayFor(
          `routes:\n  - { id: ${routeId}, path: "/to/:exchange", amqp: { enabled: true, url: "${BROKER_URL}", producer: { exchange: "{exchange}", routing_key: ${queue} } } }\n`,
        );
        const bodies = uniqueBodies(400);
        const hostileStatuses = new Set<number>();
        const { result } = await beside(
          async () => {
            const statuses = new Map<string, number>();
            const publisher = async (mine: string[]) => {
              for (const body of mine) {
                const answer = await send("POST", `/to/${exchange}`, { body });
                statuses.set(body, answer.status);
                await answer.body?.cancel();
              }
            };
            await Promise.all(Array.from({ length: 8 }, (_, lane) => publisher(bodies.filter((_, index) => index % 8 === lane))));
            return statuses;
          },
          async () => {
            const targets = [`${uniqueName("missing")}`, internal];
            const answers = await Promise.all(targets.map((target) => send("POST", `/to/${target}`, { body: "hostile" })));
            for (const answer of answers) {
              hostileStatuses.add(answer.status);
              await answer.body?.cancel();
            }
          },
        );
        expect([...hostileStatuses].every((status) => status >= 400 && status < 600 && status !== 504)).toBe(true);
        expect([...result.values()].filter((status) => status !== 202)).toEqual([]);
        const queued = (await drain(queue)).map((message) => message.bodyString());
        expect([...queued].sort()).toEqual([...bodies].sort());
      } finally {
        await withChannel(async (channel) => {
          await channel.exchangeDelete(exchange);
          await channel.exchangeDelete(internal);
        });
      }
    });
  });
});

describe("mandatory publishes of the same body by two callers", () => {
  it("are each answered for their own message: the routed one 202, the unroutable one 422", async () => {
    const exchange = uniqueName("headers");
    await withQueue("headers-target", async (queue) => {
      await withChannel(async (channel) => {
        await channel.exchangeDeclare(exchange, "headers", { durable: false, autoDelete: false });
        await channel.queueBind(queue, exchange, "", { "x-match": "all", route: "yes" });
      });
      try {
        const send = gatewayFor(
          `routes:\n  - { id: ${uniqueRouteId("mandatory")}, path: /events, amqp: { enabled: true, url: "${BROKER_URL}", producer: { exchange: ${exchange}, mandatory: true } } }\n`,
        );
        const rounds = 150;
        const routed: number[] = [];
        const unroutable: number[] = [];
        for (let round = 0; round < rounds; round += 10) {
          // The same body, sent at the same moment by a caller whose header routes and by one whose header does not.
          const answers = await Promise.all(
            Array.from({ length: 10 }, (_, offset) => [
              send("POST", "/events", { body: "same body", headers: { "x-amqp-header-route": "yes" } }).then((answer) => {
                routed.push(answer.status);
                return answer.body?.cancel();
              }),
              send("POST", "/events", { body: "same body", headers: { "x-amqp-header-route": `no-${offset}` } }).then((answer) => {
                unroutable.push(answer.status);
                return answer.body?.cancel();
              }),
            ]).flat(),
          );
          expect(answers).toHaveLength(20);
        }
        expect(routed.filter((status) => status !== 202)).toEqual([]);
        expect(unroutable.filter((status) => status !== 422)).toEqual([]);
        expect(await messageCount(queue)).toBe(rounds);
      } finally {
        await withChannel((channel) => channel.exchangeDelete(exchange));
      }
    });
  });
});

describe("a publish to an exchange whose name holds a line break", () => {
  // RabbitMQ quotes the name in its reason for closing the channel, line break and all.
  it("is the broker's refusal of that message (502), not an unknown outcome (504)", async () => {
    await withQueue("ex-line-break", async (queue) => {
      const send = gatewayFor(
        `routes:\n  - { id: ${uniqueRouteId("ex-lb")}, path: "/to/:exchange", amqp: { enabled: true, url: "${BROKER_URL}", producer: { exchange: "{exchange}", routing_key: ${queue} } } }\n`,
      );
      for (const name of [`${queue}%0A`, `%0D${queue}`]) {
        const answer = await send("POST", `/to/${name}`, { body: "refused" });
        expect(`${name}: ${answer.status}`).toBe(`${name}: 502`);
        await answer.body?.cancel();
      }
      expect(await messageCount(queue)).toBe(0);
    });
  });
});
