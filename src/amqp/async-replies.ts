import type { ConsumedMessage } from "./route-messages";

/** What `GET <path>/replies/<id>` finds. */
export type ReplyState = { status: "pending" } | { status: "arrived"; message: ConsumedMessage } | { status: "unknown" };

interface Entry {
  expiresAt: number;
  message?: ConsumedMessage;
}

/** Most requests answered `202 respond-async` whose replies one route object keeps at a time. */
export const MAX_ASYNC_REPLIES = 10_000;
/** Most bytes of unread reply bodies one route object keeps (an isolate has 128 MB in all). */
export const MAX_ASYNC_REPLY_BYTES = 32 * 1024 * 1024;

/**
 * Replies to requests made with `Prefer: respond-async`, kept in the route object's memory for
 * the client to fetch: a request waits for its reply for `keepMs`; a reply, once arrived, is kept
 * `keepMs` more. After that, or after the object restarts, the id is unknown (404).
 */
export class AsyncReplies {
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;
  #sweptAt = 0;

  /** Whether another request may be taken on (else 503 before anything is published). */
  get full(): boolean {
    this.#sweep(Date.now());
    return this.#entries.size >= MAX_ASYNC_REPLIES || this.#bytes >= MAX_ASYNC_REPLY_BYTES;
  }

  track(id: string, arrival: Promise<ConsumedMessage>, keepMs: number): void {
    const entry: Entry = { expiresAt: Date.now() + keepMs };
    this.#entries.set(id, entry);
    arrival.then(
      (message) => {
        if (this.#entries.get(id) !== entry) return;
        entry.message = message;
        entry.expiresAt = Date.now() + keepMs;
        this.#bytes += message.body.byteLength;
      },
      () => undefined, // no reply in time: pending until it expires, then unknown
    );
  }

  get(id: string): ReplyState {
    const now = Date.now();
    this.#sweep(now);
    const entry = this.#entries.get(id);
    if (!entry || entry.expiresAt <= now) return { status: "unknown" };
    return entry.message ? { status: "arrived", message: entry.message } : { status: "pending" };
  }

  /** Forgets expired entries, at most once a second. */
  #sweep(now: number): void {
    if (now - this.#sweptAt < 1000) return;
    this.#sweptAt = now;
    for (const [id, entry] of this.#entries) {
      if (entry.expiresAt > now) continue;
      this.#entries.delete(id);
      this.#bytes -= entry.message?.body.byteLength ?? 0;
    }
  }
}
