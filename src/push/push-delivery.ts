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
import type { AMQPChannel, AMQPConsumer, AMQPMessage } from "@cloudamqp/amqp-client";
import type { PushState } from "../contract/route-calls";
import type { PushConfig } from "../contract/route-settings";
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
  /** The headers a message's properties give its request (as a GET answer carries them), content type aside. */
  messageHeaders: (message: AMQPMessage) => Record<string, string>;
  /** Injected for tests; the runtime's otherwise. */
  fetch?: typeof fetch;
  random?: () => number;
}

/** An attempt's outcome: delivered (2xx), or why not. */
type Attempt = { ok: true } | { ok: false; reason: string };

export class PushDelivery {
  readonly #options: PushDeliveryOptions;
  readonly #signer: WebhookSigner;
  readonly #fetch: typeof fetch;
  #consumer: AMQPConsumer | undefined;
  #running = false;
  /** Deliveries not settled yet (being attempted, or waiting to retry). */
  readonly #inFlight = new Set<Promise<void>>();
  /** Retries waiting for their delay, woken early by a pause. */
  readonly #waiting = new Set<() => void>();
  #lastError: PushState["last_error"] = null;
  #lastSuccessAt: string | null = null;

  constructor(options: PushDeliveryOptions) {
    this.#options = options;
    this.#signer = new WebhookSigner(options.push.secret);
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
  }

  /** Starts consuming on `channel` (one of its own: the prefetch is set on it). */
  async start(channel: AMQPChannel): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await channel.basicQos(this.#options.push.concurrency);
    this.#consumer = await channel.basicConsume(this.#options.queue, { noAck: false }, (message) => {
      const delivery = this.#deliver(message).finally(() => this.#inFlight.delete(delivery));
      this.#inFlight.add(delivery);
    });
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
    const { push, events } = this.#options;
    // The same on every attempt of this delivery; a redelivery says so in X-Redelivered.
    const id = message.properties.messageId ?? `msg_${crypto.randomUUID()}`;
    const body = message.body ?? new Uint8Array(0);
    const settled = (work: () => Promise<void>) => work().catch(() => undefined);
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.#attempt(message, body, id, attempt);
      if (outcome.ok) {
        this.#lastSuccessAt = new Date().toISOString();
        await settled(() => message.ack());
        events.pushed();
        return;
      }
      this.#lastError = { message: `attempt ${attempt} of ${id}: ${outcome.reason}`, at: new Date().toISOString() };
      const last = attempt >= push.max_attempts;
      const retryInMs = last ? undefined : retryDelayMs(attempt, push.backoff_ms, push.max_backoff_ms, this.#options.random);
      events.failed({ messageId: id, attempt, reason: outcome.reason, retryInMs });
      if (retryInMs === undefined) {
        await settled(() => message.reject(false));
        events.deadLettered();
        return;
      }
      if (!(await this.#wait(retryInMs))) {
        // Paused while it waited: back to the queue, to be delivered again on resume.
        await settled(() => message.nack(true));
        return;
      }
    }
  }

  /** Resolves true after `ms`, or false at once if the push is paused (now or meanwhile). */
  #wait(ms: number): Promise<boolean> {
    if (!this.#running) return Promise.resolve(false);
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#waiting.delete(wake);
        resolve(this.#running);
      };
      const timer = setTimeout(wake, ms);
      this.#waiting.add(wake);
    });
  }

  async #attempt(message: AMQPMessage, body: Uint8Array, id: string, attempt: number): Promise<Attempt> {
    const { push, messageHeaders } = this.#options;
    try {
      const headers = {
        ...push.headers,
        ...messageHeaders(message),
        "content-type": message.properties.contentType ?? "application/octet-stream",
        "webhook-attempt": String(attempt),
        ...(await this.#signer.headers(id, Math.floor(Date.now() / 1000), body)),
      };
      const response = await this.#fetch(push.url, {
        method: "POST",
        headers,
        body,
        // A redirect is not the endpoint taking the message: a failed attempt, not followed.
        redirect: "manual",
        signal: AbortSignal.timeout(push.timeout_ms),
      });
      await response.body?.cancel().catch(() => undefined);
      if (response.status >= 200 && response.status < 300) return { ok: true };
      return { ok: false, reason: `the endpoint answered ${response.status}` };
    } catch (error) {
      const name = error instanceof Error ? error.name : "";
      if (name === "TimeoutError" || name === "AbortError") return { ok: false, reason: `no answer within ${push.timeout_ms} ms` };
      return { ok: false, reason: `the endpoint could not be reached (${error instanceof Error ? error.message : String(error)})` };
    }
  }
}
