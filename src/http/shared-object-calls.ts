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
 * How: a request puts its item in its route's line. If fewer than {@link MAX_IN_FLIGHT} shared
 * calls are on their way, the request at the head of the line sends everything in the line (up
 * to {@link MAX_ITEMS} items) at once: on a quiet route, every call goes as soon as it is made.
 * Otherwise it waits, looking again every {@link POLL_MS} ms, until its item is answered or it
 * reaches the head of the line with room to send.
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
/** How often a waiting request looks whether its item was answered, or its turn to send has come. */
export const POLL_MS = 1;

/** Sends items to the object as one call; answers one result per item, in order. */
export type SendItems<Item, Result> = (items: Item[]) => Promise<Result[]>;

interface Slot<Item, Result> {
  item: Item;
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
   * An item with no answer within `deadlineMs` fails, as a call to the object that failed would;
   * a shared call that has not answered by then no longer counts as on its way.
   */
  async call(
    key: string,
    item: Item,
    send: SendItems<Item, Result>,
    keepAlive: (call: Promise<unknown>) => void,
    deadlineMs: number,
  ): Promise<Result> {
    const line = this.#line(key);
    const slot: Slot<Item, Result> = { item };
    line.waiting.push(slot);
    const started = Date.now();
    for (;;) {
      this.#forgetHung(line, deadlineMs);
      // At the head of the line with room: this request sends for everyone in line (itself
      // first), then waits for its item like the others.
      if (!slot.outcome && line.waiting[0] === slot && line.inFlight.size < MAX_IN_FLIGHT) this.#send(key, line, send, keepAlive);
      if (slot.outcome) {
        if ("result" in slot.outcome) return slot.outcome.result;
        throw slot.outcome.error;
      }
      if (Date.now() - started >= deadlineMs) {
        const index = line.waiting.indexOf(slot);
        if (index >= 0) line.waiting.splice(index, 1);
        this.#forgetIfIdle(key, line);
        throw new Error(`the route's object did not answer within ${deadlineMs} ms`);
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  #line(key: string): Line<Item, Result> {
    let line = this.#lines.get(key);
    if (!line) this.#lines.set(key, (line = { waiting: [], inFlight: new Set() }));
    return line;
  }

  /** Sends the head of the line as one call; each slot in it gets its outcome when the call ends. */
  #send(key: string, line: Line<Item, Result>, send: SendItems<Item, Result>, keepAlive: (call: Promise<unknown>) => void): void {
    const call: SharedCall<Item, Result> = { slots: line.waiting.splice(0, MAX_ITEMS), startedAt: Date.now() };
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
  #forgetHung(line: Line<Item, Result>, deadlineMs: number): void {
    const now = Date.now();
    for (const call of line.inFlight) {
      if (now - call.startedAt < deadlineMs) continue;
      line.inFlight.delete(call);
      const error = new Error(`the route's object did not answer within ${deadlineMs} ms`);
      for (const slot of call.slots) slot.outcome ??= { error };
    }
  }

  #forgetIfIdle(key: string, line: Line<Item, Result>): void {
    if (line.waiting.length === 0 && line.inFlight.size === 0 && this.#lines.get(key) === line) this.#lines.delete(key);
  }
}
