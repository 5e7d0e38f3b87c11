/**
 * workerd's `node:net` rejects a promise of its own ("Stream was cancelled.", from `startRead` in
 * `node-internal:internal_net`) when a socket is destroyed while a read is pending, as amqp-client
 * does when a connection closes. Nothing outside workerd can catch it (see
 * test/workers/socket-timer-fix.test.ts), and vitest would count it as a failure of whichever
 * test happens to be running. This setup puts a filter in front of vitest's own listener: exactly
 * that rejection is dropped; every other unhandled rejection goes on to vitest, reported as before.
 */
type Listener = (reason: unknown, promise: Promise<unknown>) => void;

const isSocketReadCancel = (reason: unknown): boolean =>
  reason instanceof Error && reason.message === "Stream was cancelled." && (reason.stack ?? "").includes("internal_net");

// Kept on globalThis: this file runs again for each test file, and vitest installs a fresh
// listener of its own each time (it treats any second listener as the user's, and stays silent).
const filter = ((globalThis as { __socketCancelFilter?: { handler: Listener; vitest: Listener[] } }).__socketCancelFilter ??= {
  vitest: [],
  handler: (reason, promise) => {
    if (isSocketReadCancel(reason)) return;
    for (const listener of filter.vitest) listener(reason, promise);
  },
});
const fresh = (process.listeners("unhandledRejection") as Listener[]).filter((listener) => listener !== filter.handler);
if (fresh.length > 0) filter.vitest = fresh;
process.removeAllListeners("unhandledRejection");
process.on("unhandledRejection", filter.handler);
