import { defineProject } from "vitest/config";

/**
 * The black-box tests of `npm start` (workerd); with `runtime`, the files of them that say
 * something about a runtime, run against `npm run start:node` or `start:deno` (GATEWAY_RUNTIME).
 */
export const e2eProject = (runtime?: { name: "node" | "deno"; include: string[] }) =>
  defineProject({
    test: {
      name: runtime ? `e2e-${runtime.name}` : "e2e",
      include: runtime?.include ?? ["test/e2e/**/*.test.ts"],
      root: new URL("../..", import.meta.url).pathname,
      testTimeout: 60_000,
      hookTimeout: 120_000,
      ...(runtime ? { env: { GATEWAY_RUNTIME: runtime.name } } : {}),
      // Last, alone: each file starts gateways and disposable RabbitMQ nodes, which on a 2-core
      // machine would make every other project's timeouts tighter.
      sequence: { groupOrder: 2 },
    },
  });

export default e2eProject();
