import { AMQPSession } from "@cloudamqp/amqp-client";
import { expect, it } from "vitest";
import { confirmChannel } from "../../src/amqp/confirm-channel";
import { BROKER_URL } from "../helpers/broker";

it("amqp-client's session still hands out its confirm channel, with confirms on", async () => {
  const session = await AMQPSession.connect(BROKER_URL, { logger: null });
  try {
    const channel = await confirmChannel(session);
    // Confirm mode numbers publishes from 1; a channel without confirms keeps its counter at 0.
    expect((channel as unknown as { confirmId: number }).confirmId).toBeGreaterThan(0);
    expect(await confirmChannel(session)).toBe(channel);
  } finally {
    await session.stop();
  }
});
