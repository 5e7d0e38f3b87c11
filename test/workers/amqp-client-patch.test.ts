/**
 * The fixes to amqp-client 4.1.1 that `patches/` applies at install (`patch-package` in
 * `postinstall`), checked against the real broker with the library as the gateway runs it: inside
 * workerd. Each test fails on the unpatched library. The upstream reports are in docs/upstream/.
 */
import { AMQPClient, AMQPSession, type AMQPChannel } from "@cloudamqp/amqp-client";
import { describe, expect, it } from "vitest";
import { BROKER_URL, WEB_AMQP_URL, drain, withQueue, wrapSocketWrite } from "../helpers/broker";

describe("amqp-client as patched", () => {
  it("writes an integer header past int32 as a long and a fraction as a double, so both arrive as sent", async () => {
    // Unpatched: 3000000000 went out as an int32 (-1294967296) and 0.1 as a float32 (0.10000000149011612).
    await withQueue("field-types", async (queue) => {
      const connection = await new AMQPClient(BROKER_URL).connect();
      try {
        const channel = await connection.channel();
        const headers = { big: 3_000_000_000, small: -2_147_483_648, fraction: 0.1, nested: [2 ** 40, { f: 1.5 }] };
        await channel.basicPublish("", queue, "typed", { headers });
        const [message] = await drain(queue);
        expect(message?.properties.headers).toEqual(headers);
      } finally {
        await connection.close();
      }
    });
  });

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

  it("sends what is written to a WebSocket within one turn as one message, and every message arrives", async () => {
    await withQueue("ws-coalesced", async (queue) => {
      const session = await AMQPSession.connect(WEB_AMQP_URL, { logger: null });
      try {
        const client = (session as unknown as { client: { socket: WebSocket } }).client;
        let messages = 0;
        const send = client.socket.send.bind(client.socket);
        client.socket.send = (data) => {
          messages++;
          send(data);
        };
        const channel = await (session as unknown as { getOpsChannel(): Promise<AMQPChannel> }).getOpsChannel();
        messages = 0;
        // 100 publishes in one turn: unpatched, 100 WebSocket messages.
        await Promise.all(Array.from({ length: 100 }, (_, i) => channel.basicPublish("", queue, `ws ${i}`)));
        await new Promise((resolve) => setTimeout(resolve, 50));
        expect(messages).toBe(1);
        await expect.poll(async () => (await drain(queue)).length, { timeout: 5000 }).toBe(100);
      } finally {
        await session.stop().catch(() => undefined);
      }
    });
  });

  it("stops gathering a WebSocket message at 64 KiB, so large bodies are not gathered whole, and keeps every write in order", async () => {
    await withQueue("ws-large", async (queue) => {
      const session = await AMQPSession.connect(WEB_AMQP_URL, { logger: null });
      try {
        const client = (session as unknown as { client: { socket: WebSocket } }).client;
        const sizes: number[] = [];
        const send = client.socket.send.bind(client.socket);
        client.socket.send = (data) => {
          sizes.push((data as Uint8Array).byteLength);
          send(data);
        };
        const channel = await (session as unknown as { getOpsChannel(): Promise<AMQPChannel> }).getOpsChannel();
        sizes.length = 0;
        const large = "L".repeat(100 * 1024);
        await Promise.all([
          channel.basicPublish("", queue, "first"),
          channel.basicPublish("", queue, large),
          channel.basicPublish("", queue, "last"),
        ]);
        await new Promise((resolve) => setTimeout(resolve, 50));
        // However the library splits its writes, a coalesced message stops growing at 64 KiB: the
        // large body goes out over a few messages, never gathered whole with the others.
        expect(sizes.length).toBeGreaterThan(1);
        expect(Math.max(...sizes)).toBeLessThan(64 * 1024 + 16 * 1024);
        expect(sizes.reduce((a, b) => a + b, 0)).toBeGreaterThan(100 * 1024);
        await expect
          .poll(async () => (await drain(queue)).map((message) => (message.bodyString() ?? "").slice(0, 5)), { timeout: 5000 })
          .toEqual(["first", "LLLLL", "last"]);
      } finally {
        await session.stop().catch(() => undefined);
      }
    });
  });

  it("fulfils a TCP send once the bytes are handed to the socket, without waiting for the runtime's write callback", async () => {
    await withQueue("tcp-eager", async (queue) => {
      const connection = await new AMQPClient(BROKER_URL).connect();
      try {
        const channel = await connection.channel();
        // The runtime's callbacks are held back: unpatched, the send waits for its own.
        let holding = true;
        const held: Array<() => void> = [];
        wrapSocketWrite(
          connection,
          (write) => (data, cb) => write(data, (error) => (holding ? held.push(() => cb?.(error)) : cb?.(error))),
        );
        const heartbeat = new Uint8Array([8, 0, 0, 0, 0, 0, 0, 206]);
        const sent = await Promise.race([
          connection.send(heartbeat).then(() => "sent"),
          new Promise((resolve) => setTimeout(() => resolve("waiting for the write callback"), 1000)),
        ]);
        expect(sent).toBe("sent");
        // Once the callbacks come, everything written after flows, in order.
        const publishing = Promise.all(Array.from({ length: 10 }, (_, i) => channel.basicPublish("", queue, `tcp ${i}`)));
        holding = false;
        for (const release of held.splice(0)) release();
        await publishing;
        expect((await drain(queue)).map((message) => message.bodyString())).toEqual(Array.from({ length: 10 }, (_, i) => `tcp ${i}`));
      } finally {
        await connection.close().catch(() => undefined);
      }
    });
  });

  it("writes to a TCP socket one write at a time, small writes gathered and large ones as they are: never one copy of every body in flight", async () => {
    await withQueue("tcp-one-write", async (queue) => {
      const connection = await new AMQPClient(`${BROKER_URL}?frameMax=131072`).connect();
      try {
        const channel = await connection.channel();
        await channel.confirmSelect();
        let inFlight = 0;
        let most = 0;
        let largest = 0;
        let writes = 0;
        wrapSocketWrite(connection, (write) => (data, cb) => {
          inFlight++;
          writes++;
          most = Math.max(most, inFlight);
          largest = Math.max(largest, data.byteLength);
          return write(data, (error) => {
            inFlight--;
            cb?.(error);
          });
        });
        const large = Array.from({ length: 24 }, (_, i) => `large ${i} `.padEnd(256 * 1024, "x"));
        const small = Array.from({ length: 200 }, (_, i) => `small ${i}`);
        // Unpatched, Node's Writable gathers whatever waits behind the write in flight into one
        // Buffer.concat: here, several MiB in one write.
        await Promise.all([...large, ...small].map((body) => channel.basicPublish("", queue, body)));
        expect(most).toBe(1);
        expect(largest).toBeLessThanOrEqual(131_072);
        // The 200 small publishes went in far fewer writes than 200.
        expect(writes).toBeLessThan(24 * 4 + 100);
        const arrived = (await drain(queue)).map((message) => message.bodyString());
        expect(arrived).toEqual([...large, ...small]);
      } finally {
        await connection.close().catch(() => undefined);
      }
    });
  });
});
