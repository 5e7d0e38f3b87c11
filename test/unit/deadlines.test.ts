/**
 * The route object's deadlines: every broker operation settles like its work or fails with the
 * given kind once its time is up (checked by one sweeper, so up to a sweep late).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Deadlines, SWEEP_INTERVAL_MS } from "../../src/amqp/deadlines";
import { RouteFailureError } from "../../src/contract/failures";

describe("Deadlines.within", () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it("settles as the work does, in time", async () => {
    const deadlines = new Deadlines();
    await expect(deadlines.within(Promise.resolve(7), 1000, "no_answer", "late")).resolves.toBe(7);
    const failure = new Error("refused");
    await expect(deadlines.within(Promise.reject(failure), 1000, "no_answer", "late")).rejects.toBe(failure);
  });

  it("rejects with the kind and message once the time is up; a message given as a function is built only then", async () => {
    const deadlines = new Deadlines();
    const message = vi.fn(() => "the broker did not answer within 500 ms");
    const answered = deadlines.within(Promise.resolve("ok"), 500, "no_answer", message);
    await expect(answered).resolves.toBe("ok");
    const late = deadlines.within(new Promise<never>(() => undefined), 500, "no_answer", message);
    const outcome = late.catch((error: unknown) => error);
    await vi.advanceTimersByTimeAsync(500 + SWEEP_INTERVAL_MS);
    const error = await outcome;
    expect(error).toBeInstanceOf(RouteFailureError);
    expect(error).toMatchObject({ kind: "no_answer", message: "the broker did not answer within 500 ms" });
    expect(message).toHaveBeenCalledTimes(1);
  });
});
