import { describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, messageCount, publishDirect, uniqueName, withChannel, withQueue } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

const producerOnly = (id: string, queue: string) => `
routes:
  - id: ${id}
    path: /in
    amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} } }
`;
const consumerOnly = (id: string, queue: string) => `
routes:
  - id: ${id}
    path: /out
    path_prefix: true
    amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, auto_ack: true } }
`;

describe("methods", () => {
  it("an exact route and a prefix route on one path each serve their methods there", () =>
    withQueue("overlap", async (queue) => {
      const [exact, prefix] = [uniqueRouteId("exact"), uniqueRouteId("prefix")];
      const gateway = gatewayFor(`
routes:
  - { id: ${exact}, path: /jobs, methods: [POST], amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} } } }
  - { id: ${prefix}, path: /jobs, path_prefix: true, methods: [GET], amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, auto_ack: true } } }
`);
      expect((await gateway("POST", "/jobs", { body: "one" })).status).toBe(202);
      const taken = await gateway("GET", "/jobs");
      expect(taken.status).toBe(200);
      expect(await taken.text()).toBe("one");
      expect((await gateway("GET", "/jobs/anything")).status).toBe(204);
      const options = await gateway("OPTIONS", "/jobs");
      expect(options.headers.get("allow")).toBe("POST, GET, OPTIONS");
      const refused = await gateway("PUT", "/jobs");
      expect(refused.status).toBe(405);
      expect(refused.headers.get("allow")).toBe("POST, GET, OPTIONS");
      expect((await gateway("POST", "/jobs/anything", { body: "two" })).status).toBe(405);
      expect(await messageCount(queue)).toBe(0);
    }));

  it("a producer-only route answers GET with 405 and Allow, without touching the queue", async () => {
    const id = uniqueRouteId("producer");
    const response = await gatewayFor(producerOnly(id, "unused"))("GET", "/in");
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("POST, PUT, OPTIONS");
    expect(await response.json()).toEqual({ error: "GET is not served here", route: id });
  });

  it("a consumer-only route answers POST with 405 and publishes nothing", async () => {
    const queue = uniqueName("c-only");
    await declareQueue(queue);
    try {
      const id = uniqueRouteId("consumer");
      const response = await gatewayFor(consumerOnly(id, queue))("POST", "/out", { body: "x" });
      expect(response.status).toBe(405);
      expect(response.headers.get("allow")).toBe("GET, DELETE, PATCH, OPTIONS");
      expect((await response.json()) as object).toMatchObject({ route: id });
      expect(await messageCount(queue)).toBe(0);
    } finally {
      await deleteQueue(queue);
    }
  });

  it("DELETE consumes like GET, as runway's documentation says of the other methods", async () => {
    const queue = uniqueName("delete");
    await declareQueue(queue);
    try {
      await publishDirect(queue, "taken by DELETE");
      const response = await gatewayFor(consumerOnly(uniqueRouteId("consumer"), queue))("DELETE", "/out");
      expect(response.status).toBe(200);
      expect(await response.text()).toBe("taken by DELETE");
    } finally {
      await deleteQueue(queue);
    }
  });

  it("HEAD answers 405 and leaves the message in the queue; OPTIONS never consumes", async () => {
    const queue = uniqueName("head");
    await declareQueue(queue);
    try {
      await publishDirect(queue, "keep me");
      const gateway = gatewayFor(consumerOnly(uniqueRouteId("consumer"), queue));
      const head = await gateway("HEAD", "/out");
      expect(head.status).toBe(405);
      const options = await gateway("OPTIONS", "/out");
      expect(options.status).toBe(204);
      expect(options.headers.get("allow")).toBe("GET, DELETE, PATCH, OPTIONS");
      expect(await messageCount(queue)).toBe(1);
    } finally {
      await deleteQueue(queue);
    }
  });

  it("path_prefix matches everything below the path", async () => {
    const queue = uniqueName("prefix");
    await declareQueue(queue);
    try {
      const gateway = gatewayFor(consumerOnly(uniqueRouteId("consumer"), queue));
      expect((await gateway("GET", "/out/deeper/still")).status).toBe(204);
      expect((await gateway("GET", "/outside")).status).toBe(404);
    } finally {
      await deleteQueue(queue);
    }
  });

  it("two routes on one path split it by method, and the rest of the methods get 405", async () => {
    const queue = uniqueName("shared");
    await declareQueue(queue);
    try {
      const yaml = `
routes:
  - { id: ${uniqueRouteId("enqueue")}, path: /api/jobs, methods: [POST], amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} } } }
  - { id: ${uniqueRouteId("dequeue")}, path: /api/jobs, methods: [GET], amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, auto_ack: true } } }
`;
      const gateway = gatewayFor(yaml);
      expect((await gateway("POST", "/api/jobs", { body: "{}" })).status).toBe(202);
      expect((await gateway("GET", "/api/jobs")).status).toBe(200);
      const put = await gateway("PUT", "/api/jobs", { body: "{}" });
      expect(put.status).toBe(405);
      expect(put.headers.get("allow")).toBe("POST, GET, OPTIONS");
    } finally {
      await deleteQueue(queue);
    }
  });
});

describe("errors", () => {
  it("an unknown path is a JSON 404", async () => {
    const response = await gatewayFor(producerOnly(uniqueRouteId("producer"), "unused"))("GET", "/nowhere");
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: "no route for GET /nowhere", route: null });
  });

  it("a missing queue is a JSON 404 naming the queue", async () => {
    const queue = uniqueName("missing");
    const id = uniqueRouteId("consumer");
    const response = await gatewayFor(consumerOnly(id, queue))("GET", "/out");
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: `queue "${queue}" does not exist`, route: id });
  });

  it("a missing exchange is a JSON 502 with the broker's reason; once it exists (within a second), the same route and another publish with 202", async () => {
    const queue = uniqueName("after-404");
    const exchange = uniqueName("late-exchange");
    await declareQueue(queue);
    try {
      const [id, other] = [uniqueRouteId("producer"), uniqueRouteId("other")];
      const gateway = gatewayFor(`
routes:
  - { id: ${id}, path: /in, amqp: { enabled: true, url: "${BROKER_URL}", producer: { exchange: ${exchange}, routing_key: k } } }
  - { id: ${other}, path: /other, amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} } } }
`);
      const refused = await gateway("POST", "/in", { body: "{}" });
      expect(refused.status).toBe(502);
      const body = (await refused.json()) as { error: string; route: string };
      expect(body).toEqual({ error: expect.stringContaining(`no exchange '${exchange}'`), route: id });
      // Once the exchange exists, the same route publishes again: the refusal is remembered for a
      // second (a route whose exchange is missing must not cost the broker a channel per request).
      await withChannel(async (channel) => {
        await channel.exchangeDeclare(exchange, "direct", { durable: false, autoDelete: false });
        await channel.queueBind(queue, exchange, "k");
      });
      const declaredAt = Date.now();
      await expect.poll(async () => (await gateway("POST", "/in", { body: "{}" })).status, { timeout: 3000, interval: 100 }).toBe(202);
      expect(Date.now() - declaredAt).toBeLessThan(2000);
      expect((await gateway("POST", "/other", { body: "{}" })).status).toBe(202);
      expect(await messageCount(queue)).toBe(2);
    } finally {
      await deleteQueue(queue);
      await withChannel((channel) => channel.exchangeDelete(exchange)).catch(() => undefined);
    }
  });

  it("an unset ${NAME} is a JSON 500 naming the variable", async () => {
    const yaml = `
routes:
  - { id: ${uniqueRouteId("env")}, path: /in, amqp: { enabled: true, url: "\${GATEWAY_TEST_UNSET_URL}", producer: {} } }
`;
    const response = await gatewayFor(yaml)("POST", "/in", { body: "{}" });
    expect(response.status).toBe(500);
    expect(((await response.json()) as { error: string }).error).toContain("${GATEWAY_TEST_UNSET_URL}");
  });

  it("${NAME} is read from the Worker's environment", async () => {
    const queue = uniqueName("env");
    await declareQueue(queue);
    try {
      const yaml = `
routes:
  - { id: ${uniqueRouteId("env")}, path: /in, amqp: { enabled: true, url: "amqp://\${TEST_USER}:\${TEST_PASSWORD}@127.0.0.1:5672/", producer: { routing_key: ${queue} } } }
`;
      const gateway = gatewayFor(yaml, { TEST_USER: "guest", TEST_PASSWORD: "guest" });
      expect((await gateway("POST", "/in", { body: "{}" })).status).toBe(202);
      expect(await messageCount(queue)).toBe(1);
    } finally {
      await deleteQueue(queue);
    }
  });
});
