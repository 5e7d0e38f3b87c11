/**
 * Works around a listener leak in workerd's `node:net` (seen in workerd 2026-03 and 2026-04).
 *
 * Its `Socket.prototype._unrefTimer`, which runs on every read and write to re-arm the idle
 * timer, calls `this.setTimeout(s.timeout, s._onTimeout.bind(s))`. Given a callback, `setTimeout`
 * also registers it with `once("timeout", …)`, so each I/O adds a listener that is only removed if
 * the socket ever times out. amqp-client arms that timer (for heartbeats), and every publish then
 * leaked about three listeners: hundreds of thousands over a long-lived connection.
 *
 * The replacement re-arms the timer the way Node's does, through `setTimeout(ms)` alone, which
 * clears the previous timer and schedules `_onTimeout` (which emits "timeout") without adding a
 * listener. It is the intended behaviour on any runtime, so it is installed unconditionally.
 * Tested by test/workers/socket-timer-fix.test.ts.
 */
import { Socket } from "node:net";

interface TimedSocket {
  timeout?: number;
  _parentWrap?: TimedSocket | null;
  setTimeout(ms: number): unknown;
}

const prototype = Socket.prototype as unknown as { _unrefTimer?: (this: TimedSocket) => void };

if (typeof prototype._unrefTimer === "function") {
  prototype._unrefTimer = function unrefTimer(this: TimedSocket): void {
    for (let socket: TimedSocket | null | undefined = this; socket; socket = socket._parentWrap) {
      if (socket.timeout) socket.setTimeout(socket.timeout);
    }
  };
}
