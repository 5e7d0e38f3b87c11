import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "e2e",
    include: ["test/e2e/**/*.test.ts"],
    root: new URL("../..", import.meta.url).pathname,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Last, alone: its fault tests stop the broker and close connections, which would break any
    // other project's tests running at the same time.
    sequence: { groupOrder: 2 },
  },
});
