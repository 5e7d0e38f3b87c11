/**
 * The timers of one route object that callers make: one per lease, per long-poll, per answer held
 * until written. workerd lets an object have 10,000 active timers ("QuotaExceededError: You have
 * exceeded the number of active timeouts"); past them every `setTimeout` of the object throws,
 * amqp-client's heartbeats included, and the broker closes the connection of every caller of the
 * route. With a timer each, one caller holding 10,000 leases did that. Here they are entries of a
 * heap ordered by due time, and one runtime timer is armed, for the earliest.
 *
 * One instance per object, never shared: a timer must only run code of the object whose I/O
 * context created it.
 */

interface Entry {
  at: number;
  fire: () => void;
  /** Its place in the heap; -1 once it fired or was cancelled. */
  index: number;
}

/** Cancels a timer; nothing if it already fired or was cancelled. */
export type CancelTimer = () => void;

export class ObjectTimers {
  readonly #heap: Entry[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the armed runtime timer fires (Infinity when none is armed). */
  #armedAt = Number.POSITIVE_INFINITY;

  /** Runs `fire` after `ms` (as `setTimeout` does, never before); returns what cancels it. */
  after(ms: number, fire: () => void): CancelTimer {
    const entry: Entry = { at: Date.now() + Math.max(0, ms), fire, index: -1 };
    this.#insert(entry);
    this.#arm();
    return () => {
      if (entry.index < 0) return;
      this.#remove(entry);
      if (this.#heap.length === 0) this.#disarm();
    };
  }

  /** Timers waiting now. */
  get size(): number {
    return this.#heap.length;
  }

  /** Arms the runtime timer for the earliest entry, unless one is armed for that time or before. */
  #arm(): void {
    const first = this.#heap[0];
    if (!first || this.#armedAt <= first.at) return;
    clearTimeout(this.#timer);
    this.#armedAt = first.at;
    this.#timer = setTimeout(() => this.#fireDue(), Math.max(0, first.at - Date.now()));
  }

  #disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
  }

  #fireDue(): void {
    this.#timer = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
    const now = Date.now();
    const due: Entry[] = [];
    for (let first = this.#heap[0]; first && first.at <= now; first = this.#heap[0]) {
      this.#remove(first);
      due.push(first);
    }
    this.#arm();
    // After the heap is settled: a callback may set or cancel timers.
    for (const entry of due) entry.fire();
  }

  #insert(entry: Entry): void {
    entry.index = this.#heap.length;
    this.#heap.push(entry);
    this.#up(entry.index);
  }

  #remove(entry: Entry): void {
    const index = entry.index;
    const last = this.#heap.pop();
    entry.index = -1;
    if (!last || last === entry) return;
    this.#heap[index] = last;
    last.index = index;
    this.#up(index);
    this.#down(last.index);
  }

  #up(index: number): void {
    const heap = this.#heap;
    for (let at = index; at > 0;) {
      const parent = (at - 1) >> 1;
      if (heap[parent]!.at <= heap[at]!.at) return;
      this.#swap(at, parent);
      at = parent;
    }
  }

  #down(index: number): void {
    const heap = this.#heap;
    for (let at = index; ;) {
      const left = 2 * at + 1;
      const right = left + 1;
      let least = at;
      if (left < heap.length && heap[left]!.at < heap[least]!.at) least = left;
      if (right < heap.length && heap[right]!.at < heap[least]!.at) least = right;
      if (least === at) return;
      this.#swap(at, least);
      at = least;
    }
  }

  #swap(a: number, b: number): void {
    const heap = this.#heap;
    const first = heap[a]!;
    const second = heap[b]!;
    heap[a] = second;
    heap[b] = first;
    first.index = b;
    second.index = a;
  }
}
