import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { ConsumeOutcome, ConsumingTarget } from "../../src/amqp/route-messages";
import { parseRoutes } from "../../src/config/parse-routes";
import { consumes } from "../../src/config/schema";
import { BROKER_URL, declareQueue, deleteQueue, messageCount, publishDirect, uniqueName } from "../helpers/broker";
import { uniqueRouteId } from "./gateway";

/** The route as the Worker hands it to the object, for driving the object directly. */
const consumerTarget = (queue: string, holdMs: number): ConsumingTarget => {
  const id = uniqueRouteId("manual");
  const parsed = parseRoutes(`
routes:
  - { id: ${id}, path: /out, amqp: { enabled: true, url: "${BROKER_URL}", operation_timeout_ms: ${holdMs}, consumer: { queue: ${queue}, auto_ack: false } } }
`);
  if (!parsed.ok) throw new Error(parsed.problems.join("\n"));
  const route = parsed.config.routes[0];
  if (!route || !consumes(route)) throw new Error("expected a consuming route");
  return route;
};

const objectFor = (target: ConsumingTarget) => env.AMQP_ROUTE.get(env.AMQP_ROUTE.idFromName(target.id));

describe("a message taken without auto-ack", () => {
  it("is held unacknowledged until the Worker settles it, then acknowledged", async () => {
    const queue = uniqueName("held");
    await declareQueue(queue);
    try {
      await publishDirect(queue, "hold me");
      const target = consumerTarget(queue, 5_000);
      const taken = (await objectFor(target).consume(target)) as ConsumeOutcome;
      expect(taken.ok && taken.settle).toBeGreaterThan(0);
      if (!taken.ok || taken.settle === undefined) return;
      expect(await objectFor(target).settle(taken.settle, "ack")).toEqual({ ok: true });
      expect(await objectFor(target).settle(taken.settle, "ack")).toMatchObject({ ok: false, kind: "internal" });
      expect(await messageCount(queue)).toBe(0);
    } finally {
      await deleteQueue(queue);
    }
  });

  it("goes back to the queue when the Worker asks, or never answers", async () => {
    const queue = uniqueName("requeue");
    await declareQueue(queue);
    try {
      await publishDirect(queue, "give me back");
      const target = consumerTarget(queue, 300);
      const first = (await objectFor(target).consume(target)) as ConsumeOutcome;
      if (!first.ok || first.settle === undefined) throw new Error("expected a held message");
      expect(await objectFor(target).settle(first.settle, "requeue")).toEqual({ ok: true });
      expect(await messageCount(queue)).toBe(1);

      const second = (await objectFor(target).consume(target)) as ConsumeOutcome;
      expect(second.ok && second.message?.redelivered).toBe(true);
      // Not settled: after the hold time (operation_timeout_ms) the object requeues it itself.
      await new Promise((resolve) => setTimeout(resolve, 800));
      expect(await messageCount(queue)).toBe(1);
    } finally {
      await deleteQueue(queue);
    }
  });
});
