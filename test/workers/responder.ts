/**
 * A service behind the broker for request/reply tests: an amqp-client consumer of the tests' own
 * that answers each request on its reply_to with its correlation id.
 */
import { AMQPClient, type AMQPMessage } from "@cloudamqp/amqp-client";
import { BROKER_URL, declareQueue, deleteQueue } from "../helpers/broker";

/** Answers each request on `queue` with `answer(request)` (`text/plain` unless it says otherwise) while `test` runs; the queue is deleted afterwards. */
export const withResponder = async (
  queue: string,
  answer: (
    request: AMQPMessage,
  ) =>
    | { body: string; properties?: Record<string, unknown> }
    | undefined
    | Promise<{ body: string; properties?: Record<string, unknown> } | undefined>,
  test: () => Promise<void>,
) => {
  await declareQueue(queue);
  const client = new AMQPClient(BROKER_URL);
  const connection = await client.connect();
  try {
    const channel = await connection.channel();
    await channel.basicConsume(queue, { noAck: true }, async (request) => {
      const reply = await answer(request);
      if (!reply || !request.properties.replyTo) return;
      await channel.basicPublish("", request.properties.replyTo, reply.body, {
        correlationId: request.properties.correlationId ?? "",
        contentType: "text/plain",
        ...reply.properties,
      });
    });
    await test();
  } finally {
    await connection.close().catch(() => undefined);
    await deleteQueue(queue);
  }
};
