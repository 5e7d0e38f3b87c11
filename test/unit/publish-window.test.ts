/**
 * The window of publishes one connection has in flight: places granted at once while there is
 * room (the path every publish takes, kept free of waiting), then in the order asked for.
 */
import { describe, expect, it } from "vitest";
import { PublishWindow } from "../../src/amqp/publish-window";

const settledNow = async (promise: Promise<void>): Promise<boolean> => {
  let settled = false;
  void promise.then(() => (settled = true));
  await new Promise((resolve) => setTimeout(resolve, 0));
  return settled;
};

describe("PublishWindow", () => {
  it("grants places at once while there is room, and says so", async () => {
    const window = new PublishWindow(2);
    const first = window.enter();
    const second = window.enter();
    expect([first.immediate, second.immediate]).toEqual([true, true]);
    expect(await settledNow(first.granted)).toBe(true);
    const third = window.enter();
    expect(third.immediate).toBe(false);
    expect(await settledNow(third.granted)).toBe(false);
  });

  it("hands a released place to the oldest waiter, and no one gets ahead of the line", async () => {
    const window = new PublishWindow(1);
    const holder = window.enter();
    const waiters = [window.enter(), window.enter()];
    expect(holder.release()).toBe(true);
    expect(await settledNow(waiters[0]!.granted)).toBe(true);
    expect(await settledNow(waiters[1]!.granted)).toBe(false);
    // A newcomer waits behind the line even though a place will be free after the next release.
    expect(window.enter().immediate).toBe(false);
  });

  it("releases once: a second release gives nothing back twice", () => {
    const window = new PublishWindow(1);
    const ticket = window.enter();
    expect(ticket.release()).toBe(true);
    expect(ticket.release()).toBe(false);
    const next = window.enter();
    expect(next.immediate).toBe(true);
    // Had the double release counted, there would be a second free place now.
    expect(window.enter().immediate).toBe(false);
  });

  it("a waiter that gives up leaves the line without taking a place", async () => {
    const window = new PublishWindow(1);
    const holder = window.enter();
    const quitter = window.enter();
    const patient = window.enter();
    expect(quitter.release()).toBe(false);
    holder.release();
    expect(await settledNow(patient.granted)).toBe(true);
    expect(await settledNow(quitter.granted)).toBe(false);
  });
});
