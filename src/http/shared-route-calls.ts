import type { Context } from "hono";
import type { ConsumeOutcome, ConsumeRequest, ConsumingTarget, RouteTarget, SettleOutcome } from "../amqp/route-messages";
import type { GatewayEnv } from "../env";
import { runBeyondResponse } from "./beyond-response";
import { routeObject, shardName } from "./route-target";
import { SharedObjectCalls } from "./shared-object-calls";

/**
 * The calls to a route's object that concurrent requests share (src/http/shared-object-calls.ts):
 * takes that answer at once, and settles. Per isolate, like the requests that share them.
 */
const takes = new SharedObjectCalls<[ConsumingTarget, ConsumeRequest], ConsumeOutcome>();
const settles = new SharedObjectCalls<[number[], "ack" | "requeue"], SettleOutcome>();

/**
 * How long a request waits for its item of a shared call before it fails as on a failed call:
 * longer than anything the object does for a take or a settle (a connect, then the broker's
 * answer, each bounded by the route's own timeouts), so only when a call hung.
 */
const sharedCallDeadline = (target: RouteTarget): number => target.amqp.connect_timeout_ms + 2 * target.amqp.operation_timeout_ms + 10_000;

/** The object's `consume`, in one call with other requests' takes from the same shard. A take that may wait (`waitMs`) goes alone. */
export const consumeShared = (
  c: Context<GatewayEnv>,
  target: ConsumingTarget,
  shard: number,
  request: ConsumeRequest,
): Promise<ConsumeOutcome> =>
  request.waitMs
    ? routeObject(c.env, target, shard).consume(target, request)
    : takes.call(
        shardName(target.id, shard),
        [target, request],
        (items) => routeObject(c.env, target, shard).consumeEach(items),
        (call) => runBeyondResponse(c, call),
        sharedCallDeadline(target),
      );

/** The object's `settle`, in one call with other requests' settles on the same shard. */
export const settleShared = (
  c: Context<GatewayEnv>,
  target: RouteTarget,
  shard: number,
  tokens: number[],
  outcome: "ack" | "requeue",
): Promise<SettleOutcome> =>
  settles.call(
    shardName(target.id, shard),
    [tokens, outcome],
    (items) => routeObject(c.env, target, shard).settleEach(items),
    (call) => runBeyondResponse(c, call),
    sharedCallDeadline(target),
  );
