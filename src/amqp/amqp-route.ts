import type { AMQPSession } from "@cloudamqp/amqp-client";
import { createLogger, type Logger, type LoggingEnv } from "../log";
import { BrokerConnection, type ConnectionSettings } from "./broker-connection";
import { Deadlines } from "./deadlines";
import { consumedMessage, getMessages, isOverLimit, type TakenMessage } from "./get-message";
import { WaitingConsumer } from "./waiting-consumer";
import { ConsumeModes } from "./consume-modes";
import { IdleDisconnect, KEEP_ALIVE_MS } from "./idle-disconnect";
import { OpenWaits } from "./open-waits";
import { channelMax } from "./session-channels";
import { Leases } from "./leases";
import { MessageRetries } from "./message-retries";
import { publishMessage, type PublishMessage } from "./publish-message";
import { IdempotencyWindow, type IdempotentPlan } from "./idempotency-window";
import { DIRECT_REPLY_TO } from "./publish-ledger";
import { AsyncReplies } from "./async-replies";
import { RouteCountersStore } from "./route-counters";
import type { RouteStorage } from "./route-storage";
import { RouteFailureError, statusClass, type RouteFailure } from "../contract/failures";
import type { RouteGauges, RouteMeasures } from "../contract/metrics";
import { RouteMeasurer } from "./route-measures";
import { ObjectTimers } from "../object-timers";
import { PendingDeliveries } from "./pending-deliveries";
import { MEMORY_WAIT_MS, MemoryBudget, SMALL_BYTES, type Reservation } from "../memory-budget";
import { RateLimiter } from "./rate-limiter";
import { RoutePush } from "./route-push";
import { asFailure } from "./broker-errors";
import {
  type Admission,
  type PushAction,
  type PushState,
  type LeaseResult,
  type LeaseSettlement,
  type ReplyState,
  type ConsumeOutcome,
  type ConsumeRequest,
  type PublishManyOutcome,
  type PublishManyRequest,
  type PublishOutcome,
  type ReplyOutcome,
  type ReplyRequest,
  type RouteStats,
  type SettleOutcome,
  type DeadLetters,
  type Redriven,
} from "../contract/route-calls";
import { peekDeadLetters, redriveDeadLetters } from "./dead-letters";
import { DELAY_ENTRY_EXCHANGE, delayHeaders, delaySeconds, withoutDelayHeaders, type DelayTarget } from "./delay-queues";
import { MAX_ANSWER_BYTES, type OutgoingMessage } from "../contract/messages";
import type { BrokerTarget, ConsumingTarget, ProducerConfig, PublishingTarget, RouteTarget } from "../contract/route-settings";
import type {
  ManagementGetOutcome,
  ManagementGetRequest,
  ManagementPublishOutcome,
  ManagementPublishRequest,
} from "../contract/management-api";
import { managementGet, managementPublish } from "./management-operations";

type Role = "publish" | "consume" | "push";

/** What a route needs of the runtime that holds it. */
export interface RouteHost {
  /** Where its counters, lease lives and idempotency window are kept across restarts. */
  storage: RouteStorage;
  /** How to log (a route's settings arrive with each call). */
  env: LoggingEnv;
  /**
   * Asks to be woken at `at` (epoch ms) by {@link AmqpRoute.alarm}: a Durable Object with no
   * incoming request or alarm is evicted, open sockets and all. A process that keeps its routes
   * for its whole life has no need of it and leaves it out.
   */
  wakeAt?(at: number): Promise<void>;
}

/**
 * One per route shard (keyed by the route id): the place where the route's AMQP connections and its
 * counters live together. A Worker isolate cannot keep a socket across requests; a Durable Object
 * holding this can (`route-object.ts`), and so can a Node or Deno process (`src/server`).
 *
 * Publishing and consuming use separate connections, because a broker resource alarm blocks a
 * whole connection, and consumers must keep draining while publishers are held back.
 *
 * Its methods never throw: every failure is an outcome, so that they answer the same across a
 * Durable Object's RPC (which drops an error's fields) and in the same process.
 */
export class AmqpRoute {
  readonly #counters: RouteCountersStore;
  readonly #connections = new Map<Role, BrokerConnection>();
  /** The timers callers make (leases, waits, answers held): one runtime timer for them all. */
  readonly #timers = new ObjectTimers();
  readonly #pending = new PendingDeliveries(this.#timers);
  readonly #leases: Leases;
  /** How leased messages go back to their queue, counted, delayed, or to their dead letters. */
  readonly #retries: MessageRetries;
  /** Long-polls and streams open per rate-limited caller. */
  readonly #openWaits = new OpenWaits();
  /** Room held for waits' answers that the Worker is writing, by wait id (see {@link cancelWait}). */
  readonly #beingWritten = new Map<string, () => void>();
  /** Waits whose client went away, for a minute (see {@link cancelWait}). */
  readonly #cancelledWaits = new Map<string, number>();
  readonly #deadlines = new Deadlines();
  readonly #limiter = new RateLimiter();
  readonly #idempotency: IdempotencyWindow;
  readonly #asyncReplies = new AsyncReplies();
  /** Bodies held at once by the object's requests: publishes awaiting confirms, answers being taken. */
  readonly #memory = new MemoryBudget(OBJECT_MEMORY_BYTES);
  readonly #logger: Logger;
  /** The histograms behind `GET /amqp/metrics`. */
  readonly #measures = new RouteMeasurer();
  /** Requests being served now (an idle route's connections close only once none is). */
  #inFlight = 0;
  readonly #idle = new IdleDisconnect(
    () => this.#holdsNothing(),
    () => this.#disconnectIdle(),
  );
  /** Whether a keep-alive alarm is set (routes with `idle_disconnect_s: never`). */
  #keepAliveSet = false;
  /** Set by {@link stopWaits}: the process is stopping, and no client waits any more. */
  #stopping = false;

  readonly #host: RouteHost;
  /** What each consume mode does with what a consume took. */
  readonly #modes: ConsumeModes;
  readonly #push: RoutePush;

  constructor(host: RouteHost) {
    this.#counters = new RouteCountersStore(host.storage);
    this.#retries = new MessageRetries({
      connection: (route) => this.#connection("publish", route),
      deadlines: this.#deadlines,
      onDeadLettered: () => this.#counters.increment("dead_lettered"),
    });
    this.#leases = new Leases(
      host.storage,
      () => this.#counters.increment("expired"),
      this.#timers,
      (message, delayS) => this.#retries.putBack(message, delayS),
    );
    this.#idempotency = new IdempotencyWindow(host.storage);
    this.#modes = new ConsumeModes({ deadlines: this.#deadlines, leases: this.#leases, pending: this.#pending });
    this.#logger = createLogger(host.env);
    this.#host = host;
    this.#push = new RoutePush({
      storage: host.storage,
      counters: this.#counters,
      logger: this.#logger,
      connection: (route) => this.#connection("push", route),
      timers: this.#timers,
    });
  }

  /**
   * Publishes messages, pipelined on the confirm channel, and answers once each has been
   * confirmed or has failed. Never throws: every failure is an outcome.
   */
  async publishMany(request: PublishManyRequest): Promise<PublishManyOutcome> {
    const started = Date.now();
    const outcome = await this.#serving(request.route, () => this.#publishManyRequest(request));
    const failure = outcome.refused ?? outcome.outcomes.find((one): one is RouteFailure => !one.ok);
    this.#measures.request({ method: request.method ?? "POST", status_class: statusClass(failure) }, Date.now() - started);
    return outcome;
  }

  async #publishManyRequest(request: PublishManyRequest): Promise<PublishManyOutcome> {
    const { route, messages, admission } = request;
    this.#counters.countFor(route.amqp.url);
    const refused = this.#refused(admission);
    if (refused) return { outcomes: [], refused };
    // One call is one HTTP request, however many messages it carries.
    this.#counters.increment("total_requests");
    const bytes = messages.reduce((sum, message) => sum + message.body.byteLength, 0);
    const held = await this.#publishRoom(bytes, admission?.key);
    if (!held) return { outcomes: [], refused: this.#failed(busy("nothing was published")) };
    try {
      return await this.#publishMany(request);
    } finally {
      held.release();
    }
  }

  async #publishMany(request: PublishManyRequest): Promise<PublishManyOutcome> {
    const { route, messages, idempotency } = request;
    let plan: IdempotentPlan | undefined;
    try {
      plan = idempotency && (await this.#idempotency.plan(idempotency, messages.length));
    } catch (error) {
      return { outcomes: [], refused: this.#failed(error) };
    }
    // Without a key, every message, as sent; with one, those not confirmed under it before.
    const missing = plan?.missing;
    const published = await this.#publishAll(
      route,
      missing ? missing.map((index) => messages[index] as OutgoingMessage) : messages,
      plan && missing && ((position, enqueued) => plan.settled(missing[position] ?? -1, enqueued)),
      request.delayMs,
    );
    this.#counters.add("published", published.filter((outcome) => outcome.ok).length);
    const failure = published.find((outcome): outcome is RouteFailure => !outcome.ok);
    if (failure) this.#counters.recordError(failure.message);
    if (!plan || !missing) return { outcomes: published };
    plan.answering();
    const positionOf = new Map(missing.map((index, position) => [index, position]));
    // Those not published now were confirmed under the key before.
    const outcomes = messages.map((_, index): PublishOutcome => published[positionOf.get(index) ?? -1] ?? { ok: true });
    return { outcomes, ...(missing.length === 0 ? { replayed: true } : {}) };
  }

  /**
   * The connection and its session once per call, then every message pipelined on it, in order;
   * `settled` learns, per position, whether each message was in the end enqueued.
   *
   * A message the broker might close its channel over (an exchange or a size it has not taken on
   * this connection yet, see {@link PublishChannels}) goes alone on a channel of its own: the
   * messages before it are confirmed first, and the ones after it wait for its outcome, so a batch
   * keeps its order across the two channels, and is judged by it (an exchange refused once is
   * refused for the rest at once).
   */
  async #publishAll(
    route: PublishingTarget,
    messages: OutgoingMessage[],
    settled?: (position: number, enqueued: boolean) => void,
    delayMs?: number,
  ): Promise<PublishOutcome[]> {
    const producer = route.amqp.producer;
    const connection = this.#connection("publish", route);
    // With a delay, the messages enter the broker's delay queues, bound to their destination first.
    const delay = delayMs
      ? { seconds: delaySeconds(delayMs), target: { exchange: producer.exchange, routingKey: producer.routing_key } }
      : undefined;
    try {
      const session = await connection.session();
      if (delay) {
        const timeoutMs = route.amqp.operation_timeout_ms;
        await this.#deadlines.within(
          connection.delays.ready(session, delay.target),
          timeoutMs,
          "no_answer",
          () => `the broker did not declare the delay queues within ${timeoutMs} ms; nothing was published`,
        );
      }
    } catch (error) {
      const failure = asFailure(error);
      messages.forEach((_, position) => settled?.(position, false));
      return messages.map(() => failure);
    }
    const outcomes: Array<Promise<PublishOutcome>> = [];
    for (let position = 0; position < messages.length; position++) {
      const message = messages[position] as OutgoingMessage;
      const publishing = this.#publishing(producer, connection, message, delay);
      if (settled) publishing.onSettled = (enqueued: boolean) => settled(position, enqueued);
      const publish = () => publishMessage(publishing).then(ok, asFailure);
      if (connection.publishing.proven(producer.exchange, message.body.byteLength)) {
        outcomes.push(publish());
        continue;
      }
      await Promise.all(outcomes);
      const alone = publish();
      outcomes.push(alone);
      await alone;
    }
    return Promise.all(outcomes);
  }

  /** How `message` is published on `connection` under the route's producer settings (into the delay queues, with `delay`). */
  #publishing(
    producer: ProducerConfig,
    connection: BrokerConnection,
    message: OutgoingMessage,
    delay?: { seconds: number; target: DelayTarget },
  ): PublishMessage {
    return {
      exchange: delay ? DELAY_ENTRY_EXCHANGE : producer.exchange,
      routingKey: producer.routing_key,
      body: message.body,
      properties: delay
        ? {
            ...message.properties,
            headers: { ...withoutDelayHeaders(message.properties.headers), ...delayHeaders(delay.seconds, delay.target) },
          }
        : message.properties,
      persistent: producer.persistent,
      mandatory: producer.mandatory,
      window: connection.window,
      channels: connection.publishing,
      confirmTimeoutMs: producer.confirm_timeout_ms,
      deadlines: this.#deadlines,
      onConfirmed: (ms) => this.#measures.confirm(ms),
    };
  }

  /**
   * Request/reply: publishes the request on the connection's reply channel with direct reply-to
   * and `request.id` as its correlation id, and answers with the reply; or, async, answers once
   * the request is confirmed and keeps the reply for {@link reply}. Never throws.
   */
  async request(request: ReplyRequest): Promise<ReplyOutcome> {
    const started = Date.now();
    const outcome = await this.#serving(request.route, () => this.#replyRequest(request));
    this.#measures.request({ method: "POST", status_class: statusClass(outcome.ok ? undefined : outcome) }, Date.now() - started);
    return outcome;
  }

  async #replyRequest(request: ReplyRequest): Promise<ReplyOutcome> {
    const { route, message, id, admission } = request;
    const producer = route.amqp.producer;
    this.#counters.countFor(route.amqp.url);
    const refused = this.#refused(admission);
    if (refused) return refused;
    this.#counters.increment("total_requests");
    const held = await this.#publishRoom(message.body.byteLength, admission?.key);
    if (!held) return this.#failed(busy("nothing was published"));
    try {
      if (request.async && this.#asyncReplies.full) {
        throw new RouteFailureError(
          "unavailable",
          "the route holds as many unread replies as it can; fetch or let some expire; nothing was published",
        );
      }
      const connection = this.#connection("publish", route);
      const line = await connection.replies.line();
      const arrival = line.expect(id, producer.reply_timeout_ms, this.#deadlines);
      // Until it is known whether the request went out, a failed wait is the publish's to report.
      arrival.catch(() => undefined);
      try {
        await publishMessage({
          ...this.#publishing(producer, connection, message),
          properties: { ...message.properties, replyTo: DIRECT_REPLY_TO, correlationId: id },
          // Always mandatory: a request no queue takes can have no reply, so say so now (422).
          mandatory: true,
          channel: () => Promise.resolve(line.channel),
        });
      } catch (error) {
        line.forget(id, error instanceof Error ? error : new Error(String(error)));
        throw error;
      }
      this.#counters.increment("published");
      if (request.async) {
        this.#asyncReplies.track(id, arrival, producer.reply_timeout_ms);
        return { ok: true };
      }
      const reply = await arrival;
      // In memory already: counted, so that other requests see it.
      held.resize(message.body.byteLength + reply.body.byteLength);
      // What crosses from the object to the Worker is limited to 32 MiB.
      if (reply.body.byteLength > MAX_ANSWER_BYTES) {
        throw new RouteFailureError(
          "broker_error",
          `the reply is ${reply.body.byteLength} bytes, more than the ${MAX_ANSWER_BYTES} the gateway answers with; the request was published`,
        );
      }
      return { ok: true, reply };
    } catch (error) {
      return this.#failed(error);
    } finally {
      held.release();
    }
  }

  /**
   * An async request's reply: arrived, still pending, or unknown (expired, or never made here);
   * or, with `admission`, the refusal of a caller over the route's `rate_limit`.
   */
  reply(id: string, admission?: Admission): ReplyState | RouteFailure {
    this.#idle.request();
    return this.#refused(admission) ?? this.#asyncReplies.get(id);
  }

  /**
   * Takes up to `request.max` messages from the route's queue (none when it is empty). With
   * auto-ack they are the client's now; under `ack: lease` each is leased until the client
   * settles it; otherwise each stays unacknowledged until the Worker calls {@link settle}.
   */
  async consume(route: ConsumingTarget, request: ConsumeRequest): Promise<ConsumeOutcome> {
    const started = Date.now();
    const outcome = await this.#serving(route, () => this.#consumeRequest(route, request));
    // A stream's later takes are not requests of their own.
    if (!request.continued) {
      const labels = { method: request.method ?? "GET", status_class: statusClass(outcome.ok ? undefined : outcome) };
      this.#measures.request(labels, Date.now() - started);
    }
    return outcome;
  }

  async #consumeRequest(route: ConsumingTarget, request: ConsumeRequest): Promise<ConsumeOutcome> {
    const consumer = route.amqp.consumer;
    this.#counters.countFor(route.amqp.url);
    if (request.waitId !== undefined && this.#cancelledWaits.has(request.waitId)) return { ok: true, messages: [] };
    if (this.#stopping) {
      // A stream ends (its next take is refused); a long-poll takes what is there and answers.
      if (request.continued) return { ok: false, kind: "unavailable", message: "the gateway is stopping; reconnect", retryAfterS: 1 };
      if (request.waitMs) request = { ...request, waitMs: 0 };
    }
    if (!request.continued) {
      const refused = this.#refused(request.admission);
      if (refused) return refused;
      this.#counters.increment("total_requests");
    }
    const { admission, waitId } = request;
    if (request.waitMs && waitId !== undefined && admission && !this.#openWaits.open(waitId, admission.key, admission.openWaits)) {
      this.#counters.increment("rejected");
      return {
        ok: false,
        kind: "rate_limited",
        message: `this caller holds ${admission.openWaits} long-polls and streams open on this route already (rate_limit.open_waits); retry once one has ended`,
        retryAfterS: 1,
      };
    }
    try {
      const connection = this.#connection("consume", route);
      const session = await connection.session();
      // Made only when a client is about to wait: a queue that does not exist (the passive
      // declare of the get refuses it first) never gets one.
      const waitingNow = connection.waiting.get(consumer.queue)?.waiting ?? 0;
      // With clients already waiting, a newcomer joins the line rather than get ahead of it.
      const mode = this.#modes.for(consumer, request.holdAll);
      // Taken unacknowledged in every mode, auto-ack too: a message the broker hands over after
      // this request was answered goes back to the queue (see getMessages).
      const sized = await connection.queues.sizing(consumer.queue, route.amqp.operation_timeout_ms);
      let room: Reservation | undefined;
      try {
        room = await this.#answerRoom(request, connection.queues.typicalBytes(consumer.queue));
      } catch (error) {
        sized();
        throw error;
      }
      // No room now: a wait waits for room as it waits for a message (the consumer hands over only
      // with room); a take that answers at once is refused.
      if (!room && !request.waitMs) {
        sized();
        throw busy("nothing was taken");
      }
      const caller = admission?.key;
      let held: Reservation = room ?? this.#nothingHeld(caller);
      const maxBytes = Math.min(
        room ? room.bytes : this.#plannedAnswer(request, connection.queues.typicalBytes(consumer.queue)),
        request.maxBytes ?? MAX_ANSWER_BYTES,
      );
      let taken: TakenMessage[];
      let fromGets = true;
      // Whether `held` goes on with the messages (until they are out of the Worker's hands) rather than end here.
      let passedOn = false;
      try {
        try {
          taken =
            request.waitMs && (waitingNow > 0 || !room)
              ? []
              : await getMessages(session, {
                  queue: consumer.queue,
                  channel: mode.channel,
                  firstGetChannel: mode.firstGetChannel,
                  count: request.max,
                  maxBytes,
                  timeoutMs: route.amqp.operation_timeout_ms,
                  deadlines: this.#deadlines,
                  directory: connection.queues,
                  maxDeliveries: consumer.max_deliveries,
                  deadLetter: (delivery) => this.#retries.deadLetter(delivery),
                });
        } finally {
          // The gets are answered: a size is known now, unless the queue was empty.
          sized();
        }
        if (taken.length === 0 && request.waitMs) {
          // Nothing is held while waiting: the consumer holds room for what it hands over.
          held.release();
          if (waitingNow > 0 || !room) await connection.queues.check(consumer.queue, this.#deadlines, route.amqp.operation_timeout_ms);
          const waiting = this.#waitingFor(connection, consumer.queue, waitedQueuesAtMost(session));
          const answer = await waiting.wait(request.waitId ?? crypto.randomUUID(), request.max, request.waitMs, maxBytes, caller);
          held = answer.held ?? this.#nothingHeld(caller);
          // Delivered as often as the route allows: to the dead letters (the wait answers without them).
          const [handed, dead] = partition(answer.deliveries, (delivery) => !isOverLimit(delivery, consumer.max_deliveries));
          await Promise.all(dead.map((delivery) => this.#retries.deadLetter(delivery)));
          taken = handed.map((delivery) => ({ consumed: consumedMessage(delivery), delivery }));
          fromGets = false;
        }
        held.resize(taken.reduce((sum, one) => sum + one.consumed.body.byteLength, 0));
        await mode.beforeAnswer(taken, fromGets, route.amqp.operation_timeout_ms);
        passedOn = true;
      } finally {
        if (!passedOn) held.release();
      }
      const remaining = taken.at(-1)?.consumed.messageCount;
      const holdMs = request.holdMs ?? route.amqp.operation_timeout_ms;
      // The room stays held while the Worker writes the answer: for messages it settles, until
      // each is settled; for a long-poll's answer, until the Worker says it is written
      // (cancelWait); for an answer taken at once, the Worker holds room of its own for it.
      if (mode.settledBeforeAnswer) {
        if (waitId !== undefined && taken.length > 0) this.#holdUntilWritten(waitId, held, holdMs);
        else held.release();
      }
      // Each settled message gives back its share of the room (only where the Worker settles them).
      const releases = mode.settledBeforeAnswer ? [] : parts(held, taken.length);
      const handed = mode.hand(taken, { holdMs, releases, route, caller });
      if (taken.length === 0) held.release();
      if (mode.counter) this.#counters.add(mode.counter, handed.length);
      return { ok: true, messages: handed, ...(remaining === undefined ? {} : { remaining }) };
    } catch (error) {
      if (waitId !== undefined) this.#openWaits.close(waitId);
      return this.#failed(error);
    } finally {
      // A long-poll's wait ends with its take; a stream's with the stream (cancelWait).
      if (waitId !== undefined && !request.holdAll) this.#openWaits.close(waitId);
    }
  }

  /** Room in the object's memory for `bytes` of bodies to publish, at once or within a second; undefined when there is none. */
  async #publishRoom(bytes: number, caller: string | undefined): Promise<Reservation | undefined> {
    return this.#memory.take(bytes, "publish", caller) ?? (await this.#memory.takeWithin(bytes, "publish", caller, MEMORY_WAIT_MS));
  }

  /**
   * Room in the object's memory for the answer of a take of up to `request.max` messages, planned
   * by the queue's typical body size (64 KiB while it is unknown) and at most the answer's limit
   * (or the Worker's, `request.maxBytes`); at least one message's worth, waiting up to a second
   * for it, or undefined when even that does not fit.
   */
  async #answerRoom(request: ConsumeRequest, typical: number | undefined): Promise<Reservation | undefined> {
    const caller = request.admission?.key;
    const each = Math.max(1, typical ?? SMALL_BYTES);
    // A share of the memory, so that several answers can be taken at once; and at least one
    // message by the sizes this object has seen, whatever the Worker planned by its own (it may
    // not have seen any yet): the first message is taken whatever its size, and a hundred takes
    // planned at 64 KiB each held a hundred 1 MiB messages at once.
    const least = each;
    const want = Math.max(
      least,
      Math.min(request.maxBytes ?? MAX_ANSWER_BYTES, request.max * each, Math.floor(this.#memory.largest / ANSWERS_AT_ONCE)),
    );
    return (
      this.#memory.take(want, "answer", caller) ??
      this.#memory.take(Math.max(least, this.#memory.room("answer", caller)), "answer", caller) ??
      (await this.#memory.takeWithin(least, "answer", caller, MEMORY_WAIT_MS))
    );
  }

  /** A reservation of nothing, for `caller` (always granted). */
  #nothingHeld(caller: string | undefined): Reservation {
    return this.#memory.holdNothing("answer", caller);
  }

  /** The most body bytes an answer to `request` is planned to carry (see {@link #answerRoom}). */
  #plannedAnswer(request: ConsumeRequest, typical: number | undefined): number {
    const each = Math.max(1, typical ?? SMALL_BYTES);
    return Math.min(request.maxBytes ?? MAX_ANSWER_BYTES, request.max * each, Math.floor(this.#memory.largest / ANSWERS_AT_ONCE));
  }

  /**
   * Keeps `held`, the room of a wait's answer, until the Worker has written it ({@link cancelWait}
   * with `waitId`), or for `holdMs` at most: a client that does not read its answer holds it, and
   * the consumer hands no more over than the room left.
   */
  #holdUntilWritten(waitId: string, held: Reservation, holdMs: number): void {
    this.#beingWritten.get(waitId)?.();
    const cancelTimer = this.#timers.after(holdMs, () => release());
    const release = () => {
      cancelTimer();
      if (this.#beingWritten.get(waitId) === release) this.#beingWritten.delete(waitId);
      held.release();
    };
    this.#beingWritten.set(waitId, release);
  }

  /**
   * A long-poll or stream client went away (the Worker saw its request aborted), or a long-poll's
   * answer has been written: it leaves the line at once, the room held for its answer is free,
   * and a later take under the same id (a stream's next) takes nothing.
   */
  cancelWait(waitId: string): void {
    this.#idle.request();
    this.#beingWritten.get(waitId)?.();
    this.#openWaits.close(waitId);
    for (const waiting of this.#waitingConsumers()) waiting.leave(waitId);
    const now = Date.now();
    this.#cancelledWaits.set(waitId, now);
    for (const [id, at] of this.#cancelledWaits) {
      if (this.#cancelledWaits.size <= 10_000 && now - at < 60_000) break;
      this.#cancelledWaits.delete(id);
    }
  }

  /**
   * The long-poll consumer for `queue` on `connection`; a new connection gets new ones. Each
   * has a channel of its own while it is in use, so the queues waited on at once are bounded:
   * past `atMost` a wait on yet another queue is refused (503), and the waits on
   * queues that already have a consumer go on.
   */
  #waitingFor(connection: BrokerConnection, queue: string, atMost: number): WaitingConsumer {
    const queues = connection.waiting;
    let waiting = queues.get(queue);
    if (waiting) return waiting;
    // Channels kept open for a client that polls again soon are closed first, oldest first.
    for (const other of [...queues.values()]) {
      if (queues.size < atMost) break;
      other.closeIfIdle();
    }
    if (queues.size >= atMost) {
      throw new RouteFailureError(
        "unavailable",
        `clients of this route are waiting on ${queues.size} queues at once, as many as it serves; retry`,
      );
    }
    const created = new WaitingConsumer(queue, {
      session: () => connection.session(),
      room: () => this.#memory.room("answer"),
      reserve: (bytes, caller) => this.#memory.take(bytes, "answer", caller),
      typicalBytes: connection.queues.typicalBytes(queue),
      timers: this.#timers,
      onClosed: () => {
        if (queues.get(queue) === created) queues.delete(queue);
      },
    });
    queues.set(queue, (waiting = created));
    return waiting;
  }

  /** The long-poll consumers of every connection of the route. */
  *#waitingConsumers(): Iterable<WaitingConsumer> {
    for (const connection of this.#connections.values()) yield* connection.waiting.values();
  }

  /**
   * Settles leased messages (`POST <path>/ack` and `/nack`), or extends their leases
   * (`POST <path>/extend`), one result per id; or, with
   * `admission`, refuses a caller over the route's `rate_limit` and settles none.
   */
  async settleLeases(ids: string[], how: LeaseSettlement, admission?: Admission): Promise<LeaseResult[] | RouteFailure> {
    const started = Date.now();
    const refused = this.#refused(admission);
    if (refused) {
      this.#measures.request({ method: "POST", status_class: statusClass(refused) }, Date.now() - started);
      return refused;
    }
    const results = await this.#serving(undefined, () => this.#leases.settle(ids, how));
    // The class of the answer's status: 200 or 207 when any id was settled, else the ids' own.
    const status = results.some((result) => result.status === 200) ? 200 : (results[0]?.status ?? 200);
    this.#measures.request({ method: "POST", status_class: `${String(status).charAt(0)}xx` }, Date.now() - started);
    // An extension settles nothing: no counter.
    if (typeof how === "object" && "extendMs" in how) return results;
    const settled = results.filter((result) => result.status === 200).length;
    if (settled > 0) this.#counters.add(how === "ack" ? "acked" : "nacked", settled);
    if (how === "ack") this.#counters.add("consumed", settled);
    return results;
  }

  /** Up to `max` messages of the route's `dead_letter_queue`, left where they are (`GET <path>/dead`). */
  async deadLetters(route: ConsumingTarget, max: number): Promise<DeadLetters | RouteFailure> {
    const queue = route.amqp.consumer.dead_letter_queue;
    if (queue === undefined) return { ok: false, kind: "misconfigured", message: `route ${route.id} has no consumer.dead_letter_queue` };
    this.#counters.countFor(route.amqp.url);
    try {
      const session = await this.#connection("consume", route).session();
      const timeoutMs = route.amqp.operation_timeout_ms;
      const messages = await this.#serving(route, () =>
        this.#deadlines.within(
          peekDeadLetters(session, queue, max),
          timeoutMs,
          "no_answer",
          () => `the broker did not answer within ${timeoutMs} ms`,
        ),
      );
      return { ok: true, messages };
    } catch (error) {
      return this.#failed(error);
    }
  }

  /** Moves up to `max` of the route's dead letters back to its queue (`POST <path>/redrive`). */
  async redrive(route: ConsumingTarget, max: number): Promise<Redriven | RouteFailure> {
    if (route.amqp.consumer.dead_letter_queue === undefined) {
      return { ok: false, kind: "misconfigured", message: `route ${route.id} has no consumer.dead_letter_queue` };
    }
    this.#counters.countFor(route.amqp.url);
    try {
      const session = await this.#connection("consume", route).session();
      const publishing = this.#connection("publish", route);
      await publishing.session();
      const moved = await this.#serving(route, () => redriveDeadLetters({ route, session, publishing, deadlines: this.#deadlines, max }));
      if (moved.error) this.#counters.recordError(moved.error);
      return { ok: true, ...moved };
    } catch (error) {
      return this.#failed(error);
    }
  }

  /**
   * The management API's publish (`management_api`): one message, mandatory, answered once the
   * broker confirmed it, with whether a queue took it. Counted as the routes' requests are.
   */
  async managementPublish(request: ManagementPublishRequest): Promise<ManagementPublishOutcome> {
    const started = Date.now();
    const outcome = await this.#serving(request.target, () => this.#managementPublish(request));
    this.#measures.request({ method: "POST", status_class: statusClass(outcome.ok ? undefined : outcome) }, Date.now() - started);
    return outcome;
  }

  async #managementPublish(request: ManagementPublishRequest): Promise<ManagementPublishOutcome> {
    const { target, admission } = request;
    this.#counters.countFor(target.amqp.url);
    const refused = this.#refused(admission);
    if (refused) return refused;
    this.#counters.increment("total_requests");
    const bytes = request.body.byteLength;
    const held = await this.#publishRoom(bytes, admission?.key);
    if (!held) return this.#failed(busy("nothing was published"));
    try {
      const routed = await managementPublish(request, {
        connection: this.#connection("publish", target),
        deadlines: this.#deadlines,
        confirmTimeoutMs: target.amqp.operation_timeout_ms,
        onConfirmed: (ms) => this.#measures.confirm(ms),
      });
      if (routed) this.#counters.increment("published");
      return { ok: true, routed };
    } catch (error) {
      return this.#failed(error);
    } finally {
      held.release();
    }
  }

  /** The management API's get: up to `count` messages of a queue, settled by `ackmode`, in the management API's shape. */
  async managementGet(request: ManagementGetRequest): Promise<ManagementGetOutcome> {
    const started = Date.now();
    const outcome = await this.#serving(request.target, () => this.#managementGet(request));
    this.#measures.request({ method: "POST", status_class: statusClass(outcome.ok ? undefined : outcome) }, Date.now() - started);
    return outcome;
  }

  async #managementGet(request: ManagementGetRequest): Promise<ManagementGetOutcome> {
    const { target, admission } = request;
    this.#counters.countFor(target.amqp.url);
    const refused = this.#refused(admission);
    if (refused) return refused;
    this.#counters.increment("total_requests");
    const held = this.#memory.holdNothing("answer", admission?.key);
    try {
      const session = await this.#connection("consume", target).session();
      const messages = await managementGet(request, {
        session,
        deadlines: this.#deadlines,
        timeoutMs: target.amqp.operation_timeout_ms,
        held,
      });
      if (request.ackmode === "ack_requeue_false") this.#counters.add("consumed", messages.length);
      return { ok: true, messages };
    } catch (error) {
      return this.#failed(error);
    } finally {
      held.release();
    }
  }

  /**
   * Takes a request from `admission`'s bucket for an attempt that `auth` refused: the refusal
   * (429) once the bucket is empty, else undefined and the 401 stands.
   */
  refuseAttempt(admission: Admission): RouteFailure | undefined {
    return this.#refused(admission);
  }

  /** Acknowledges (the Worker's response is ready) or requeues messages taken without auto-ack. */
  async settle(tokens: number[], outcome: "ack" | "requeue"): Promise<SettleOutcome> {
    try {
      await this.#serving(undefined, () => Promise.all(tokens.map((token) => this.#pending.settle(token, outcome))));
      if (outcome === "ack") this.#counters.add("consumed", tokens.length);
      return { ok: true };
    } catch (error) {
      return this.#failed(error);
    }
  }

  /** The counters behind `GET /amqp` for the route's current URL, and whether a connection is open. */
  stats(url: string): RouteStats {
    this.#counters.countFor(url);
    const connected = [...this.#connections.values()].some((connection) => connection.connected);
    return { ...this.#counters.snapshot(), connected };
  }

  /** The counters of {@link stats}, with the histograms and gauges behind `GET /amqp/metrics`. */
  metrics(url: string): RouteStats & { measures: RouteMeasures } {
    const connections = [...this.#connections.values()];
    const gauges: RouteGauges = {
      publishes_in_flight: connections.reduce((sum, connection) => sum + connection.window.inFlight, 0),
      leases_held: this.#leases.size,
      long_poll_waiters: [...this.#waitingConsumers()].reduce((sum, waiting) => sum + waiting.waiting, 0),
      push_in_flight: this.#push.state().in_flight,
    };
    return { ...this.stats(url), measures: this.#measures.snapshot(gauges) };
  }

  /**
   * Whether the route can serve now (`GET /readyz`): each broker connection it uses (publish,
   * consume) is open, or opens within its connect timeout. Kept open afterwards as after any
   * request; not counted as one, nor its failure as the route's error.
   */
  async readiness(route: RouteTarget): Promise<{ ok: true } | RouteFailure> {
    const roles: Role[] = [];
    if (route.amqp.producer) roles.push("publish");
    if (route.amqp.consumer) roles.push("consume");
    try {
      await this.#serving(route, () => Promise.all(roles.map((role) => this.#connection(role, route).session())));
      return { ok: true };
    } catch (error) {
      return asFailure(error);
    }
  }

  /**
   * A push route's delivery (`consumer.push`): `ensure` starts it unless it runs or is paused,
   * `pause` stops it (kept across restarts; held messages go back to the queue), `resume` starts
   * it again. Each answers the push's state.
   */
  async push(route: ConsumingTarget, action: PushAction): Promise<PushState | RouteFailure> {
    if (!route.amqp.consumer.push) return { ok: false, kind: "misconfigured", message: `route ${route.id} has no consumer.push` };
    this.#counters.countFor(route.amqp.url);
    try {
      // Cloudflare evicts an object no request reaches: the keep-alive alarm holds a pushing one,
      // and where it was evicted all the same, the Worker's cron trigger calls here again.
      if (action !== "pause") this.#keepAwake();
      if (action === "pause") return await this.#push.pause();
      if (action === "resume") return await this.#push.resume(route);
      return await this.#push.ensure(route);
    } catch (error) {
      return asFailure(error);
    }
  }

  /**
   * The process is stopping (SIGTERM on Node and Deno): every long-poll answers now with what it
   * has, every stream ends, and a new wait answers at once. Requests in flight go on.
   */
  stopWaits(): void {
    this.#stopping = true;
    for (const waiting of this.#waitingConsumers()) waiting.leaveAll();
  }

  /**
   * Closes the route's broker connections for good: every message handed out and not yet settled
   * (leases, answers not yet written) goes back to its queue with them, as the broker requeues
   * what a closed connection leaves unacknowledged.
   */
  async close(): Promise<void> {
    this.#stopping = true;
    await this.#push.close();
    const connections = [...this.#connections.values()];
    this.#connections.clear();
    await Promise.all(connections.map((connection) => connection.close()));
  }

  /**
   * The refusal of a request over the route's `rate_limit`, counted as `rejected` (not as a
   * request to the broker, nor as an error), or undefined when it may go on.
   */
  #refused(admission: Admission | undefined): RouteFailure | undefined {
    if (!admission) return undefined;
    const retryAfterS = this.#limiter.admit(admission);
    if (retryAfterS === undefined) return undefined;
    this.#counters.increment("rejected");
    return {
      ok: false,
      kind: "rate_limited",
      message: `rate limit of ${admission.requests} requests per ${admission.periodS} s reached; retry in ${retryAfterS} s`,
      retryAfterS,
    };
  }

  /** Counts a failed request and turns its error into a {@link RouteFailure}. */
  #failed(error: unknown): RouteFailure {
    const failure = asFailure(error);
    this.#counters.recordError(failure.message);
    return failure;
  }

  /**
   * Runs one request's work, counted as in flight: the route is idle only once it is done, and
   * its idle time starts from its end (a long-poll of 50 s is not idle time). `route` brings the
   * route's `idle_disconnect_s`; settles and replies keep the setting last seen.
   */
  async #serving<T>(route: BrokerTarget | undefined, work: () => Promise<T>): Promise<T> {
    const idleAfter = route?.amqp.idle_disconnect_s;
    this.#inFlight++;
    this.#idle.request(idleAfter);
    if (idleAfter === "never") this.#keepAwake();
    try {
      return await work();
    } finally {
      this.#inFlight--;
      this.#idle.request();
    }
  }

  /** Nothing is held for a client: no request in flight, no lease, no answer being written or settled, no async reply awaited or kept. */
  #holdsNothing(): boolean {
    return (
      this.#inFlight === 0 &&
      this.#leases.size === 0 &&
      this.#pending.size === 0 &&
      this.#beingWritten.size === 0 &&
      !this.#asyncReplies.holding &&
      !this.#push.active
    );
  }

  /** Closes the broker connections of a route idle for its `idle_disconnect_s`; the next request connects again. */
  #disconnectIdle(): void {
    for (const [role, connection] of this.#connections) {
      this.#retire(role, connection);
      this.#logger.log("info", "broker disconnected while idle", { connection: connection.settings.name });
    }
  }

  /**
   * Sets the keep-alive alarm of a route that stays connected, unless one is set: an object with
   * no incoming request or alarm is evicted after 70-140 s (an open socket holds it 15 minutes
   * at most).
   */
  #keepAwake(): void {
    if (this.#keepAliveSet || !this.#host.wakeAt) return;
    this.#keepAliveSet = true;
    void this.#host.wakeAt(Date.now() + KEEP_ALIVE_MS).catch(() => (this.#keepAliveSet = false));
  }

  /**
   * The keep-alive alarm: set again while the object holds a connection (and its route says
   * `never`), or pushes.
   */
  alarm(): void {
    this.#keepAliveSet = false;
    if ((this.#idle.keepsConnected && this.#connections.size > 0) || this.#push.active) this.#keepAwake();
  }

  /** Closes `connection` for good and forgets it, with its long-poll consumers; the next request for `role` opens another. */
  #retire(role: Role, connection: BrokerConnection): void {
    if (this.#connections.get(role) === connection) this.#connections.delete(role);
    void connection.close();
  }

  /** The connection for `role`, replaced when the route's configuration has changed. */
  #connection(role: Role, route: BrokerTarget): BrokerConnection {
    const settings: ConnectionSettings = {
      url: route.amqp.url,
      heartbeatSeconds: route.amqp.heartbeat_s,
      connectTimeoutMs: route.amqp.connect_timeout_ms,
      name: `amqp-edge-gateway ${route.id} ${role}`,
      topology: route.amqp.topology,
      operationTimeoutMs: route.amqp.operation_timeout_ms,
      noDelay: role !== "publish",
    };
    const current = this.#connections.get(role);
    if (current && !current.differsFrom(settings)) return current;
    if (current) this.#retire(role, current);
    const next = new BrokerConnection(settings, this.#deadlines, this.#logger);
    this.#connections.set(role, next);
    return next;
  }
}

const ok = (): PublishOutcome => ({ ok: true });

/** `items` split into those `keep` keeps and the others. */
const partition = <T>(items: T[], keep: (item: T) => boolean): [T[], T[]] => {
  const kept: T[] = [];
  const others: T[] = [];
  for (const item of items) (keep(item) ? kept : others).push(item);
  return [kept, others];
};

/**
 * `count` functions that each give back one share of `held` (once), the last one all of it: the
 * room of an answer's messages, freed as each is settled. A share is an equal part: only the sum
 * matters, and it is what the budget counts.
 */
const parts = (held: Reservation, count: number): Array<() => void> => {
  let left = count;
  return Array.from({ length: count }, () => {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      left -= 1;
      if (left === 0) held.release();
      else held.resize(Math.round((held.bytes * left) / (left + 1)));
    };
  });
};

/**
 * Most queues one connection waits on at once (a channel each), and the channels kept for the
 * connection's other uses (its ops channel, queue checks, topology).
 */
const MAX_WAITED_QUEUES = 1000;
const RESERVED_CHANNELS = 8;

/** How many queues a connection may wait on at once: within what the broker lets it open. */
const waitedQueuesAtMost = (session: AMQPSession): number => {
  const negotiated = channelMax(session);
  return negotiated > 0 ? Math.max(1, Math.min(MAX_WAITED_QUEUES, negotiated - RESERVED_CHANNELS)) : MAX_WAITED_QUEUES;
};

/**
 * Bytes of message bodies one route object holds at once (publishes awaiting their confirms,
 * answers being taken): with the copies the runtime makes of them, well inside an isolate's
 * 128 MB (measured: BENCHMARKS.md, "Memory").
 */
const OBJECT_MEMORY_BYTES = 16 * 1024 * 1024;

/** How many answers of the largest size the object's memory holds at once. */
const ANSWERS_AT_ONCE = 2;

/** The refusal of a request the object's memory has no room for now (503, Retry-After). */
const busy = (what: string): RouteFailureError =>
  new RouteFailureError(
    "unavailable",
    `the route is holding as many message bytes as it can at once (its other requests); ${what}, retry`,
    1,
  );
