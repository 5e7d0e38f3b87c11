import type { AMQPChannel, AMQPSession } from "@cloudamqp/amqp-client";

interface SessionInternals {
  getConfirmChannel?: () => Promise<AMQPChannel>;
  getOpsChannel?: () => Promise<AMQPChannel>;
}

/**
 * Two channels of an AMQPSession that the gateway uses directly. Both are public methods of
 * AMQPSession that its docs mark internal, so amqp-client is pinned to an exact version in
 * package.json, and these fail loudly (a test covers them) if an upgrade removes them. The
 * session reopens either after a channel error or a reconnect.
 */
const internals = (session: AMQPSession, method: keyof SessionInternals): (() => Promise<AMQPChannel>) => {
  const fn = (session as unknown as SessionInternals)[method];
  if (typeof fn !== "function") throw new Error(`amqp-client's AMQPSession no longer has ${method}(); see src/amqp/session-channels.ts`);
  return fn.bind(session);
};

/**
 * The session's shared confirm channel (publisher confirms on).
 *
 * Why not `AMQPExchange.publish`, the session's public way to publish: it runs the body through
 * amqp-client's codec registry, which refuses any `content-encoding` it has no coder for, while
 * the gateway must publish the bytes it was given under whatever encoding the client declared.
 * And with a registry configured, the session hands returned messages over only after an async
 * decode, so a `basic.return` could be seen after its message's confirm.
 */
export const confirmChannel = (session: AMQPSession): Promise<AMQPChannel> => internals(session, "getConfirmChannel")();

/**
 * The session's ops channel, for `basic.get`. Why not `AMQPQueue.get`: it takes the session's
 * ops lock, so one get waits for the previous one's answer (about a thousand a second, whatever
 * the load). AMQP lets a client send gets without waiting; the broker answers them in order,
 * and amqp-client matches answers to requests in order. The consuming connection does nothing
 * else, so nothing else on this channel can be disturbed.
 */
export const opsChannel = (session: AMQPSession): Promise<AMQPChannel> => internals(session, "getOpsChannel")();

interface SessionClient {
  client?: { channel?: () => Promise<AMQPChannel>; channelMax?: number };
}

/**
 * The most channels the connection may open, as negotiated with the broker (RabbitMQ's default
 * is 2047); 0 when there is no limit.
 */
export const channelMax = (session: AMQPSession): number => (session as unknown as SessionClient).client?.channelMax ?? 0;

/**
 * A new channel on the session's connection, for a consumer of the gateway's own (long-poll).
 * AMQPSession keeps its client private; the channel is the client's public `channel()`. Like the
 * two above, it fails loudly if an upgrade moves it. The channel closes with the connection; the
 * session does not reopen it.
 */
export const newChannel = (session: AMQPSession): Promise<AMQPChannel> => {
  const client = (session as unknown as SessionClient).client;
  if (typeof client?.channel !== "function") {
    throw new Error("amqp-client's AMQPSession no longer has a client with channel(); see src/amqp/session-channels.ts");
  }
  return client.channel();
};

/** A new channel of the session's connection whose failures reach only the requests that use it (a refusal closes it, nobody else's). */
export const ownChannel = async (session: AMQPSession): Promise<AMQPChannel> => {
  const channel = await newChannel(session);
  channel.onerror = () => undefined;
  return channel;
};
