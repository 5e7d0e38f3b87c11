import type { Admission } from "../contract/route-calls";

/** Callers tracked at most; past it the longest-idle are forgotten (they come back with a full bucket). */
export const MAX_CALLERS = 100_000;

/**
 * Token buckets, one per caller: a bucket holds `requests` tokens, refills at `requests` per
 * `period_s`, and each request takes one. A caller may burst up to the limit and then gets one
 * request per `period_s / requests`; after a whole idle period it has the full limit again.
 * Exact for the requests that reach this object (one object per route; a rate-limited request
 * of a sharded route goes to the shard its key hashes to, so each caller is counted in one place).
 *
 * The map is kept in order of last use, so forgetting the callers whose bucket has refilled (idle
 * for a whole period) looks only at those, oldest first: each request costs O(1) amortised
 * however many callers there are, and memory stays bounded by {@link MAX_CALLERS}.
 */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  /** Takes a token for `admission.key`: undefined when admitted, else the seconds until one is free. */
  admit(admission: Admission, now = Date.now()): number | undefined {
    const periodMs = admission.periodS * 1000;
    const ratePerMs = admission.requests / periodMs;
    const bucket = this.#buckets.get(admission.key);
    const tokens = bucket ? Math.min(admission.requests, bucket.tokens + (now - bucket.at) * ratePerMs) : admission.requests;
    const admitted = tokens >= 1;
    this.#buckets.delete(admission.key);
    this.#buckets.set(admission.key, { tokens: admitted ? tokens - 1 : tokens, at: now });
    this.#forgetIdle(periodMs, now);
    return admitted ? undefined : Math.max(1, Math.ceil((1 - tokens) / ratePerMs / 1000));
  }

  /** How many callers are tracked now. */
  get size(): number {
    return this.#buckets.size;
  }

  #forgetIdle(periodMs: number, now: number): void {
    for (const [key, bucket] of this.#buckets) {
      if (this.#buckets.size <= MAX_CALLERS && now - bucket.at < periodMs) break;
      this.#buckets.delete(key);
    }
  }
}
