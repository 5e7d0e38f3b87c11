import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env";
import { BrokerConnection, type ConnectionSettings } from "./broker-connection";
import { getMessage } from "./get-message";
import { publishMessage } from "./publish-message";
import { RouteCountersStore } from "./route-counters";
import { RouteFailureError, type RouteFailure } from "./route-failure";
import { PendingDeliveries } from "./pending-deliveries";
import type {
  ConsumeOutcome,
  PublishBatchOutcome,
  PublishBatchRequest,
  PublishOutcome,
  PublishRequest,
  RouteStats,
  RouteTarget,
  SettleOutcome,
} from "./route-messages";

type Role = "publish" | "consume";

/**
 * One per route (keyed by the route id): the place where the route's AMQP connections and its
 * counters live together. A Worker isolate cannot keep a socket across requests; this object can.
 *
 * Publishing and consuming use separate connections, because a broker resource alarm blocks a
 * whole connection, and consumers must keep draining while publishers are held back.
 */
export class AmqpRouteObject extends DurableObject<Env> {
  readonly #counters: RouteCountersStore;
  readonly #connections = new Map<Role, BrokerConnection>();
  readonly #pending = new PendingDeliveries();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#counters = new RouteCountersStore(ctx.storage);
  }

  /** Publishes one message and answers once the broker has confirmed it. */
  async publish(request: PublishRequest): Promise<PublishOutcome> {
    const { route, body, properties } = request;
    const producer = route.amqp.producer;
    return this.#count("published", async () => {
      if (!producer) throw new RouteFailureError("internal", "the route has no producer");
      const connection = this.#connection("publish", route);
      const session = await connection.session();
      await publishMessage(session, {
        exchange: producer.exchange,
        routingKey: producer.routing_key,
        body,
        properties,
        persistent: producer.persistent,
        mandatory: producer.mandatory ? connection.returns : undefined,
        confirmTimeoutMs: producer.confirm_timeout_ms,
      });
      return { ok: true } as const;
    });
  }

  /**
   * Publishes every message of a batch at once, pipelined on the confirm channel, and answers
   * when each has been confirmed or has failed.
   */
  async publishBatch(request: PublishBatchRequest): Promise<PublishBatchOutcome> {
    const { route, bodies, properties } = request;
    const producer = route.amqp.producer;
    let confirmed = 0;
    const outcome = await this.#count(
      "published",
      async () => {
        if (!producer) throw new RouteFailureError("internal", "the route has no producer");
        const connection = this.#connection("publish", route);
        const session = await connection.session();
        const results = await Promise.allSettled(
          bodies.map((body, index) =>
            publishMessage(session, {
              exchange: producer.exchange,
              routingKey: producer.routing_key,
              body,
              properties:
                properties.messageId === undefined ? properties : { ...properties, messageId: `${properties.messageId}-${index}` },
              persistent: producer.persistent,
              mandatory: producer.mandatory ? connection.returns : undefined,
              confirmTimeoutMs: producer.confirm_timeout_ms,
            }),
          ),
        );
        const failures = results.flatMap((result, index) =>
          result.status === "fulfilled" ? [] : [{ index, ...asFailure(result.reason) }],
        );
        confirmed = results.length - failures.length;
        if (failures[0]) this.#counters.recordError(`${failures.length} of ${results.length} messages failed: ${failures[0].message}`);
        return { ok: true, failures } as const;
      },
      () => false,
    );
    if (confirmed > 0) this.#counters.add("published", confirmed);
    return outcome;
  }

  /**
   * Takes one message from the route's queue, or answers with `message: null` when it is empty.
   * Without auto-ack the message stays unacknowledged until the Worker calls {@link settle}.
   */
  async consume(route: RouteTarget): Promise<ConsumeOutcome> {
    const consumer = route.amqp.consumer;
    return this.#count(
      "consumed",
      async () => {
        if (!consumer) throw new RouteFailureError("internal", "the route has no consumer");
        const session = await this.#connection("consume", route).session();
        const taken = await getMessage(session, {
          queue: consumer.queue,
          autoAck: consumer.auto_ack,
          timeoutMs: route.amqp.operation_timeout_ms,
        });
        if (!taken) return { ok: true, message: null } as const;
        if (consumer.auto_ack) return { ok: true, message: taken.consumed } as const;
        const settle = this.#pending.hold(taken.delivery, route.amqp.operation_timeout_ms);
        return { ok: true, message: taken.consumed, settle } as const;
      },
      // A message taken without auto-ack counts as consumed once it is acknowledged.
      (outcome) => outcome.message !== null && outcome.settle === undefined,
    );
  }

  /** Acknowledges (the Worker's response is ready) or requeues a message taken without auto-ack. */
  async settle(token: number, outcome: "ack" | "requeue"): Promise<SettleOutcome> {
    try {
      await this.#pending.settle(token, outcome);
      if (outcome === "ack") this.#counters.increment("consumed");
      return { ok: true };
    } catch (error) {
      const failure =
        error instanceof RouteFailureError ? error.toFailure() : ({ ok: false, kind: "internal", message: String(error) } as const);
      this.#counters.recordError(failure.message);
      return failure;
    }
  }

  /** The counters behind `GET /amqp`, and whether a connection is open. */
  stats(): RouteStats {
    const connected = [...this.#connections.values()].some((connection) => connection.connected);
    return { ...this.#counters.snapshot(), connected };
  }

  /**
   * Runs one operation, counting the request and its outcome, and turns every failure into a
   * {@link RouteFailure}: errors thrown across RPC lose their fields, and a stack trace must never
   * reach a client.
   */
  async #count<T extends { ok: true }>(
    success: "published" | "consumed",
    operation: () => Promise<T>,
    counts: (outcome: T) => boolean = () => true,
  ): Promise<T | RouteFailure> {
    this.#counters.increment("total_requests");
    try {
      const outcome = await operation();
      if (counts(outcome)) this.#counters.increment(success);
      return outcome;
    } catch (error) {
      const failure: RouteFailure =
        error instanceof RouteFailureError
          ? error.toFailure()
          : { ok: false, kind: "internal", message: "internal error in the gateway; the operation was not carried out" };
      if (!(error instanceof RouteFailureError)) console.error("amqp route object: unexpected error", error);
      this.#counters.recordError(failure.message);
      return failure;
    }
  }

  /** The connection for `role`, replaced when the route's configuration has changed. */
  #connection(role: Role, route: RouteTarget): BrokerConnection {
    const settings: ConnectionSettings = {
      url: route.amqp.url,
      heartbeatSeconds: route.amqp.heartbeat_s,
      connectTimeoutMs: route.amqp.connect_timeout_ms,
      name: `amqp-edge-gateway ${route.id} ${role}`,
    };
    const current = this.#connections.get(role);
    if (current && !current.differsFrom(settings)) return current;
    void current?.close();
    const next = new BrokerConnection(settings);
    this.#connections.set(role, next);
    return next;
  }
}

const asFailure = (error: unknown): RouteFailure =>
  error instanceof RouteFailureError
    ? error.toFailure()
    : { ok: false, kind: "internal", message: "internal error in the gateway; the message was not published" };
