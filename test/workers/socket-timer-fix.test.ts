import { AMQPClient } from "@cloudamqp/amqp-client";
import { connect, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import "../../src/amqp/socket-timer-fix";

describe("TCP sockets in workerd (src/amqp/socket-timer-fix.ts)", () => {
  it("a long-lived connection does not gather a timeout listener per publish", async () => {
    const client = new AMQPClient("amqp://guest:guest@127.0.0.1:5672/?heartbeat=30");
    await client.connect();
    try {
      const socket = (client as unknown as { socket: Socket }).socket;
      const channel = await client.channel();
      await channel.confirmSelect();
      const publishes = () => Promise.all(Array.from({ length: 100 }, () => channel.basicPublish("", "gw-test-nowhere", "x")));
      await publishes();
      const settled = socket.listenerCount("timeout");
      await publishes();
      await publishes();
      expect(socket.listenerCount("timeout")).toBe(settled);
      expect(settled).toBeLessThan(5);
    } finally {
      await client.close();
    }
  });

  it("a socket that goes quiet still times out (how a dead peer is noticed)", async () => {
    const socket = connect({ host: "127.0.0.1", port: 5672 });
    try {
      await new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject));
      socket.setTimeout(300);
      socket.write(new Uint8Array([65, 77, 81, 80, 0, 0, 9, 1])); // the broker answers, then waits for us
      const started = Date.now();
      await new Promise((resolve) => socket.once("timeout", resolve));
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      // end() and let the broker close: destroy() during a pending read makes workerd's socket
      // reject an internal promise ("Stream was cancelled") that nothing can catch.
      const closed = new Promise((resolve) => socket.once("close", resolve));
      socket.end();
      await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 3_000))]);
    }
  });

  it("a connection with traffic (broker heartbeats every second) outlives its two-second timeout", async () => {
    const client = new AMQPClient("amqp://guest:guest@127.0.0.1:5672/?heartbeat=2");
    await client.connect();
    try {
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      expect(client.closed).toBe(false);
    } finally {
      await client.close().catch(() => undefined);
    }
  });
});
