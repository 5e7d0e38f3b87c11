/**
 * Calls of one kind to one Durable Object, made by the requests an isolate serves at the same
 * time, sent as one call.
 *
 * Why: a call to a Durable Object costs the runtime far more than most of the work it asks for.
 * Measured in workerd here (BENCHMARKS.md, "the object call"), a Worker that answers a GET by
 * itself serves ~17,000 requests a second; one that also makes an empty call to an object, ~5,000;
 * and the gateway's consume was within a few percent of that. Under load a route's requests
 * arrive together, so they can share a call: the object gets a list, does each item exactly as if
 * it had been called for it alone, and answers a list in the same order.
 *
 * How: a request puts its item in its route's line. Whenever fewer than {@link MAX_IN_FLIGHT}
 * shared calls are on their way, a request that looks sends everything in the line (up to
 * {@link MAX_ITEMS} items) as one call: on a quiet route, every call goes as soon as it is made.
 * Otherwise it waits, looking again every millisecond (every 10 once it has waited 20 ms), until
 * its item is answered or there is room. Items of requests that stopped looking (cancelled) are
 * left out ({@link STALE_MS}).
 *
 * Why a timer, and not a promise that the sending request settles: the runtime ties everything
 * to the request it runs for. A request woken by another request's promise runs on, now and
 * then, as the other request (measured: about 1 in 10,000 wake-ups here), which fails its next
 * call ("Cannot perform I/O on behalf of a different request"), or is ended as hung because it
 * waits on nothing of its own. A request here only ever runs from its own timers and its own
 * calls; what passes between requests is plain data (the items and their results).
 *
 * A shared call is sent by one of the requests in it, from its own context, and kept going with
 * that request's `waitUntil` should its client go away. A call that fails as a whole (the object
 * was reset) fails every item in it, each of which then handles the failure as its own call's
 * (`callRouteObject`). Only calls that end in bounded time may be shared (a take without
 * `?wait`, a settle): each item is answered when the whole call is.
 */

/** Shared calls of one kind to one object on their way at once. */
export const MAX_IN_FLIGHT = 2;
/** Items in one shared call at most. */
export const MAX_ITEMS = 64;
/** How often a waiting request looks whether its item was answered, or there is room to send: at first... */
const POLL_MS = 1;
/** ...and once it has waited {@link FAST_POLLING_MS}, less often, so that a slow object does not cost the isolate a wake-up per waiting request every millisecond. */
const SLOW_POLL_MS = 10;
const FAST_POLLING_MS = 20;
/**
 * A waiting item whose request has not looked for this long is taken to be gone (the runtime
 * cancelled it, and its timers with it): it is left out of the next call, so that nothing is
 * taken for a client that is not there. If its request was only slow, it puts the item back.
 */
export const STALE_MS = 500;

/** Sends items to the object as one call; answers one result per item, in order. */
export type SendItems<Item, Result> = (items: Item[]) => Promise<Result[]>;

/** An item without an answer in time: `sent` says whether the object may have acted on it. */
export class SharedCallTimeout extends Error {
  constructor(
    readonly sent: boolean,
    readonly deadlineMs: number,
  ) {
    super(
      sent ? `the route's object did not answer within ${deadlineMs} ms` : `no room to call the route's object within ${deadlineMs} ms`,
    );
  }
}

interface Slot<Item, Result> {
  item: Item;
  queuedAt: number;
  /** When its request last looked: see {@link STALE_MS}. */
  seenAt: number;
  sentAt?: number;
  outcome?: { result: Result } | { error: unknown };
}

interface SharedCall<Item, Result> {
  slots: Array<Slot<Item, Result>>;
  startedAt: number;
}

interface Line<Item, Result> {
  waiting: Array<Slot<Item, Result>>;
  inFlight: Set<SharedCall<Item, Result>>;
}

export class SharedObjectCalls<Item, Result> {
  readonly #lines = new Map<string, Line<Item, Result>>();

  /**
   * `item`'s result from the object named `key`. `send` makes the call (it runs in the context
   * of the request that sends it); `keepAlive` keeps that request going until the call is done.
   * An item not sent within `deadlineMs` of being asked for, or not answered within `deadlineMs`
   * of being sent, fails with {@link SharedCallTimeout}; a shared call that has not answered by
   * then no longer holds its place.
   */
  async call(
    key: string,
    item: Item,
    send: SendItems<Item, Result>,
    keepAlive: (call: Promise<unknown>) => void,
    deadlineMs: number,
  ): Promise<Result> {
    const line = this.#line(key);
    const slot: Slot<Item, Result> = { item, queuedAt: Date.now(), seenAt: Date.now() };
    line.waiting.push(slot);
    for (;;) {
      const now = Date.now();
      slot.seenAt = now;
      this.#forgetHung(line, deadlineMs, now);
      // Left out of a call as gone while this request was only slow: back in line.
      if (!slot.outcome && slot.sentAt === undefined && !line.waiting.includes(slot)) line.waiting.push(slot);
      // Room for a call: this request sends everything in line (its own item among the first
      // MAX_ITEMS, or in a later call), then waits for its item like the others.
      if (!slot.outcome && slot.sentAt === undefined && line.inFlight.size < MAX_IN_FLIGHT) this.#send(key, line, send, keepAlive, now);
      if (slot.outcome) {
        if ("result" in slot.outcome) return slot.outcome.result;
        throw slot.outcome.error;
      }
      if (now - (slot.sentAt ?? slot.queuedAt) >= deadlineMs) {
        const index = line.waiting.indexOf(slot);
        if (index >= 0) line.waiting.splice(index, 1);
        this.#forgetIfIdle(key, line);
        throw new SharedCallTimeout(slot.sentAt !== undefined, deadlineMs);
      }
      await new Promise((resolve) => setTimeout(resolve, now - slot.queuedAt < FAST_POLLING_MS ? POLL_MS : SLOW_POLL_MS));
    }
  }

  #line(key: string): Line<Item, Result> {
    let line = this.#lines.get(key);
    if (!line) this.#lines.set(key, (line = { waiting: [], inFlight: new Set() }));
    return line;
  }

  /** Sends the head of the line, without the items of requests that are gone, as one call; each item in it gets its outcome when the call ends. */
  #send(
    key: string,
    line: Line<Item, Result>,
    send: SendItems<Item, Result>,
    keepAlive: (call: Promise<unknown>) => void,
    now: number,
  ): void {
    line.waiting = line.waiting.filter((slot) => now - slot.seenAt < STALE_MS);
    const call: SharedCall<Item, Result> = { slots: line.waiting.splice(0, MAX_ITEMS), startedAt: now };
    if (call.slots.length === 0) return;
    for (const slot of call.slots) slot.sentAt = now;
    line.inFlight.add(call);
    // Async, so that a send that throws becomes a failed call like any other.
    const sent = (async () => send(call.slots.map((slot) => slot.item)))();
    const answered = sent
      .then((results) => {
        if (results.length !== call.slots.length) throw new Error(`the object answered ${results.length} of ${call.slots.length} items`);
        call.slots.forEach((slot, index) => (slot.outcome ??= { result: results[index] as Result }));
      })
      .catch((error: unknown) => call.slots.forEach((slot) => (slot.outcome ??= { error })))
      .finally(() => {
        line.inFlight.delete(call);
        this.#forgetIfIdle(key, line);
      });
    keepAlive(answered);
  }

  /** A shared call that never answered (its request was ended) stops holding its place, and its items fail. */
  #forgetHung(line: Line<Item, Result>, deadlineMs: number, now: number): void {
    for (const call of line.inFlight) {
      if (now - call.startedAt < deadlineMs) continue;
      line.inFlight.delete(call);
      for (const slot of call.slots) slot.outcome ??= { error: new SharedCallTimeout(true, deadlineMs) };
    }
  }

  #forgetIfIdle(key: string, line: Line<Item, Result>): void {
    if (line.waiting.length === 0 && line.inFlight.size === 0 && this.#lines.get(key) === line) this.#lines.delete(key);
  }
}
