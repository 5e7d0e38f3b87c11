import type { RouteStorage } from "./route-storage";
import { redactUrl } from "../contract/redaction";
import { ZERO_COUNTERS, type LastError, type RouteCounters } from "../contract/route-calls";

const STORAGE_KEY = "counters";
const LAST_ERROR_KEY = "last_error";
const URL_KEY = "url";

/** How long a change may wait before it is written: one write per second at most, however busy the route. */
export const FLUSH_DELAY_MS = 1000;

/**
 * The route's counters, kept in the Durable Object's SQLite storage so they survive eviction
 * and restarts. Writes are coalesced: the first change arms a timer and one write covers every
 * change until it fires. A write per request would be durable sooner, but the runtime's output
 * gate holds each response until its write is done, which halved the route's throughput here.
 * The price: a crash of the object (not an eviction, which waits for idle) can lose up to a
 * second of counts. Counts are figures for `/amqp`, not part of any message's fate.
 *
 * The counts belong to the broker URL they were made against (`/amqp` shows them under it): when a
 * route's URL changes (another routes file, or a deploy that moves the route), they start again
 * from zero rather than show one broker's totals under another's URL.
 */
export class RouteCountersStore {
  readonly #storage: RouteStorage;
  readonly #counters: RouteCounters;
  #lastError: LastError | null;
  #url: string | undefined;
  #lastUrl: string | undefined;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(storage: RouteStorage) {
    this.#storage = storage;
    this.#counters = { ...ZERO_COUNTERS, ...storage.kv.get<RouteCounters>(STORAGE_KEY) };
    this.#lastError = storage.kv.get<LastError>(LAST_ERROR_KEY) ?? null;
    this.#url = storage.kv.get<string>(URL_KEY);
  }

  /** The counts are for `url` (stored redacted): a different URL than theirs starts them again from zero. */
  countFor(url: string): void {
    // Called on every request: the same URL as last time is the whole check (no parse, no redaction).
    if (url === this.#lastUrl) return;
    this.#lastUrl = url;
    const key = redactUrl(url);
    if (this.#url === key) return;
    if (this.#url !== undefined) {
      Object.assign(this.#counters, ZERO_COUNTERS);
      this.#lastError = null;
      this.#storage.kv.delete(LAST_ERROR_KEY);
    }
    this.#url = key;
    this.#storage.kv.put(URL_KEY, key);
    this.#scheduleFlush();
  }

  /** Adds one to each named counter. */
  increment(...names: Array<keyof RouteCounters>): void {
    for (const name of names) this.#counters[name] += 1;
    this.#scheduleFlush();
  }

  /** Adds `amount` to one counter. */
  add(name: keyof RouteCounters, amount: number): void {
    this.#counters[name] += amount;
    this.#scheduleFlush();
  }

  /** Counts a failed request and remembers why. */
  recordError(message: string): void {
    this.#lastError = { message, at: new Date().toISOString() };
    this.increment("total_errors");
  }

  snapshot(): RouteCounters & { last_error: LastError | null } {
    return { ...this.#counters, last_error: this.#lastError };
  }

  /** Writes the counters now (also what the timer does). */
  flush(): void {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    try {
      this.#storage.kv.put(STORAGE_KEY, this.#counters);
      if (this.#lastError) this.#storage.kv.put(LAST_ERROR_KEY, this.#lastError);
    } catch (error) {
      // Figures for /amqp, not any message's fate: kept in memory, written at the next change.
      // (A self-hosted server's SQLite file may be locked or its disk full for a while.)
      console.error("route counters: could not be stored", error instanceof Error ? error.message : String(error));
    }
  }

  #scheduleFlush(): void {
    this.#flushTimer ??= setTimeout(() => this.flush(), FLUSH_DELAY_MS);
  }
}
