/**
 * The Node and Deno servers run amqp-client's TCP client on Node's `net` (workerd's is tested in
 * test/workers/amqp-client-patch.test.ts). There, one write per publish cost a publish a fifth of
 * its CPU in system calls: the patched client sends what a turn of the event loop gave it in one
 * write. Checked against the real broker.
 */
import { AMQPClient } from "@cloudamqp/amqp-client";
import { describe, expect, it } from "vitest";
import { BROKER_URL, drain, withQueue, wrapSocketWrite } from "../helpers/broker";

describe("amqp-client on Node, as patched", () => {
  it("sends the publishes of many callbacks in one turn of the event loop in one write, all of them, in order", async () => {
    await withQueue("one-turn", async (queue) => {
      const connection = await new AMQPClient(BROKER_URL).connect();
      try {
        const channel = await connection.channel();
        await channel.confirmSelect();
        let writes = 0;
        wrapSocketWrite(connection, (write) => (data, cb) => {
          writes++;
          return write(data, cb);
        });
        // As requests arrive: each publish in its own callback, all of them in one turn. Unpatched,
        // each went in a write of its own (the one before it was done by then).
        const bodies = Array.from({ length: 50 }, (_, i) => `turn ${i}`);
        const confirmed = await Promise.all(
          bodies.map(
            (body) =>
              new Promise((resolve, reject) =>
                setImmediate(() => {
                  channel.basicPublish("", queue, body).then(resolve, reject);
                }),
              ),
          ),
        );
        expect(confirmed).toHaveLength(50);
        expect(writes).toBeLessThanOrEqual(3);
        expect((await drain(queue)).map((message) => message.bodyString())).toEqual(bodies);
      } finally {
        await connection.close().catch(() => undefined);
      }
    });
  });

  it("still answers the broker's connection.close with close-ok before it closes the socket, though its writes wait for the turn's end", async () => {
    const connection = await new AMQPClient(BROKER_URL).connect();
    try {
      const written: Uint8Array[] = [];
      wrapSocketWrite(connection, (write) => (data, cb) => {
        written.push(new Uint8Array(data));
        return write(data, cb);
      });
      const channel = await connection.channel();
      // An exchange type the broker does not know is a connection error: it sends connection.close.
      await expect(channel.exchangeDeclare(`gw-test-no-such-type-${crypto.randomUUID().slice(0, 8)}`, "x-no-such-type")).rejects.toThrow();
      await new Promise((resolve) => setTimeout(resolve, 200));
      // A method frame on channel 0 with class 10 (connection), method 51 (close-ok).
      const closeOk = [1, 0, 0, 0, 0, 0, 4, 0, 10, 0, 51];
      const bytes = written.flatMap((chunk) => [...chunk]);
      const found = bytes.some((_, at) => closeOk.every((byte, i) => bytes[at + i] === byte));
      expect(found).toBe(true);
    } finally {
      await connection.close().catch(() => undefined);
    }
  });
});
