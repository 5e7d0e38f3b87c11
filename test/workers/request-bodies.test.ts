/**
 * Request bodies inside workerd. The body of `POST <path>/ack` and `/nack` is bounded while it
 * streams in: a chunked body (no Content-Length) far over the limit is refused with 413 once the
 * limit is passed, after reading about as much as the limit, not the whole body; a declared one
 * is refused before any of it is read. The lease named in such a request stays leased. A body
 * that breaks off (its client went away; here a stream that fails midway) is a 400 saying so, for
 * a publish and a settle, and nothing is published or settled. (test/e2e/request-bodies.test.ts
 * has both over a real socket.)
 */
import { describe, expect, it } from "vitest";
import { BROKER_URL, messageCount, publishDirect, withQueue } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

/** Largest settle body, as the gateway states it (1000 ids of 39 characters fit many times over). */
const LIMIT = 64 * 1024;
const CHUNK = 64 * 1024;

/** A body of `total` bytes in 64 KiB chunks, made as it is read, counting what was read. */
const countedBody = (total: number) => {
  let pulled = 0;
  const chunk = new TextEncoder().encode(" ".repeat(CHUNK));
  // No high-water mark: a chunk is made only when the reader asks for one.
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (pulled >= total) return controller.close();
        pulled += chunk.byteLength;
        controller.enqueue(chunk);
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, pulled: () => pulled };
};

const leaseRoute = (id: string, queue: string) =>
  `routes:\n  - { id: ${id}, path: /jobs, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, ack: lease } } }\n`;

describe("a settle request's body", () => {
  it.each(["ack", "nack"])("sent chunked and far over the limit, is refused with 413 after reading about the limit (%s)", (verb) =>
    withQueue("settle-body", async (queue) => {
      await publishDirect(queue, "leased");
      const id = uniqueRouteId("settle-body");
      const send = gatewayFor(leaseRoute(id, queue));
      const leaseId = (await send("GET", "/jobs")).headers.get("x-lease-id") ?? "";
      expect(leaseId).not.toBe("");
      // 32 MiB of spaces with a lease id at the end: valid JSON, were it read whole.
      const body = countedBody(32 * 1024 * 1024);
      const tail = new TextEncoder().encode(JSON.stringify({ lease_ids: [leaseId] }));
      const stream = body.stream.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({ flush: (controller) => controller.enqueue(tail) }),
      );
      const answer = await send("POST", `/jobs/${verb}`, { body: stream, headers: { "content-type": "application/json" } });
      // Read up to the chunk that passed the limit, and perhaps the one the stream had ready next.
      expect(body.pulled()).toBeLessThanOrEqual(LIMIT + 2 * CHUNK);
      expect(answer.status).toBe(413);
      expect(await answer.json()).toEqual({ error: `${verb}: the body is larger than ${LIMIT} bytes; nothing was settled`, route: id });
      // Still leased: neither acknowledged nor back in the queue.
      expect(await messageCount(queue)).toBe(0);
      const settled = await send("POST", "/jobs/ack", {
        body: JSON.stringify({ lease_ids: [leaseId] }),
        headers: { "content-type": "application/json" },
      });
      expect(settled.status).toBe(200);
    }),
  );

  it("with a Content-Length over the limit, is refused with 413 before any of it is read", () =>
    withQueue("settle-length", async (queue) => {
      const id = uniqueRouteId("settle-length");
      const send = gatewayFor(leaseRoute(id, queue));
      const body = countedBody(LIMIT + 1);
      const answer = await send("POST", "/jobs/ack", {
        body: body.stream,
        headers: { "content-type": "application/json", "content-length": String(LIMIT + 1) },
      });
      expect(body.pulled()).toBe(0);
      expect(answer.status).toBe(413);
    }));
});

/**
 * Half of a body, then the failure a read sees when its client goes away. Sent chunked: a stream
 * of the test's own under a Content-Length is not what workerd makes of a socket (the real one,
 * with and without Content-Length, is in test/e2e/request-bodies.test.ts).
 */
const brokenBody = () => {
  let sent = false;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent) return controller.error(new Error("Network connection lost."));
      sent = true;
      controller.enqueue(new TextEncoder().encode("x".repeat(1000)));
    },
  });
};

describe("a body that breaks off before its end (its client went away)", () => {
  it("is a 400 saying so for a publish, and nothing is published", () =>
    withQueue("broken-publish", async (queue) => {
      const id = uniqueRouteId("broken-publish");
      const send = gatewayFor(
        `routes:\n  - { id: ${id}, path: /jobs, amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} } } }\n`,
      );
      const answer = await send("POST", "/jobs", { body: brokenBody(), headers: { "content-type": "text/plain" } });
      expect(answer.status).toBe(400);
      expect(await answer.json()).toEqual({
        error: "the request body could not be read: the client closed the connection before sending all of it; nothing was published",
        route: id,
      });
      expect(await messageCount(queue)).toBe(0);
    }));

  it("is a 400 saying so for a settle, and the lease stays leased", () =>
    withQueue("broken-settle", async (queue) => {
      await publishDirect(queue, "leased");
      const id = uniqueRouteId("broken-settle");
      const send = gatewayFor(leaseRoute(id, queue));
      const leaseId = (await send("GET", "/jobs")).headers.get("x-lease-id") ?? "";
      const answer = await send("POST", "/jobs/ack", { body: brokenBody(), headers: { "content-type": "application/json" } });
      expect(answer.status).toBe(400);
      expect(((await answer.json()) as { error: string }).error).toMatch(/^ack: the request body could not be read/);
      expect(await messageCount(queue)).toBe(0);
      const settled = await send("POST", "/jobs/ack", {
        body: JSON.stringify({ lease_ids: [leaseId] }),
        headers: { "content-type": "application/json" },
      });
      expect(settled.status).toBe(200);
    }));
});
