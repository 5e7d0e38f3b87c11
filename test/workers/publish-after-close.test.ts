/**
 * A publish on a connection the route object has closed for good (its configuration moved on) is
 * refused, "nothing was sent", even while the closing connection's shared channel still looks
 * open (amqp-client marks its channels closed only when the broker answers the close). The fast
 * path that takes the shared channel without asking for the session must not skip that check.
 *
 * amqp-client's session is replaced by a stand-in whose close never completes: what is tested is
 * the gateway's own bookkeeping, not the broker's.
 */
import { AMQPSession, type AMQPChannel } from "@cloudamqp/amqp-client";
import { afterEach, describe, expect, it, vi } from "vitest";
import { BrokerConnection } from "../../src/amqp/broker-connection";
import { Deadlines } from "../../src/amqp/deadlines";
import { publishMessage, type PublishMessage } from "../../src/amqp/publish-message";

const standIn = () => {
  const channel = { closed: false, onReturn: undefined as unknown, basicPublish: vi.fn(() => Promise.resolve(1)) };
  let closing = false;
  const session = {
    get closed() {
      return closing;
    },
    getConfirmChannel: () => Promise.resolve(channel as unknown as AMQPChannel),
    // As amqp-client's client.close(): closed at once, its channels only at close-ok (never, here).
    stop: () => {
      closing = true;
      return new Promise<void>(() => undefined);
    },
  };
  return { channel, session };
};

const publishing = (connection: BrokerConnection, deadlines: Deadlines): PublishMessage => ({
  exchange: "orders",
  routingKey: "created",
  body: new ArrayBuffer(10),
  properties: { contentType: "application/json" },
  persistent: true,
  mandatory: false,
  window: connection.window,
  channels: connection.publishing,
  confirmTimeoutMs: 1000,
  deadlines,
});

describe("a publish after the connection was closed for good", () => {
  afterEach(() => void vi.restoreAllMocks());

  it("is refused as never sent, not written on the closing connection", async () => {
    const { channel, session } = standIn();
    vi.spyOn(AMQPSession, "connect").mockResolvedValue(session as unknown as AMQPSession);
    const deadlines = new Deadlines();
    const logger = { log: () => undefined };
    const connection = new BrokerConnection(
      {
        url: "amqp://127.0.0.1:5672",
        heartbeatSeconds: 0,
        connectTimeoutMs: 1000,
        name: "test",
        topology: [],
        operationTimeoutMs: 1000,
        noDelay: false,
      },
      deadlines,
      logger,
    );
    await connection.session();
    // The exchange and size are proven, and a first publish opened the shared channel.
    connection.publishing.taken("orders", 10);
    await publishMessage(publishing(connection, deadlines));
    expect(channel.basicPublish).toHaveBeenCalledTimes(1);

    void connection.close();
    await expect(publishMessage(publishing(connection, deadlines))).rejects.toMatchObject({
      kind: "unavailable",
      message: expect.stringMatching(/closed/) as string,
    });
    expect(channel.basicPublish).toHaveBeenCalledTimes(1);
  });
});
