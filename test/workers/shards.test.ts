import { describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, messageCount, publishDirect, uniqueName } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

interface Stats {
  published: number;
  total_requests: number;
  connected: boolean;
  shards?: Array<{ shard: number; published: number }>;
}

describe("amqp.shards", () => {
  it("spreads a route over several objects, and /amqp sums them and lists each", async () => {
    const queue = uniqueName("shards");
    await declareQueue(queue);
    try {
      const id = uniqueRouteId("sharded");
      const gateway = gatewayFor(`
routes:
  - { id: ${id}, path: /in, amqp: { enabled: true, url: "${BROKER_URL}", shards: 4, location_hint: weur, producer: { routing_key: ${queue} } } }
`);
      const answers = await Promise.all(Array.from({ length: 40 }, () => gateway("POST", "/in", { body: "{}" }).then((r) => r.status)));
      expect(answers).toEqual(Array(40).fill(202));
      expect(await messageCount(queue)).toBe(40);
      const stats = ((await (await gateway("GET", "/amqp")).json()) as Record<string, Stats>)[id];
      expect(stats).toMatchObject({ published: 40, total_requests: 40, connected: true });
      expect(stats?.shards?.map((shard) => shard.shard)).toEqual([0, 1, 2, 3]);
      expect(stats?.shards?.reduce((sum, shard) => sum + shard.published, 0)).toBe(40);
      expect(stats?.shards?.filter((shard) => shard.published > 0).length).toBeGreaterThan(1);
    } finally {
      await deleteQueue(queue);
    }
  });

  it("a sharded consumer without auto-ack settles each message with the shard that took it", async () => {
    const queue = uniqueName("shard-ack");
    await declareQueue(queue);
    try {
      for (let i = 0; i < 20; i++) await publishDirect(queue, `m${i}`);
      const gateway = gatewayFor(`
routes:
  - { id: ${uniqueRouteId("sharded-ack")}, path: /out, amqp: { enabled: true, url: "${BROKER_URL}", shards: 4, operation_timeout_ms: 1000, consumer: { queue: ${queue}, auto_ack: false } } }
`);
      const answers = await Promise.all(Array.from({ length: 20 }, () => gateway("GET", "/out").then((r) => r.status)));
      expect(answers).toEqual(Array(20).fill(200));
      // A settle sent to the wrong shard would leave its message unacknowledged, to be requeued
      // after the hold time (operation_timeout_ms, 1 s here): wait past it; nothing may come back.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      expect(await messageCount(queue)).toBe(0);
      expect((await gateway("GET", "/out")).status).toBe(204);
    } finally {
      await deleteQueue(queue);
    }
  });

  it("a route with one shard lists no per-shard figures", async () => {
    const id = uniqueRouteId("single");
    const gateway = gatewayFor(`
routes:
  - { id: ${id}, path: /in, amqp: { enabled: true, url: "${BROKER_URL}", producer: {} } }
`);
    const stats = ((await (await gateway("GET", "/amqp")).json()) as Record<string, Stats>)[id];
    expect(stats?.shards).toBeUndefined();
  });
});
