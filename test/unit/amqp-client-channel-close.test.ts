/**
 * A channel's close, as patched in amqp-client (lib/*\/amqp-base-client.js, amqp-channel.js),
 * against the real broker. amqp-client matches each answer to the oldest RPC still waiting. When a
 * channel is closed right after a basic.consume, RabbitMQ may answer the close without answering
 * the consume: close-ok then settled the consume, and the close waited forever. A push paused as
 * it started hung its pause request that way. And a close whose close-ok never came (the
 * connection lost first) waited forever too.
 */
import { AMQPClient } from "@cloudamqp/amqp-client";
import { describe, expect, it } from "vitest";
import { BROKER_URL, withChannel, withQueue } from "../helpers/broker";

/** Whether `promise` settles within `ms` (fulfilled or rejected). */
const settles = (promise: Promise<unknown>, ms: number): Promise<boolean> =>
  Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms)),
  ]);

const consumerCount = (queue: string) =>
  withChannel(async (channel) => (await channel.queueDeclare(queue, { passive: true })).consumerCount);

describe("amqp-client's channel close, as patched", () => {
  it("settles a close sent right after a consume, and the consume too, every time", async () => {
    await withQueue("close-after-consume", async (queue) => {
      const connection = await new AMQPClient(BROKER_URL).connect();
      try {
        // Unpatched, the first round hung already; a few more, as a push paused again and again.
        for (let round = 0; round < 20; round++) {
          const channel = await connection.channel();
          await channel.basicQos(1);
          const consume = channel.basicConsume(queue, { noAck: false }, () => undefined);
          const close = channel.close();
          expect({ round, closeSettled: await settles(close, 5_000) }).toEqual({ round, closeSettled: true });
          expect({ round, consumeSettled: await settles(consume, 1_000) }).toEqual({ round, consumeSettled: true });
          // A consume the close overtook gives back no consumer: it failed, as it should.
          const consumer = await consume.catch(() => undefined);
          if (consumer) expect(typeof consumer.tag).toBe("string");
        }
        expect(await consumerCount(queue)).toBe(0);
      } finally {
        await connection.close().catch(() => undefined);
      }
    });
  }, 30_000);

  it("rejects a close, and ends the channel's consumers, when the connection is lost before close-ok", async () => {
    await withQueue("close-then-lost", async (queue) => {
      const connection = await new AMQPClient(BROKER_URL).connect();
      try {
        const channel = await connection.channel();
        const consumer = await channel.basicConsume(queue, { noAck: false }, () => undefined);
        const close = channel.close();
        // The close frame waits for the end of this turn to be written; the socket goes first.
        (connection as unknown as { socket: { destroy(): void } }).socket.destroy();
        expect(await settles(close, 5_000)).toBe(true);
        expect(await settles(consumer.wait(), 1_000)).toBe(true);
      } finally {
        await connection.close().catch(() => undefined);
      }
    });
  }, 15_000);
});
