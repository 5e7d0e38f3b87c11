import { describe, expect, it } from "vitest";
import { BROKER_URL, DEAD_URL, declareQueue, deleteQueue, messageCount, uniqueName } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

const producer = (id: string, url: string, queue: string) => `
routes:
  - { id: ${id}, path: /in, amqp: { enabled: true, url: "${url}", connect_timeout_ms: 2000, producer: { routing_key: ${queue} } } }
`;

describe("when the broker cannot be reached", () => {
  it("a publish is answered 503 with Retry-After within the connect timeout, never 202", async () => {
    const id = uniqueRouteId("dead");
    const started = Date.now();
    const response = await gatewayFor(producer(id, DEAD_URL, "unused"))("POST", "/in", { body: "{}" });
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("1");
    const body = (await response.json()) as { error: string; route: string };
    expect(body.route).toBe(id);
    expect(body.error).toMatch(/could not connect to the broker/);
    expect(body.error).not.toMatch(/guest:guest/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("the route's object follows a corrected url without any cleanup", async () => {
    const queue = uniqueName("follow");
    await declareQueue(queue);
    try {
      const id = uniqueRouteId("follow");
      expect((await gatewayFor(producer(id, DEAD_URL, queue))("POST", "/in", { body: "{}" })).status).toBe(503);
      expect((await gatewayFor(producer(id, BROKER_URL, queue))("POST", "/in", { body: "{}" })).status).toBe(202);
      expect(await messageCount(queue)).toBe(1);
    } finally {
      await deleteQueue(queue);
    }
  });
});
