/** A wait not seen again for this long is taken for gone (a stream takes at least every 15 s). */
const STALE_MS = 60_000;

/**
 * The long-polls and streams each rate-limited caller holds open on one route object, bounded by
 * its `rate_limit.open_waits`. A stream is one request however long it lasts, so the request rate
 * alone lets a caller open one more every few seconds, for good: without this bound, one caller's
 * streams could take every waiting place, channel and share of memory of the route.
 *
 * A long-poll is open for its one take; a stream from its first take until it ends (the Worker's
 * `cancelWait`), or until it has not taken for a minute.
 */
export class OpenWaits {
  readonly #byId = new Map<string, { caller: string; at: number }>();
  readonly #byCaller = new Map<string, number>();

  /** Opens wait `id` of `caller` (or keeps it open); false when the caller holds `max` open already. */
  open(id: string, caller: string, max: number, now = Date.now()): boolean {
    this.#sweep(now);
    const known = this.#byId.get(id);
    if (known) {
      // Most recently seen last, so that the sweep looks at the oldest first.
      this.#byId.delete(id);
      this.#byId.set(id, { ...known, at: now });
      return true;
    }
    const held = this.#byCaller.get(caller) ?? 0;
    if (held >= max) return false;
    this.#byId.set(id, { caller, at: now });
    this.#byCaller.set(caller, held + 1);
    return true;
  }

  close(id: string): void {
    const known = this.#byId.get(id);
    if (!known) return;
    this.#byId.delete(id);
    const held = (this.#byCaller.get(known.caller) ?? 1) - 1;
    if (held > 0) this.#byCaller.set(known.caller, held);
    else this.#byCaller.delete(known.caller);
  }

  #sweep(now: number): void {
    for (const [id, { at }] of this.#byId) {
      if (now - at < STALE_MS) break;
      this.close(id);
    }
  }
}
