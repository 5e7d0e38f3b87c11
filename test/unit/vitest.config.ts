import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "unit",
    include: ["test/unit/**/*.test.ts"],
    root: new URL("../..", import.meta.url).pathname,
    sequence: { groupOrder: 0 },
  },
});
