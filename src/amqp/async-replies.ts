import { RouteFailureError, type RouteFailure } from "../contract/failures";
import { MAX_ANSWER_BYTES, type ConsumedMessage } from "../contract/messages";
import type { ReplyState } from "../contract/route-calls";

interface Entry {
  expiresAt: number;
  message?: ConsumedMessage;
  failure?: RouteFailure;
}

/** Most requests answered `202 respond-async` whose replies one route object keeps at a time. */
export const MAX_ASYNC_REPLIES = 10_000;
/** Largest reply one answer carries. */
export const MAX_REPLY_BYTES = MAX_ANSWER_BYTES;
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

  /**
   * Whether any request still waits for its reply, or any reply is kept for its client: both live
   * in the object's memory only, so the object must not let go of its connection (and be evicted)
   * before they expire.
   */
  get holding(): boolean {
    const now = Date.now();
    for (const entry of this.#entries.values()) if (entry.expiresAt > now) return true;
    return false;
  }

  track(id: string, arrival: Promise<ConsumedMessage>, keepMs: number): void {
    const entry: Entry = { expiresAt: Date.now() + keepMs };
    this.#entries.set(id, entry);
    arrival.then(
      (message) => {
        if (this.#entries.get(id) !== entry) return;
        entry.expiresAt = Date.now() + keepMs;
        // Counted as it arrives, so the budget holds whatever clients fetch or not; and no reply
        // larger than what may cross to the Worker in one answer.
        if (this.#bytes + message.body.byteLength > MAX_ASYNC_REPLY_BYTES || message.body.byteLength > MAX_REPLY_BYTES) {
          entry.failure = {
            ok: false,
            kind: "broker_error",
            message: `the reply (${message.body.byteLength} bytes) was dropped: the route holds ${MAX_ASYNC_REPLY_BYTES} bytes of unread replies at most`,
          };
          return;
        }
        entry.message = message;
        this.#bytes += message.body.byteLength;
      },
      (error: unknown) => {
        // No reply in time, or its channel lost: kept, so that the client learns why.
        entry.failure =
          error instanceof RouteFailureError
            ? error.toFailure()
            : { ok: false, kind: "no_answer", message: "no reply arrived; the request was published" };
      },
    );
  }

  get(id: string): ReplyState {
    const now = Date.now();
    this.#sweep(now);
    const entry = this.#entries.get(id);
    if (!entry || entry.expiresAt <= now) return { status: "unknown" };
    if (entry.message) return { status: "arrived", message: entry.message };
    return entry.failure ? { status: "failed", failure: entry.failure } : { status: "pending" };
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
