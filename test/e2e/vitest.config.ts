import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "e2e",
    include: ["test/e2e/**/*.test.ts"],
    root: new URL("../..", import.meta.url).pathname,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Last, alone: each file starts gateways and disposable RabbitMQ nodes, which on a 2-core
    // machine would make every other project's timeouts tighter.
    sequence: { groupOrder: 2 },
  },
});
