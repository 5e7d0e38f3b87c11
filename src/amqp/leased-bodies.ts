import type { RouteSql, SqlValue } from "./route-storage";

/**
 * Bytes of leased bodies kept in memory per route object, and per caller where the route tells
 * callers apart; the rest go to the object's storage (SQLite), so that every lease keeps its body.
 */
export const MEMORY_BYTES = 8 * 1024 * 1024;
const MEMORY_PER_CALLER_BYTES = MEMORY_BYTES / 4;
/** Most bytes of leased bodies in storage: past it a lease keeps no body (see `MessageRetries`). */
export const STORED_BYTES = 1024 * 1024 * 1024;
/** A stored body is split in rows of this size (a Durable Object's SQLite takes rows of up to 2 MB). */
const PART_BYTES = 1024 * 1024;

/** Where a lease's body is, and how large it is (a put-back may detach an in-memory body: its size is kept here). */
interface Kept {
  bytes: number;
  caller: string | undefined;
  body?: ArrayBuffer;
}

/**
 * The bodies of leased messages, kept until their leases end so that a message put back (nacked,
 * expired, delayed) can be published again with its count. In memory first, up to
 * {@link MEMORY_BYTES} (a caller's share of it where the route tells callers apart), then in the
 * route object's storage: what one caller holds never leaves another caller's lease without its
 * body. Stored bodies belong to this life of the object only (its leases end with it): a new
 * life clears them.
 */
export class LeasedBodies {
  readonly #sql: RouteSql;
  readonly #kept = new Map<string, Kept>();
  readonly #byCaller = new Map<string, number>();
  #memoryBytes = 0;
  #storedBytes = 0;

  constructor(sql: RouteSql) {
    this.#sql = sql;
    sql.exec(
      "CREATE TABLE IF NOT EXISTS leased_bodies (lease TEXT NOT NULL, part INTEGER NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (lease, part))",
    );
    sql.exec("DELETE FROM leased_bodies");
  }

  /** Keeps a copy of `body` for lease `id` of `caller`: in memory while there is room, else stored; neither past {@link STORED_BYTES}. */
  keep(id: string, body: ArrayBuffer, caller: string | undefined): void {
    const bytes = body.byteLength;
    const callers = caller === undefined ? 0 : (this.#byCaller.get(caller) ?? 0);
    const inMemory = this.#memoryBytes + bytes <= MEMORY_BYTES && (caller === undefined || callers + bytes <= MEMORY_PER_CALLER_BYTES);
    if (inMemory) {
      this.#memoryBytes += bytes;
      if (caller !== undefined) this.#byCaller.set(caller, callers + bytes);
      this.#kept.set(id, { bytes, caller, body: body.slice(0) });
      return;
    }
    if (this.#storedBytes + bytes > STORED_BYTES) return;
    try {
      for (let offset = 0, part = 0; offset < bytes || part === 0; offset += PART_BYTES, part++) {
        this.#sql.exec(
          "INSERT INTO leased_bodies (lease, part, bytes) VALUES (?, ?, ?)",
          id,
          part,
          body.slice(offset, offset + PART_BYTES),
        );
      }
    } catch {
      // Storage full or failing: the lease keeps no body.
      this.#sql.exec("DELETE FROM leased_bodies WHERE lease = ?", id);
      return;
    }
    this.#storedBytes += bytes;
    this.#kept.set(id, { bytes, caller: undefined });
  }

  /** Lease `id`'s body, or undefined when none was kept. It stays kept until {@link drop}. */
  read(id: string): ArrayBuffer | undefined {
    const kept = this.#kept.get(id);
    if (!kept) return undefined;
    if (kept.body) return kept.body;
    const rows = this.#sql.exec<{ bytes: SqlValue }>("SELECT bytes FROM leased_bodies WHERE lease = ? ORDER BY part", id).toArray();
    const body = new Uint8Array(kept.bytes);
    let offset = 0;
    for (const { bytes } of rows) {
      const part = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : (bytes as unknown as Uint8Array);
      body.set(part, offset);
      offset += part.byteLength;
    }
    return offset === kept.bytes ? body.buffer : undefined;
  }

  /** Lease `id` has ended: its body goes. */
  drop(id: string): void {
    const kept = this.#kept.get(id);
    if (!kept) return;
    this.#kept.delete(id);
    if (!kept.body) {
      this.#storedBytes -= kept.bytes;
      this.#sql.exec("DELETE FROM leased_bodies WHERE lease = ?", id);
      return;
    }
    this.#memoryBytes -= kept.bytes;
    const { caller } = kept;
    if (caller === undefined) return;
    const left = (this.#byCaller.get(caller) ?? 0) - kept.bytes;
    if (left > 0) this.#byCaller.set(caller, left);
    else this.#byCaller.delete(caller);
  }
}
