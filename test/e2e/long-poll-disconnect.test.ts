/**
 * Long-poll (`GET ?wait=S`) through `npm start`, i.e. with the real runtime's `request.signal`:
 * a client that resets its connection mid-wait leaves the line at once, so a message published
 * after it left stays in the queue, untouched (never delivered, not redelivered), and the route's
 * consumer is cancelled; one that closes cleanly is noticed by the Node and Deno servers as a reset
 * is, and by workerd only when its answer is written (the message goes back to the queue under a lease). A wait that a message ends is answered as soon as it arrives; one that times out is
 * a 204 that took nothing. The tests' own AMQP client publishes and looks at the queue.
 */
import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, drain, messageCount, uniqueName, withChannel } from "../helpers/broker";
import { npmStart, RUNTIME, waitFor, type RunningGateway } from "./npm-start";

const queue = uniqueName("long-poll");
const leaseQueue = uniqueName("long-poll-lease");
const route = `long-poll-${queue.slice(-8)}`;
let gateway: RunningGateway;

/** A queue's ready messages and consumers, as the broker counts them. */
const depthOf = (name: string) =>
  withChannel(async (channel) => {
    const { messageCount, consumerCount } = await channel.queueDeclare(name, { passive: true });
    return { messages: messageCount, consumers: consumerCount };
  });
const depth = () => depthOf(queue);

const publish = (body: string, messageId: string) =>
  withChannel((channel) => channel.basicPublish("", queue, body, { messageId, contentType: "text/plain" }));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  await declareQueue(queue);
  await declareQueue(leaseQueue);
  gateway = await npmStart(
    `routes:
  - { id: ${route}, path: /jobs, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue} } } }
  - { id: ${route}-lease, path: /leased, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${leaseQueue}, ack: lease, lease_timeout_ms: 1000 } } }
`,
  );
}, 180_000);

afterAll(async () => {
  await gateway?.stop();
  await deleteQueue(queue);
  await deleteQueue(leaseQueue);
});

beforeEach(async () => {
  await drain(queue);
  // Whatever an earlier test left waiting has gone: the route holds no consumer on the queue.
  await waitFor(async () => (await depth()).consumers === 0, 10_000);
});

describe("a long-poll GET through npm start", () => {
  /** Starts `GET /jobs?wait=15`, and once the wait is under way (~500 ms) leaves as `leave` says. */
  const waitThenLeave = async (leave: "abort" | "reset") => {
    const started = Date.now();
    const underWay = () => waitFor(async () => (await depth()).consumers === 1, 5_000);
    const halfSecond = () => sleep(Math.max(0, 500 - (Date.now() - started)));
    if (leave === "abort") {
      // What a browser or Node's fetch does: the connection is closed (FIN).
      const abort = new AbortController();
      const request = fetch(`${gateway.url}/jobs?wait=15`, { signal: abort.signal });
      await underWay();
      await halfSecond();
      abort.abort();
      await expect(request).rejects.toThrow(/abort/i);
    } else {
      // A client that resets its connection (RST), as one does that dies with unread data.
      const request = httpRequest(`${gateway.url}/jobs?wait=15`);
      const failed = new Promise((resolve) => request.once("error", resolve));
      request.end();
      await underWay();
      await halfSecond();
      request.socket?.resetAndDestroy();
      await failed;
    }
  };

  const expectNobodyTakesTheNextMessage = async (messageId: string) => {
    // A moment for the runtime to see the connection go, then a message nobody should take.
    await sleep(300);
    await publish("for nobody", messageId);
    await sleep(500);
    // Still ready in the queue (a wait that lived on would have taken and acknowledged it: 0),
    // and the route's consumer is cancelled, its last client gone.
    expect(await depth()).toEqual({ messages: 1, consumers: 0 });
    await sleep(1_000);
    expect(await messageCount(queue)).toBe(1);
    // Never delivered to anyone, so not redelivered either: nobody took it for the gone client.
    const messages = await drain(queue);
    expect(messages.map((m) => [m.bodyToString(), m.properties.messageId, m.redelivered])).toEqual([["for nobody", messageId, false]]);
    expect(gateway.output()).not.toMatch(/"level":"error"/);
  };

  it("loses nothing under a lease when its client closes cleanly (fetch's abort), which npm start notices only when the answer is written", async () => {
    // workerd under npm start does not see a clean close (FIN) until it writes the answer, and a
    // small answer is written into the closed connection: the message is handed to a gone client
    // (README, Consuming). Under a lease it comes back when the lease runs out.
    const abort = new AbortController();
    const request = fetch(`${gateway.url}/leased?wait=15`, { signal: abort.signal });
    await waitFor(async () => (await depthOf(leaseQueue)).consumers === 1, 5_000);
    abort.abort();
    await expect(request).rejects.toThrow(/abort/i);
    await sleep(300);
    await withChannel((channel) => channel.basicPublish("", leaseQueue, "for a gone client", { messageId: "after-abort" }));
    await waitFor(async () => (await depthOf(leaseQueue)).messages === 1, 10_000);
    const messages = await drain(leaseQueue);
    expect(messages.map((m) => [m.bodyToString(), m.properties.messageId])).toEqual([["for a gone client", "after-abort"]]);
  });

  it.runIf(RUNTIME !== "workerd")(
    "leaves the line when its client closes cleanly (fetch's abort) on a server of our own: a message published afterwards stays in the queue, untouched",
    async () => {
      await waitThenLeave("abort");
      await expectNobodyTakesTheNextMessage("after-clean-close");
    },
  );

  it("leaves the line when its client resets the connection: a message published afterwards stays in the queue, untouched", async () => {
    await waitThenLeave("reset");
    await expectNobodyTakesTheNextMessage("after-reset");
  });

  it("answers as soon as a message published 2 s into the wait arrives, with that message, acknowledged", async () => {
    const started = Date.now();
    const request = fetch(`${gateway.url}/jobs?wait=15`);
    const published = sleep(2_000).then(() => publish('{"task":"late"}', "late-1"));
    const response = await request;
    const elapsed = Date.now() - started;
    await published;
    expect(response.status).toBe(200);
    expect(response.headers.get("x-message-id")).toBe("late-1");
    expect(await response.text()).toBe('{"task":"late"}');
    // Answered when the message came, not when the 15 s were up.
    expect(elapsed).toBeGreaterThanOrEqual(1_900);
    expect(elapsed).toBeLessThan(6_000);
    await waitFor(async () => (await depth()).consumers === 0, 5_000);
    // Acknowledged: not in the queue, and not held back unacknowledged (the route's consumer is gone).
    expect(await depth()).toEqual({ messages: 0, consumers: 0 });
  });

  it("answers 204 when ?wait=1 runs out, having taken nothing; the next message stays in the queue", async () => {
    const before = await depth();
    const started = Date.now();
    const response = await fetch(`${gateway.url}/jobs?wait=1`);
    const elapsed = Date.now() - started;
    expect(response.status).toBe(204);
    expect(await response.text()).toBe("");
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(5_000);
    await waitFor(async () => (await depth()).consumers === 0, 5_000);
    expect(await depth()).toEqual(before);
    // The ended wait left nothing behind that would take the next message.
    await publish("after the timeout", "after-204");
    await sleep(500);
    expect(await depth()).toEqual({ messages: before.messages + 1, consumers: 0 });
    const messages = await drain(queue);
    expect(messages.map((m) => [m.bodyToString(), m.redelivered])).toEqual([["after the timeout", false]]);
  });
});
