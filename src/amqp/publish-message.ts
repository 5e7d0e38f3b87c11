import type { AMQPExchange, AMQPSession, ExchangePublishOptions } from "@cloudamqp/amqp-client";
import { RouteFailureError, isChannelError, replyCodeOf } from "./route-failure";
import type { PublishProperties } from "./route-messages";
import { withTimeout } from "./with-timeout";

const exchangeHandles = new WeakMap<AMQPSession, Map<string, AMQPExchange>>();

/**
 * A handle for `name` on this session. A named exchange is declared passively once (it must
 * exist; the gateway never creates topology), so a missing exchange fails with the broker's own
 * reason before anything is published.
 */
const exchangeHandle = async (session: AMQPSession, name: string): Promise<AMQPExchange> => {
  let handles = exchangeHandles.get(session);
  if (!handles) exchangeHandles.set(session, (handles = new Map()));
  const known = handles.get(name);
  if (known) return known;
  const handle = name === "" ? await session.directExchange("") : await session.exchange(name, "direct", { passive: true });
  handles.set(name, handle);
  return handle;
};

export interface PublishMessage {
  exchange: string;
  routingKey: string;
  body: ArrayBuffer;
  properties: PublishProperties;
  timeoutMs: number;
}

/**
 * Publishes on the session's confirm channel and resolves only once the broker has confirmed
 * the message (`basic.ack`). A negative confirm or a channel error rejects with "broker_error";
 * no answer within `timeoutMs` rejects with "timeout" (the message may or may not be enqueued).
 */
export const publishMessage = async (session: AMQPSession, message: PublishMessage): Promise<void> => {
  const { exchange, routingKey, body, properties, timeoutMs } = message;
  let sent = false;
  const work = (async () => {
    const handle = await exchangeHandle(session, exchange);
    sent = true;
    // amqp-client types contentType by its codec registry, which the gateway does not use: the
    // body is published as the raw bytes it arrived as, under the client's own content type.
    const options = { routingKey, confirm: true, deliveryMode: 2, contentType: properties.contentType };
    await handle.publish(new Uint8Array(body), options as unknown as ExchangePublishOptions<never>);
  })();
  try {
    await withTimeout(
      work,
      timeoutMs,
      "no_answer",
      `the broker did not confirm the message within ${timeoutMs} ms; it may or may not have been enqueued`,
    );
  } catch (error) {
    if (error instanceof RouteFailureError) throw error;
    // The exchange may have been deleted: check it again next time.
    if (replyCodeOf(error) === 404) exchangeHandles.get(session)?.delete(exchange);
    if (isChannelError(error) || isNegativeConfirm(error)) {
      throw new RouteFailureError("broker_error", `the broker refused the message: ${brokerReason(error)}`);
    }
    if (sent) {
      throw new RouteFailureError(
        "no_answer",
        `the connection to the broker was lost before it confirmed the message (${brokerReason(error)}); it may or may not have been enqueued`,
      );
    }
    throw new RouteFailureError("unavailable", `the connection to the broker was lost: ${brokerReason(error)}`);
  }
};

/** amqp-client's rejection for a `basic.nack`. */
const isNegativeConfirm = (error: unknown): boolean => error instanceof Error && error.message === "Message rejected";

/** The broker's reply text without amqp-client's "channel 1 closed:" prefix. */
export const brokerReason = (error: unknown): string => {
  const text = error instanceof Error ? error.message : String(error);
  if (text === "Message rejected") return "negative confirm (basic.nack)";
  return text.replace(/^(channel \d+|connection) closed: /, "");
};
