import type { Context } from "hono";
import type { SettleOutcome } from "../contract/route-calls";
import type { GatewayEnv } from "../env";
import { routeClient } from "./route-client";
import type { RouteTarget } from "../contract/route-settings";

/**
 * Acknowledges delivered messages with the shard that holds them, or requeues those whose answer
 * never reached the client. A failure here cannot change the answer any more (it is sent): a
 * message whose acknowledgement is lost comes again (at least once), and is logged.
 */
export const settleDeliveries = async (
  c: Context<GatewayEnv>,
  target: RouteTarget,
  shard: number,
  tokens: number[],
  outcome: "ack" | "requeue",
): Promise<void> => {
  let settled: SettleOutcome;
  try {
    settled = await routeClient(c.env, target, shard).object().settle(tokens, outcome);
  } catch {
    // The object was reset: its connection went with it, and the broker requeues the messages.
    return;
  }
  if (!settled.ok)
    console.warn(`route ${target.id}: ${outcome} of ${tokens.length} message(s) failed (${settled.message}); they will come again`);
};
