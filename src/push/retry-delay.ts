/**
 * How long a push waits before attempt `failed + 1`, after `failed` attempts failed (1 or more):
 * `backoffMs · 2^(failed−1)`, capped at `maxBackoffMs`, then jittered by at most ±50% of that
 * delay, so that many messages failing together do not all come back at once. Not "full jitter"
 * (anything from 0): a retry never comes sooner than half its delay.
 */
export const retryDelayMs = (failed: number, backoffMs: number, maxBackoffMs: number, random: () => number = Math.random): number => {
  const delay = Math.min(maxBackoffMs, backoffMs * 2 ** Math.max(0, failed - 1));
  return Math.round(delay * (0.5 + random()));
};
