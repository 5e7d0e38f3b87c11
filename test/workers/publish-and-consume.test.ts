import { describe, expect, it } from "vitest";
import { BROKER_URL, WEB_AMQP_URL, declareQueue, deleteQueue, drain, messageCount, publishDirect, uniqueName } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

const bridge = (url: string, queue: string, options: { autoAck?: boolean; ids?: [string, string]; heartbeat?: number } = {}) => {
  const [enqueue, dequeue] = options.ids ?? [uniqueRouteId("enqueue"), uniqueRouteId("dequeue")];
  return `
routes:
  - id: ${enqueue}
    path: /jobs
    methods: [POST, PUT]
    amqp:
      enabled: true
      url: "${url}"
      producer: { exchange: "", routing_key: ${queue} }
  - id: ${dequeue}
    path: /jobs
    methods: [GET]
    amqp:
      enabled: true
      url: "${url}"
      heartbeat_s: ${options.heartbeat ?? 30}
      consumer: { queue: ${queue}, auto_ack: ${options.autoAck ?? true} }
`;
};

describe.each([
  ["amqp://", BROKER_URL],
  ["ws://", WEB_AMQP_URL],
])("over %s", (_, url) => {
  it("a POST is published and answered 202 with runway's body", async () => {
    const queue = uniqueName("post");
    await declareQueue(queue);
    try {
      const gateway = gatewayFor(bridge(url, queue));
      const response = await gateway("POST", "/jobs", { body: '{"job":1}', headers: { "content-type": "application/json" } });
      expect(response.status).toBe(202);
      expect(response.headers.get("content-type")).toMatch(/^application\/json/);
      expect(await response.json()).toEqual({ status: "published", exchange: "", routing_key: queue });
      const [message] = await drain(queue);
      expect(message?.bodyString()).toBe('{"job":1}');
      expect(message?.properties.contentType).toBe("application/json");
      expect(message?.properties.deliveryMode).toBe(2);
    } finally {
      await deleteQueue(queue);
    }
  });

  it("a PUT publishes too, with the request's content type", async () => {
    const queue = uniqueName("put");
    await declareQueue(queue);
    try {
      const response = await gatewayFor(bridge(url, queue))("PUT", "/jobs", {
        body: "plain words",
        headers: { "content-type": "text/plain" },
      });
      expect(response.status).toBe(202);
      const [message] = await drain(queue);
      expect(message?.bodyString()).toBe("plain words");
      expect(message?.properties.contentType).toBe("text/plain");
    } finally {
      await deleteQueue(queue);
    }
  });

  it("a body without a content type is published as application/json", async () => {
    const queue = uniqueName("noctype");
    await declareQueue(queue);
    try {
      const response = await gatewayFor(bridge(url, queue))("POST", "/jobs", { body: new Uint8Array([123, 125]) });
      expect(response.status).toBe(202);
      const [message] = await drain(queue);
      expect(message?.properties.contentType).toBe("application/json");
    } finally {
      await deleteQueue(queue);
    }
  });

  it("a binary body arrives byte for byte, both ways", async () => {
    const queue = uniqueName("binary");
    await declareQueue(queue);
    try {
      const bytes = new Uint8Array(70_000).map((_, i) => (i * 7919) % 256);
      const gateway = gatewayFor(bridge(url, queue));
      const published = await gateway("POST", "/jobs", { body: bytes, headers: { "content-type": "application/octet-stream" } });
      expect(published.status).toBe(202);
      const consumed = await gateway("GET", "/jobs");
      expect(consumed.status).toBe(200);
      expect(consumed.headers.get("content-type")).toBe("application/octet-stream");
      expect(new Uint8Array(await consumed.arrayBuffer())).toEqual(bytes);
    } finally {
      await deleteQueue(queue);
    }
  });

  it("a GET takes one message with its content type, then 204 when the queue is empty", async () => {
    const queue = uniqueName("get");
    await declareQueue(queue);
    try {
      await publishDirect(queue, "first", "text/plain");
      await publishDirect(queue, '{"n":2}');
      const gateway = gatewayFor(bridge(url, queue));
      const first = await gateway("GET", "/jobs");
      expect(first.status).toBe(200);
      expect(first.headers.get("content-type")).toBe("text/plain");
      expect(await first.text()).toBe("first");
      const second = await gateway("GET", "/jobs");
      expect(second.headers.get("content-type")).toBe("application/json");
      expect(await second.text()).toBe('{"n":2}');
      const empty = await gateway("GET", "/jobs");
      expect(empty.status).toBe(204);
      expect(await empty.text()).toBe("");
    } finally {
      await deleteQueue(queue);
    }
  });

  it("with auto_ack false, a consumed message is acknowledged, not left to come back", async () => {
    const queue = uniqueName("ack");
    await declareQueue(queue);
    try {
      await publishDirect(queue, "once");
      const ids: [string, string] = [uniqueRouteId("enqueue"), uniqueRouteId("dequeue")];
      const gateway = gatewayFor(bridge(url, queue, { autoAck: false, ids }));
      expect(await (await gateway("GET", "/jobs")).text()).toBe("once");
      // A changed heartbeat makes the route's object replace (and so close) its connection. The
      // broker requeues whatever a closed connection left unacknowledged; an acked message stays gone.
      const reconfigured = gatewayFor(bridge(url, queue, { autoAck: false, ids, heartbeat: 31 }));
      expect((await reconfigured("GET", "/jobs")).status).toBe(204);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await messageCount(queue)).toBe(0);
    } finally {
      await deleteQueue(queue);
    }
  });
});
