import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineProject } from "vitest/config";

const root = new URL("../..", import.meta.url).pathname;

export default defineProject({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: `${root}/wrangler.toml` },
      // The tests' broker, when the user points them elsewhere (process.env inside workerd).
      // LOG_LEVEL none: the route objects' connection events stay out of the test output (the
      // tests that read log lines give the gateway its own level, see gateway.ts).
      miniflare: {
        bindings: { LOG_LEVEL: "none", ...(process.env.AMQP_TEST_URL ? { AMQP_TEST_URL: process.env.AMQP_TEST_URL } : {}) },
      },
    }),
  ],
  test: {
    name: "workers",
    root,
    include: ["test/workers/**/*.test.ts"],
    globalSetup: ["test/workers/web-amqp-relay.setup.ts"],
    setupFiles: ["test/workers/unhandled-socket-cancel.setup.ts"],
    testTimeout: 30_000,
    // Before the black-box project, whose fault tests stop and restart the broker.
    sequence: { groupOrder: 1 },
  },
});
