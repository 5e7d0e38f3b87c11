import { defineConfig } from "vitest/config";

/** `npm test` runs three projects: pure unit tests, tests inside workerd, and black-box tests of `npm start`. */
export default defineConfig({
  test: {
    projects: ["test/unit/vitest.config.ts", "test/workers/vitest.config.ts", "test/e2e/vitest.config.ts"],
  },
});
