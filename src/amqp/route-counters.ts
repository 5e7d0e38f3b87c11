import type { LastError, RouteCounters } from "./route-messages";

const STORAGE_KEY = "counters";
const LAST_ERROR_KEY = "last_error";

/**
 * The route's counters, kept in the Durable Object's SQLite storage so they survive eviction
 * and restarts. Writes use the synchronous KV API: no await on the request path, and the
 * runtime's output gate still holds the response until the write is durable.
 */
export class RouteCountersStore {
  readonly #storage: DurableObjectStorage;
  readonly #counters: RouteCounters;
  #lastError: LastError | null;

  constructor(storage: DurableObjectStorage) {
    this.#storage = storage;
    this.#counters = { total_requests: 0, total_errors: 0, published: 0, consumed: 0, ...storage.kv.get<RouteCounters>(STORAGE_KEY) };
    this.#lastError = storage.kv.get<LastError>(LAST_ERROR_KEY) ?? null;
  }

  /** Adds one to each named counter and persists them. */
  increment(...names: Array<keyof RouteCounters>): void {
    for (const name of names) this.#counters[name] += 1;
    this.#storage.kv.put(STORAGE_KEY, this.#counters);
  }

  /** Adds `amount` to one counter and persists them. */
  add(name: keyof RouteCounters, amount: number): void {
    this.#counters[name] += amount;
    this.#storage.kv.put(STORAGE_KEY, this.#counters);
  }

  /** Counts a failed request and remembers why. */
  recordError(message: string): void {
    this.#lastError = { message, at: new Date().toISOString() };
    this.#storage.kv.put(LAST_ERROR_KEY, this.#lastError);
    this.increment("total_errors");
  }

  snapshot(): RouteCounters & { last_error: LastError | null } {
    return { ...this.#counters, last_error: this.#lastError };
  }
}
