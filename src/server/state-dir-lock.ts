import { closeSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Takes `<dir>/.lock` for this process: two servers on one state directory would share lease
 * lives and Idempotency-Key windows, and lock each other's SQLite files. Throws when a live
 * process holds it; takes over one left by a process that is gone. Returns the release.
 */
export const lockStateDir = (dir: string): (() => void) => {
  const path = join(dir, ".lock");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx");
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      const release = () => rmSync(path, { force: true });
      process.once("exit", release);
      return () => {
        process.off("exit", release);
        release();
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const holder = Number(readFileSync(path, "utf8").trim());
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
        throw new Error(`another gateway (process ${holder}) uses this state directory; give each process its own STATE_DIR`, {
          cause: error,
        });
      }
      rmSync(path, { force: true });
    }
  }
  throw new Error(`could not take ${path}`);
};

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
};
