/**
 * Push: a queue delivered to a webhook, at least once. A consumer with `concurrency` messages
 * unacknowledged at most (the channel's prefetch) POSTs each message, signed (Standard Webhooks),
 * to the endpoint; a 2xx acknowledges it, anything else (another status, a timeout, a refused
 * connection) is a failed attempt, retried after a growing delay while the message stays
 * unacknowledged. After `max_attempts` failed attempts the message is rejected without requeue,
 * so its queue's dead-letter exchange receives it. Nothing is acknowledged that the endpoint did
 * not take: a pause, a lost connection or a stop leaves it to the broker, which delivers it again.
 *
 * With `concurrency: 1` the broker hands over the next message only once this one is settled, so
 * queue order holds, retries included. Plain code with amqp-client and `fetch`: every runtime.
 */
import { deliveryCountOf } from "../amqp/delivery-count";
import type { AMQPChannel, AMQPConsumer, AMQPMessage } from "@cloudamqp/amqp-client";
import type { PushState } from "../contract/route-calls";
import type { PushConfig } from "../contract/route-settings";
import type { ObjectTimers } from "../object-timers";
import { retryDelayMs } from "./retry-delay";
import { WebhookSigner } from "./webhook-signature";

/** What a push reports as it goes: the route's counters and its log. */
export interface PushEvents {
  /** Acknowledged after the endpoint's 2xx. */
  pushed(): void;
  /** One failed attempt; `retryInMs` undefined when it was the last. Never carries the secret or the extra headers. */
  failed(attempt: { messageId: string; attempt: number; reason: string; retryInMs: number | undefined }): void;
  /** Rejected after its last failed attempt, to the queue's dead-letter exchange (or dropped without one). */
  deadLettered(): void;
}

export interface PushDeliveryOptions {
  queue: string;
  push: PushConfig;
  events: PushEvents;
  /** A message delivered this many times goes to its dead letters, not to the endpoint (`consumer.max_deliveries`). */
  maxDeliveries?: number | undefined;
  /** The headers a message's properties give its request, as a GET answer carries them (its content type when it has one). */
  messageHeaders: (message: AMQPMessage) => Record<string, string>;
  /**
   * The route object's timers, for each attempt's timeout and each retry's delay: a timer each
   * would count against workerd's 10,000 per object (see src/object-timers.ts).
   */
  timers: ObjectTimers;
  random?: () => number;
}

/** A `webhook-id` sent as it is: visible ASCII, no spaces, at most 255 characters. */
const SAFE_ID = /^[\x21-\x7e]{1,255}$/;

/** Runs a settle (ack, reject); whether it was written (false once its channel has closed). */
const acknowledged = async (settle: () => Promise<void>): Promise<boolean> => {
  try {
    await settle();
    return true;
  } catch {
    return false;
  }
};

/** An attempt's outcome: delivered (2xx), or why not. */
type Attempt = { ok: true } | { ok: false; reason: string };

export class PushDelivery {
  readonly #options: PushDeliveryOptions;
  readonly #signer: WebhookSigner;
  #consumer: AMQPConsumer | undefined;
  #running = false;
  /** The consumer ended without a pause: cancelled by the broker (its queue deleted), or its channel closed. */
  #consumerGone = false;
  /** Deliveries not settled yet (being attempted, or waiting to retry). */
  readonly #inFlight = new Set<Promise<void>>();
  /** Retries waiting for their delay, woken early by a pause. */
  readonly #waiting = new Set<() => void>();
  #lastError: PushState["last_error"] = null;
  #lastSuccessAt: string | null = null;

  constructor(options: PushDeliveryOptions) {
    this.#options = options;
    this.#signer = new WebhookSigner(options.push.secret);
  }

  /** Starts consuming on `channel` (one of its own: the prefetch is set on it). */
  async start(channel: AMQPChannel): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await channel.basicQos(this.#options.push.concurrency);
    this.#consumerGone = false;
    const consumer = await channel.basicConsume(this.#options.queue, { noAck: false }, (message) => {
      const delivery = this.#deliver(message).finally(() => this.#inFlight.delete(delivery));
      this.#inFlight.add(delivery);
    });
    this.#consumer = consumer;
    // Fulfilled or rejected once the consumer ends: by a pause (not gone), or by the broker.
    void consumer.wait().then(
      () => (this.#consumerGone = this.#running),
      () => (this.#consumerGone = true),
    );
  }

  /** Whether it delivers: started, not paused, its consumer not ended by the broker. */
  get delivering(): boolean {
    return this.#running && !this.#consumerGone;
  }

  /**
   * Stops taking messages: attempts under way finish (and are settled by their outcome), a
   * message waiting for a retry goes back to the queue at once. Resolves when nothing is held.
   */
  async pause(): Promise<void> {
    this.#running = false;
    const consumer = this.#consumer;
    this.#consumer = undefined;
    await consumer?.cancel().catch(() => undefined);
    for (const wake of this.#waiting) wake();
    await Promise.all(this.#inFlight);
  }

  state(): PushState {
    return {
      state: this.#running ? "running" : "paused",
      in_flight: this.#inFlight.size,
      last_error: this.#lastError,
      last_success_at: this.#lastSuccessAt,
    };
  }

  async #deliver(message: AMQPMessage): Promise<void> {
    const { push, events, maxDeliveries } = this.#options;
    if (maxDeliveries !== undefined && deliveryCountOf(message) > maxDeliveries) {
      if (await acknowledged(() => message.reject(false))) events.deadLettered();
      return;
    }
    // The same on every attempt of this delivery; a redelivery says so in X-Redelivered. A
    // message_id that is not a plain header value (controls, spaces, non-ASCII) would be changed
    // on the way, and the signature would not match what the endpoint reads.
    const messageId = message.properties.messageId;
    const id = messageId !== undefined && SAFE_ID.test(messageId) ? messageId : `msg_${crypto.randomUUID()}`;
    const body = message.body ?? new Uint8Array(0);
    // The same on every attempt: the route's extra headers, then the message's own (its content
    // type among them, percent-encoded and listed in X-AMQP-Encoded where needed).
    const headers = { ...push.headers, "content-type": "application/octet-stream", ...this.#options.messageHeaders(message) };
    for (let attempt = 1; ; attempt++) {
      // Its channel closed (the connection was lost): the broker has put it back and delivers it
      // again; this delivery may not post it any more.
      if (message.channel.closed) return;
      const outcome = await this.#attempt(headers, body, id, attempt);
      if (outcome.ok) {
        this.#lastSuccessAt = new Date().toISOString();
        // Counted only once acknowledged: an ack on a closed channel failed, and the broker will deliver it again.
        if (await acknowledged(() => message.ack())) events.pushed();
        return;
      }
      this.#lastError = { message: `attempt ${attempt} of ${id}: ${outcome.reason}`, at: new Date().toISOString() };
      const last = attempt >= push.max_attempts;
      const retryInMs = last ? undefined : retryDelayMs(attempt, push.backoff_ms, push.max_backoff_ms, this.#options.random);
      events.failed({ messageId: id, attempt, reason: outcome.reason, retryInMs });
      if (retryInMs === undefined) {
        if (await acknowledged(() => message.reject(false))) events.deadLettered();
        return;
      }
      if (!(await this.#wait(retryInMs))) {
        // Paused while it waited: back to the queue, to be delivered again on resume.
        await acknowledged(() => message.nack(true));
        return;
      }
    }
  }

  /** Resolves true after `ms`, or false at once if the push is paused (now or meanwhile). */
  #wait(ms: number): Promise<boolean> {
    if (!this.#running) return Promise.resolve(false);
    return new Promise((resolve) => {
      const wake = () => {
        cancelTimer();
        this.#waiting.delete(wake);
        resolve(this.#running);
      };
      const cancelTimer = this.#options.timers.after(ms, wake);
      this.#waiting.add(wake);
    });
  }

  async #attempt(fromMessage: Record<string, string>, body: Uint8Array, id: string, attempt: number): Promise<Attempt> {
    const { push } = this.#options;
    // Not AbortSignal.timeout: its timer stays armed for the whole timeout after the answer came,
    // and workerd allows an object 10,000 active timers. At a thousand pushes a second the object
    // ran out, and with them amqp-client's heartbeats: the broker closed the connection.
    const timeout = new AbortController();
    const cancelTimeout = this.#options.timers.after(push.timeout_ms, () =>
      timeout.abort(new DOMException("no answer in time", "TimeoutError")),
    );
    try {
      const headers = {
        ...fromMessage,
        "webhook-attempt": String(attempt),
        ...(await this.#signer.headers(id, Math.floor(Date.now() / 1000), body)),
      };
      const response = await fetch(push.url, {
        method: "POST",
        headers,
        body,
        // A redirect is not the endpoint taking the message: a failed attempt, not followed.
        redirect: "manual",
        signal: timeout.signal,
      });
      await response.body?.cancel().catch(() => undefined);
      if (response.status >= 200 && response.status < 300) return { ok: true };
      return { ok: false, reason: `the endpoint answered ${response.status}` };
    } catch (error) {
      const name = error instanceof Error ? error.name : "";
      if (name === "TimeoutError" || name === "AbortError") return { ok: false, reason: `no answer within ${push.timeout_ms} ms` };
      // Never the runtime's message: it may quote the URL or a header's value (a credential).
      const code = (error as { cause?: { code?: unknown } }).cause?.code;
      return { ok: false, reason: `the endpoint could not be reached (${typeof code === "string" ? code : name || "error"})` };
    } finally {
      cancelTimeout();
    }
  }
}
