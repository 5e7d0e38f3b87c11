import { AMQPSession } from "@cloudamqp/amqp-client";
import { expect, it } from "vitest";
import { confirmChannel, opsChannel } from "../../src/amqp/session-channels";
import { BROKER_URL } from "../helpers/broker";

it("amqp-client's session still hands out its confirm channel (confirms on) and its ops channel", async () => {
  const session = await AMQPSession.connect(BROKER_URL, { logger: null });
  try {
    const channel = await confirmChannel(session);
    // Confirm mode numbers publishes from 1; a channel without confirms keeps its counter at 0.
    expect((channel as unknown as { confirmId: number }).confirmId).toBeGreaterThan(0);
    expect(await confirmChannel(session)).toBe(channel);
    const ops = await opsChannel(session);
    expect(ops).not.toBe(channel);
    expect((ops as unknown as { confirmId: number }).confirmId).toBe(0);
  } finally {
    await session.stop();
  }
});
