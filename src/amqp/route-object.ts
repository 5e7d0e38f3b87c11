import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env";
import { BrokerConnection, type ConnectionSettings } from "./broker-connection";
import { getMessage } from "./get-message";
import { publishMessage } from "./publish-message";
import { RouteCountersStore } from "./route-counters";
import { RouteFailureError, type RouteFailure } from "./route-failure";
import type { ConsumeOutcome, PublishOutcome, PublishRequest, RouteStats, RouteTarget } from "./route-messages";

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

  /** Takes one message from the route's queue, or answers with `message: null` when it is empty. */
  async consume(route: RouteTarget): Promise<ConsumeOutcome> {
    const consumer = route.amqp.consumer;
    return this.#count(
      "consumed",
      async () => {
        if (!consumer) throw new RouteFailureError("internal", "the route has no consumer");
        const session = await this.#connection("consume", route).session();
        const message = await getMessage(session, {
          queue: consumer.queue,
          autoAck: consumer.auto_ack,
          timeoutMs: route.amqp.operation_timeout_ms,
        });
        return { ok: true, message } as const;
      },
      (outcome) => outcome.message !== null,
    );
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
