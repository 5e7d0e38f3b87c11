/**
 * The Node and Deno servers' route storage (src/server/sqlite-storage.ts) answers as a Durable
 * Object's does where the route uses it (kv get/put/delete, SQL exec with toArray and one), keeps
 * what was written across a reopen, and a state directory is one live process's
 * (src/server/state-dir-lock.ts).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { sqliteStorage } from "../../src/server/sqlite-storage";
import { lockStateDir } from "../../src/server/state-dir-lock";

const LOCK_MODULE = new URL("../../src/server/state-dir-lock.ts", import.meta.url).href;
const freshDir = () => mkdtempSync(join(tmpdir(), "gw-sqlite-"));

describe("a shard's SQLite storage", () => {
  it("keeps key-values and rows across a reopen, as a Durable Object's storage does", () => {
    const path = join(freshDir(), "route.sqlite");
    const first = sqliteStorage(path);
    expect(first.kv.get("counters")).toBeUndefined();
    first.kv.put("counters", { published: 3, last: "x" });
    first.kv.put("lives", ["a", "b"]);
    expect(first.kv.delete("lives")).toBe(true);
    expect(first.kv.delete("lives")).toBe(false);
    first.sql.exec("CREATE TABLE IF NOT EXISTS t (key TEXT PRIMARY KEY, n INTEGER NOT NULL)");
    first.sql.exec("INSERT INTO t (key, n) VALUES (?, ?)", "k", 7);
    first.close();

    const again = sqliteStorage(path);
    expect(again.kv.get("counters")).toEqual({ published: 3, last: "x" });
    expect(again.kv.get("lives")).toBeUndefined();
    expect(again.sql.exec<{ key: string; n: number }>("SELECT key, n FROM t").toArray()).toEqual([{ key: "k", n: 7 }]);
    expect(again.sql.exec<{ n: number }>("SELECT count(*) AS n FROM t").one()).toEqual({ n: 1 });
    expect(() => again.sql.exec("SELECT key FROM t WHERE n = ?", 0).one()).toThrow(/one row/);
    again.close();
  });
});

describe("a state directory", () => {
  it("is refused to a second holder while its first lives, and free once it has let go", () => {
    const dir = freshDir();
    const release = lockStateDir(dir);
    // Another live process holds it (this one, as seen from a child that checks it).
    const child = spawnSync(
      process.execPath,
      ["--import", "tsx", "-e", `import(${JSON.stringify(LOCK_MODULE)}).then((m) => m.lockStateDir(${JSON.stringify(dir)}))`],
      { encoding: "utf8" },
    );
    expect(child.status).not.toBe(0);
    expect(child.stderr).toMatch(new RegExp(`another gateway \\(process ${process.pid}\\) uses this state directory`));
    release();
    const again = lockStateDir(dir);
    again();
  });

  it("is taken over from a process that is gone", () => {
    const dir = freshDir();
    // A pid that no process has: the lock of a gateway that died without letting go.
    writeFileSync(join(dir, ".lock"), "2147483646");
    const release = lockStateDir(dir);
    release();
  });
});
