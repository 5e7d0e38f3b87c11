/**
 * What a route keeps across restarts (its `/amqp` counters, its lease lives, its `Idempotency-Key`
 * window): a small key-value store and SQLite. A Durable Object's storage is one as it is; the
 * Node and Deno servers give each route a SQLite file of its own (`sqlite-storage.ts`).
 *
 * Writes are synchronous, as in a Durable Object: an answer given after a write is given after
 * the write is stored.
 */
export type SqlValue = string | number | null | ArrayBuffer;

export interface SqlRows<T> {
  /** Every row. */
  toArray(): T[];
  /** The one row; throws when there is none (or more than one). */
  one(): T;
}

export interface RouteSql {
  exec<T extends Record<string, SqlValue>>(query: string, ...bindings: SqlValue[]): SqlRows<T>;
}

export interface RouteKeyValues {
  get<T>(key: string): T | undefined;
  put<T>(key: string, value: T): void;
  delete(key: string): boolean;
}

export interface RouteStorage {
  readonly kv: RouteKeyValues;
  readonly sql: RouteSql;
}
