import type { AMQPChannel, AMQPMessage } from "@cloudamqp/amqp-client";
import { ChannelPool } from "./channel-pool";
import { NameCache } from "../name-cache";
import { brokerReason, isChannelError, replyCodeOf } from "./broker-errors";
import { RouteFailureError } from "../contract/failures";
import type { Deadlines } from "./deadlines";
import { DIRECT_REPLY_TO } from "./publish-ledger";

/** Queues known to exist, per connection (the least recently used forgotten past this many). */
const KNOWN_QUEUES = 10_000;
/** How long a queue found missing (or refused) is answered from memory before it is asked about again. */
const MISSING_FOR_MS = 1000;
/** Passive declares in flight at once, each on a channel of its own. */
const PROBE_CHANNELS = 4;
/**
 * How long a queue whose get made the broker close the whole connection (a stream queue) is
 * refused from memory: long, since each time it is asked about again costs every request on the
 * connection, and across reconnects (the directory outlives them).
 */
const CONNECTION_CLOSER_FOR_MS = 60 * 60 * 1000;

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
  /**
   * Whether a get on it has been answered on this connection. Until then its gets go on a
   * channel of their own ({@link QueueDirectory.firstGetChannel}): a passive declare finds a
   * queue the route's user may not read (RabbitMQ checks no permission there), and the get is
   * refused by closing its channel.
   */
  readable: boolean;
}

/** Channels of first gets kept open at once while the message they took is held (a lease, an answer being written). */
const FIRST_GET_CHANNELS = 16;
/** How often channels of first gets are looked at, to close those whose messages are settled. */
const FIRST_GET_SWEEP_MS = 1000;

export class QueueDirectory {
  readonly #known = new NameCache<KnownQueue>(KNOWN_QUEUES);
  readonly #refused = new NameCache<RouteFailureError>(KNOWN_QUEUES, MISSING_FOR_MS);
  readonly #closers = new NameCache<RouteFailureError>(KNOWN_QUEUES, CONNECTION_CLOSER_FOR_MS);
  readonly #checking = new Map<string, Promise<KnownQueue>>();
  /** The one take in flight of each queue whose body size no take has shown yet (see {@link sizing}). */
  readonly #sizing = new Map<string, Promise<void>>();
  readonly #probes: ChannelPool;

  /** Channels of first gets that took a message, open until it is settled (see {@link firstGetChannel}). */
  readonly #firstGets = new Map<AMQPChannel, AMQPMessage[]>();
  #firstGetsOpening = 0;
  #sweep: ReturnType<typeof setInterval> | undefined;

  constructor(openChannel: () => Promise<AMQPChannel>) {
    this.#probes = new ChannelPool(PROBE_CHANNELS, openChannel);
  }

  /**
   * A channel of its own for the first get of a queue on this connection (`open` makes it: the
   * session's kind for the take, transactional for `auto_ack`). A get that the broker refuses by
   * closing its channel (a queue the route's user may not read) then closes only this one, not
   * the channel every other request's gets, leases and answers being written are on. Give it
   * back with {@link firstGetDone}. At most {@link FIRST_GET_CHANNELS} at once (those whose
   * message is still held count): past that, "unavailable".
   */
  async firstGetChannel(open: () => Promise<AMQPChannel>): Promise<AMQPChannel> {
    if (this.#firstGets.size + this.#firstGetsOpening >= FIRST_GET_CHANNELS) {
      this.#sweepFirstGets();
      if (this.#firstGets.size + this.#firstGetsOpening >= FIRST_GET_CHANNELS) {
        throw new RouteFailureError("unavailable", "the route is reading as many queues for the first time as it can at once; retry");
      }
    }
    this.#firstGetsOpening += 1;
    try {
      return await open();
    } finally {
      this.#firstGetsOpening -= 1;
    }
  }

  /**
   * The first get on `channel` is answered: closed now when it took nothing, else kept open until
   * each of `taken` is settled (closing it would put them back in the queue).
   */
  firstGetDone(channel: AMQPChannel, taken: readonly AMQPMessage[]): void {
    if (taken.length === 0 || channel.closed) {
      if (!channel.closed) channel.close().catch(() => undefined);
      return;
    }
    this.#firstGets.set(channel, [...taken]);
    this.#sweep ??= setInterval(() => this.#sweepFirstGets(), FIRST_GET_SWEEP_MS);
  }

  /** Closes the channels of first gets whose messages are all settled (or gone with the channel). */
  #sweepFirstGets(): void {
    for (const [channel, taken] of this.#firstGets) {
      if (!channel.closed && !taken.every((delivery) => delivery.isAcked)) continue;
      this.#firstGets.delete(channel);
      // Acknowledgements are written before the close, on the same channel (an auto_ack take's
      // commit was answered before its message was handed over).
      if (!channel.closed) channel.close().catch(() => undefined);
    }
    if (this.#firstGets.size === 0 && this.#sweep !== undefined) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }

  /** Resolves once `queue` is known to exist; rejects with a {@link RouteFailureError} naming it. */
  check(queue: string, deadlines: Deadlines, timeoutMs: number): Promise<KnownQueue> {
    const unreadable = unreadableName(queue);
    if (unreadable) return Promise.reject(unreadable);
    const closer = this.#closers.get(queue);
    if (closer) return Promise.reject(closer);
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

  /**
   * While no take from `queue` has shown the size of its bodies, the takes that come while one is
   * under way wait for it: resolves when this one may go (at once, or once the take before it is
   * done, waiting at most `waitMs`), with the function to call once its gets are answered. A take
   * is planned by the sizes seen, and the first message is taken whatever its size: a hundred
   * takes planned at once without a size would each take a message of any size (a hundred 16 MiB
   * messages in an isolate of 128 MB), where those that wait plan by the size the first one saw.
   * (When it found the queue empty, they go on together: there was nothing to learn.) Once a size
   * is known, none waits.
   */
  async sizing(queue: string, waitMs: number): Promise<() => void> {
    if (this.typicalBytes(queue) !== undefined) return () => undefined;
    const before = this.#sizing.get(queue);
    if (before) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([before, new Promise((resolve) => (timer = setTimeout(resolve, waitMs)))]);
      clearTimeout(timer);
      return () => undefined;
    }
    let done!: () => void;
    const taking = new Promise<void>((resolve) => (done = resolve));
    this.#sizing.set(queue, taking);
    return () => {
      if (this.#sizing.get(queue) === taking) this.#sizing.delete(queue);
      done();
    };
  }

  /** A get found `queue` missing or refused (deleted since it was checked): it is asked about again later. */
  refused(queue: string, failure: RouteFailureError): void {
    this.#known.delete(queue);
    this.#refused.set(queue, failure);
  }

  /**
   * A get on `queue` made the broker close the connection, over `queue` itself (a stream queue,
   * which `basic.get` cannot read: 540 NOT_IMPLEMENTED): the {@link RouteFailureError} to answer
   * with, and, for {@link CONNECTION_CLOSER_FOR_MS}, the answer to every request for it, before
   * anything is sent. A passive declare cannot tell a stream from another queue, so the first
   * get on one costs the connection once; without this, every request naming it would.
   */
  closedConnection(queue: string, error: unknown): RouteFailureError {
    const failure = new RouteFailureError(
      "broker_error",
      `the broker refused to read queue "${queue}" with basic.get (${brokerReason(error)}); nothing was taken`,
    );
    this.#known.delete(queue);
    this.#closers.set(queue, failure);
    return failure;
  }

  async #probe(queue: string, deadlines: Deadlines, timeoutMs: number): Promise<KnownQueue> {
    const lease = this.#probes.lease();
    try {
      const declared = (async () => (await lease.granted).queueDeclare(queue, { passive: true }))();
      await deadlines.within(declared, timeoutMs, "no_answer", `the broker did not answer within ${timeoutMs} ms`);
      const known: KnownQueue = { typicalBytes: undefined, readable: false };
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
 * Names a passive declare finds but no `basic.get` can read, answered 404 before the broker is
 * asked. RabbitMQ's `queue.declare` drops CR and LF from a name and `basic.get` does not, so
 * `inbox.alice\n` passes the check as `inbox.alice` and its get fails (no queue can hold a line
 * break: the declare that made it dropped them); and it declares its direct reply-to, a
 * pseudo-queue that only a consumer of its own channel reads. Each such get would close the
 * channel that every other request's gets, leases and answers being written are on.
 */
const unreadableName = (queue: string): RouteFailureError | undefined => {
  if (/[\r\n]/.test(queue)) {
    return new RouteFailureError("queue_not_found", `queue ${JSON.stringify(queue)} does not exist (a queue's name holds no line break)`);
  }
  if (queue === DIRECT_REPLY_TO || queue.startsWith(`${DIRECT_REPLY_TO}.`)) {
    return new RouteFailureError(
      "queue_not_found",
      `queue "${queue.slice(0, 60)}" does not exist: it is RabbitMQ's direct reply-to, which only its own consumer reads`,
    );
  }
  return undefined;
};

/**
 * Whether the broker's reason for closing a channel is about `name` itself (RabbitMQ names it in
 * quotes: "NOT_FOUND - no queue 'jobs' in vhost '/'", "ACCESS_REFUSED - access to queue 'jobs'
 * in vhost '/' refused for user 'app'"): if not, the operation failed because of another
 * operation on the same channel. The name is read whole, up to the last `' in vhost '`, and
 * compared exactly: another request's name may hold quotes, or this name followed by more
 * (`jobs' in vhost '/`), and must not pass for it.
 */
export const isAbout = (error: unknown, kind: "queue" | "exchange", name: string): boolean => {
  if (!(error instanceof Error)) return false;
  const named = new RegExp(`^[A-Z_]+ - [\\s\\S]*?\\b${kind} '([\\s\\S]*)' in vhost '[^']*'`).exec(brokerReason(error))?.[1];
  return named === name;
};

/** Whether the broker closed the whole connection over a get it will not carry out (540 NOT_IMPLEMENTED: a stream queue). */
export const isConnectionRefusal = (error: unknown): boolean =>
  error instanceof Error && /^connection closed: NOT_IMPLEMENTED - [\s\S]*\(540\)$/.test(error.message);

/**
 * Whether an operation failed because its channel was closed (by the broker, over this operation
 * or another one on it), while the connection may still be up: the channel reopens on next use.
 */
export const isChannelClosed = (error: unknown): boolean =>
  isChannelError(error) || (error instanceof Error && error.message === "Channel is closed");
