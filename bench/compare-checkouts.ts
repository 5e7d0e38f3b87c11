/**
 * `npm run compare-checkouts -- OLD NEW`: the same profile variants (`npm run profile`) in two
 * checkouts of the project, each with its own node_modules (a toolchain before and after), in
 * alternating rounds (OLD NEW, then NEW OLD, ...) so that the drift of a shared, noisy machine
 * lands on both alike. Prints, per variant, each checkout's median throughput and workerd's CPU
 * per request (its CPU time over the run divided by the requests answered), and their ratios.
 *
 * Knobs: COMPARE_VARIANTS (default "get-alone,get-object-call,ceiling,publish,consume"),
 * COMPARE_ROUNDS (default 3), PROFILE_SECONDS (passed on, default 8).
 */
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";

const [oldDir, newDir] = process.argv.slice(2).map((dir) => resolve(dir));
if (!oldDir || !newDir) {
  process.stderr.write("npm run compare-checkouts -- OLD_CHECKOUT NEW_CHECKOUT\n");
  process.exit(2);
}
const VARIANTS = (process.env.COMPARE_VARIANTS ?? "get-alone,get-object-call,ceiling,publish,consume").split(",");
const ROUNDS = Number(process.env.COMPARE_ROUNDS ?? 3);
const SECONDS = process.env.PROFILE_SECONDS ?? "8";

interface Run {
  rps: number;
  /** workerd's CPU per answered request, in microseconds. */
  cpuUs: number;
}

/** One profile run of `variant` in `dir`, on the Node and tools of that checkout (its npm scripts). */
const profile = (dir: string, variant: string): Run => {
  // The checkout's own node_modules/.bin first, as `npm run` does: each runs its own Node.
  const result = spawnSync("npm", ["run", "-s", "profile", "--", variant], {
    cwd: dir,
    env: { ...process.env, PROFILE_SECONDS: SECONDS, PATH: `${dir}/node_modules/.bin:${process.env.PATH ?? ""}` },
    encoding: "utf8",
  });
  const rps = /: (\d+) req\/s/.exec(result.stdout)?.[1];
  const cpu = /CPU: workerd (\d+)% of a core/.exec(result.stdout)?.[1];
  if (rps === undefined || cpu === undefined) throw new Error(`profile ${variant} in ${dir} failed:\n${result.stdout}\n${result.stderr}`);
  return { rps: Number(rps), cpuUs: (Number(cpu) / 100 / Number(rps)) * 1e6 };
};

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? Number.NaN) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
};

const runs = new Map<string, Run[]>();
for (let round = 0; round < ROUNDS; round++) {
  for (const variant of VARIANTS) {
    const order = round % 2 === 0 ? [oldDir, newDir] : [newDir, oldDir];
    for (const dir of order) {
      const run = profile(dir, variant);
      const key = `${variant}\n${dir}`;
      runs.set(key, [...(runs.get(key) ?? []), run]);
      process.stdout.write(`round ${round + 1} | ${variant} | ${dir} | ${run.rps} req/s | ${run.cpuUs.toFixed(0)} µs CPU/request\n`);
    }
  }
}

process.stdout.write(
  `\n| variant | old req/s | new req/s | new/old | old µs CPU/req | new µs CPU/req | new/old |\n| --- | --- | --- | --- | --- | --- | --- |\n`,
);
for (const variant of VARIANTS) {
  const before = runs.get(`${variant}\n${oldDir}`) ?? [];
  const after = runs.get(`${variant}\n${newDir}`) ?? [];
  const [rpsOld, rpsNew] = [median(before.map((run) => run.rps)), median(after.map((run) => run.rps))];
  const [cpuOld, cpuNew] = [median(before.map((run) => run.cpuUs)), median(after.map((run) => run.cpuUs))];
  process.stdout.write(
    `| ${variant} | ${rpsOld.toFixed(0)} | ${rpsNew.toFixed(0)} | ${(rpsNew / rpsOld).toFixed(2)}× | ${cpuOld.toFixed(0)} | ${cpuNew.toFixed(0)} | ${(cpuNew / cpuOld).toFixed(2)}× |\n`,
  );
}
