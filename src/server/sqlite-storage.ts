import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import type { RouteStorage, SqlRows, SqlValue } from "../amqp/route-storage";

/**
 * A route shard's storage on Node and Deno: a SQLite file of its own (`node:sqlite`, which Deno
 * has too), with the key-value part in a table beside the route's own. `path` ":memory:" keeps
 * nothing across restarts.
 */
export const sqliteStorage = (path: string): RouteStorage & { close(): void } => {
  const database = new DatabaseSync(path);
  if (path !== ":memory:") database.exec("PRAGMA journal_mode = WAL");
  // Another program holding the file (a backup, a sqlite3 shell) is waited for briefly, not at
  // once an error; briefly, since the wait blocks the whole process.
  database.exec("PRAGMA busy_timeout = 100");
  database.exec("CREATE TABLE IF NOT EXISTS gateway_kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  const statements = new Map<string, StatementSync>();
  const statement = (query: string): StatementSync => {
    let prepared = statements.get(query);
    if (!prepared) statements.set(query, (prepared = database.prepare(query)));
    return prepared;
  };
  const input = (value: SqlValue): SQLInputValue => (value instanceof ArrayBuffer ? new Uint8Array(value) : value);
  return {
    kv: {
      get<T>(key: string): T | undefined {
        const row = statement("SELECT value FROM gateway_kv WHERE key = ?").get(key) as { value: string } | undefined;
        return row === undefined ? undefined : (JSON.parse(row.value) as T);
      },
      put<T>(key: string, value: T): void {
        statement("INSERT INTO gateway_kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(
          key,
          JSON.stringify(value),
        );
      },
      delete: (key: string): boolean => Number(statement("DELETE FROM gateway_kv WHERE key = ?").run(key).changes) > 0,
    },
    sql: {
      exec<T extends Record<string, SqlValue>>(query: string, ...bindings: SqlValue[]): SqlRows<T> {
        const rows = statement(query).all(...bindings.map(input)) as T[];
        return {
          toArray: () => rows,
          one: () => {
            if (rows.length !== 1) throw new Error(`expected one row, the query gave ${rows.length}`);
            return rows[0] as T;
          },
        };
      },
    },
    close: () => database.close(),
  };
};
