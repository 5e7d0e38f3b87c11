import { describe, expect, it } from "vitest";
import { MAX_CALLERS, RateLimiter } from "../../src/amqp/rate-limiter";

const rule = (key: string) => ({ key, requests: 3, periodS: 6, openWaits: 16 });

describe("the rate limiter's token buckets", () => {
  it("let a caller burst up to the limit, then refuse with the seconds until a request is free", () => {
    const limiter = new RateLimiter();
    const results = [0, 0, 0, 0].map(() => limiter.admit(rule("a"), 1_000));
    expect(results).toEqual([undefined, undefined, undefined, 2]);
    // One token refills every 2 s: after 1 s still none, after 2 s one.
    expect(limiter.admit(rule("a"), 2_000)).toBe(1);
    expect(limiter.admit(rule("a"), 3_000)).toBeUndefined();
    expect(limiter.admit(rule("a"), 3_000)).toBe(2);
  });

  it("count each caller apart, and give a full bucket back after a whole idle period", () => {
    const limiter = new RateLimiter();
    for (let i = 0; i < 3; i++) limiter.admit(rule("a"), 0);
    expect(limiter.admit(rule("a"), 0)).toBeDefined();
    expect(limiter.admit(rule("b"), 0)).toBeUndefined();
    const later = [0, 0, 0, 0].map(() => limiter.admit(rule("a"), 6_000));
    expect(later).toEqual([undefined, undefined, undefined, 2]);
  });

  it("forget callers idle for a whole period, so a flood of one-off callers does not pile up", () => {
    const limiter = new RateLimiter();
    // One new caller every 2 ms for 10 s: only those of the last 6 s (one period) are kept.
    for (let i = 0; i < 5_000; i++) limiter.admit(rule(`ip:${i}`), i * 2);
    expect(limiter.size).toBe(3_000);
    limiter.admit(rule("late"), 20_000);
    expect(limiter.size).toBe(1);
  });

  it(`track at most ${MAX_CALLERS} callers, forgetting the longest idle`, () => {
    const limiter = new RateLimiter();
    const long = { requests: 1, periodS: 86_400, openWaits: 16 };
    for (let i = 0; i <= MAX_CALLERS; i++) limiter.admit({ key: `ip:${i}`, ...long }, 0);
    expect(limiter.size).toBe(MAX_CALLERS);
    // ip:0 was forgotten (full again); ip:1 is still counted.
    expect(limiter.admit({ key: "ip:0", ...long }, 0)).toBeUndefined();
    expect(limiter.admit({ key: `ip:${MAX_CALLERS}`, ...long }, 0)).toBeDefined();
  });
});
