import type { AMQPChannel, AMQPMessage, AMQPSession } from "@cloudamqp/amqp-client";
import type { Deadlines } from "./deadlines";
import type { TakenMessage } from "./get-message";
import { brokerReason, isChannelError } from "./broker-errors";
import { RouteFailureError } from "../contract/failures";
import { newChannel } from "./session-channels";

/**
 * How an `auto_ack` answer takes its messages: with `basic.get` unacknowledged, on a channel of
 * the consuming connection in transaction mode, and acknowledged by a commit the broker answers
 * before anything is handed over.
 *
 * Not with `basic.get`'s no-ack: the broker forgets such a message as it sends it, so one it
 * hands over after the request was answered (the request's time ran out) could only be dropped.
 * Taken unacknowledged, it goes back to the queue (see getMessages).
 *
 * Not with a plain acknowledgement either: the broker does not answer one, so the gateway cannot
 * know it took effect before handing the message over. If the channel closed first, over this
 * request or another one sharing the channel, the broker would deliver the message again, and
 * `auto_ack` promises never twice. In a transaction, acknowledgements take effect only with the
 * commit: a commit the broker answered means they did; a channel that closed before it means
 * none did, and the messages are back in the queue.
 */
const transactional = new WeakSet<AMQPChannel>();
const opened = new WeakMap<AMQPSession, Promise<AMQPChannel>>();

/** The session's channel for `auto_ack` gets, opened (and put in transaction mode) on first use and after it closed. */
export const autoAckChannel = async (session: AMQPSession): Promise<AMQPChannel> => {
  const cached = opened.get(session);
  if (cached) {
    const channel = await cached.catch(() => undefined);
    if (channel && !channel.closed) return channel;
    // Another request may have opened the next one meanwhile.
    const next = opened.get(session);
    if (next && next !== cached) return next;
  }
  const opening = transactionalChannel(session);
  opened.set(session, opening);
  return opening;
};

/** A new channel of the session's connection in transaction mode, whose acknowledgements {@link acknowledgeForHandOver} commits. */
export const transactionalChannel = async (session: AMQPSession): Promise<AMQPChannel> => {
  const channel = await newChannel(session);
  // Its failures reach the requests that use it; the session need not hear of them.
  channel.onerror = () => undefined;
  await channel.txSelect();
  transactional.add(channel);
  return channel;
};

/** Per channel, the commit that acknowledgements written in the current turn of the event loop will share. */
const gathering = new WeakMap<AMQPChannel, Promise<unknown>>();

/** Resolves when the broker has committed what was settled on `channel` before the call. */
const committed = (channel: AMQPChannel): Promise<unknown> => {
  let commit = gathering.get(channel);
  if (!commit) {
    commit = Promise.resolve().then(() => {
      gathering.delete(channel);
      return channel.txCommit();
    });
    gathering.set(channel, commit);
  }
  return commit;
};

/**
 * Makes messages taken for an `auto_ack` answer the client's: acknowledges them, and resolves
 * once the broker has committed the acknowledgements. Only then may they be handed over.
 *
 * Rejects with "unavailable" when the channel closed before the commit took effect (the broker
 * put the messages back: nothing is handed over, a retry takes them), and with "no_answer" when
 * the commit went out but its outcome cannot be known in time (the connection dropped, or no
 * answer within `timeoutMs`): nothing is handed over, and each message is either back in the
 * queue or, if the commit took effect, gone, as at most once allows. Never delivered twice.
 */
export const acknowledgeForHandOver = async (taken: readonly TakenMessage[], deadlines: Deadlines, timeoutMs: number): Promise<void> => {
  if (taken.length === 0) return;
  try {
    // Written now, before the commit that follows them.
    const acks = taken.map(({ delivery }) => delivery.ack());
    const commits = [...new Set(taken.map(({ delivery }) => delivery.channel))]
      .filter((channel) => transactional.has(channel))
      .map(committed);
    await deadlines.within(
      Promise.all([...acks, ...commits]),
      timeoutMs,
      "no_answer",
      () =>
        `the broker did not commit taking the message within ${timeoutMs} ms; nothing was handed over (auto_ack is at most once: it may be lost)`,
    );
  } catch (error) {
    if (error instanceof RouteFailureError) throw error;
    // The channel closed (amqp-client rejects a settle on a closed channel at once): whatever was
    // not committed is back in the queue.
    if (isChannelError(error) || /Channel is closed/.test(brokerReason(error))) {
      throw new RouteFailureError(
        "unavailable",
        `the broker closed the channel as the message was being taken (${brokerReason(error)}); it stays in the queue`,
      );
    }
    throw new RouteFailureError(
      "no_answer",
      `the connection to the broker was lost as the message was being taken (${brokerReason(error)}); nothing was handed over (auto_ack is at most once: it may be lost)`,
    );
  }
};

/** Rejects `deliveries` back to their queue, in order (committed, on a transactional channel). Never throws: a channel that closed has put them back already. */
export const giveBack = async (deliveries: readonly AMQPMessage[]): Promise<void> => {
  // Usually nothing (a take gives back only what was larger than planned).
  if (deliveries.length === 0) return;
  for (const delivery of deliveries) await delivery.nack(true).catch(() => undefined);
  const channels = new Set(deliveries.map((delivery) => delivery.channel));
  await Promise.all(
    [...channels].filter((channel) => transactional.has(channel)).map((channel) => committed(channel).catch(() => undefined)),
  );
};
