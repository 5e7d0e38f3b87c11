import { defineConfig } from "vitest/config";
import { e2eProject } from "./test/e2e/vitest.config";

/**
 * The black-box files run on every runtime: the documentation's examples, truth under load and
 * broker faults, clients that go away, browsers, and the servers' own lifecycle.
 */
const SELF_HOSTED_SUITE = [
  "documentation-examples",
  "truth-under-load",
  "broker-faults",
  "long-poll-disconnect",
  "event-stream-disconnect",
  "browser-cors",
  "browser-event-stream",
  "browser-same-origin",
  "browser-stored-xss",
  "refusals",
  "request-bodies",
  "self-hosted",
  "push-webhook",
  "message-life",
  "prometheus-metrics",
  "trace-context",
  "cloudevents",
  "openapi",
  "management-api",
].map((name) => `test/e2e/${name}.test.ts`);

/**
 * `npm test` runs five projects: pure unit tests, tests inside workerd, black-box tests of
 * `npm start`, and those of them that say something about a runtime on Node and on Deno.
 */
export default defineConfig({
  test: {
    // One test file at a time: the black-box files each start a gateway (wrangler bundle, workerd),
    // and on a 2-core machine running them side by side only makes every timeout tighter.
    fileParallelism: false,
    projects: [
      "test/unit/vitest.config.ts",
      "test/workers/vitest.config.ts",
      "test/e2e/vitest.config.ts",
      // The black-box tests that say something about a runtime, again on Node and on Deno.
      e2eProject({ name: "node", include: SELF_HOSTED_SUITE }),
      e2eProject({ name: "deno", include: SELF_HOSTED_SUITE }),
    ],
  },
});
