/**
 * Replaces how workerd's `node:net` keeps a socket's idle timer (seen in workerd 2026-03 and
 * 2026-04), which amqp-client arms with the heartbeat interval to notice a dead peer.
 *
 * workerd's `Socket.prototype._unrefTimer` runs on every read and write and re-arms the timer
 * with `this.setTimeout(s.timeout, s._onTimeout.bind(s))`. Given a callback, `setTimeout` also
 * registers it with `once("timeout", …)`, so each I/O added a listener that stayed until the socket
 * timed out: about three per publish, hundreds of thousands over a long-lived connection. And even
 * without the listener, a new timer per I/O left memory behind at thousands of publishes a second.
 *
 * Here the timer is lazy, as in Node's own sockets: I/O only records when it happened; the one
 * timer armed by `setTimeout(ms)` fires as scheduled, and `_onTimeout` then re-arms it for the
 * time remaining if there was I/O meanwhile, or emits "timeout" if the socket really was idle
 * that long. Installed in workerd only: Node's and Deno's own sockets keep their timers lazily
 * already (and their HTTP servers' sockets share the prototype). Tested by
 * test/workers/socket-timer-fix.test.ts.
 */
import { Socket } from "node:net";

const LAST_IO = Symbol("lastIo");

interface TimedSocket {
  timeout?: number;
  _parentWrap?: TimedSocket | null;
  [LAST_IO]?: number;
  setTimeout(ms: number): unknown;
  emit(event: "timeout"): boolean;
}

const prototype = Socket.prototype as unknown as {
  _unrefTimer?: (this: TimedSocket) => void;
  _onTimeout?: (this: TimedSocket) => void;
};

const inWorkerd = typeof navigator !== "undefined" && navigator.userAgent === "Cloudflare-Workers";

if (inWorkerd && typeof prototype._unrefTimer === "function" && typeof prototype._onTimeout === "function") {
  prototype._unrefTimer = function unrefTimer(this: TimedSocket): void {
    const now = Date.now();
    // A TLS socket wraps the TCP one: both record the I/O.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    for (let socket: TimedSocket | null | undefined = this; socket; socket = socket._parentWrap) socket[LAST_IO] = now;
  };

  prototype._onTimeout = function onTimeout(this: TimedSocket): void {
    const configured = this.timeout ?? 0;
    const idle = Date.now() - (this[LAST_IO] ?? 0);
    if (configured > 0 && idle < configured) {
      // setTimeout(ms) also stores ms as the socket's timeout: put the configured one back.
      this.setTimeout(configured - idle);
      this.timeout = configured;
      return;
    }
    this.emit("timeout");
  };
}
