import type { AMQPSession } from "@cloudamqp/amqp-client";
import type { BrokerConnection } from "./broker-connection";
import type { Deadlines } from "./deadlines";
import { publishMessage } from "./publish-message";
import { queueFailure } from "./queue-directory";
import { ownChannel } from "./session-channels";
import type { Reservation } from "../memory-budget";
import { RouteFailureError } from "../contract/failures";
import { MAX_ANSWER_BYTES } from "../contract/messages";
import type { ManagementGetRequest, ManagementMessage, ManagementPublishRequest } from "../contract/management-api";
import { managementMessage } from "./management-messages";

interface PublishDeps {
  connection: BrokerConnection;
  deadlines: Deadlines;
  confirmTimeoutMs: number;
  onConfirmed: (ms: number) => void;
}

/**
 * The management API's publish: one message, mandatory, on the connection's confirm channel
 * (a refused exchange gets a channel of its own, as for any route), answered once the broker has
 * confirmed it: true when a queue took it, false when the broker returned it. The properties go
 * out as given: no delivery mode unless the caller set one, as the broker's own API does.
 */
export const managementPublish = async (request: ManagementPublishRequest, deps: PublishDeps): Promise<boolean> => {
  const { connection } = deps;
  await connection.session();
  try {
    await publishMessage({
      exchange: request.exchange,
      routingKey: request.routingKey,
      body: request.body,
      properties: request.properties,
      persistent: undefined,
      mandatory: true,
      window: connection.window,
      channels: connection.publishing,
      confirmTimeoutMs: deps.confirmTimeoutMs,
      deadlines: deps.deadlines,
      onConfirmed: deps.onConfirmed,
      // The broker returns such a message without its BCC: on the shared channel, its return
      // would look like another caller's same message without one, and be matched to the wrong one.
      alone: request.properties.headers !== undefined && Object.hasOwn(request.properties.headers, "BCC"),
    });
    return true;
  } catch (error) {
    if (error instanceof RouteFailureError && error.kind === "unroutable") return false;
    throw error;
  }
};

interface GetDeps {
  session: AMQPSession;
  deadlines: Deadlines;
  timeoutMs: number;
  /** Room for the bodies taken, in the route object's memory (grown as each arrives). */
  held: Reservation;
}

/**
 * The management API's get: up to `count` messages with `basic.get`, in queue order, on a channel
 * of the request's own (a refusal closes nobody else's), then settled by `ackmode` as the broker's
 * API does: `ack_requeue_false` acknowledges them, `reject_requeue_false` rejects them (to the
 * queue's dead-letter exchange, if any), and the two requeue modes leave them unacknowledged until
 * the channel closes, which puts them back in their places, marked redelivered. Taking every
 * message before settling any is what keeps a requeue mode from getting the same message again.
 *
 * Bounded whatever `count` says: the bodies taken fit the route object's memory (`held`, shared
 * with every other caller) and one answer; a message past either stays in the queue (the first
 * is always taken). Nothing is settled if the broker does not answer in time: closing the channel
 * puts everything back.
 */
export const managementGet = async (request: ManagementGetRequest, deps: GetDeps): Promise<ManagementMessage[]> => {
  const { queue, count, ackmode } = request;
  const channel = await ownChannel(deps.session);
  let timedOut = false;
  const work = (async (): Promise<ManagementMessage[]> => {
    const taken: ManagementMessage[] = [];
    let lastTag = 0;
    let bytes = 0;
    const maxBytes = Math.min(request.maxBytes, MAX_ANSWER_BYTES);
    while (taken.length < count) {
      const delivery = await channel.basicGet(queue, { noAck: false });
      if (!delivery) break;
      bytes += delivery.bodySize;
      // Past the answer's size or the memory's room: left unacknowledged, back with the channel's close.
      if (taken.length > 0 && (bytes > maxBytes || !deps.held.grow(bytes))) break;
      if (taken.length === 0) deps.held.resize(bytes);
      lastTag = delivery.deliveryTag;
      taken.push(managementMessage(delivery, request));
    }
    if (timedOut || taken.length === 0) return taken;
    if (ackmode === "ack_requeue_false") await channel.basicAck(lastTag, true);
    if (ackmode === "reject_requeue_false") await channel.basicNack(lastTag, false, true);
    return taken;
  })();
  // Past the deadline the channel is closed under it: its later failure is nobody's to hear.
  work.catch(() => undefined);
  try {
    return await deps.deadlines.within(work, deps.timeoutMs, "no_answer", () => `the broker did not answer within ${deps.timeoutMs} ms`);
  } catch (error) {
    timedOut = true;
    throw queueFailure(queue, error);
  } finally {
    // Requeues whatever is left unacknowledged (all of it in the requeue modes).
    await channel.close().catch(() => undefined);
  }
};
