/**
 * The byte budget one isolate holds bodies within: small reservations beside a flood of large
 * ones, publishes beside answers, one caller beside another, and waiting for room.
 */
import { describe, expect, it } from "vitest";
import { MemoryBudget, SMALL_BYTES } from "../../src/memory-budget";

const MiB = 1024 * 1024;

describe("a memory budget", () => {
  it("lets large reservations fill three quarters of it, and small ones the rest", () => {
    const budget = new MemoryBudget(16 * MiB);
    const publishes = [budget.take(4 * MiB, "publish"), budget.take(4 * MiB, "publish")];
    const answers = [budget.take(4 * MiB, "answer")];
    expect([...publishes, ...answers].every((held) => held !== undefined)).toBe(true);
    // 12 MiB held: no more large ones, in either lane.
    expect(budget.take(SMALL_BYTES + 1, "answer")).toBeUndefined();
    // Small ones still fit, up to the whole budget.
    const smalls = Array.from({ length: 64 }, () => budget.take(SMALL_BYTES, "publish"));
    expect(smalls.every((held) => held !== undefined)).toBe(true);
    expect(budget.used).toBe(16 * MiB);
    expect(budget.take(1, "publish")).toBeUndefined();
  });

  it("keeps each lane to half of it, so a flood of large publishes leaves answers room", () => {
    const budget = new MemoryBudget(16 * MiB);
    expect(budget.take(4 * MiB, "publish")).toBeDefined();
    expect(budget.take(4 * MiB, "publish")).toBeDefined();
    expect(budget.take(1 * MiB, "publish")).toBeUndefined();
    expect(budget.room("publish")).toBe(0);
    expect(budget.room("answer")).toBe(4 * MiB);
    expect(budget.take(4 * MiB, "answer")).toBeDefined();
  });

  it("keeps one caller to half of it, so another caller finds room", () => {
    const budget = new MemoryBudget(32 * MiB);
    expect(budget.take(10 * MiB, "publish", "ip:hostile")).toBeDefined();
    expect(budget.take(6 * MiB, "answer", "ip:hostile")).toBeDefined();
    expect(budget.take(1 * MiB, "answer", "ip:hostile")).toBeUndefined();
    expect(budget.take(6 * MiB, "answer", "ip:honest")).toBeDefined();
  });

  it("admits one reservation larger than three quarters only when nothing else is held", () => {
    const budget = new MemoryBudget(8 * MiB);
    const small = budget.take(1024, "publish");
    expect(budget.take(7 * MiB, "publish")).toBeUndefined();
    small?.release();
    const huge = budget.take(7 * MiB, "publish");
    expect(huge).toBeDefined();
    expect(budget.take(SMALL_BYTES + 1, "answer")).toBeUndefined();
    huge?.release();
    expect(budget.used).toBe(0);
  });

  it("grows a reservation only while it fits, resizes to what is held, and releases once", () => {
    const budget = new MemoryBudget(8 * MiB);
    const held = budget.take(0, "publish");
    expect(held?.grow(2 * MiB)).toBe(true);
    expect(held?.grow(5 * MiB)).toBe(false);
    expect(held?.bytes).toBe(2 * MiB);
    held?.resize(7 * MiB);
    expect(budget.used).toBe(7 * MiB);
    held?.release();
    held?.release();
    expect(budget.used).toBe(0);
  });

  it("grants a reservation of nothing yet even when the budget and the caller's share are overdrawn", () => {
    const budget = new MemoryBudget(8 * MiB);
    // An answer resized past what was planned overdraws both (resize does not refuse what is in).
    const answered = budget.take(MiB, "answer", "caller-a");
    answered?.resize(9 * MiB);
    expect(budget.take(0, "answer", "caller-a")).toBeUndefined();
    const waiting = budget.holdNothing("answer", "caller-a");
    expect(waiting.bytes).toBe(0);
    waiting.resize(MiB);
    expect(budget.used).toBe(10 * MiB);
    waiting.release();
    answered?.release();
    expect(budget.used).toBe(0);
  });

  it("waits for room that another reservation gives back, and gives up after its wait", async () => {
    const budget = new MemoryBudget(8 * MiB);
    const first = budget.take(4 * MiB, "publish");
    const waiting = budget.takeWithin(4 * MiB, "publish", undefined, 2000);
    setTimeout(() => first?.release(), 100);
    expect((await waiting)?.bytes).toBe(4 * MiB);
    const started = Date.now();
    expect(await budget.takeWithin(4 * MiB, "publish", undefined, 200)).toBeUndefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });
});
