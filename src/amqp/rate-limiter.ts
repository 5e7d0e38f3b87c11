/** A route's `rate_limit` as the object applies it to one request: whom it counts, and how many per period. */
export interface Admission {
  /** The caller: an IP, `key#<index>` of an API key, or `sub:<sub>` of a JWT; never a credential. */
  key: string;
  requests: number;
  periodS: number;
}

/** Callers whose bucket is full again are forgotten once this many are tracked. */
const SWEEP_AT = 10_000;

/**
 * Token buckets, one per caller: a bucket holds `requests` tokens, refills at `requests` per
 * `period_s`, and each request takes one. A caller may burst up to the limit and then gets one
 * request per `period_s / requests`; after a whole idle period it has the full limit again.
 * Exact for the requests that reach this object (one object per route; a rate-limited request
 * of a sharded route goes to the shard its key hashes to, so each caller is counted in one place).
 */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  /** Takes a token for `admission.key`: undefined when admitted, else the seconds until one is free. */
  admit(admission: Admission, now = Date.now()): number | undefined {
    const ratePerMs = admission.requests / (admission.periodS * 1000);
    const bucket = this.#buckets.get(admission.key) ?? { tokens: admission.requests, at: now };
    const tokens = Math.min(admission.requests, bucket.tokens + (now - bucket.at) * ratePerMs);
    if (tokens >= 1) {
      this.#buckets.set(admission.key, { tokens: tokens - 1, at: now });
      if (this.#buckets.size > SWEEP_AT) this.#sweep(admission, now);
      return undefined;
    }
    this.#buckets.set(admission.key, { tokens, at: now });
    return Math.max(1, Math.ceil((1 - tokens) / ratePerMs / 1000));
  }

  /** Forgets callers whose bucket has refilled: they would start full anyway. */
  #sweep(admission: Admission, now: number): void {
    const periodMs = admission.periodS * 1000;
    for (const [key, bucket] of this.#buckets) if (now - bucket.at >= periodMs) this.#buckets.delete(key);
  }
}
