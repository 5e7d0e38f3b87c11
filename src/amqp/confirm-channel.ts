import type { AMQPChannel, AMQPSession } from "@cloudamqp/amqp-client";

interface SessionInternals {
  getConfirmChannel?: () => Promise<AMQPChannel>;
}

/**
 * The session's shared confirm channel (publisher confirms on; reopened by the session after a
 * channel error or a reconnect).
 *
 * Why not `AMQPExchange.publish`, the session's public way to publish: it runs the body through
 * amqp-client's codec registry, which refuses any `content-encoding` it has no coder for, while
 * the gateway must publish the bytes it was given under whatever encoding the client declared.
 * And with a registry configured, the session hands returned messages over only after an async
 * decode, so a `basic.return` could be seen after its message's confirm. Publishing on this
 * channel keeps both exact. `getConfirmChannel` is a public method of AMQPSession that its docs
 * mark internal, so amqp-client is pinned to an exact version in package.json, and this fails
 * loudly (a test covers it) if an upgrade removes it.
 */
export const confirmChannel = (session: AMQPSession): Promise<AMQPChannel> => {
  const internals = session as unknown as SessionInternals;
  if (typeof internals.getConfirmChannel !== "function") {
    throw new Error("amqp-client's AMQPSession no longer has getConfirmChannel(); see src/amqp/confirm-channel.ts");
  }
  return internals.getConfirmChannel();
};
