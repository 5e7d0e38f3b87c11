/**
 * Routing from the request, inside workerd against the real broker: a producer's routing key and
 * properties from path parameters, query parameters and headers (400 naming what is missing or
 * too long), and a consumer route over many queues by path parameter.
 */
import { describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, drain, publishDirect, uniqueName } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

const withQueues = async (names: string[], test: () => Promise<void>) => {
  for (const name of names) await declareQueue(name);
  try {
    await test();
  } finally {
    for (const name of names) await deleteQueue(name);
  }
};

describe("a producer's routing key from the request", () => {
  it("takes path parameters, query parameters and headers, and reports the key it used", async () => {
    const base = uniqueName("tpl");
    const [alpha, beta] = [`${base}.alpha.eu.acme`, `${base}.beta.eu.acme`];
    await withQueues([alpha, beta], async () => {
      const send = gatewayFor(`routes:
  - id: ${uniqueRouteId("tpl")}
    path: /users/:id/events
    amqp:
      enabled: true
      url: "${BROKER_URL}"
      producer: { routing_key: "${base}.{id}.{query.region}.{header.x-tenant}" }
`);
      const answer = await send("POST", "/users/alpha/events?region=eu", { body: "a", headers: { "x-tenant": "acme" } });
      expect(answer.status).toBe(202);
      expect(await answer.json()).toMatchObject({ status: "published", exchange: "", routing_key: alpha });
      expect((await send("POST", "/users/beta/events?region=eu", { body: "b", headers: { "x-tenant": "acme" } })).status).toBe(202);
      expect((await drain(alpha)).map((message) => message.bodyString())).toEqual(["a"]);
      expect((await drain(beta)).map((message) => message.bodyString())).toEqual(["b"]);
    });
  });

  it("answers 400 naming a missing value, or a key over 255 bytes, and publishes nothing", async () => {
    const queue = uniqueName("tpl-missing");
    await withQueues([queue], async () => {
      const id = uniqueRouteId("missing");
      const send = gatewayFor(
        `routes:\n  - { id: ${id}, path: /in, amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: "${queue}{query.suffix}{header.x-more}" } } }\n`,
      );
      const noQuery = await send("POST", "/in", { body: "x", headers: { "x-more": "" } });
      expect(noQuery.status).toBe(400);
      expect(await noQuery.json()).toEqual({
        error: "routing_key needs the query parameter suffix, which the request does not have",
        route: id,
      });
      const noHeader = await send("POST", "/in?suffix=1", { body: "x" });
      expect(((await noHeader.json()) as { error: string }).error).toMatch(/needs the header x-more/);
      const tooLong = await send("POST", `/in?suffix=${"k".repeat(300)}`, { body: "x", headers: { "x-more": "m" } });
      expect(tooLong.status).toBe(400);
      expect(((await tooLong.json()) as { error: string }).error).toMatch(
        /routing_key would be \d+ bytes from this request, more than 255/,
      );
      expect(await drain(queue)).toEqual([]);
    });
  });

  it("refuses a key that names RabbitMQ's direct reply-to, which can close the route's publishing connection", async () => {
    const queue = uniqueName("tpl-reply-to");
    await withQueues([queue], async () => {
      const id = uniqueRouteId("reply-to");
      const send = gatewayFor(
        `routes:\n  - { id: ${id}, path: /in, amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: "{query.key}" } } }\n`,
      );
      // A crafted one (a pid of the broker's node) made RabbitMQ 3.10 close the connection: INTERNAL_ERROR.
      for (const key of ["amq.rabbitmq.reply-to", "amq.rabbitmq.reply-to.g2dkAA1yYWJiaXRAbG9jYWxob3N0AAAAAAAAAAAAAAAAAA==.abc"]) {
        const refused = await send("POST", `/in?key=${encodeURIComponent(key)}`, { body: "x" });
        expect(refused.status).toBe(400);
        expect(((await refused.json()) as { error: string }).error).toMatch(/direct reply-to/);
      }
      expect((await send("POST", `/in?key=${queue}`, { body: "x" })).status).toBe(202);
      expect((await drain(queue)).length).toBe(1);
    });
  });

  it("sets message_id, type and headers-table entries from the request where the request sets none itself", async () => {
    const queue = uniqueName("tpl-props");
    await withQueues([queue], async () => {
      const send = gatewayFor(`routes:
  - id: ${uniqueRouteId("props")}
    path: /orders/:order
    amqp:
      enabled: true
      url: "${BROKER_URL}"
      producer:
        routing_key: ${queue}
        message_id: "order-{order}"
        type: "order.{query.kind}"
        headers: { tenant: "{header.x-tenant}", fixed: "yes" }
`);
      await send("POST", "/orders/42?kind=created", { body: "1", headers: { "x-tenant": "acme" } });
      await send("POST", "/orders/43?kind=paid", {
        body: "2",
        headers: { "x-tenant": "acme", "x-message-id": "client-id", "x-amqp-header-fixed": "client" },
      });
      const [first, second] = await drain(queue);
      expect(first?.properties).toMatchObject({ messageId: "order-42", type: "order.created", headers: { tenant: "acme", fixed: "yes" } });
      expect(second?.properties).toMatchObject({
        messageId: "client-id",
        type: "order.paid",
        headers: { tenant: "acme", fixed: "client" },
      });
    });
  });
});

describe("a consumer route over many queues", () => {
  it("takes from the queue its path names", async () => {
    const base = uniqueName("inbox");
    const [ann, bob] = [`${base}.ann`, `${base}.bob`];
    await withQueues([ann, bob], async () => {
      await publishDirect(ann, "for ann");
      await publishDirect(bob, "for bob");
      const send = gatewayFor(
        `routes:\n  - { id: ${uniqueRouteId("inbox")}, path: "/inbox/:user", amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: "${base}.{user}", auto_ack: true } } }\n`,
      );
      expect(await (await send("GET", "/inbox/bob")).text()).toBe("for bob");
      expect(await (await send("GET", "/inbox/ann")).text()).toBe("for ann");
      expect((await send("GET", "/inbox/ann")).status).toBe(204);
      const missing = await send("GET", "/inbox/nobody");
      expect(missing.status).toBe(404);
      expect(((await missing.json()) as { error: string }).error).toMatch(new RegExp(`queue "${base}.nobody" does not exist`));
    });
  });
});
