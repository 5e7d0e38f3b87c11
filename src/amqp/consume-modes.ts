import type { AMQPChannel, AMQPSession } from "@cloudamqp/amqp-client";
import type { Deadlines } from "./deadlines";
import type { TakenMessage } from "./get-message";
import { acknowledgeForHandOver, autoAckChannel, transactionalChannel } from "./hand-over";
import type { Leases } from "./leases";
import type { PendingDeliveries } from "./pending-deliveries";
import type { HandedMessage } from "../contract/route-calls";
import { opsChannel, ownChannel } from "./session-channels";
import type { ConsumerConfig, ConsumingTarget } from "../contract/route-settings";

/**
 * How a consume's messages become the client's: one per mode, chosen by {@link ConsumeModes.for}.
 * The take itself (gets, long-poll, room) is the same for every mode; what differs is the channel
 * the gets use, what happens before the answer, and what each message is handed out as.
 */
export interface ConsumeMode {
  /** The channel of the gets, and of a queue's first get on the connection. */
  channel: (session: AMQPSession) => Promise<AMQPChannel>;
  firstGetChannel: (session: AMQPSession) => Promise<AMQPChannel>;
  /**
   * Whether the messages are settled before the answer leaves (auto_ack, lease): the room their
   * answer holds is given back once it is written; otherwise the Worker gives it back as it
   * settles each message.
   */
  settledBeforeAnswer: boolean;
  /**
   * Runs before the answer: `fromGets` says whether the messages came from gets or from the
   * long-poll consumer; `timeoutMs` is the route's `operation_timeout_ms`.
   */
  beforeAnswer(taken: TakenMessage[], fromGets: boolean, timeoutMs: number): Promise<void>;
  /**
   * Each message as handed out: held for `holdMs` until the Worker settles it, `releases[i]` giving
   * back message i's share of the room; or leased for the route's `lease_timeout_ms`.
   */
  hand(taken: TakenMessage[], context: HandContext): HandedMessage[];
  /** The counter the handed messages add to now, if any (the Worker's settles count the others). */
  counter?: "consumed" | "leased";
}

/** What a consume's messages are handed out under. */
export interface HandContext {
  holdMs: number;
  releases: Array<() => void>;
  /** The route they were taken for, its queue resolved. */
  route: ConsumingTarget;
  /** The rate-limited caller, where the route tells callers apart. */
  caller: string | undefined;
}

interface ModeDependencies {
  deadlines: Deadlines;
  leases: Leases;
  pending: PendingDeliveries;
}

/** A route's consume modes, made once (a consume picks one with {@link ConsumeModes.for}, allocating nothing). */
export class ConsumeModes {
  readonly #autoAck: ConsumeMode;
  readonly #leased: ConsumeMode;
  readonly #settledByWorker: ConsumeMode;

  constructor(deps: ModeDependencies) {
    this.#autoAck = autoAck(deps);
    this.#leased = leased(deps);
    this.#settledByWorker = settledByWorker(deps);
  }

  /**
   * The mode of a consume from `consumer`. A stream (`holdAll`) holds every message until the
   * Worker has written its event, whatever the route's mode.
   */
  for(consumer: ConsumerConfig, holdAll: boolean | undefined): ConsumeMode {
    if (holdAll) return this.#settledByWorker;
    if (consumer.auto_ack) return this.#autoAck;
    if (consumer.ack === "lease") return this.#leased;
    return this.#settledByWorker;
  }
}

/**
 * `auto_ack`: the messages are the client's as they are handed over. Taken with gets, once the
 * broker has committed their acknowledgements (so never twice); pushed to the long-poll consumer,
 * once the acknowledgements are written.
 */
const autoAck = ({ deadlines }: ModeDependencies): ConsumeMode => ({
  channel: autoAckChannel,
  firstGetChannel: transactionalChannel,
  settledBeforeAnswer: true,
  beforeAnswer: async (taken, fromGets, timeoutMs) => {
    if (fromGets) await acknowledgeForHandOver(taken, deadlines, timeoutMs);
    else await Promise.all(taken.map(({ delivery }) => delivery.ack()));
  },
  hand: (taken) => taken.map(({ consumed }) => ({ message: consumed })),
  counter: "consumed",
});

/** `ack: lease`: each message is leased until the client settles it or the lease runs out. */
const leased = ({ leases }: ModeDependencies): ConsumeMode => ({
  channel: opsChannel,
  firstGetChannel: ownChannel,
  settledBeforeAnswer: true,
  beforeAnswer: () => Promise.resolve(),
  hand: (taken, { route, caller }) =>
    taken.map(({ consumed, delivery }) => ({
      message: consumed,
      leaseId: leases.lease(
        { delivery, count: consumed.deliveryCount, route },
        consumed.body,
        route.amqp.consumer.lease_timeout_ms,
        caller,
      ),
    })),
  counter: "leased",
});

/**
 * The default (and a stream's): each message stays unacknowledged until the Worker settles it,
 * acknowledged once its answer is written, requeued if it could not be. Counted as consumed then.
 */
const settledByWorker = ({ pending }: ModeDependencies): ConsumeMode => ({
  channel: opsChannel,
  firstGetChannel: ownChannel,
  settledBeforeAnswer: false,
  beforeAnswer: () => Promise.resolve(),
  hand: (taken, { holdMs, releases }) =>
    taken.map(({ consumed, delivery }, index) => ({ message: consumed, settle: pending.hold(delivery, holdMs, releases[index]) })),
});
