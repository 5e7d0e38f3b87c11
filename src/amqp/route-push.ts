/**
 * A route shard's push (`consumer.push`): the {@link PushDelivery} of its queue, on a connection of
 * its own, kept running. Each call that brings the route's settings (`ensure`, from the servers'
 * start, Cloudflare's cron trigger, or a status request) starts it if it is not running; once
 * started, a check every few seconds starts it again after its channel or connection was lost.
 * A pause is kept in the shard's storage, so a restarted shard stays paused.
 */
import type { AMQPChannel } from "@cloudamqp/amqp-client";
import { messageHeaderFields } from "../contract/message-headers";
import type { PushState } from "../contract/route-calls";
import type { ConsumingTarget, PushConfig } from "../contract/route-settings";
import type { Logger } from "../log";
import type { ObjectTimers } from "../object-timers";
import { PushDelivery } from "../push/push-delivery";
import type { BrokerConnection } from "./broker-connection";
import { brokerReason } from "./broker-errors";
import { RouteFailureError } from "../contract/failures";
import { deliveryProperties } from "./get-message";
import type { RouteCountersStore } from "./route-counters";
import type { RouteStorage } from "./route-storage";
import { newChannel } from "./session-channels";

const PAUSED_KEY = "push_paused";
/** How often a started push checks that it still runs (its channel or connection may have been lost). */
const PUSH_CHECK_MS = 5_000;
/** How long a resume (or a status request) waits for the push to start before it answers "starting". */
const ANSWER_WITHIN_MS = 2_000;

export interface RoutePushDependencies {
  storage: RouteStorage;
  counters: RouteCountersStore;
  logger: Logger;
  /** The route's push connection (its own: the prefetch and the unacknowledged messages are the push's alone). */
  connection: (route: ConsumingTarget) => BrokerConnection;
  /** The object's timers, shared with its leases and waits. */
  timers: ObjectTimers;
}

export class RoutePush {
  readonly #deps: RoutePushDependencies;
  #route: ConsumingTarget | undefined;
  #settingsKey: string | undefined;
  #delivery: PushDelivery | undefined;
  #channel: AMQPChannel | undefined;
  #starting: Promise<void> | undefined;
  #check: ReturnType<typeof setInterval> | undefined;
  #lastStartError: { message: string; at: string } | null = null;
  /** What deliveries stopped before the current one saw last: a pause must not wipe the reason of a failure. */
  #earlier: Pick<PushState, "last_error" | "last_success_at"> = { last_error: null, last_success_at: null };
  /** Every stop under way (a pause waits for the attempts in flight): a start waits for them first. */
  #stopped: Promise<void> = Promise.resolve();
  /** Bumped by each pause: a start that began before it stops what it started. */
  #generation = 0;

  constructor(deps: RoutePushDependencies) {
    this.#deps = deps;
  }

  /** Whether it holds messages or runs (the route is then not idle). */
  get active(): boolean {
    return this.#check !== undefined;
  }

  get #paused(): boolean {
    return this.#deps.storage.kv.get<boolean>(PAUSED_KEY) === true;
  }

  /** Starts the push unless it runs or is paused; answers its state. */
  async ensure(route: ConsumingTarget): Promise<PushState> {
    this.#route = route;
    if (!this.#paused) {
      this.#watch();
      // A start may wait for a pause's attempts in flight (up to timeout_ms): the answer does not.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([this.#start().catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, ANSWER_WITHIN_MS)))]);
      clearTimeout(timer);
    }
    return this.state();
  }

  /** Stops delivery, kept across restarts: attempts under way finish, held messages go back to the queue. */
  async pause(): Promise<PushState> {
    this.#generation++;
    this.#deps.storage.kv.put(PAUSED_KEY, true);
    this.#unwatch();
    await this.#stop();
    return this.state();
  }

  async resume(route: ConsumingTarget): Promise<PushState> {
    this.#deps.storage.kv.delete(PAUSED_KEY);
    return this.ensure(route);
  }

  state(): PushState {
    const delivery = this.#delivery?.state();
    const running = !this.#paused && this.#delivers();
    return {
      state: this.#paused ? "paused" : running ? "running" : "starting",
      in_flight: delivery?.in_flight ?? 0,
      last_error: latest(latest(delivery?.last_error ?? null, this.#earlier.last_error), this.#lastStartError),
      last_success_at: newest(delivery?.last_success_at ?? null, this.#earlier.last_success_at),
    };
  }

  /** The process is stopping: delivery stops as on a pause, but is not kept paused. */
  async close(): Promise<void> {
    this.#unwatch();
    await this.#stop();
  }

  #watch(): void {
    this.#check ??= setInterval(() => void this.#start().catch(() => undefined), PUSH_CHECK_MS);
  }

  #unwatch(): void {
    clearInterval(this.#check);
    this.#check = undefined;
  }

  /** Starts delivery on a new channel, unless it runs with the current settings (one start at a time). */
  #start(): Promise<void> {
    this.#starting ??= this.#startOnce().finally(() => (this.#starting = undefined));
    return this.#starting;
  }

  async #startOnce(): Promise<void> {
    const route = this.#route;
    const push = route?.amqp.consumer.push;
    if (!route || !push || this.#paused) return;
    const key = JSON.stringify([route.amqp.url, route.amqp.consumer.queue, push]);
    if (this.#delivers() && key === this.#settingsKey) return;
    const generation = this.#generation;
    await this.#stop();
    // A pause's attempts may still be under way on its channel: a new consumer now would take the
    // messages behind theirs first (with concurrency 1, out of order), and hold more than concurrency.
    await this.#stopped;
    if (generation !== this.#generation || this.#paused) return;
    try {
      const session = await this.#deps.connection(route).session();
      const channel = await newChannel(session);
      channel.onerror = (reason) => this.#deps.logger.log("warn", "push channel closed", { route: route.id, reason });
      const delivery = this.#newDelivery(route, push);
      this.#channel = channel;
      this.#delivery = delivery;
      this.#settingsKey = key;
      await delivery.start(channel);
      this.#lastStartError = null;
      // Paused while it started (the pause found it half started): what it started stops now.
      if (generation !== this.#generation || this.#paused) {
        await delivery.pause();
        await channel.close().catch(() => undefined);
        if (this.#delivery === delivery) {
          this.#delivery = undefined;
          this.#channel = undefined;
        }
      }
    } catch (error) {
      // A pause closed the channel as it started (its consume then fails): paused, not an error.
      if (generation !== this.#generation || this.#paused) return;
      // The broker's reason (a missing queue: 404), not a stack: the shard tries again in a few seconds.
      const reason = error instanceof RouteFailureError ? error.message : brokerReason(error);
      this.#lastStartError = { message: `the push could not start: ${reason}`, at: new Date().toISOString() };
      throw error;
    }
  }

  /** Whether a delivery runs on an open channel, its consumer not cancelled by the broker. */
  #delivers(): boolean {
    return this.#delivery?.delivering === true && this.#channel !== undefined && !this.#channel.closed;
  }

  #newDelivery(route: ConsumingTarget, push: PushConfig): PushDelivery {
    const { counters, logger } = this.#deps;
    return new PushDelivery({
      timers: this.#deps.timers,
      queue: route.amqp.consumer.queue,
      push,
      maxDeliveries: route.amqp.consumer.max_deliveries,
      // Without a content type of its own, the push's default (bytes), not a GET answer's (JSON).
      messageHeaders: (message) => messageHeaderFields(deliveryProperties(message), { push: true }),
      events: {
        pushed: () => counters.increment("pushed"),
        failed: ({ messageId, attempt, reason, retryInMs }) => {
          counters.increment("push_failures");
          // Never the secret, the URL's credentials or the extra headers' values.
          logger.log("warn", "push attempt failed", {
            route: route.id,
            message_id: messageId,
            attempt,
            error: reason,
            next_retry_ms: retryInMs ?? null,
          });
        },
        deadLettered: () => counters.increment("dead_lettered"),
      },
    });
  }

  #stop(): Promise<void> {
    const delivery = this.#delivery;
    const channel = this.#channel;
    this.#delivery = undefined;
    this.#channel = undefined;
    const stopping = (async () => {
      await delivery?.pause();
      // Closing the channel gives back whatever it still holds unacknowledged.
      await channel?.close().catch(() => undefined);
      if (delivery) {
        const { last_error, last_success_at } = delivery.state();
        this.#earlier = {
          last_error: latest(last_error, this.#earlier.last_error),
          last_success_at: newest(last_success_at, this.#earlier.last_success_at),
        };
      }
    })();
    this.#stopped = Promise.all([this.#stopped, stopping]).then(() => undefined);
    return stopping;
  }
}

const latest = (a: PushState["last_error"], b: PushState["last_error"]): PushState["last_error"] =>
  !a ? b : !b ? a : a.at >= b.at ? a : b;

/** The later of two ISO times, either maybe missing. */
const newest = (a: string | null, b: string | null): string | null => (a === null ? b : b === null || a >= b ? a : b);
