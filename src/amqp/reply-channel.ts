import type { AMQPChannel, AMQPMessage, AMQPSession } from "@cloudamqp/amqp-client";
import type { Deadlines } from "./deadlines";
import { consumedMessage } from "./get-message";
import { DIRECT_REPLY_TO, onReturned } from "./publish-ledger";
import { RouteFailureError } from "../contract/failures";
import type { ConsumedMessage } from "../contract/messages";
import { newChannel } from "./session-channels";

interface Waiter {
  resolve: (message: ConsumedMessage) => void;
  reject: (error: Error) => void;
}

/**
 * One channel that both publishes requests (with publisher confirms) and consumes their replies
 * from `amq.rabbitmq.reply-to`, as direct reply-to requires: every request/reply call of a route
 * object's publishing connection shares it, and replies are matched by correlation id.
 */
export class ReplyLine {
  readonly #waiting = new Map<string, Waiter>();
  #lost: Error | undefined;

  constructor(readonly channel: AMQPChannel) {}

  /**
   * Registers `id` before its request is published; settles with the reply, or rejects as
   * "no_answer" after `timeoutMs` or when the channel is lost.
   */
  expect(id: string, timeoutMs: number, deadlines: Deadlines): Promise<ConsumedMessage> {
    if (this.#lost) return Promise.reject(this.#lost);
    const reply = new Promise<ConsumedMessage>((resolve, reject) => this.#waiting.set(id, { resolve, reject }));
    return deadlines
      .within(reply, timeoutMs, "no_answer", `no reply within ${timeoutMs} ms (reply_timeout_ms); the request was published`)
      .finally(() => this.#waiting.delete(id));
  }

  /** The request was not published after all: nothing will answer it. */
  forget(id: string, error: Error): void {
    this.#waiting.get(id)?.reject(error);
  }

  readonly arrived = (delivery: AMQPMessage): void => {
    const id = delivery.properties.correlationId;
    // A reply to a request that timed out, or to none of ours: dropped (direct replies are not acked).
    if (id !== undefined) this.#waiting.get(id)?.resolve(consumedMessage(delivery));
  };

  lose(reason: string): void {
    this.#lost = new RouteFailureError(
      "no_answer",
      `the reply channel closed before the reply arrived (${reason}); the request was published`,
    );
    for (const waiter of this.#waiting.values()) waiter.reject(this.#lost);
    this.#waiting.clear();
  }

  get usable(): boolean {
    return !this.#lost && !this.channel.closed;
  }
}

/** The current {@link ReplyLine} of one connection, reopened after its channel is lost. */
export class ReplyChannel {
  #line: ReplyLine | undefined;
  #opening: Promise<ReplyLine> | undefined;

  constructor(readonly session: () => Promise<AMQPSession>) {}

  line(): Promise<ReplyLine> {
    if (this.#line?.usable) return Promise.resolve(this.#line);
    this.#opening ??= this.#open().finally(() => (this.#opening = undefined));
    return this.#opening;
  }

  async #open(): Promise<ReplyLine> {
    const channel = await newChannel(await this.session());
    // A mandatory request that no queue takes is returned on this channel, not the session's.
    channel.onReturn = onReturned;
    await channel.confirmSelect();
    const line = new ReplyLine(channel);
    const consumer = await channel.basicConsume(DIRECT_REPLY_TO, { noAck: true }, line.arrived);
    consumer.wait().then(
      () => line.lose("the reply consumer was cancelled"),
      (error: unknown) => line.lose(error instanceof Error ? error.message : String(error)),
    );
    this.#line = line;
    return line;
  }
}
