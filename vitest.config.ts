import { defineConfig } from "vitest/config";

/** `npm test` runs three projects: pure unit tests, tests inside workerd, and black-box tests of `npm start`. */
export default defineConfig({
  test: {
    // One test file at a time: the black-box files each start a gateway (wrangler bundle, workerd),
    // and on a 2-core machine running them side by side only makes every timeout tighter.
    fileParallelism: false,
    projects: ["test/unit/vitest.config.ts", "test/workers/vitest.config.ts", "test/e2e/vitest.config.ts"],
  },
});
