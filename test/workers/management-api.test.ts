/**
 * The management API dialect inside workerd, where what it shares with the routes is checked: a
 * broker it cannot reach (503 with Retry-After, never 200, no credential shown), and its
 * `rate_limit`, which counts each caller apart and charges refused logins. Its answers against the
 * broker, judged by rabbitmqadmin, are test/e2e/management-api.test.ts.
 */
import { describe, expect, it } from "vitest";
import { BROKER_URL, DEAD_URL, declareQueue, deleteQueue, messageCount, uniqueName } from "../helpers/broker";
import { gatewayFor } from "./gateway";

const ROUTE = `routes:\n  - { id: unrelated, path: /unrelated, amqp: { enabled: true, url: "${BROKER_URL}", producer: {} } }\n`;
const management = (url: string, queue: string, extra = "") =>
  `${ROUTE}management_api: { url: "${url}", auth: { basic: { users: { ops: pw } } }, exchanges: [amq.default], queues: [${queue}]${extra} }\n`;

const publish = (gateway: ReturnType<typeof gatewayFor>, queue: string, ip: string, password = "pw") =>
  gateway("POST", "/api/exchanges/%2F/amq.default/publish", {
    body: JSON.stringify({ routing_key: queue, payload: "hello", payload_encoding: "string", properties: {} }),
    headers: { Authorization: `Basic ${btoa(`ops:${password}`)}`, "CF-Connecting-IP": ip },
  });

describe("the management API", () => {
  it("answers 503 with Retry-After in the broker's shape when the broker cannot be reached, never 200", async () => {
    const response = await publish(gatewayFor(management(DEAD_URL, "unused")), "unused", "192.0.2.1");
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("1");
    const body = (await response.json()) as { error: string; reason: string; route: string };
    expect(body).toMatchObject({ error: "unavailable", route: "management_api" });
    expect(body.reason).toMatch(/could not connect to the broker/);
    expect(body.reason).not.toMatch(/guest:guest/);
  });

  it("counts each caller's requests apart under its rate_limit, refused logins included", async () => {
    const queue = uniqueName("mgmt-limit");
    await declareQueue(queue);
    try {
      const gateway = gatewayFor(management(BROKER_URL, queue, ", rate_limit: { requests: 2, period_s: 60 }"));
      const greedy = `198.51.100.${Math.floor(Math.random() * 200) + 1}`;
      const other = `203.0.113.${Math.floor(Math.random() * 200) + 1}`;
      expect((await publish(gateway, queue, greedy)).status).toBe(200);
      expect((await publish(gateway, queue, greedy)).status).toBe(200);
      const over = await publish(gateway, queue, greedy);
      expect(over.status).toBe(429);
      expect(over.headers.get("retry-after")).toMatch(/^\d+$/);
      expect(await over.json()).toMatchObject({ error: "too_many_requests", route: "management_api" });
      // Another caller is not held back by the first.
      expect((await publish(gateway, queue, other)).status).toBe(200);
      // Guessing passwords costs requests too: the third wrong one is a 429, not another 401.
      const guesser = `192.0.2.${Math.floor(Math.random() * 200) + 1}`;
      expect((await publish(gateway, queue, guesser, "guess-1")).status).toBe(401);
      expect((await publish(gateway, queue, guesser, "guess-2")).status).toBe(401);
      expect((await publish(gateway, queue, guesser, "guess-3")).status).toBe(429);
      expect(await messageCount(queue)).toBe(3);
    } finally {
      await deleteQueue(queue);
    }
  });

  it("refuses a web page's request (no cors), before its credentials are looked at", async () => {
    const response = await gatewayFor(management(BROKER_URL, "unused"))("POST", "/api/queues/%2F/unused/get", {
      body: JSON.stringify({ count: 1, ackmode: "ack_requeue_false" }),
      headers: { Authorization: `Basic ${btoa("ops:pw")}`, Origin: "https://evil.example", "Content-Type": "text/plain" },
    });
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ error: "access_refused", route: "management_api" });
  });
});
