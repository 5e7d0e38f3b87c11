import { describe, expect, it } from "vitest";
import { BROKER_URL, drain, messageCount, withChannel, withQueue } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

const bridge = (queue: string) => `
routes:
  - { id: ${uniqueRouteId("in")}, path: /in, amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} } } }
  - { id: ${uniqueRouteId("out")}, path: /out, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue} } } }
`;

describe("request headers become message properties", () => {
  it("each supported header sets its property", () =>
    withQueue("props", async (queue) => {
      const response = await gatewayFor(bridge(queue))("POST", "/in", {
        body: "{}",
        headers: {
          "content-type": "application/vnd.example+json",
          "content-encoding": "identity",
          "idempotency-key": "order-42",
          "x-correlation-id": "corr-7",
          "x-reply-to": "replies",
          "x-priority": "7",
          "x-expiration": "60000",
          "x-type": "order.created",
          "x-amqp-header-tenant": "acme",
          "x-amqp-header-Trace-Id": "abc",
        },
      });
      expect(response.status, await response.clone().text()).toBe(202);
      const [message] = await drain(queue);
      expect(message?.properties).toMatchObject({
        contentType: "application/vnd.example+json",
        contentEncoding: "identity",
        messageId: "order-42",
        correlationId: "corr-7",
        replyTo: "replies",
        priority: 7,
        expiration: "60000",
        type: "order.created",
        deliveryMode: 2,
        headers: { tenant: "acme", "trace-id": "abc" },
      });
    }));

  it("X-Message-Id is the message id when there is no Idempotency-Key", () =>
    withQueue("msgid", async (queue) => {
      expect((await gatewayFor(bridge(queue))("POST", "/in", { body: "{}", headers: { "x-message-id": "m-1" } })).status).toBe(202);
      expect((await drain(queue))[0]?.properties.messageId).toBe("m-1");
    }));

  it.each([
    ["x-priority", "high", /X-Priority: "high" is not a whole number from 0 to 9/],
    ["x-priority", "10", /X-Priority/],
    ["x-expiration", "soon", /X-Expiration: "soon" is not a number of milliseconds/],
    ["x-correlation-id", "x".repeat(256), /X-Correlation-Id: must be at most 255 bytes/i],
    // (That the limit is in bytes, not characters, is in test/unit/message-properties.test.ts.)
  ])("a bad %s (%s) is a 400 naming the header, and nothing is published", (header, value, reason) =>
    withQueue("bad-header", async (queue) => {
      const response = await gatewayFor(bridge(queue))("POST", "/in", { body: "{}", headers: { [header]: value } });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: string }).error).toMatch(reason);
      expect(await messageCount(queue)).toBe(0);
    }),
  );

  it("persistent: false publishes with delivery mode 1", () =>
    withQueue("transient", async (queue) => {
      const yaml = `
routes:
  - { id: ${uniqueRouteId("in")}, path: /in, amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue}, persistent: false } } }
`;
      expect((await gatewayFor(yaml)("POST", "/in", { body: "{}" })).status).toBe(202);
      expect((await drain(queue))[0]?.properties.deliveryMode).toBe(1);
    }));
});

describe("a consumed message's properties become response headers", () => {
  it("ids, origin, redelivery, the count left and the headers table", () =>
    withQueue("resp", async (queue) => {
      await withChannel(async (channel) => {
        for (const n of [1, 2]) {
          await channel.basicPublish("", queue, `m${n}`, {
            contentType: "text/plain",
            messageId: `id-${n}`,
            correlationId: `c-${n}`,
            headers: { tenant: "acme", attempt: n, nested: { a: 1 } },
          });
        }
      });
      const response = await gatewayFor(bridge(queue))("GET", "/out");
      expect(response.status).toBe(200);
      expect(await response.text()).toBe("m1");
      expect(Object.fromEntries(response.headers)).toMatchObject({
        "content-type": "text/plain",
        "x-message-id": "id-1",
        "x-correlation-id": "c-1",
        "x-routing-key": queue,
        "x-exchange": "",
        "x-redelivered": "false",
        "x-message-count": "1",
        "x-amqp-header-tenant": "acme",
        "x-amqp-header-attempt": "1",
        "x-amqp-header-nested": '{"a":1}',
      });
    }));
});
