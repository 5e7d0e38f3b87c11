import { describe, expect, it } from "vitest";
import { BROKER_URL, WEB_AMQP_URL, declareQueue, deleteQueue, drain, firstDifference, messageCount, uniqueName } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

const producer = (id: string, queue: string, extra = "", url = BROKER_URL) => `
routes:
  - { id: ${id}, path: /in, amqp: { enabled: true, url: "${url}", producer: { routing_key: ${queue} ${extra} } } }
  - { id: ${id}-out, path: /out, amqp: { enabled: true, url: "${url}", consumer: { queue: ${queue} } } }
`;

describe("a 202 means the broker has the message", () => {
  it("a message the queue rejects (x-overflow: reject-publish) is nacked: 502, and the route goes on", async () => {
    const queue = uniqueName("full");
    await declareQueue(queue, { "x-max-length": 1, "x-overflow": "reject-publish" });
    try {
      const id = uniqueRouteId("full");
      const gateway = gatewayFor(producer(id, queue));
      expect((await gateway("POST", "/in", { body: "first" })).status).toBe(202);
      const second = await gateway("POST", "/in", { body: "second" });
      expect(second.status).toBe(502);
      expect(await second.json()).toEqual({ error: "the broker refused the message: negative confirm (basic.nack)", route: id });
      expect((await gateway("GET", "/out")).status).toBe(200);
      expect((await gateway("POST", "/in", { body: "third" })).status).toBe(202);
      expect((await drain(queue)).map((message) => message.bodyString())).toEqual(["third"]);
    } finally {
      await deleteQueue(queue);
    }
  });

  it("a mandatory message no queue takes is a 422 naming exchange and routing key", async () => {
    const id = uniqueRouteId("mandatory");
    const nowhere = uniqueName("unbound");
    const response = await gatewayFor(producer(id, nowhere, ", mandatory: true"))("POST", "/in", { body: "{}" });
    expect(response.status).toBe(422);
    expect(await response.json()).toEqual({
      error: `no queue is bound to exchange "" with routing key "${nowhere}"; nothing was enqueued`,
      route: id,
    });
  });

  it("a routable mandatory message is a 202, even with returns for others in flight", async () => {
    const queue = uniqueName("routable");
    await declareQueue(queue);
    try {
      const id = uniqueRouteId("mandatory");
      const routable = gatewayFor(producer(id, queue, ", mandatory: true"));
      const unroutable = gatewayFor(producer(id, uniqueName("unbound"), ", mandatory: true"));
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? routable : unroutable)("POST", "/in", { body: "same body" }).then((r) => r.status)),
      );
      expect(answers).toEqual(Array.from({ length: 20 }, (_, i) => (i % 2 ? 202 : 422)));
      expect(await messageCount(queue)).toBe(10);
    } finally {
      await deleteQueue(queue);
    }
  });

  it("without mandatory, an unroutable message is confirmed and dropped, as runway does: 202", async () => {
    const unbound = uniqueName("unbound");
    const response = await gatewayFor(producer(uniqueRouteId("plain"), unbound))("POST", "/in", { body: "{}" });
    expect(response.status).toBe(202);
    // Dropped: no queue of that name took it (the default exchange routes by queue name).
    await expect(messageCount(unbound)).rejects.toThrow(/NOT_FOUND/);
  });
});

describe("body size", () => {
  it("a body over max_body_bytes is a 413 before anything reaches the broker", async () => {
    const queue = uniqueName("big");
    await declareQueue(queue);
    try {
      const id = uniqueRouteId("big");
      const gateway = gatewayFor(producer(id, queue, ", max_body_bytes: 1000"));
      const declared = await gateway("POST", "/in", { body: new Uint8Array(1001) });
      expect(declared.status).toBe(413);
      expect(((await declared.json()) as { route: string }).route).toBe(id);
      // Without Content-Length (a stream), the limit applies while reading.
      const stream = new ReadableStream({
        start(controller) {
          for (let i = 0; i < 5; i++) controller.enqueue(new Uint8Array(300));
          controller.close();
        },
      });
      expect((await gateway("POST", "/in", { body: stream, duplex: "half" } as RequestInit)).status).toBe(413);
      expect((await gateway("POST", "/in", { body: new Uint8Array(1000) })).status).toBe(202);
      expect(await messageCount(queue)).toBe(1);
      const stats = (await (await gateway("GET", "/amqp")).json()) as Record<string, { total_requests: number }>;
      expect(stats[id]?.total_requests).toBe(1);
    } finally {
      await deleteQueue(queue);
    }
  });

  it.each([
    ["amqp://", BROKER_URL],
    ["ws://", WEB_AMQP_URL],
  ])("a 1 MiB body (the default limit) goes through over %s", async (_, url) => {
    const queue = uniqueName("mib");
    await declareQueue(queue);
    try {
      const gateway = gatewayFor(producer(uniqueRouteId("mib"), queue, "", url));
      const bytes = new Uint8Array(1024 * 1024).map((_, i) => (i * 13) % 251);
      expect((await gateway("POST", "/in", { body: bytes, headers: { "content-type": "application/octet-stream" } })).status).toBe(202);
      const consumed = await gateway("GET", "/out");
      expect(firstDifference(new Uint8Array(await consumed.arrayBuffer()), bytes)).toBe(-1);
      expect((await gateway("POST", "/in", { body: new Uint8Array(1024 * 1024 + 1) })).status).toBe(413);
    } finally {
      await deleteQueue(queue);
    }
  });
});
