/**
 * The HTTP side's one way to a route's objects: the object of each shard (shard 0 named after the
 * route, so adding shards keeps its counters), the location hint, and per operation what a call
 * that fails as a call becomes, each try on a fresh stub.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Env } from "../../src/env";
import { GatewayError } from "../../src/http/gateway-error";
import { routeClient } from "../../src/http/route-client";
import type { RouteTarget } from "../../src/contract/route-settings";

/** A namespace that records which object each stub is for, and the options it was got with. */
const namespace = () => {
  const got: Array<{ name: string; options: unknown }> = [];
  const env = {
    AMQP_ROUTE: {
      idFromName: (name: string) => name,
      get: (name: string, options?: unknown) => {
        got.push({ name, options });
        return { name };
      },
    },
  } as unknown as Env;
  return { env, got };
};

const target = (hint?: string): RouteTarget =>
  ({ id: "orders", amqp: { shards: 4, ...(hint ? { location_hint: hint } : {}) } }) as unknown as RouteTarget;

const reset = () => Promise.reject(Object.assign(new Error("Durable Object reset"), { retryable: true }));

describe("routeClient", () => {
  afterEach(() => void vi.restoreAllMocks());

  it("names shard 0 after the route and the others after it with #N, and passes the location hint", async () => {
    const { env, got } = namespace();
    await routeClient(env, target(), 0).call("consume", (object) => Promise.resolve(object));
    await routeClient(env, target("weur"), 3).call("consume", (object) => Promise.resolve(object));
    expect(got).toEqual([
      { name: "orders", options: undefined },
      { name: "orders#3", options: { locationHint: "weur" } },
    ]);
  });

  it("retries a consume once, on a fresh stub, when the runtime says it may work", async () => {
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    const { env, got } = namespace();
    let tries = 0;
    const answer = await routeClient(env, target(), 1).call("consume", () => (++tries === 1 ? reset() : Promise.resolve("taken")));
    expect(answer).toBe("taken");
    expect(got.map(({ name }) => name)).toEqual(["orders#1", "orders#1"]);
  });

  it("never retries a publish: its outcome is unknown, 504", async () => {
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    const { env, got } = namespace();
    const failed = await routeClient(env, target(), 2)
      .call("publish", reset)
      .catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(GatewayError);
    expect((failed as GatewayError).status).toBe(504);
    expect(got).toHaveLength(1);
  });
});
