import type { AMQPChannel } from "@cloudamqp/amqp-client";
import { ChannelPool } from "./channel-pool";
import { NameCache } from "./name-cache";
import { RouteFailureError, brokerReason, isChannelError, replyCodeOf } from "./route-failure";
import type { Deadlines } from "./deadlines";

/** Queues known to exist, per connection (the least recently used forgotten past this many). */
const KNOWN_QUEUES = 10_000;
/** How long a queue found missing (or refused) is answered from memory before it is asked about again. */
const MISSING_FOR_MS = 1000;
/** Passive declares in flight at once, each on a channel of its own. */
const PROBE_CHANNELS = 4;

/**
 * Which queues exist, as one consuming connection knows them. A queue's name may come from the
 * request (`inbox.{user}`), so a caller can ask for any name: the passive declare that finds out
 * runs on a channel of its own ({@link ChannelPool}), because the broker answers a missing queue
 * by closing the channel, and on the channel every other request's `basic.get` uses, that would
 * fail them all as if their own queue were missing.
 *
 * Found queues are remembered (bounded), so a get on them pays no declare; missing or refused ones
 * are answered from memory for a second, so one caller asking for the same missing name again and
 * again costs the broker one declare a second. Concurrent checks of one name share one declare.
 */
/** What a connection has learned of a queue it found. */
export interface KnownQueue {
  /** The body size to plan batches by (see `getMessages`); undefined until a message was taken. */
  typicalBytes: number | undefined;
}

export class QueueDirectory {
  readonly #known = new NameCache<KnownQueue>(KNOWN_QUEUES);
  readonly #refused = new NameCache<RouteFailureError>(KNOWN_QUEUES, MISSING_FOR_MS);
  readonly #checking = new Map<string, Promise<KnownQueue>>();
  readonly #probes: ChannelPool;

  constructor(openChannel: () => Promise<AMQPChannel>) {
    this.#probes = new ChannelPool(PROBE_CHANNELS, openChannel);
  }

  /** Resolves once `queue` is known to exist; rejects with a {@link RouteFailureError} naming it. */
  check(queue: string, deadlines: Deadlines, timeoutMs: number): Promise<KnownQueue> {
    const known = this.#known.get(queue);
    if (known) return Promise.resolve(known);
    const refused = this.#refused.get(queue);
    if (refused) return Promise.reject(refused);
    let checking = this.#checking.get(queue);
    if (!checking) {
      checking = this.#probe(queue, deadlines, timeoutMs).finally(() => this.#checking.delete(queue));
      this.#checking.set(queue, checking);
    }
    return checking;
  }

  /** The body size to plan takes from `queue` by, when a take has seen one. */
  typicalBytes(queue: string): number | undefined {
    return this.#known.get(queue)?.typicalBytes;
  }

  /** A get found `queue` missing or refused (deleted since it was checked): it is asked about again later. */
  refused(queue: string, failure: RouteFailureError): void {
    this.#known.delete(queue);
    this.#refused.set(queue, failure);
  }

  async #probe(queue: string, deadlines: Deadlines, timeoutMs: number): Promise<KnownQueue> {
    const lease = this.#probes.lease();
    try {
      const declared = (async () => (await lease.granted).queueDeclare(queue, { passive: true }))();
      await deadlines.within(declared, timeoutMs, "no_answer", `the broker did not answer within ${timeoutMs} ms`);
      const known: KnownQueue = { typicalBytes: undefined };
      this.#known.set(queue, known);
      return known;
    } catch (error) {
      const failure = queueFailure(queue, error);
      // A lost connection says nothing about the queue: only the broker's own answers are kept.
      if (failure.kind === "queue_not_found" || failure.kind === "broker_error") this.#refused.set(queue, failure);
      throw failure;
    } finally {
      lease.release();
    }
  }
}

/** The broker's refusal of an operation on `queue` (or a lost connection), as the client is told it. */
export const queueFailure = (queue: string, error: unknown): RouteFailureError => {
  if (error instanceof RouteFailureError) return error;
  if (replyCodeOf(error) === 404) return new RouteFailureError("queue_not_found", `queue "${queue}" does not exist`);
  if (isChannelError(error)) return new RouteFailureError("broker_error", `the broker refused the request: ${brokerReason(error)}`);
  return new RouteFailureError("unavailable", `the connection to the broker was lost: ${brokerReason(error)}`);
};

/**
 * Whether the broker's reason for closing a channel is about `queue` itself (RabbitMQ names it in
 * quotes: "NOT_FOUND - no queue 'jobs' in vhost '/'"): if not, the operation failed because of
 * another operation on the same channel.
 */
export const isAbout = (error: unknown, kind: "queue" | "exchange", name: string): boolean =>
  error instanceof Error && error.message.includes(`${kind} '${name}'`);

/**
 * Whether an operation failed because its channel was closed (by the broker, over this operation
 * or another one on it), while the connection may still be up: the channel reopens on next use.
 */
export const isChannelClosed = (error: unknown): boolean =>
  isChannelError(error) || (error instanceof Error && error.message === "Channel is closed");
