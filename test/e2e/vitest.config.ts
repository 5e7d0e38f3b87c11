import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "e2e",
    include: ["test/e2e/**/*.test.ts"],
    root: new URL("../..", import.meta.url).pathname,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Each file starts its own gateway on its own port; one file at a time keeps the machine quiet.
    fileParallelism: false,
  },
});
