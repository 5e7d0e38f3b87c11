import type { AMQPChannel, AMQPConsumer, AMQPMessage, AMQPSession } from "@cloudamqp/amqp-client";
import { brokerReason } from "./broker-errors";
import { RouteFailureError } from "../contract/failures";
import { ownChannel } from "./session-channels";
import type { Reservation } from "../memory-budget";
import type { CancelTimer, ObjectTimers } from "../object-timers";

/** What a wait receives: its deliveries, and the room in the object's memory held for their bodies. */
export interface Handed {
  deliveries: AMQPMessage[];
  /** Held for the bodies of `deliveries` (none for none); the route object releases it once they are out of its hands. */
  held: Reservation | undefined;
}

interface Waiter {
  id: string;
  max: number;
  /** Most body bytes it takes (the first delivery whatever its size). */
  maxBytes: number;
  /** Whose room the deliveries take (the rate-limited caller), if the route tells callers apart. */
  caller: string | undefined;
  resolve: (handed: Handed) => void;
  reject: (error: RouteFailureError) => void;
  /** Cancels its wait's timer (on {@link ObjectTimers}: a timer each would let many waits take the object's). */
  cancelTimer: CancelTimer;
}

/** Most messages the broker may push ahead of the waiters' answers. */
const MAX_PREFETCH = 100;

/** How often deliveries that had no room in the object's memory are offered to the waiters again. */
const ROOM_RETRY_MS = 50;

/**
 * How long the channel of a queue nobody waits on any more is kept open, so that a client that
 * polls again at once does not pay for a new one. Then it is closed: a route over many queues
 * (`inbox.{user}`) would otherwise keep a channel for every queue ever waited on, until the
 * connection runs out of them.
 */
export const IDLE_CHANNEL_MS = 2000;

/**
 * Long-poll for one queue: clients wait (`GET ?wait=S`) in arrival order, and a `basic.consume`
 * runs only while someone is waiting, with a prefetch of what the waiters asked for together, so
 * the broker pushes no more than they can take. Each delivery goes to the longest-waiting client
 * (with the deliveries that arrived with it, up to its `max`); a client whose wait ends or who
 * goes away leaves the line at once. When the last one leaves, the consumer is cancelled and any
 * message it had pushed but no client took is requeued, in order, to its place in the queue:
 * nothing is lost or left unacknowledged; and once nobody has waited for {@link IDLE_CHANNEL_MS},
 * its channel is closed and `onClosed` is called (the route object then forgets it). Deliveries
 * are handed out unacknowledged; the route object acknowledges, leases or holds them as its mode
 * says. Each queue has a channel of its own, so a queue that is deleted or refused fails only the
 * clients waiting on it.
 */
export class WaitingConsumer {
  readonly #waiters: Waiter[] = [];
  /** Pushed by the broker, not yet handed to a waiter. */
  readonly #buffer: AMQPMessage[] = [];
  readonly queue: string;
  readonly #session: () => Promise<AMQPSession>;
  readonly #room: () => number;
  readonly #reserve: (bytes: number, caller: string | undefined) => Reservation | undefined;
  readonly #timers: ObjectTimers;
  /** The largest body lately, to bound what the broker may push by bytes as well as by count; 0 until one is seen. */
  #typicalBytes = 0;
  #roomRetry: ReturnType<typeof setTimeout> | undefined;
  #channel: AMQPChannel | undefined;
  #consumer: AMQPConsumer | undefined;
  #prefetch = 0;
  /**
   * Deliveries of the running consumer handed to clients: until they are settled (a lease, an
   * answer being written) they count against its prefetch, so the broker would send no more.
   */
  #handed = 0;
  /** Changes to the consumer, one at a time. */
  #reconciling: Promise<void> = Promise.resolve();
  #handOutScheduled = false;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /**
   * Deliveries handed to clients and not yet settled (a lease, an answer being written): the
   * channel stays open until each is, since closing it would put them back in the queue.
   */
  readonly #unsettled = new Set<AMQPMessage>();
  readonly #onClosed: () => void;

  /**
   * @param options.session - the connection's session
   * @param options.room - bytes the route object's memory has room for now: the broker is sent
   *   no more prefetch than fits, by the body size seen lately
   * @param options.reserve - holds room in the object's memory for bodies about to be handed to a
   *   waiter, or undefined when there is none: the deliveries then wait in line until there is
   * @param options.typicalBytes - the body size the queue's gets have seen, if any: until a size
   *   is known, the broker is sent a prefetch of one, to learn it
   * @param options.onClosed - called once, when the consumer has closed its channel for good
   */
  constructor(
    queue: string,
    options: {
      session: () => Promise<AMQPSession>;
      room: () => number;
      reserve: (bytes: number, caller: string | undefined) => Reservation | undefined;
      typicalBytes?: number | undefined;
      onClosed: () => void;
      /** The object's timers, for each wait's end. */
      timers: ObjectTimers;
    },
  ) {
    this.queue = queue;
    this.#timers = options.timers;
    this.#session = options.session;
    this.#room = options.room;
    this.#reserve = options.reserve;
    this.#typicalBytes = options.typicalBytes ?? 0;
    this.#onClosed = options.onClosed;
  }

  /** Whether it has closed for good: a new wait needs a new one. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Whether its channel could be closed now: nobody waits and nothing it handed out is unsettled. */
  get idle(): boolean {
    if (this.#closed || this.#waiters.length > 0) return false;
    for (const delivery of this.#unsettled) if (delivery.isAcked || delivery.channel.closed) this.#unsettled.delete(delivery);
    return this.#unsettled.size === 0;
  }

  /** Closes its channel now, without waiting out {@link IDLE_CHANNEL_MS}, when it is {@link idle}. */
  closeIfIdle(): boolean {
    if (!this.idle) return false;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    this.#close();
    return true;
  }

  /** Clients waiting now. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /**
   * Waits up to `waitMs` for messages: resolves with 1 to `max` deliveries and the room held for
   * them, or none when the wait ends (or {@link leave} is called with `id`); rejects when the
   * connection is lost.
   */
  wait(id: string, max: number, waitMs: number, maxBytes: number, caller?: string): Promise<Handed> {
    if (this.#closed) return Promise.reject(new RouteFailureError("unavailable", "the queue's consumer was closing; retry"));
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    return new Promise((resolve, reject) => {
      const cancelTimer = this.#timers.after(waitMs, () => this.leave(id));
      this.#waiters.push({ id, max, maxBytes, caller, resolve, reject, cancelTimer });
      this.#reconcile();
    });
  }

  /** The client `id` stops waiting (its time is up, or it went away); it gets nothing. */
  leave(id: string): void {
    const index = this.#waiters.findIndex((waiter) => waiter.id === id);
    if (index < 0) return;
    const [waiter] = this.#waiters.splice(index, 1);
    if (!waiter) return;
    waiter.cancelTimer();
    waiter.resolve({ deliveries: [], held: undefined });
    this.#reconcile();
  }

  /** Every waiting client stops waiting now, with nothing (the gateway is stopping). */
  leaveAll(): void {
    for (const waiter of [...this.#waiters]) this.leave(waiter.id);
  }

  #onDelivery = (delivery: AMQPMessage): void => {
    this.#buffer.push(delivery);
    this.#typicalBytes = Math.max(delivery.bodySize, 1, Math.round(0.9 * this.#typicalBytes));
    // Deliveries that arrive together (one read from the socket) go out together.
    if (this.#handOutScheduled) return;
    this.#handOutScheduled = true;
    setTimeout(() => {
      this.#handOutScheduled = false;
      this.#handOut();
    }, 0);
  };

  #handOut(): void {
    while (this.#waiters.length > 0 && this.#buffer.length > 0) {
      const [waiter] = this.#waiters;
      if (!waiter) break;
      // Up to its max, and its bytes (the first whatever its size).
      let count = 0;
      let bytes = 0;
      for (const delivery of this.#buffer) {
        if (count >= waiter.max || (count > 0 && bytes + delivery.bodySize > waiter.maxBytes)) break;
        bytes += delivery.bodySize;
        count++;
      }
      // Handed over only with room for the bodies in the object's memory: the deliveries and
      // the line wait until there is (what was handed out is written, settled, or given back).
      // Without this, every waiter got its message at once whatever was still held for the
      // answers before it, and clients that do not read held them all.
      const held = this.#reserve(bytes, waiter.caller);
      if (!held) {
        this.#roomRetry ??= setTimeout(() => {
          this.#roomRetry = undefined;
          this.#handOut();
        }, ROOM_RETRY_MS);
        return;
      }
      this.#waiters.shift();
      waiter.cancelTimer();
      const deliveries = this.#buffer.splice(0, count);
      this.#handed += deliveries.length;
      for (const delivery of deliveries) this.#unsettled.add(delivery);
      waiter.resolve({ deliveries, held });
    }
    this.#reconcile();
  }

  /** Brings the consumer in line with the waiters, after whatever change is under way. */
  #reconcile(): void {
    this.#reconciling = this.#reconciling.then(() => this.#adjust()).catch((error: unknown) => this.#failAll(error));
  }

  async #adjust(): Promise<void> {
    const each = Math.max(1, this.#typicalBytes);
    const wanted = Math.min(
      MAX_PREFETCH,
      this.#waiters.reduce((sum, waiter) => sum + Math.min(waiter.max, Math.max(1, Math.floor(waiter.maxBytes / each))), 0),
      // At least one, so that a waiter is served even when memory is short: one body at a time.
      Math.max(1, Math.floor(this.#room() / each)),
      // Sizes unknown: one first, to learn them (a hundred 1 MiB messages pushed at once would
      // be a hundred MiB in the object before any was looked at).
      this.#typicalBytes === 0 ? 1 : MAX_PREFETCH,
    );
    if (wanted === 0) {
      await this.#stop();
      this.#closeWhenIdle();
      return;
    }
    if (this.#buffer.length > 0) {
      this.#handOut();
      return;
    }
    if (this.#consumer && this.#prefetch - this.#handed >= wanted) return;
    // More is wanted than the running consumer may still be sent (its prefetch, less what it
    // handed out and may not be settled yet): start a new one, whose prefetch counts afresh.
    // (Deliveries still in flight to the old one are handed out like any other.)
    await this.#consumer?.cancel();
    const channel = await this.#openChannel();
    await channel.basicQos(wanted);
    const consumer = await channel.basicConsume(this.queue, { noAck: false }, this.#onDelivery);
    this.#consumer = consumer;
    this.#prefetch = wanted;
    this.#handed = 0;
    consumer.wait().catch((error: unknown) => {
      if (this.#consumer === consumer) this.#failAll(error);
    });
  }

  /** Cancels the consumer, then requeues what it pushed that nobody took, in the order it came. */
  async #stop(): Promise<void> {
    const consumer = this.#consumer;
    this.#consumer = undefined;
    this.#prefetch = 0;
    await consumer?.cancel();
    const unclaimed = this.#buffer.splice(0);
    for (const delivery of unclaimed) await delivery.nack(true).catch(() => undefined);
  }

  /** Closes the channel once nobody has waited for {@link IDLE_CHANNEL_MS} and what it handed out is settled. */
  #closeWhenIdle(): void {
    if (this.#closed || this.#idleTimer !== undefined) return;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      if (this.#closed || this.#waiters.length > 0) return;
      if (this.idle) this.#close();
      else this.#closeWhenIdle();
    }, IDLE_CHANNEL_MS);
  }

  #close(): void {
    // Forgotten at once, so that the next client's wait makes a new consumer.
    this.#closed = true;
    this.#onClosed();
    this.#reconciling = this.#reconciling
      .then(async () => {
        await this.#stop();
        const channel = this.#channel;
        this.#channel = undefined;
        await channel?.close();
      })
      .catch(() => undefined);
  }

  async #openChannel(): Promise<AMQPChannel> {
    if (this.#channel && !this.#channel.closed) return this.#channel;
    const channel = await ownChannel(await this.#session());
    this.#channel = channel;
    return channel;
  }

  /** The channel or connection closed under the waiters: each gets 503; the broker requeued what it had pushed. */
  #failAll(error: unknown): void {
    clearTimeout(this.#roomRetry);
    this.#roomRetry = undefined;
    this.#consumer = undefined;
    this.#prefetch = 0;
    this.#buffer.length = 0;
    this.#closeWhenIdle();
    const failure =
      error instanceof RouteFailureError
        ? error
        : new RouteFailureError("unavailable", `the connection to the broker was lost while waiting: ${brokerReason(error)}`);
    for (const waiter of this.#waiters.splice(0)) {
      waiter.cancelTimer();
      waiter.reject(failure);
    }
  }
}
