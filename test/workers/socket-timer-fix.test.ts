import { AMQPClient } from "@cloudamqp/amqp-client";
import type { Socket } from "node:net";
import { expect, it } from "vitest";
import "../../src/amqp/socket-timer-fix";

it("a long-lived TCP connection does not gather a timeout listener per publish", async () => {
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
