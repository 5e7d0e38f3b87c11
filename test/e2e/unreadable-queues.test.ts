/**
 * A queue the route's broker user may not read: RabbitMQ's passive declare finds it (it checks no
 * permission), and a `basic.get` on it is refused by closing the channel (ACCESS_REFUSED). A
 * caller naming such queues through a queue template must get its own refusal, and the callers
 * beside it keep what they hold on the route's connection: their leases, their answers. Against
 * a disposable RabbitMQ node of the test's own, with a user whose read permission is limited,
 * and the gateway as `npm start` runs it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withChannel } from "../helpers/broker";
import { startDisposableBroker, type DisposableBroker } from "../helpers/disposable-broker";
import { npmStart, type RunningGateway } from "./npm-start";

let broker: DisposableBroker;
let gateway: RunningGateway;
const secrets = Array.from({ length: 5 }, (_, index) => `secret-${index}`);

beforeAll(async () => {
  broker = await startDisposableBroker();
  // Reads only queues named readable.*; writes and configures anything.
  await broker.rabbitmqctl("add_user", "reader", "reader-password");
  await broker.rabbitmqctl("set_permissions", "-p", "/", "reader", ".*", ".*", "^readable\\..*");
  await withChannel(async (channel) => {
    await channel.queueDeclare("readable.inbox", { durable: false });
    for (const secret of secrets) {
      await channel.queueDeclare(secret, { durable: false });
      await channel.basicPublish("", secret, "not yours");
    }
  }, broker.url);
  const url = broker.url.replace("guest:guest", "reader:reader-password");
  gateway = await npmStart(`
routes:
  - { id: unreadable, path: "/q/:name", amqp: { enabled: true, url: "${url}", consumer: { queue: "{name}", ack: lease } } }
`);
}, 180_000);

afterAll(async () => {
  await gateway?.stop();
  await broker?.stop();
});

describe("a caller naming queues the route's user may not read", () => {
  it("gets its own 502 for each, and the leases other callers hold on the route stay theirs to settle", async () => {
    const bodies = Array.from({ length: 20 }, (_, index) => `m${index}-${crypto.randomUUID()}`);
    await withChannel(async (channel) => {
      for (const body of bodies) await channel.basicPublish("", "readable.inbox", body);
    }, broker.url);
    const take = async () => {
      const answer = await fetch(`${gateway.url}/q/readable.inbox`);
      expect(answer.status).toBe(200);
      return { lease: answer.headers.get("x-lease-id") ?? "", body: await answer.text() };
    };
    const taken = [await take(), await take()];
    const hostile: number[] = [];
    for (const secret of secrets) {
      const [answer, honest] = await Promise.all([fetch(`${gateway.url}/q/${secret}`), take()]);
      hostile.push(answer.status);
      await answer.body?.cancel();
      taken.push(honest);
    }
    expect(hostile).toEqual(secrets.map(() => 502));
    const acked = await fetch(`${gateway.url}/q/readable.inbox/ack`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ lease_ids: taken.map((one) => one.lease) }),
    });
    const results = ((await acked.json()) as { results: Array<{ outcome: string }> }).results;
    expect(results.map((result) => result.outcome)).toEqual(taken.map(() => "acked"));
    // Nothing came back redelivered: what is left was never handed out.
    const left = await withChannel(async (channel) => {
      const rest: Array<{ body: string; redelivered: boolean }> = [];
      for (let message = await channel.basicGet("readable.inbox"); message; message = await channel.basicGet("readable.inbox")) {
        rest.push({ body: message.bodyString() ?? "", redelivered: message.redelivered });
      }
      return rest;
    }, broker.url);
    expect(left.filter((message) => message.redelivered)).toEqual([]);
    expect([...taken.map((one) => one.body), ...left.map((message) => message.body)].sort()).toEqual([...bodies].sort());
    // The secrets were not touched.
    for (const secret of secrets) {
      const count = await withChannel(async (channel) => (await channel.queueDeclare(secret, { passive: true })).messageCount, broker.url);
      expect(count).toBe(1);
    }
  });
});
