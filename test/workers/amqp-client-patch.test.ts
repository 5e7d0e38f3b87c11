/**
 * The fixes to amqp-client 4.1.1 that `patches/` applies at install (`patch-package` in
 * `postinstall`), checked against the real broker with the library as the gateway runs it: inside
 * workerd. Each test fails on the unpatched library. The upstream report is
 * docs/upstream/amqp-client-nack-multiple.md.
 */
import { AMQPClient } from "@cloudamqp/amqp-client";
import { describe, expect, it } from "vitest";
import { BROKER_URL, drain, withQueue } from "../helpers/broker";

describe("amqp-client as patched", () => {
  it("reads basic.nack's multiple bit when RabbitMQ also sets requeue, so no rejected publish resolves as confirmed", async () => {
    // A queue that holds 10 and refuses the rest (reject-publish): RabbitMQ nacks the refused
    // publishes, and under a pipelined load it nacks many at once (multiple and requeue bits set).
    await withQueue(
      "nack-multiple",
      async (queue) => {
        const connection = await new AMQPClient(BROKER_URL).connect();
        try {
          const channel = await connection.channel();
          await channel.confirmSelect();
          const confirmed = new Set<string>();
          let rejected = 0;
          const settled = Array.from({ length: 2000 }, (_, i) =>
            channel.basicPublish("", queue, `message ${i}`).then(
              () => confirmed.add(`message ${i}`),
              () => rejected++,
            ),
          );
          // Unpatched, the publishes a multiple-nack covers stay pending: a later multiple-ack resolves
          // them as confirmed, or nothing ever settles them. Either way the sets below differ.
          const outcome = await Promise.race([
            Promise.all(settled).then(() => "settled"),
            new Promise((resolve) => setTimeout(() => resolve("some publishes were never settled"), 10_000)),
          ]);
          expect(outcome).toBe("settled");
          const queued = new Set((await drain(queue)).map((message) => message.bodyString() ?? ""));
          expect([...confirmed].filter((body) => !queued.has(body))).toEqual([]);
          expect(confirmed.size).toBe(queued.size);
          expect(confirmed.size + rejected).toBe(2000);
        } finally {
          await connection.close().catch(() => undefined);
        }
      },
      { "x-max-length": 10, "x-overflow": "reject-publish" },
    );
  });
});
