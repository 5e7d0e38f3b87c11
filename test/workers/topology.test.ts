/**
 * `topology` in routes.yaml, inside workerd against the real broker: declared (created when
 * missing) or verified (checked, never created) once per connection before it serves; a
 * failure answers 503 naming the object and what is wrong, and is tried again a second later.
 * Every object is a gw-test-* one of the test's own, deleted afterwards.
 */
import { describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, drain, exchangeExists, queueExists, uniqueName, withChannel } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

const deleteExchange = (name: string) => withChannel((channel) => channel.exchangeDelete(name)).catch(() => undefined);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface ErrorBody {
  error: string;
  route: string;
}

describe("topology with mode: declare", () => {
  it("creates a topic exchange, a quorum queue with its arguments and the binding, before the first publish", async () => {
    const queue = uniqueName("topo-quorum");
    const [exchange, deadLetters] = [`${queue}-events`, `${queue}-dlx`];
    const id = uniqueRouteId("topo-declare");
    const args = { "x-queue-type": "quorum", "x-dead-letter-exchange": deadLetters, "x-max-length": 100, "x-overflow": "reject-publish" };
    try {
      const send = gatewayFor(`routes:
  - id: ${id}
    path: /orders/:kind
    amqp:
      enabled: true
      url: "${BROKER_URL}"
      producer: { exchange: ${exchange}, routing_key: "order.{kind}", mandatory: true }
      topology:
        mode: declare
        exchanges:
          - { name: ${exchange}, type: topic, durable: false }
          - { name: ${deadLetters}, type: fanout, durable: false }
        queues:
          - name: ${queue}
            durable: true
            arguments:
              x-queue-type: quorum
              x-dead-letter-exchange: ${deadLetters}
              x-max-length: 100
              x-overflow: reject-publish
        bindings:
          - { source: ${exchange}, destination: ${queue}, routing_key: "order.#" }
`);
      const answer = await send("POST", "/orders/created", { body: "first order" });
      expect(answer.status).toBe(202);
      expect(await answer.json()).toMatchObject({ status: "published", exchange, routing_key: "order.created" });

      // Seen by a client of the test's own: the queue exists, and the message reached it through the topic binding.
      expect(await queueExists(queue)).toBe(true);
      expect((await drain(queue)).map((message) => message.bodyString())).toEqual(["first order"]);
      // Redeclaring with the same settings is accepted only when the broker's queue has each of these arguments, equal.
      await expect(withChannel((channel) => channel.queueDeclare(queue, { durable: true }, args))).resolves.toBeDefined();
      await expect(
        withChannel((channel) => channel.queueDeclare(queue, { durable: true }, { ...args, "x-queue-type": "classic" })),
      ).rejects.toThrow(/PRECONDITION_FAILED - inequivalent arg 'x-queue-type'.*received 'classic' but current is 'quorum'/);
      await expect(
        withChannel((channel) => channel.queueDeclare(queue, { durable: true }, { ...args, "x-max-length": 5 })),
      ).rejects.toThrow(/inequivalent arg 'x-max-length'/);
      await expect(withChannel((channel) => channel.exchangeDeclare(exchange, "direct", { durable: false }))).rejects.toThrow(
        /inequivalent arg 'type'.*current is 'topic'/,
      );
      expect(await exchangeExists(deadLetters)).toBe(true);
    } finally {
      await deleteQueue(queue);
      await deleteExchange(exchange);
      await deleteExchange(deadLetters);
    }
  });

  it("applies the top-level topology on every route's connections, before the route's own", async () => {
    const queue = uniqueName("topo-shared");
    const exchange = `${queue}-x`;
    const [viaExchange, viaDefault, consumer] = [uniqueRouteId("topo-a"), uniqueRouteId("topo-b"), uniqueRouteId("topo-c")];
    try {
      const send = gatewayFor(`topology:
  exchanges: [{ name: ${exchange}, type: direct, durable: false }]
  queues: [{ name: ${queue}, durable: false }]
routes:
  - id: ${viaExchange}
    path: /a
    amqp:
      enabled: true
      url: "${BROKER_URL}"
      producer: { exchange: ${exchange}, routing_key: a, mandatory: true }
      # Binds what the top-level block declares: it works only when that block comes first.
      topology: { bindings: [{ source: ${exchange}, destination: ${queue}, routing_key: a }] }
  - id: ${viaDefault}
    path: /b
    amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue}, mandatory: true } }
  - id: ${consumer}
    path: /c
    amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, auto_ack: true } }
`);
      // Mandatory: 202 means the message reached a queue, through the binding.
      expect((await send("POST", "/a", { body: "via a" })).status).toBe(202);
      expect((await drain(queue)).map((message) => message.bodyString())).toEqual(["via a"]);

      // Route b's first connection declares the top-level block again.
      await deleteQueue(queue);
      await deleteExchange(exchange);
      expect((await send("POST", "/b", { body: "via b" })).status).toBe(202);
      expect(await exchangeExists(exchange)).toBe(true);
      expect((await drain(queue)).map((message) => message.bodyString())).toEqual(["via b"]);

      // And so does the consuming connection of route c: an empty queue (204), not a missing one (404).
      await deleteQueue(queue);
      expect((await send("GET", "/c")).status).toBe(204);
      expect(await queueExists(queue)).toBe(true);
    } finally {
      await deleteQueue(queue);
      await deleteExchange(exchange);
    }
  });

  it("has many concurrent first requests wait for one pass, and every message arrives", async () => {
    const queue = uniqueName("topo-burst");
    const exchange = `${queue}-x`;
    const count = 30;
    try {
      const send = gatewayFor(`routes:
  - id: ${uniqueRouteId("topo-burst")}
    path: /burst
    amqp:
      enabled: true
      url: "${BROKER_URL}"
      producer: { exchange: ${exchange}, routing_key: burst, mandatory: true }
      topology:
        exchanges: [{ name: ${exchange}, durable: false }]
        queues: [{ name: ${queue}, durable: false }]
        bindings: [{ source: ${exchange}, destination: ${queue}, routing_key: burst }]
`);
      const bodies = Array.from({ length: count }, (_, i) => `burst message ${i}`);
      // Ten at once, the rest one every 4 ms: some arrive while the connection opens, some while the topology
      // is being applied. One published before the binding (or the exchange) exists would be refused: 422
      // (unroutable) or 502.
      const answers = await Promise.all(
        bodies.map(async (body, i) => {
          await sleep(Math.max(0, i - 9) * 4);
          return (await send("POST", "/burst", { body })).status;
        }),
      );
      expect(answers).toEqual(bodies.map(() => 202));
      const arrived = (await drain(queue)).map((message) => message.bodyString());
      expect(arrived.sort()).toEqual([...bodies].sort());
    } finally {
      await deleteQueue(queue);
      await deleteExchange(exchange);
    }
  });
});

describe("topology arguments", () => {
  it("reach the broker as written, integers of 2^31 and above included (as 64-bit, not wrapped negative)", async () => {
    const queue = uniqueName("topo-wide");
    try {
      const send = gatewayFor(`routes:
  - id: ${uniqueRouteId("wide")}
    path: /wide
    amqp:
      enabled: true
      url: "${BROKER_URL}"
      producer: { routing_key: ${queue} }
      topology:
        queues: [{ name: ${queue}, arguments: { x-max-length-bytes: 3000000000, x-message-ttl: 2500000000 } }]
`);
      expect((await send("POST", "/wide", { body: "x" })).status).toBe(202);
      // Redeclared with the same values as 64-bit integers: accepted only if they are what the broker holds.
      await withChannel((channel) =>
        channel.queueDeclare(queue, { durable: true }, { "x-max-length-bytes": 3_000_000_000n, "x-message-ttl": 2_500_000_000n }),
      );
    } finally {
      await deleteQueue(queue);
    }
  });
});

describe("topology with mode: verify", () => {
  it("answers 503 naming a missing queue, creates nothing, and shows the failure in GET /amqp", async () => {
    const queue = uniqueName("topo-missing");
    const id = uniqueRouteId("topo-verify");
    try {
      const send = gatewayFor(`routes:
  - id: ${id}
    path: /in
    amqp:
      enabled: true
      url: "${BROKER_URL}"
      producer: { routing_key: ${queue} }
      topology:
        mode: verify
        queues: [{ name: ${queue} }]
`);
      for (let i = 0; i < 2; i++) {
        const answer = await send("POST", "/in", { body: "not for anyone" });
        expect(answer.status).toBe(503);
        expect(answer.headers.get("retry-after")).toBe("1");
        const body = (await answer.json()) as ErrorBody;
        expect(Object.keys(body).sort()).toEqual(["error", "route"]);
        expect(body.route).toBe(id);
        expect(body.error).toContain(`queue ${queue}`);
        expect(body.error).toMatch(/does not exist/);
      }
      expect(await queueExists(queue)).toBe(false);

      const stats = (await (await send("GET", "/amqp")).json()) as Record<
        string,
        { total_errors: number; published: number; last_error: { message: string } | null }
      >;
      expect(stats[id]).toMatchObject({ total_errors: 2, published: 0 });
      expect(stats[id]?.last_error?.message).toContain(`queue ${queue}: does not exist`);
    } finally {
      await deleteQueue(queue);
    }
  });

  it("answers 503 naming an argument that differs, and succeeds once the broker is fixed and a second has passed", async () => {
    const queue = uniqueName("topo-ttl");
    const id = uniqueRouteId("topo-mismatch");
    await declareQueue(queue, { "x-message-ttl": 1000 });
    try {
      const send = gatewayFor(`routes:
  - id: ${id}
    path: /in
    amqp:
      enabled: true
      url: "${BROKER_URL}"
      producer: { routing_key: ${queue}, mandatory: true }
      topology:
        mode: verify
        queues: [{ name: ${queue}, arguments: { x-message-ttl: 2000 } }]
`);
      const refused = await send("POST", "/in", { body: "too early" });
      expect(refused.status).toBe(503);
      const body = (await refused.json()) as ErrorBody;
      expect(body.route).toBe(id);
      expect(body.error).toContain(`queue ${queue}: x-message-ttl is 1000 on the broker, 2000 in routes.yaml`);
      // Verifying left the broker's queue as it was.
      await expect(
        withChannel((channel) => channel.queueDeclare(queue, { durable: true }, { "x-message-ttl": 1000 })),
      ).resolves.toBeDefined();

      // The broker is fixed; the failure stands for a second, then a request tries again.
      await deleteQueue(queue);
      await declareQueue(queue, { "x-message-ttl": 2000 });
      await sleep(1100);
      // Mandatory: 202 means the message reached the (right) queue.
      expect((await send("POST", "/in", { body: "in time" })).status).toBe(202);
      expect((await send("POST", "/in", { body: "and again" })).status).toBe(202);
    } finally {
      await deleteQueue(queue);
    }
  });
});
