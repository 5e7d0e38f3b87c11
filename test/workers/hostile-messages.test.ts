/**
 * Consuming never fails because of what a producer put in a message's properties: the body is
 * delivered, properties that are not plain header values arrive percent-encoded and named in
 * X-AMQP-Encoded, and nothing stays stuck at the head of the queue.
 */
import type { AMQPProperties } from "@cloudamqp/amqp-client";
import { describe, expect, it } from "vitest";
import { BROKER_URL, messageCount, withChannel, withQueue } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

const consumer = (id: string, queue: string, autoAck: boolean) => `
routes:
  - { id: ${id}, path: /out, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, auto_ack: ${autoAck} } } }
`;

/** What other producers may legally send, and no HTTP header can carry as it is. */
const HOSTILE: Array<{ what: string; properties: AMQPProperties }> = [
  { what: "a message_id with a line break", properties: { messageId: "a\nb" } },
  { what: "a content_type with CR LF and a header after it", properties: { contentType: "text/plain\r\nX-Injected: yes" } },
  { what: "a headers-table name with a space and a colon", properties: { headers: { "bad key: x": "v" } } },
  { what: "a headers-table value with NUL", properties: { headers: { nul: "a\u0000b" } } },
  { what: "a correlation_id with non-ASCII text", properties: { correlationId: "ünïcødé ✓" } },
  { what: "a headers-table value of 20 KiB", properties: { headers: { big: "x".repeat(20_000), small: "kept" } } },
];

// A frame large enough for the 20 KiB header (amqp-client's default is 4 KiB).
const publishHostile = (queue: string) =>
  withChannel(async (channel) => {
    await channel.confirmSelect();
    for (const [i, { properties }] of HOSTILE.entries()) await channel.basicPublish("", queue, `body ${i}`, properties);
  });

describe.each([true, false])("a consumer route (auto_ack: %s)", (autoAck) => {
  it("delivers every message whatever its properties hold, and leaves none behind", () =>
    withQueue("hostile", async (queue) => {
      const id = uniqueRouteId("hostile");
      const gateway = gatewayFor(consumer(id, queue, autoAck));
      await publishHostile(queue);
      const answers = [];
      for (let i = 0; i < HOSTILE.length; i++) {
        const response = await gateway("GET", "/out");
        answers.push({ status: response.status, body: new TextDecoder().decode(await response.arrayBuffer()), headers: response.headers });
      }
      expect(answers.map((answer) => answer.status)).toEqual(HOSTILE.map(() => 200));
      expect(answers.map((answer) => answer.body)).toEqual(HOSTILE.map((_, i) => `body ${i}`));
      expect((await gateway("GET", "/out")).status).toBe(204);
      expect(await messageCount(queue)).toBe(0);

      const [lineBreak, crlf, badName, nul, unicode, big] = answers;
      expect(lineBreak?.headers.get("x-message-id")).toBe("a%0Ab");
      expect(lineBreak?.headers.get("x-amqp-encoded")).toBe("x-message-id");
      expect(decodeURIComponent(crlf?.headers.get("content-type") ?? "")).toBe("text/plain\r\nX-Injected: yes");
      expect(crlf?.headers.get("x-injected")).toBeNull();
      expect(badName?.headers.get("x-amqp-header-bad%20key%3A%20x")).toBe("v");
      expect(badName?.headers.get("x-amqp-encoded")).toBe("x-amqp-header-bad%20key%3a%20x");
      expect(nul?.headers.get("x-amqp-header-nul")).toBe("a%00b");
      expect(decodeURIComponent(unicode?.headers.get("x-correlation-id") ?? "")).toBe("ünïcødé ✓");
      expect(big?.headers.get("x-amqp-header-big")).toBeNull();
      expect(big?.headers.get("x-amqp-omitted")).toBe("big");
      expect(big?.headers.get("x-amqp-header-small")).toBe("kept");

      const stats = (await (await gateway("GET", "/amqp")).json()) as Record<string, { total_errors: number; consumed: number }>;
      expect(stats[id]).toMatchObject({ total_errors: 0, consumed: HOSTILE.length });
    }));
});

describe("a message whose properties would make huge headers", () => {
  it("is answered with at most 8 KiB of headers, the rest named in X-AMQP-Omitted", () =>
    withQueue("huge-headers", async (queue) => {
      const id = uniqueRouteId("huge");
      const gateway = gatewayFor(consumer(id, queue, false));
      const long = "€".repeat(85);
      const headers = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}${"é".repeat(126)}`, "é".repeat(200)]));
      await withChannel(async (channel) => {
        await channel.confirmSelect();
        await channel.basicPublish("", queue, "the body", {
          contentType: long,
          messageId: long,
          correlationId: long,
          type: long,
          replyTo: long,
          headers,
        });
      });
      const response = await gateway("GET", "/out");
      expect(response.status).toBe(200);
      expect(new TextDecoder().decode(await response.arrayBuffer())).toBe("the body");
      let bytes = 0;
      for (const [name, value] of response.headers) bytes += name.length + value.length + 4;
      expect(bytes).toBeLessThanOrEqual(8192);
      const omitted = response.headers.get("x-amqp-omitted") ?? "";
      // The list itself is cut to about a kilobyte, with the count.
      expect(Number(/\((\d+) in all\)$/.exec(omitted)?.[1])).toBeGreaterThan(30);
      expect(decodeURIComponent(response.headers.get("x-message-id") ?? "")).toBe(long);
    }));
});
