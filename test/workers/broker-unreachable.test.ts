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

describe("after a failed connect", () => {
  it("the next requests get the failure at once, with the wait until the next attempt, instead of each trying again", async () => {
    const gateway = gatewayFor(producer(uniqueRouteId("backoff"), DEAD_URL, "unused"));
    expect((await gateway("POST", "/in", { body: "{}" })).status).toBe(503);
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 20 }, () => gateway("POST", "/in", { body: "{}" })));
    expect(Date.now() - started).toBeLessThan(400);
    for (const answer of answers) {
      expect(answer.status).toBe(503);
      expect(Number(answer.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(((await answer.json()) as { error: string }).error).toMatch(/could not connect to the broker: .*\(next attempt in \d+ s\)$/);
    }
  });
});

describe("a broker that refuses the route's login", () => {
  it("is a 502 naming the login, without Retry-After: retrying cannot help", async () => {
    const id = uniqueRouteId("login");
    const gateway = gatewayFor(producer(id, "amqp://guest:not-the-password@127.0.0.1:5672/", "unused"));
    for (let i = 0; i < 2; i++) {
      const response = await gateway("POST", "/in", { body: "{}" });
      expect(response.status).toBe(502);
      expect(response.headers.get("retry-after")).toBeNull();
      const { error } = (await response.json()) as { error: string };
      expect(error).toMatch(/the broker refused the route's login .*ACCESS_REFUSED/);
      expect(error).not.toContain("not-the-password");
    }
  });
});

describe("a password that breaks the URL", () => {
  it("never appears in an answer, on the route or on /amqp", async () => {
    const password = "p/ss#w@rd";
    const yaml = `
routes:
  - { id: ${uniqueRouteId("secret")}, path: /in, amqp: { enabled: true, url: "amqp://guest:\${GW_TEST_PASS}@127.0.0.1:5672/", producer: {} } }
`;
    const gateway = gatewayFor(yaml, { GW_TEST_PASS: password });
    for (const [method, path] of [
      ["POST", "/in"],
      ["GET", "/amqp"],
    ] as const) {
      const response = await gateway(method, path, { ...(method === "POST" ? { body: "{}" } : {}) });
      expect(response.status).toBe(500);
      const text = await response.text();
      expect(text).toMatch(/\\"amqp:\/\/\*\*\*\\" is not a URL \(percent-encode/);
      for (const part of [password, "p/ss", "w@rd", "ss#w"]) expect(text).not.toContain(part);
    }
  });
});

describe("an amqps:// route whose TLS handshake fails", () => {
  it("says the TLS handshake failed, and what to do, when the port is reachable; not when it is not", async () => {
    const answerFor = async (url: string) => {
      const gateway = gatewayFor(producer(uniqueRouteId("tls"), url, "unused"));
      const response = await gateway("POST", "/in", { body: "{}" });
      expect(response.status).toBe(503);
      return ((await response.json()) as { error: string }).error;
    };
    // RabbitMQ's plain AMQP port: reachable, but it does not speak TLS.
    expect(await answerFor("amqps://guest:guest@127.0.0.1:5672/")).toMatch(
      /127\.0\.0\.1:5672 is reachable, but the TLS handshake failed .*NODE_EXTRA_CA_CERTS/,
    );
    expect(await answerFor("amqps://guest:guest@127.0.0.1:1/")).not.toMatch(/TLS/);
  });
});
