/**
 * What the tests of callers beside each other share: unique bodies, and a hostile caller that runs
 * in a loop for as long as the honest callers do.
 */

/** `count` bodies no other test sends. */
export const uniqueBodies = (count: number, prefix = "m") =>
  Array.from({ length: count }, (_, index) => `${prefix}${index}:${crypto.randomUUID()}`);

/** Runs `hostile` in a loop until `honest` is done, and returns what honest returned and how often hostile ran. */
export const beside = async <T>(honest: () => Promise<T>, hostile: () => Promise<void>): Promise<{ result: T; hostileRuns: number }> => {
  let done = false;
  let hostileRuns = 0;
  const flood = (async () => {
    while (!done) {
      await hostile();
      hostileRuns++;
    }
  })();
  try {
    return { result: await honest(), hostileRuns };
  } finally {
    done = true;
    await flood;
  }
};
