import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { ConsumeOutcome } from "../../src/contract/route-calls";
import { parseRoutes } from "../../src/config/parse-routes";
import { consumes } from "../../src/contract/route-settings";
import { BROKER_URL, declareQueue, deleteQueue, messageCount, publishDirect, uniqueName } from "../helpers/broker";
import { uniqueRouteId } from "./gateway";
import type { ConsumingTarget } from "../../src/contract/route-settings";

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
      const taken = (await objectFor(target).consume(target, { max: 1 })) as ConsumeOutcome;
      const token = taken.ok ? taken.messages[0]?.settle : undefined;
      expect(token).toBeGreaterThan(0);
      if (token === undefined) return;
      expect(await objectFor(target).settle([token], "ack")).toEqual({ ok: true });
      expect(await objectFor(target).settle([token], "ack")).toMatchObject({ ok: false, kind: "internal" });
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
      const first = (await objectFor(target).consume(target, { max: 1 })) as ConsumeOutcome;
      const token = first.ok ? first.messages[0]?.settle : undefined;
      if (token === undefined) throw new Error("expected a held message");
      expect(await objectFor(target).settle([token], "requeue")).toEqual({ ok: true });
      expect(await messageCount(queue)).toBe(1);

      const second = (await objectFor(target).consume(target, { max: 1 })) as ConsumeOutcome;
      expect(second.ok && second.messages[0]?.message.redelivered).toBe(true);
      // Not settled: after the hold time (operation_timeout_ms) the object requeues it itself.
      await new Promise((resolve) => setTimeout(resolve, 800));
      expect(await messageCount(queue)).toBe(1);
    } finally {
      await deleteQueue(queue);
    }
  });
});
