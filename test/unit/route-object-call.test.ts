import { afterEach, beforeEach, describe, expect, it, vi, type MockInstance } from "vitest";
import { GatewayError } from "../../src/http/gateway-error";
import { callRouteObject } from "../../src/http/route-object-call";

/** A stand-in for a Durable Object call that fails like workerd's do, then succeeds. */
const failing = (flags: { retryable?: boolean; overloaded?: boolean }, failures = 1) => {
  let calls = 0;
  const call = () => {
    calls++;
    if (calls <= failures) return Promise.reject(Object.assign(new Error("Durable Object reset"), flags));
    return Promise.resolve("answer");
  };
  return { call, calls: () => calls };
};

const statusOf = async (promise: Promise<unknown>) => {
  try {
    await promise;
    return "resolved";
  } catch (error) {
    return error instanceof GatewayError ? [error.status, error.headers["Retry-After"]] : error;
  }
};

describe("a failed call to the route's Durable Object", () => {
  // The gateway logs each failed call; here the log is checked rather than printed.
  let logged: MockInstance<typeof console.error>;
  beforeEach(() => {
    logged = vi.spyOn(console, "error").mockImplementation(() => undefined);
  });
  afterEach(() => {
    logged.mockRestore();
  });
  it("logs the failure with its route", async () => {
    await statusOf(callRouteObject("r", "publish", failing({}).call));
    expect(logged).toHaveBeenCalledWith("route r: Durable Object call failed", expect.any(Error));
  });

  it("is retried once for a consume when workerd says it may work", async () => {
    const object = failing({ retryable: true });
    await expect(callRouteObject("r", "consume", object.call)).resolves.toBe("answer");
    expect(object.calls()).toBe(2);
  });

  it("is not retried a second time for a consume: 503 with Retry-After", async () => {
    const object = failing({ retryable: true }, 2);
    expect(await statusOf(callRouteObject("r", "consume", object.call))).toEqual([503, "1"]);
    expect(object.calls()).toBe(2);
  });

  it("is never retried for a publish, whose outcome is unknown: 504", async () => {
    const object = failing({ retryable: true });
    expect(await statusOf(callRouteObject("r", "publish", object.call))).toEqual([504, undefined]);
    expect(object.calls()).toBe(1);
  });

  it("answers 503 with Retry-After when the object is overloaded (the request never reached it)", async () => {
    for (const operation of ["publish", "consume"] as const) {
      const object = failing({ retryable: true, overloaded: true });
      expect(await statusOf(callRouteObject("r", operation, object.call))).toEqual([503, "1"]);
      expect(object.calls()).toBe(1);
    }
  });
});
