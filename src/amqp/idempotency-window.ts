import type { RouteSql, RouteStorage, SqlValue } from "./route-storage";
import { RouteFailureError } from "../contract/failures";
import type { IdempotentRequest } from "../contract/route-calls";

/** The messages a request still has to publish, and how to record each one the broker confirms. */
export interface IdempotentPlan {
  /** Indices of the request's messages not confirmed by an earlier request with the key. */
  missing: number[];
  /** Indices confirmed earlier: answered as published without publishing again. */
  confirmed: Set<number>;
  /** Call once per published message, with whether the broker in the end enqueued it. */
  settled: (index: number, enqueued: boolean) => void;
  /**
   * Call just before the request is answered: what was confirmed by then is written once (not
   * once per confirm: a batch of 10,000 would rewrite its row 10,000 times), before the answer.
   */
  answering: () => void;
}

/** `confirmed` when every message of the request was: a batch's row stays small. */
const ALL_CONFIRMED = "*";

const confirmedIndexes = (stored: string, count: number): number[] =>
  stored === ALL_CONFIRMED ? Array.from({ length: count }, (_, index) => index) : (JSON.parse(stored) as number[]);

interface Row {
  at: number;
  fingerprint: string;
  confirmed: string;
  [column: string]: SqlValue;
}

/** The key as stored: the caller's own (see {@link IdempotentRequest.caller}); a header value holds no line break. */
const storedKey = (request: IdempotentRequest): string => (request.caller === "" ? request.key : `${request.caller}\n${request.key}`);

/** How often expired keys are swept out of storage. */
const SWEEP_EVERY_MS = 60_000;

/**
 * The route object's memory of `Idempotency-Key`s (`producer.dedupe_window_s`), in its SQLite
 * storage, so it outlives the object's eviction and restart. For each key: when it was first
 * used, a fingerprint of what it published, and which of its messages the broker confirmed. A
 * confirm that arrives after its request was answered 504 is recorded too, so the client's retry
 * finds it and publishes nothing again. The answer is sent only after the row is written
 * (Durable Object output gates).
 *
 * Only confirmed messages are remembered: a retry after a refusal or an unreachable broker
 * publishes what was not enqueued. The one case a retry can duplicate: the connection was lost
 * between a message's send and its confirm, when whether the broker kept it cannot be known.
 */
export class IdempotencyWindow {
  readonly #sql: RouteSql;
  /** Requests whose messages still await the broker, by key: a repeat waits for them. */
  readonly #inFlight = new Map<string, Promise<void>>();
  #count: number | undefined;
  #sweptAt = 0;

  constructor(storage: RouteStorage) {
    this.#sql = storage.sql;
    this.#sql.exec(
      "CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, at INTEGER NOT NULL, fingerprint TEXT NOT NULL, confirmed TEXT NOT NULL)",
    );
    // Added when keys became per caller; rows from before belong to no caller.
    const columns = this.#sql.exec<{ name: string }>("SELECT name FROM pragma_table_info('idempotency')").toArray();
    if (!columns.some((column) => column.name === "caller")) {
      this.#sql.exec("ALTER TABLE idempotency ADD COLUMN caller TEXT NOT NULL DEFAULT ''");
    }
    this.#sql.exec("CREATE INDEX IF NOT EXISTS idempotency_at ON idempotency (at)");
    this.#sql.exec("CREATE INDEX IF NOT EXISTS idempotency_caller_at ON idempotency (caller, at)");
  }

  /**
   * Waits for an earlier request with the same key that is still in flight, then plans this one.
   * Throws a {@link RouteFailureError}: "idempotency_conflict" when the key was used for other
   * content, "no_answer" when the earlier request is still unsettled after `waitMs`.
   */
  async plan(request: IdempotentRequest, count: number): Promise<IdempotentPlan> {
    const key = storedKey(request);
    for (let earlier = this.#inFlight.get(key); earlier; earlier = this.#inFlight.get(key)) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const settled = await Promise.race([
        earlier.then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), request.waitMs))),
      ]);
      clearTimeout(timer);
      if (!settled) {
        throw new RouteFailureError(
          "no_answer",
          `an earlier request with this Idempotency-Key is still awaiting the broker's confirm after ${request.waitMs} ms; nothing was published again, retry later`,
        );
      }
    }
    const now = Date.now();
    this.#sweep(now, request.windowMs);
    const row = this.#sql.exec<Row>("SELECT at, fingerprint, confirmed FROM idempotency WHERE key = ?", key).toArray()[0];
    const live = row && now - row.at < request.windowMs ? row : undefined;
    if (live && live.fingerprint !== request.fingerprint) {
      throw new RouteFailureError(
        "idempotency_conflict",
        "this Idempotency-Key was used for a different request (other body, exchange or routing key) within the window; nothing was published",
      );
    }
    const confirmed = new Set<number>(live ? confirmedIndexes(live.confirmed, count) : []);
    const missing = Array.from({ length: count }, (_, index) => index).filter((index) => !confirmed.has(index));
    const at = live?.at ?? now;
    if (!live) this.#remember(request, key, at, row !== undefined);
    if (missing.length === 0) return { missing, confirmed, settled: () => undefined, answering: () => undefined };

    let outstanding = missing.length;
    let done!: () => void;
    this.#inFlight.set(key, new Promise<void>((resolve) => (done = resolve)));
    const enqueued = new Set(confirmed);
    let answered = false;
    let unwritten = false;
    // An upsert: the row may have been dropped meanwhile (more than maxEntries new keys during one
    // confirm wait), and the repeats waiting for this key must still find it.
    // Runs from a confirm's callback, where a failure (a self-hosted server's SQLite file locked
    // or its disk full) would escape every request: logged, and the key's retry may publish again.
    const write = () => {
      unwritten = false;
      try {
        this.#sql.exec(
          "INSERT INTO idempotency (key, at, fingerprint, confirmed, caller) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET confirmed = excluded.confirmed",
          key,
          at,
          request.fingerprint,
          enqueued.size === count ? ALL_CONFIRMED : JSON.stringify([...enqueued]),
          request.caller,
        );
      } catch (error) {
        console.error("idempotency window: a confirm could not be recorded", error instanceof Error ? error.message : String(error));
      }
    };
    return {
      missing,
      confirmed,
      settled: (index, ok) => {
        if (ok) {
          enqueued.add(index);
          unwritten = true;
          // A confirm after the answer (a 504's late confirm) is written as it comes.
          if (answered) write();
        }
        if (--outstanding > 0) return;
        // Written before the repeats waiting for this request read the row.
        if (unwritten) write();
        this.#inFlight.delete(key);
        // Nothing was ever enqueued under the key: it is free for any request again.
        try {
          if (enqueued.size === 0) this.#forget(key);
        } catch (error) {
          console.error("idempotency window: a key could not be forgotten", error instanceof Error ? error.message : String(error));
        }
        done();
      },
      answering: () => {
        answered = true;
        if (unwritten) write();
      },
    };
  }

  #forget(key: string): void {
    this.#sql.exec("DELETE FROM idempotency WHERE key = ?", key);
    this.#count = undefined;
  }

  /**
   * A row for a new key (replacing an expired one). Past `maxEntriesPerCaller` keys of its caller,
   * that caller's oldest are dropped; past `maxEntries` in all, the oldest of anyone's: one caller
   * sending new keys fast pushes out its own, not the keys other callers may still retry with.
   */
  #remember(request: IdempotentRequest, key: string, at: number, replacing: boolean): void {
    this.#sql.exec(
      "INSERT INTO idempotency (key, at, fingerprint, confirmed, caller) VALUES (?, ?, ?, '[]', ?) ON CONFLICT (key) DO UPDATE SET at = excluded.at, fingerprint = excluded.fingerprint, confirmed = '[]'",
      key,
      at,
      request.fingerprint,
      request.caller,
    );
    this.#count ??= this.#sql.exec<{ n: number }>("SELECT count(*) AS n FROM idempotency").one().n - (replacing ? 0 : 1);
    if (!replacing) this.#count++;
    if (request.maxEntriesPerCaller < request.maxEntries) {
      const mine = this.#sql.exec<{ n: number }>("SELECT count(*) AS n FROM idempotency WHERE caller = ?", request.caller).one().n;
      if (mine > request.maxEntriesPerCaller) {
        const excess = mine - request.maxEntriesPerCaller;
        this.#sql.exec(
          "DELETE FROM idempotency WHERE key IN (SELECT key FROM idempotency WHERE caller = ? ORDER BY at LIMIT ?)",
          request.caller,
          excess,
        );
        this.#count -= excess;
      }
    }
    if (this.#count <= request.maxEntries) return;
    const excess = this.#count - request.maxEntries;
    this.#sql.exec("DELETE FROM idempotency WHERE key IN (SELECT key FROM idempotency ORDER BY at LIMIT ?)", excess);
    this.#count -= excess;
  }

  /** Drops expired keys, at most once a minute. */
  #sweep(now: number, windowMs: number): void {
    if (now - this.#sweptAt < SWEEP_EVERY_MS) return;
    this.#sweptAt = now;
    this.#sql.exec("DELETE FROM idempotency WHERE at <= ?", now - windowMs);
    this.#count = undefined;
  }
}
