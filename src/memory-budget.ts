/**
 * A byte budget for message bodies held in memory at once, shared by every request in an isolate
 * (the Worker's, or a route object's). A Cloudflare isolate has 128 MB for everything in it, and
 * one request's body is bounded (`max_body_bytes`, 20 MiB answers) but the sum over concurrent
 * requests is not: 200 concurrent 1 MiB publishes would kill the isolate, and every caller's
 * requests in it. With the budget, a request whose bodies do not fit is refused before they are
 * read or taken (503 with Retry-After: nothing published, nothing taken).
 *
 * Four rules keep one kind of request, or one caller, from crowding out the rest:
 * - a large reservation (over {@link SMALL_BYTES}) may fill the budget only to three quarters, so
 *   small requests always find room beside a flood of large ones;
 * - a reservation larger than that on its own is admitted only when nothing else is held;
 * - publishes and answers (the two {@link Lane}s) may each hold at most half of it in large
 *   reservations, so a flood of large publishes does not starve consumers, nor the reverse;
 * - where the route tells callers apart, one caller may hold at most half of it.
 */
export class MemoryBudget {
  #used = 0;
  readonly #byCaller = new Map<string, number>();
  readonly #byLane = new Map<Lane, number>();

  /** @param capacity - bytes of bodies held at once */
  constructor(readonly capacity: number) {}

  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }

  /** The most one large reservation may hold beside others (three quarters of the budget). */
  get largest(): number {
    return Math.floor(this.capacity * LARGE_SHARE);
  }

  /**
   * Takes `bytes` as {@link take} does, waiting up to `waitMs` for room (other requests releasing
   * theirs); undefined when there is none by then. The wait polls on a timer of the caller's own:
   * in a Worker, a promise that another request's release settled could resume this request
   * in that request's context (workerd then refuses its I/O).
   */
  async takeWithin(bytes: number, lane: Lane, caller: string | undefined, waitMs: number): Promise<Reservation | undefined> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const held = this.take(bytes, lane, caller);
      if (held || Date.now() >= deadline) return held;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  /** Whether a reservation of `bytes` in all (of which `holding` are held already) fits the rules. */
  #fits(bytes: number, holding: number, lane: Lane, caller: string | undefined): boolean {
    // Nothing held yet (a wait's, grown or resized once its answer is in): always.
    if (bytes === 0) return true;
    const more = bytes - holding;
    const used = this.#used - holding;
    const share = Math.floor(this.capacity * SHARE);
    const fits =
      bytes <= SMALL_BYTES
        ? used + bytes <= this.capacity
        : (used + bytes <= this.largest && (this.#byLane.get(lane) ?? 0) + more <= share) || (used === 0 && bytes > this.largest);
    const mine = caller === undefined ? 0 : (this.#byCaller.get(caller) ?? 0) - holding;
    return fits && (caller === undefined || mine <= 0 || mine + bytes <= share);
  }

  /** The most a large reservation of `lane` could take now, for `caller`. */
  room(lane: Lane, caller?: string): number {
    const shared = this.largest - this.#used;
    const inLane = Math.floor(this.capacity * SHARE) - (this.#byLane.get(lane) ?? 0);
    const own = caller === undefined ? shared : Math.floor(this.capacity * SHARE) - (this.#byCaller.get(caller) ?? 0);
    return Math.max(0, Math.min(shared, inLane, own));
  }

  /** Takes `bytes` in `lane` for `caller`, or undefined when they do not fit (see the class's rules). */
  take(bytes: number, lane: Lane, caller?: string): Reservation | undefined {
    const small = bytes <= SMALL_BYTES;
    const mine = caller === undefined ? 0 : (this.#byCaller.get(caller) ?? 0);
    const share = Math.floor(this.capacity * SHARE);
    const fits = small
      ? this.#used + bytes <= this.capacity
      : (this.#used + bytes <= this.largest && (this.#byLane.get(lane) ?? 0) + bytes <= share) ||
        (this.#used === 0 && bytes > this.largest);
    if (!fits || (caller !== undefined && mine > 0 && mine + bytes > share)) return undefined;
    return this.#reservation(bytes, lane, caller);
  }

  /**
   * A reservation of nothing yet, which every request gets whatever the others hold (a wait that
   * holds nothing cannot be refused for lack of room), to be resized to what it is answered with.
   */
  holdNothing(lane: Lane, caller?: string): Reservation {
    return this.#reservation(0, lane, caller);
  }

  #reservation(bytes: number, lane: Lane, caller: string | undefined): Reservation {
    return new Held(this.#ledger, lane, caller, bytes);
  }

  /** What reservations change and ask of the budget: one object per budget, not closures per reservation. */
  readonly #ledger: Ledger = {
    adjust: (lane, caller, delta) => {
      this.#used += delta;
      this.#byLane.set(lane, (this.#byLane.get(lane) ?? 0) + delta);
      if (caller !== undefined) {
        const total = (this.#byCaller.get(caller) ?? 0) + delta;
        if (total > 0) this.#byCaller.set(caller, total);
        else this.#byCaller.delete(caller);
      }
    },
    fits: (bytes, holding, lane, caller) => this.#fits(bytes, holding, lane, caller),
  };
}

interface Ledger {
  adjust(lane: Lane, caller: string | undefined, delta: number): void;
  fits(bytes: number, holding: number, lane: Lane, caller: string | undefined): boolean;
}

/** One reservation (a class: one is made for every request's body, and every answer's). */
class Held implements Reservation {
  #held = 0;
  #released = false;

  constructor(
    private readonly ledger: Ledger,
    private readonly lane: Lane,
    private readonly caller: string | undefined,
    bytes: number,
  ) {
    this.#set(bytes);
  }

  get bytes(): number {
    return this.#held;
  }

  resize(next: number): void {
    if (!this.#released) this.#set(Math.max(0, next));
  }

  grow(next: number): boolean {
    if (this.#released || next <= this.#held) return !this.#released;
    if (!this.ledger.fits(next, this.#held, this.lane, this.caller)) return false;
    this.#set(next);
    return true;
  }

  release(): void {
    if (this.#released) return;
    this.#set(0);
    this.#released = true;
  }

  #set(next: number): void {
    const delta = next - this.#held;
    this.#held = next;
    this.ledger.adjust(this.lane, this.caller, delta);
  }
}

/** What a reservation holds bodies for: publishes (requests' bodies) or answers (messages taken). */
export type Lane = "publish" | "answer";

/**
 * Bytes held for one request: `resize` to what it turned out to hold (already in memory, so it
 * is not refused), `grow` to what it is about to hold (false when that does not fit), `release`
 * once (safe to call twice).
 */
export interface Reservation {
  readonly bytes: number;
  resize(bytes: number): void;
  grow(bytes: number): boolean;
  release(): void;
}

/** How often a waiting reservation looks for room. */
const POLL_MS = 20;

/** How long a request waits for room before it is refused (a burst is served in turn rather than refused). */
export const MEMORY_WAIT_MS = 1000;

/** Reservations up to this size count as small: they may use the whole budget. */
export const SMALL_BYTES = 64 * 1024;
/** The share of the budget large reservations may fill. */
const LARGE_SHARE = 3 / 4;
/** The share one lane may hold in large reservations, and one caller, where callers are told apart. */
const SHARE = 1 / 2;
