/**
 * The topology is applied on every connection, not once per route: after the broker closes the
 * gateway's connection, the reconnected one declares again what routes.yaml asks for before it
 * serves. Against a disposable RabbitMQ node of the test's own (the one on 127.0.0.1:5672 is
 * never touched), with the gateway as `npm start` runs it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { drain, queueExists, uniqueName, withChannel } from "../helpers/broker";
import { startDisposableBroker, type DisposableBroker } from "../helpers/disposable-broker";
import { connectionEvents, npmStart, waitFor, type RunningGateway } from "./npm-start";

const queue = uniqueName("topo-reconnect");
const id = `topo-${queue.slice(-8)}`;
const connection = `amqp-edge-gateway ${id} publish`;

// Mandatory: a 202 means the message reached a queue, so the queue was there when it was published.
const ROUTES = (url: string) => `
routes:
  - id: ${id}
    path: /in
    amqp:
      enabled: true
      url: "${url}"
      connect_timeout_ms: 2000
      producer: { routing_key: ${queue}, mandatory: true, confirm_timeout_ms: 2000 }
      topology:
        queues: [{ name: ${queue}, durable: false }]
`;

let broker: DisposableBroker;
let gateway: RunningGateway;

const post = async (body: string) => {
  const response = await fetch(`${gateway.url}/in`, { method: "POST", body, signal: AbortSignal.timeout(20_000) });
  return { status: response.status, body: await response.text() };
};

beforeAll(async () => {
  broker = await startDisposableBroker();
  gateway = await npmStart(ROUTES(broker.url));
}, 180_000);

afterAll(async () => {
  await gateway?.stop();
  await broker?.stop();
});

describe("after the broker closes the gateway's connection", () => {
  it("the reconnected connection declares the topology again before it publishes", async () => {
    expect(await queueExists(queue, broker.url)).toBe(false);
    expect(await post("before")).toMatchObject({ status: 202 });
    expect((await drain(queue, broker.url)).map((message) => message.bodyString())).toEqual(["before"]);
    expect(connectionEvents(gateway, connection).filter((event) => event === "topology applied")).toHaveLength(1);

    // Gone behind the gateway's back; a publish on the same connection would now be unroutable (422).
    await withChannel((channel) => channel.queueDelete(queue), broker.url);
    expect(await queueExists(queue, broker.url)).toBe(false);
    expect(await broker.closeConnectionsNamed(connection)).toBe(1);

    // 503 while it reconnects; then only 202, never 422, and the queue is back with the message in it.
    const seen: number[] = [];
    await waitFor(async () => {
      const { status } = await post("after");
      seen.push(status);
      return status === 202;
    }, 20_000);
    expect(seen.filter((status) => status !== 202 && status !== 503)).toEqual([]);
    expect(await queueExists(queue, broker.url)).toBe(true);
    expect((await drain(queue, broker.url)).map((message) => message.bodyString())).toEqual(["after"]);
    expect(connectionEvents(gateway, connection)).toEqual(
      expect.arrayContaining(["broker connection lost; reconnecting", "broker reconnected"]),
    );
    expect(connectionEvents(gateway, connection).filter((event) => event === "topology applied")).toHaveLength(2);
  });
});
