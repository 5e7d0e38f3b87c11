/**
 * What the broker can never take is a 400 in the Worker, before anything is sent: nothing is
 * published, and the route's connection (with the publishes in flight on it) is not disturbed.
 */
import { describe, expect, it } from "vitest";
import { encodedPropertiesBytes, MAX_PROPERTIES_BYTES } from "../../src/contract/frame-limits";
import { BROKER_URL, drain, withQueue } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

const producer = (id: string, queue: string, extra = "") => `
routes:
  - { id: ${id}, path: /in, amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} ${extra} } } }
`;

type Gateway = ReturnType<typeof gatewayFor>;

/** Sends `bad` while 50 good publishes are in flight on the same route; the good ones must all be 202. */
const amidGoodPublishes = async (gateway: Gateway, bad: () => Promise<Response>) => {
  const good = Array.from({ length: 50 }, (_, i) => gateway("POST", "/in", { body: `good ${i}` }).then((r) => r.status));
  const answer = await bad();
  expect(await Promise.all(good)).toEqual(Array(50).fill(202));
  return { status: answer.status, body: (await answer.json()) as { error: string; route: string } };
};

describe("a request the broker could never take", () => {
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    [
      "a headers-table name over 255 bytes",
      { [`x-amqp-header-${"n".repeat(256)}`]: "v" },
      /the name after x-amqp-header- must be at most 255 bytes/,
    ],
    [
      "properties that do not fit in a frame",
      { "x-amqp-header-a": "a".repeat(70_000), "x-amqp-header-b": "b".repeat(70_000) },
      /properties would take \d+ bytes, more than the 131050 .*\(the largest is x-amqp-header-[ab]\); nothing was published/,
    ],
    ["a repeated single-valued header", { "x-message-id": "a, a" }, /header x-message-id: was sent more than once/],
    ["a repeated priority", { "x-priority": "1, 2" }, /header x-priority: was sent more than once/],
  ];

  it.each(cases)("%s is a 400 naming it; nothing is published and other publishes go on", (_, headers, reason) =>
    withQueue("limits", async (queue) => {
      const id = uniqueRouteId("limits");
      const gateway = gatewayFor(producer(id, queue));
      const { status, body } = await amidGoodPublishes(gateway, () => gateway("POST", "/in", { body: "bad", headers }));
      expect(status).toBe(400);
      expect(body.error).toMatch(reason);
      expect(body.route).toBe(id);
      const bodies = (await drain(queue)).map((message) => message.bodyString());
      expect(bodies).toHaveLength(50);
      expect(bodies).not.toContain("bad");
    }),
  );

  it("properties that take exactly what a frame leaves are published; one byte more is a 400", () =>
    withQueue("limits", async (queue) => {
      const gateway = gatewayFor(producer(uniqueRouteId("limits"), queue));
      // Every message also carries a traceparent (the request's, or one the gateway starts: 55 characters).
      const traceparent = "0".repeat(55);
      const room = MAX_PROPERTIES_BYTES - encodedPropertiesBytes({ contentType: "application/json", headers: { big: "", traceparent } });
      const fits = await gateway("POST", "/in", {
        body: "fits",
        headers: { "content-type": "application/json", "x-amqp-header-big": "v".repeat(room) },
      });
      expect(fits.status, await fits.clone().text()).toBe(202);
      const over = await gateway("POST", "/in", {
        body: "over",
        headers: { "content-type": "application/json", "x-amqp-header-big": "v".repeat(room + 1) },
      });
      expect(over.status).toBe(400);
      expect(((await over.json()) as { error: string }).error).toMatch(/x-amqp-header-big/);
      const [message, ...rest] = await drain(queue);
      expect(rest).toEqual([]);
      expect(message?.bodyString()).toBe("fits");
      expect((message?.properties.headers?.["big"] as string).length).toBe(room);
    }));

  it("an 80 KB header value, which fits in a frame, is published", () =>
    withQueue("limits", async (queue) => {
      const gateway = gatewayFor(producer(uniqueRouteId("limits"), queue));
      const value = "v".repeat(80_000);
      const { status } = await amidGoodPublishes(gateway, () =>
        gateway("POST", "/in", { body: "big", headers: { "x-amqp-header-big": value } }),
      );
      expect(status).toBe(202);
      const big = (await drain(queue)).find((message) => message.bodyString() === "big");
      expect(big?.properties.headers?.["big"]).toBe(value);
    }));

  it("a batch whose Idempotency-Key with its -<index> suffix would pass 255 bytes is a 400", () =>
    withQueue("limits", async (queue) => {
      const id = uniqueRouteId("limits");
      const gateway = gatewayFor(producer(id, queue, ", batch: true"));
      const key = "k".repeat(253);
      const batch = JSON.stringify(Array.from({ length: 12 }, (_, i) => ({ i })));
      const { status, body } = await amidGoodPublishes(gateway, () =>
        gateway("POST", "/in", { body: batch, headers: { "idempotency-key": key, "content-type": "application/json" } }),
      );
      expect(status).toBe(400);
      expect(body.error).toMatch(/Idempotency-Key: with the "-11" suffix .* 256 bytes, more than 255; nothing was published/);
      expect(await drain(queue)).toHaveLength(50);
      // One byte shorter still fits with a one-digit suffix.
      const small = await gateway("POST", "/in", {
        body: JSON.stringify([1, 2]),
        headers: { "idempotency-key": "k".repeat(253), "content-type": "application/json" },
      });
      expect(small.status).toBe(202);
      expect((await drain(queue)).map((message) => message.properties.messageId)).toEqual([`${key}-0`, `${key}-1`]);
    }));
});

describe("a batch", () => {
  it("publishes each element's bytes exactly as sent", () =>
    withQueue("raw-batch", async (queue) => {
      const gateway = gatewayFor(producer(uniqueRouteId("raw"), queue, ", batch: true"));
      const elements = ["12345678901234567890", "1e400", '{"a":1,"a":2}', '"caf\\u00e9"', '{ "spaced" : [ 1 , 2 ] }'];
      const response = await gateway("POST", "/in", {
        body: `[ ${elements.join(" ,\n ")} ]`,
        headers: { "content-type": "application/json" },
      });
      expect(response.status).toBe(202);
      expect((await drain(queue)).map((message) => message.bodyString())).toEqual(elements);
    }));

  it("a malformed NDJSON line is a 400 naming its line, and nothing is published", () =>
    withQueue("raw-batch", async (queue) => {
      const gateway = gatewayFor(producer(uniqueRouteId("raw"), queue, ", batch: true"));
      const response = await gateway("POST", "/in", {
        body: '{"ok":1}\n\n{"broken":\n{"ok":2}\n',
        headers: { "content-type": "application/x-ndjson" },
      });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: string }).error).toBe(
        "line 3 of the NDJSON body is not valid JSON; nothing was published",
      );
      expect(await drain(queue)).toEqual([]);
    }));
});
