/**
 * What a route object has learned about broker names (a queue exists, an exchange took a publish,
 * an exchange was refused), kept in bounded memory: names may come from requests (`inbox.{user}`),
 * so the set of them is the callers' to grow. Past `maxEntries` the least recently used go first,
 * and an entry older than `ttlMs` is as good as absent.
 */
export class NameCache<V> {
  readonly #entries = new Map<string, { value: V; at: number }>();
  /** The most recently used name: the last in #entries, so a get of it need not move it. */
  #newest: string | undefined;

  constructor(
    readonly maxEntries: number,
    readonly ttlMs = Number.POSITIVE_INFINITY,
  ) {}

  get(name: string, now = Date.now()): V | undefined {
    const entry = this.#entries.get(name);
    if (!entry) return undefined;
    if (now - entry.at >= this.ttlMs) {
      this.delete(name);
      return undefined;
    }
    // Most recently used last, so that the oldest are dropped first. A route mostly names the
    // same queue or exchange again: moving it would be a delete and an insert on every request.
    if (name !== this.#newest) {
      this.#entries.delete(name);
      this.#entries.set(name, entry);
      this.#newest = name;
    }
    return entry.value;
  }

  set(name: string, value: V, now = Date.now()): void {
    this.#entries.delete(name);
    this.#entries.set(name, { value, at: now });
    this.#newest = name;
    for (const key of this.#entries.keys()) {
      if (this.#entries.size <= this.maxEntries) break;
      this.#entries.delete(key);
    }
  }

  delete(name: string): void {
    this.#entries.delete(name);
    if (name === this.#newest) this.#newest = undefined;
  }

  get size(): number {
    return this.#entries.size;
  }
}
