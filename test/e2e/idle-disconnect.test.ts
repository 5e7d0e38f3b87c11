/**
 * `idle_disconnect_s`, as the broker sees it: with the gateway as `npm start` runs it, against a
 * disposable RabbitMQ node of the test's own (whose connections it may list), a route's
 * connection is closed once the route has been idle that long, and the next publish opens a new
 * one and is confirmed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { declareQueue, deleteQueue, drain, uniqueName } from "../helpers/broker";
import { startDisposableBroker, type DisposableBroker } from "../helpers/disposable-broker";
import { npmStart, waitFor, type RunningGateway } from "./npm-start";

const queue = uniqueName("idle-e2e");
const route = `idle-${queue.slice(-8)}`;
/** The name the route's publishing connection gives itself (broker-connection.ts). */
const connectionName = `amqp-edge-gateway ${route} publish`;

let broker: DisposableBroker;
let gateway: RunningGateway;

beforeAll(async () => {
  broker = await startDisposableBroker();
  await declareQueue(queue, {}, broker.url);
  gateway = await npmStart(`
routes:
  - id: ${route}
    path: /in
    amqp: { enabled: true, url: "${broker.url}", idle_disconnect_s: 2, producer: { routing_key: ${queue} } }
`);
}, 180_000);
afterAll(async () => {
  await gateway?.stop();
  if (broker) await deleteQueue(queue, broker.url);
  await broker?.stop();
});

const publish = async (body: string) =>
  (await fetch(`${gateway.url}/in`, { method: "POST", body, headers: { "content-type": "application/json" } })).status;

describe("a route idle for its idle_disconnect_s", () => {
  it("closes its broker connection, and its next publish connects again and is confirmed", async () => {
    expect(await publish('"before"')).toBe(202);
    expect(await broker.connectionsNamed(connectionName)).toBe(1);
    // Requests within the idle time keep the connection.
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(await publish(`"kept ${i}"`)).toBe(202);
    }
    expect(await broker.connectionsNamed(connectionName)).toBe(1);
    // Closed by the gateway (not cut): the broker lists it no more.
    await waitFor(async () => (await broker.connectionsNamed(connectionName)) === 0, 10_000);
    expect(await publish('"after"')).toBe(202);
    expect(await broker.connectionsNamed(connectionName)).toBe(1);
    expect((await drain(queue, broker.url)).map((message) => message.bodyString())).toEqual([
      '"before"',
      '"kept 0"',
      '"kept 1"',
      '"kept 2"',
      '"after"',
    ]);
    expect(gateway.output()).toContain("broker disconnected while idle");
  }, 60_000);
});
