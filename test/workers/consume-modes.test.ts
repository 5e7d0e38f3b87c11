/**
 * Consuming like a queue service, inside workerd against the real broker: batches (`?max=N`)
 * with text and binary bodies, and leases (`ack: lease`) settled with `POST <path>/ack` and
 * `/nack`, extended with `/extend`, running out, and outliving their connection.
 */
import { describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, drain, messageCount, publishDirect, uniqueName, withChannel } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

interface BatchMessage {
  body: string;
  body_encoding: "utf8" | "base64";
  properties: Record<string, unknown>;
  routing_key: string;
  redelivered: boolean;
  delivery_count: number;
  lease_id?: string;
}
interface Batch {
  messages: BatchMessage[];
  remaining: number | null;
}
interface Settled {
  results: Array<{ lease_id: string; status: number; outcome: string; error?: string }>;
}

const consumerRoute = (id: string, queue: string, consumer = "", url = BROKER_URL) =>
  `routes:\n  - { id: ${id}, path: /jobs, amqp: { enabled: true, url: "${url}", consumer: { queue: ${queue}${consumer ? `, ${consumer}` : ""} } } }\n`;

const withQueue = async (test: (queue: string) => Promise<void>, args: Record<string, unknown> = {}) => {
  const queue = uniqueName("modes");
  await declareQueue(queue, args);
  try {
    await test(queue);
  } finally {
    await deleteQueue(queue);
  }
};

const json = { "content-type": "application/json" };

describe("GET ?max=N", () => {
  it("answers up to N messages as JSON, text as text and binary as base64, in queue order, with what remains", () =>
    withQueue(async (queue) => {
      const binary = Uint8Array.from({ length: 256 }, (_, i) => i);
      await publishDirect(queue, '{"n":1}', "application/json");
      await publishDirect(queue, binary, "application/octet-stream");
      await publishDirect(queue, "grüße ✓", "text/plain");
      await publishDirect(queue, "fourth");
      const send = gatewayFor(consumerRoute(uniqueRouteId("batch"), queue, "auto_ack: true"));
      const answer = await send("GET", "/jobs?max=3");
      expect(answer.status).toBe(200);
      const batch = (await answer.json()) as Batch;
      expect(batch.messages.map((message) => [message.body_encoding, message.properties.content_type])).toEqual([
        ["utf8", "application/json"],
        ["base64", "application/octet-stream"],
        ["utf8", "text/plain"],
      ]);
      expect(batch.messages[0]?.body).toBe('{"n":1}');
      expect(Uint8Array.from(atob(batch.messages[1]?.body ?? ""), (char) => char.charCodeAt(0))).toEqual(binary);
      expect(batch.messages[2]?.body).toBe("grüße ✓");
      expect(batch.messages[0]).toMatchObject({ routing_key: queue, redelivered: false });
      expect(batch.remaining).toBe(1);
      const rest = (await (await send("GET", "/jobs?max=10")).json()) as Batch;
      expect(rest.messages.map((message) => message.body)).toEqual(["fourth"]);
      expect(rest.remaining).toBe(0);
      expect((await send("GET", "/jobs?max=10")).status).toBe(204);
    }));

  it("is refused with 400 outside 1 to the route's max_messages, taking nothing", () =>
    withQueue(async (queue) => {
      await publishDirect(queue, "stay");
      const send = gatewayFor(consumerRoute(uniqueRouteId("bounds"), queue, "auto_ack: true, max_messages: 5"));
      for (const max of ["0", "6", "abc", "1.5", "-1", ""]) {
        const answer = await send("GET", `/jobs?max=${max}`);
        expect(answer.status, max).toBe(400);
        expect(((await answer.json()) as { error: string }).error).toMatch(/query max must be a whole number from 1 to 5/);
      }
      expect(await messageCount(queue)).toBe(1);
    }));

  it("without auto-ack, acknowledges the whole batch once the answer is built", () =>
    withQueue(async (queue) => {
      for (let i = 0; i < 5; i++) await publishDirect(queue, `m${i}`);
      const send = gatewayFor(consumerRoute(uniqueRouteId("batch-ack"), queue));
      const batch = (await (await send("GET", "/jobs?max=5")).json()) as Batch;
      expect(batch.messages.map((message) => message.body)).toEqual(["m0", "m1", "m2", "m3", "m4"]);
      expect(batch.messages.every((message) => message.lease_id === undefined)).toBe(true);
      // Acknowledged, not requeued: nothing comes back after the hold time.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await messageCount(queue)).toBe(0);
    }));
});

describe("auto_ack: false", () => {
  it("acknowledges a message once its answer has been read, and requeues it when the client never reads it", () =>
    withQueue(async (queue) => {
      await publishDirect(queue, "read me");
      await publishDirect(queue, "drop me");
      const send = gatewayFor(consumerRoute(uniqueRouteId("written"), queue));
      const read = await send("GET", "/jobs");
      expect(await read.text()).toBe("read me");
      const dropped = await send("GET", "/jobs");
      expect(dropped.status).toBe(200);
      // The client goes away without reading the body.
      await dropped.body?.cancel();
      await new Promise((resolve) => setTimeout(resolve, 300));
      const again = await send("GET", "/jobs?max=10");
      const batch = (await again.json()) as Batch;
      expect(batch.messages.map((message) => [message.body, message.redelivered])).toEqual([["drop me", true]]);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await messageCount(queue)).toBe(0);
      expect((await send("GET", "/jobs")).status).toBe(204);
    }));
});

describe("ack: lease", () => {
  it("hands messages out on a lease (X-Lease-Id, lease_id), and settles each id once: ack, then 409; unknown ids 404", () =>
    withQueue(async (queue) => {
      for (let i = 0; i < 3; i++) await publishDirect(queue, `job ${i}`);
      const id = uniqueRouteId("lease");
      const send = gatewayFor(consumerRoute(id, queue, "ack: lease"));
      const single = await send("GET", "/jobs");
      expect(await single.text()).toBe("job 0");
      const leaseId = single.headers.get("x-lease-id") ?? "";
      expect(leaseId).toMatch(/^0\.[0-9a-f-]{36}$/);
      const batch = (await (await send("GET", "/jobs?max=5")).json()) as Batch;
      const batchIds = batch.messages.map((message) => message.lease_id ?? "");
      expect(batchIds).toHaveLength(2);
      // Leased, not acknowledged: nothing is ready, nothing is gone.
      expect(await messageCount(queue)).toBe(0);

      const acked = await send("POST", "/jobs/ack", {
        method: "POST",
        headers: json,
        body: JSON.stringify({ lease_ids: [leaseId, ...batchIds] }),
      });
      expect(acked.status).toBe(200);
      expect(((await acked.json()) as Settled).results.map((result) => result.outcome)).toEqual(["acked", "acked", "acked"]);
      const again = await send("POST", "/jobs/ack", { headers: json, body: JSON.stringify({ lease_ids: [leaseId] }) });
      expect(again.status).toBe(409);
      const mixed = await send("POST", "/jobs/ack", {
        headers: json,
        body: JSON.stringify({ lease_ids: [leaseId, "0.00000000-0000-4000-8000-000000000000", "not-a-lease"] }),
      });
      expect(mixed.status).toBe(207);
      expect(((await mixed.json()) as Settled).results.map((result) => [result.status, result.outcome])).toEqual([
        [409, "already_settled"],
        [404, "unknown"],
        [404, "unknown"],
      ]);
      for (const body of ["nope", "{}", '{"lease_ids": []}', '{"lease_ids": [1]}', `{"lease_ids": ["${leaseId}"], "requeue": false}`]) {
        expect((await send("POST", "/jobs/ack", { headers: json, body })).status, body).toBe(400);
      }
      // Over 64 KiB: too large (settle-bodies.test.ts has the chunked case).
      const huge = JSON.stringify({ lease_ids: [leaseId], pad: "x".repeat(70_000) });
      expect((await send("POST", "/jobs/ack", { headers: json, body: huge })).status).toBe(413);
      const stats = (await (await send("GET", "/amqp")).json()) as Record<string, Record<string, number>>;
      expect(stats[id]).toMatchObject({ leased: 3, acked: 3, consumed: 3, nacked: 0, expired: 0 });
      expect(await messageCount(queue)).toBe(0);
    }));

  it("nack requeues (the message comes back counted, behind the others) or, with requeue false, dead-letters", async () => {
    const deadLetters = uniqueName("dead");
    await declareQueue(deadLetters);
    try {
      await withQueue(
        async (queue) => {
          await publishDirect(queue, "retry me");
          await publishDirect(queue, "bury me");
          const send = gatewayFor(consumerRoute(uniqueRouteId("nack"), queue, "ack: lease"));
          const first = await send("GET", "/jobs");
          const firstId = first.headers.get("x-lease-id");
          expect(await first.text()).toBe("retry me");
          const requeued = await send("POST", "/jobs/nack", {
            headers: json,
            body: JSON.stringify({ lease_ids: [firstId], requeue: true }),
          });
          expect(((await requeued.json()) as Settled).results[0]?.outcome).toBe("requeued");
          const batch = (await (await send("GET", "/jobs?max=2")).json()) as Batch;
          // Put back as a confirmed copy that carries its count: behind the messages already there.
          expect(batch.messages.map((message) => [message.body, message.delivery_count])).toEqual([
            ["bury me", 1],
            ["retry me", 2],
          ]);
          const buried = await send("POST", "/jobs/nack", {
            headers: json,
            body: JSON.stringify({ lease_ids: batch.messages.map((message) => message.lease_id), requeue: false }),
          });
          expect(((await buried.json()) as Settled).results.map((result) => result.outcome)).toEqual(["rejected", "rejected"]);
          expect(await messageCount(queue)).toBe(0);
          expect((await drain(deadLetters)).map((message) => message.bodyString())).toEqual(["bury me", "retry me"]);
        },
        { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": deadLetters },
      );
    } finally {
      await deleteQueue(deadLetters);
    }
  });

  it("runs out after lease_timeout_ms: the message is requeued and comes back counted; settling it then is 410", () =>
    withQueue(async (queue) => {
      await publishDirect(queue, "slow worker");
      const id = uniqueRouteId("expire");
      const send = gatewayFor(consumerRoute(id, queue, "ack: lease, lease_timeout_ms: 300"));
      const leased = await send("GET", "/jobs");
      const leaseId = leased.headers.get("x-lease-id");
      await leased.arrayBuffer();
      await new Promise((resolve) => setTimeout(resolve, 600));
      expect(await messageCount(queue)).toBe(1);
      const late = await send("POST", "/jobs/ack", { headers: json, body: JSON.stringify({ lease_ids: [leaseId] }) });
      expect(late.status).toBe(410);
      expect(((await late.json()) as Settled).results[0]?.outcome).toBe("expired");
      const again = await send("GET", "/jobs");
      expect(again.headers.get("x-delivery-count")).toBe("2");
      await again.arrayBuffer();
      const stats = (await (await send("GET", "/amqp")).json()) as Record<string, Record<string, number>>;
      expect(stats[id]).toMatchObject({ leased: 2, expired: 1 });
    }));

  it("extends a lease from now on each extend, never early nor late; an expired lease is 410, a settled one 409", () =>
    withQueue(async (queue) => {
      await publishDirect(queue, "long job");
      await publishDirect(queue, "short job");
      const send = gatewayFor(consumerRoute(uniqueRouteId("extend"), queue, "ack: lease, lease_timeout_ms: 400"));
      const extend = async (ids: Array<string | null>, ms: unknown) => {
        const answer = await send("POST", "/jobs/extend", {
          headers: json,
          body: JSON.stringify({ lease_ids: ids, lease_timeout_ms: ms }),
        });
        return { status: answer.status, body: (await answer.json()) as Settled & { error?: string } };
      };
      const batch = (await (await send("GET", "/jobs?max=2")).json()) as Batch;
      const [long, short] = [batch.messages[0]?.lease_id ?? null, batch.messages[1]?.lease_id ?? null];
      const started = Date.now();
      // Twice, 300 ms apart, each to 400 ms from then: the lease runs until about 1,000 ms.
      for (const at of [300, 600]) {
        await new Promise((resolve) => setTimeout(resolve, at - (Date.now() - started)));
        const extended = await extend([long], 400);
        expect(extended.status).toBe(200);
        const result = extended.body.results[0] as unknown as { outcome: string; expires_at: string };
        expect(result.outcome).toBe("extended");
        expect(Math.abs(Date.parse(result.expires_at) - (Date.now() + 400))).toBeLessThan(100);
      }
      // The short one was not extended: it ran out at 400 ms, and extending it now is 410.
      const late = await extend([short], 400);
      expect({ status: late.status, outcome: late.body.results[0]?.outcome }).toEqual({ status: 410, outcome: "expired" });
      // At 850 ms the long one is still held; by 1,300 it is back in the queue, with the short one.
      await new Promise((resolve) => setTimeout(resolve, 850 - (Date.now() - started)));
      expect(await messageCount(queue)).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 1300 - (Date.now() - started)));
      expect(await messageCount(queue)).toBe(2);
      // A settled lease is 409; a bad duration is 400, nothing extended.
      const again = await send("GET", "/jobs");
      const leaseId = again.headers.get("x-lease-id");
      await again.arrayBuffer();
      await send("POST", "/jobs/ack", { headers: json, body: JSON.stringify({ lease_ids: [leaseId] }) });
      expect((await extend([leaseId], 400)).status).toBe(409);
      for (const bad of [0, -1, 1.5, "400", 43_200_001, undefined]) {
        const refused = await extend([leaseId], bad);
        expect({ bad, status: refused.status, error: refused.body.error }).toEqual({
          bad,
          status: 400,
          error: expect.stringMatching(/lease_timeout_ms must be a whole number/),
        });
      }
    }));

  it("whose connection is gone answers 410 for each id: the broker put the messages back", () =>
    withQueue(async (queue) => {
      await publishDirect(queue, "orphan");
      const id = uniqueRouteId("gone");
      const leased = await gatewayFor(consumerRoute(id, queue, "ack: lease"))("GET", "/jobs");
      const leaseId = leased.headers.get("x-lease-id");
      await leased.arrayBuffer();
      // The same route deployed with another heartbeat: its object closes the old connection and
      // opens a new one, as when a connection drops.
      const moved = gatewayFor(consumerRoute(id, queue, "ack: lease", BROKER_URL).replace("amqp: {", "amqp: { heartbeat_s: 29,"));
      expect((await moved("GET", "/jobs?max=1")).status).toBe(200);
      const late = await moved("POST", "/jobs/ack", { headers: json, body: JSON.stringify({ lease_ids: [leaseId] }) });
      expect(late.status).toBe(410);
      expect(((await late.json()) as Settled).results[0]?.outcome).toBe("gone");
    }));
});

describe("what a hostile review found", () => {
  it("a batch larger than one answer can carry gives back, in order, what does not fit, and loses nothing under auto_ack", () =>
    withQueue(async (queue) => {
      const big = new Uint8Array(1024 * 1024).fill(120);
      await withChannel(async (channel) => {
        for (let i = 0; i < 25; i++) await channel.basicPublish("", queue, big, { messageId: `big-${i}` });
      });
      const send = gatewayFor(consumerRoute(uniqueRouteId("huge"), queue, "auto_ack: true"));
      const answer = await send("GET", "/jobs?max=50");
      expect(answer.status).toBe(200);
      const batch = (await answer.json()) as Batch;
      const got = batch.messages.map((message) => String(message.properties.message_id));
      expect(got.length).toBeGreaterThan(0);
      expect(got.length).toBeLessThan(25);
      const left = (await drain(queue)).map((message) => message.properties.messageId);
      expect([...got, ...left]).toEqual(Array.from({ length: 25 }, (_, i) => `big-${i}`));
    }));

  it("a message whose timestamp JavaScript cannot show is handed out without it, not stranded", () =>
    withQueue(async (queue) => {
      await withChannel(async (channel) => {
        await channel.basicPublish("", queue, "before");
        // 1e17 s after the epoch: a valid AMQP timestamp, past what a JavaScript Date can hold.
        await channel.basicPublish("", queue, "poison", { timestamp: { valueOf: () => 1e20 } as unknown as Date });
        await channel.basicPublish("", queue, "after");
      });
      const send = gatewayFor(consumerRoute(uniqueRouteId("poison"), queue));
      const batch = (await (await send("GET", "/jobs?max=10")).json()) as Batch;
      expect(batch.messages.map((message) => message.body)).toEqual(["before", "poison", "after"]);
      expect(batch.messages[1]?.properties.timestamp).toBeUndefined();
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await messageCount(queue)).toBe(0);
    }));

  it("a settle answers each lease id as it was sent, and a malformed one is unknown", () =>
    withQueue(async (queue) => {
      await publishDirect(queue, "one");
      const send = gatewayFor(consumerRoute(uniqueRouteId("echo"), queue, "ack: lease"));
      const leaseId = (await send("GET", "/jobs")).headers.get("x-lease-id") ?? "";
      const padded = `0${leaseId}`;
      const settled = await send("POST", "/jobs/ack", { headers: json, body: JSON.stringify({ lease_ids: [padded, leaseId] }) });
      expect(((await settled.json()) as Settled).results.map((result) => [result.lease_id, result.outcome])).toEqual([
        [padded, "unknown"],
        [leaseId, "acked"],
      ]);
    }));
});
