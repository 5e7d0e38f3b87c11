/**
 * A route object's timers (src/object-timers.ts): any number of them on one runtime timer,
 * as workerd allows an object 10,000 (test/workers/neighbours-consuming.test.ts holds more leases
 * than that on one route). Fake timers count the runtime's timers.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ObjectTimers } from "../../src/object-timers";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("a route object's timers", () => {
  it("keep one runtime timer for twenty thousand, and fire each once, in due order, never early", () => {
    const timers = new ObjectTimers();
    const fired: number[] = [];
    const early: number[] = [];
    const started = Date.now();
    const due = Array.from({ length: 20_000 }, (_, i) => (i * 7919) % 10_000);
    for (const [i, ms] of due.entries()) {
      timers.after(ms, () => {
        fired.push(i);
        if (Date.now() - started < ms) early.push(i);
      });
    }
    expect(vi.getTimerCount()).toBe(1);
    expect(timers.size).toBe(20_000);
    vi.advanceTimersByTime(10_000);
    expect(fired).toHaveLength(20_000);
    expect(early).toEqual([]);
    expect(new Set(fired).size).toBe(20_000);
    const order = fired.map((i) => due[i] ?? -1);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(timers.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("forget a cancelled timer at once (a settled lease holds nothing until its old due time)", () => {
    const timers = new ObjectTimers();
    const fired: string[] = [];
    const cancels = Array.from({ length: 1000 }, (_, i) => timers.after(60_000 + i, () => fired.push(`late ${i}`)));
    timers.after(10, () => fired.push("soon"));
    for (const cancel of cancels) cancel();
    cancels[0]?.();
    expect(timers.size).toBe(1);
    vi.advanceTimersByTime(10);
    expect(fired).toEqual(["soon"]);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(120_000);
    expect(fired).toEqual(["soon"]);
  });

  it("arm again for an earlier timer, and let a callback set the next one", () => {
    const timers = new ObjectTimers();
    const fired: string[] = [];
    timers.after(1000, () => fired.push("late"));
    timers.after(100, () => {
      fired.push("early");
      timers.after(50, () => fired.push("from a callback"));
    });
    vi.advanceTimersByTime(100);
    expect(fired).toEqual(["early"]);
    vi.advanceTimersByTime(50);
    expect(fired).toEqual(["early", "from a callback"]);
    vi.advanceTimersByTime(850);
    expect(fired).toEqual(["early", "from a callback", "late"]);
  });
});
