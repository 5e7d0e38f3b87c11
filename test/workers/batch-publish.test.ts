import { describe, expect, it } from "vitest";
import { BROKER_URL, drain, messageCount, withQueue } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

const producer = (id: string, queue: string, extra = ", batch: true") => `
routes:
  - { id: ${id}, path: /in, amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} ${extra} } } }
`;

describe("with producer.batch", () => {
  it("each NDJSON line is a message, all confirmed before one 202 with the count", () =>
    withQueue("batch", async (queue) => {
      const id = uniqueRouteId("ndjson");
      const response = await gatewayFor(producer(id, queue))("POST", "/in", {
        body: '{"n":1}\n{"n":2}\r\n\n{"n":3}\n',
        headers: { "content-type": "application/x-ndjson" },
      });
      expect(response.status).toBe(202);
      expect(await response.json()).toEqual({ status: "published", count: 3, exchange: "", routing_key: queue });
      const messages = await drain(queue);
      expect(messages.map((message) => message.bodyString())).toEqual(['{"n":1}', '{"n":2}', '{"n":3}']);
      expect(messages.every((message) => message.properties.contentType === "application/json")).toBe(true);
      const stats = (await (await gatewayFor(producer(id, queue))("GET", "/amqp")).json()) as Record<
        string,
        { published: number; total_requests: number }
      >;
      expect(stats[id]).toMatchObject({ published: 3, total_requests: 1 });
    }));

  it("each element of a JSON array is a message; Idempotency-Key gives each its own id", () =>
    withQueue("batch", async (queue) => {
      const response = await gatewayFor(producer(uniqueRouteId("array"), queue))("POST", "/in", {
        body: JSON.stringify([{ a: 1 }, "two", [3]]),
        headers: { "content-type": "application/json", "idempotency-key": "k" },
      });
      expect(response.status).toBe(202);
      const messages = await drain(queue);
      expect(messages.map((message) => message.bodyString())).toEqual(['{"a":1}', '"two"', "[3]"]);
      expect(messages.map((message) => message.properties.messageId)).toEqual(["k-0", "k-1", "k-2"]);
    }));

  it("a JSON object is one message", () =>
    withQueue("batch", async (queue) => {
      const response = await gatewayFor(producer(uniqueRouteId("object"), queue))("POST", "/in", {
        body: '{"not":"a batch"}',
        headers: { "content-type": "application/json" },
      });
      expect(response.status).toBe(202);
      expect((await drain(queue)).map((message) => message.bodyString())).toEqual(['{"not":"a batch"}']);
    }));

  it("more than max_batch messages is a 413 and publishes nothing", () =>
    withQueue("batch", async (queue) => {
      const response = await gatewayFor(producer(uniqueRouteId("max"), queue, ", batch: true, max_batch: 2"))("POST", "/in", {
        body: "[1,2,3]",
        headers: { "content-type": "application/json" },
      });
      expect(response.status).toBe(413);
      expect(await messageCount(queue)).toBe(0);
    }));

  it("a partial failure says which messages were not confirmed", () =>
    withQueue(
      "batch",
      async (queue) => {
        const id = uniqueRouteId("partial");
        const response = await gatewayFor(producer(id, queue))("POST", "/in", {
          body: "[1,2,3,4]",
          headers: { "content-type": "application/json" },
        });
        expect(response.status).toBe(502);
        expect(await response.json()).toEqual({
          error: "2 of 4 messages were not confirmed: the broker refused the message: negative confirm (basic.nack)",
          route: id,
          count: 2,
          failed: [
            { index: 2, error: "the broker refused the message: negative confirm (basic.nack)" },
            { index: 3, error: "the broker refused the message: negative confirm (basic.nack)" },
          ],
        });
        expect((await drain(queue)).map((message) => message.bodyString())).toEqual(["1", "2"]);
      },
      { "x-max-length": 2, "x-overflow": "reject-publish" },
    ));
});

describe("without producer.batch", () => {
  it("an NDJSON body is one message, as sent", () =>
    withQueue("batch", async (queue) => {
      const body = '{"n":1}\n{"n":2}\n';
      expect(
        (
          await gatewayFor(producer(uniqueRouteId("plain"), queue, ""))("POST", "/in", {
            body,
            headers: { "content-type": "application/x-ndjson" },
          })
        ).status,
      ).toBe(202);
      const messages = await drain(queue);
      expect(messages.map((message) => message.bodyString())).toEqual([body]);
      expect(messages[0]?.properties.contentType).toBe("application/x-ndjson");
    }));
});
