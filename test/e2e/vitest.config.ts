import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "e2e",
    include: ["test/e2e/**/*.test.ts"],
    root: new URL("../..", import.meta.url).pathname,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
