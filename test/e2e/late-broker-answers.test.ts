/**
 * A GET the gateway has already answered takes no message with it. The route consumes with
 * `auto_ack: true` through a link of the test's own, which holds back what the broker sends (a
 * slow network or a stalled broker, as the gateway sees it): the GETs are answered 504 once
 * `operation_timeout_ms` has passed, while the broker has taken a message for each of them. When
 * its late answers come through, those messages must go back to the queue, not be dropped by
 * the gateway as the client already had its answer. The test's own AMQP client then accounts
 * for every body the gateway answered 202: consumed (a 200) or in the queue, never both.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BROKER_URL, brokerAddress, declareQueue, deleteQueue, drain, messageCount, uniqueName } from "../helpers/broker";
import { startCuttableLink, type CuttableLink } from "../helpers/cuttable-link";
import { npmStart, waitFor, type RunningGateway } from "./npm-start";

const queue = uniqueName("late-answers");
const OPERATION_TIMEOUT_MS = 1000;
let link: CuttableLink;
let gateway: RunningGateway;

beforeAll(async () => {
  await declareQueue(queue);
  const [host = "", port = ""] = brokerAddress().split(":");
  link = await startCuttableLink({ host, port: Number(port) });
  const { username, password } = new URL(BROKER_URL);
  const viaLink = `amqp://${username}:${password}@${link.address}/`;
  gateway = await npmStart(
    `routes:
  - { id: late-in, path: /late, methods: [POST], amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} } } }
  - { id: late-out, path: /late, methods: [GET], amqp: { enabled: true, url: "${viaLink}", operation_timeout_ms: ${OPERATION_TIMEOUT_MS}, consumer: { queue: ${queue}, auto_ack: true } } }
`,
  );
}, 180_000);

afterAll(async () => {
  await gateway?.stop();
  await link?.close();
  await deleteQueue(queue);
});

describe("an auto_ack GET answered before the broker's answer came", () => {
  it("leaves its message in the queue: every 202 is consumed or queued when the broker's answers are through", async () => {
    const bodies = Array.from({ length: 8 }, (_, n) => `late-${n}-${queue}`);
    for (const body of bodies) {
      const response = await fetch(`${gateway.url}/late`, { method: "POST", body, headers: { "content-type": "text/plain" } });
      expect(response.status).toBe(202);
      await response.arrayBuffer();
    }
    const consumed: string[] = [];
    const get = async () => {
      const response = await fetch(`${gateway.url}/late`);
      const text = await response.text();
      if (response.status === 200) consumed.push(text);
      return response.status;
    };
    // The consuming connection and its channels are open before the link holds anything back:
    // the first get of a queue goes on a channel of its own, the next on the route's auto_ack
    // channel, whose opening must not be what the link holds back.
    expect(await get()).toBe(200);
    expect(await get()).toBe(200);

    link.hold();
    const started = Date.now();
    const statuses = await Promise.all([get(), get(), get()]);
    expect(statuses).toEqual([504, 504, 504]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(OPERATION_TIMEOUT_MS - 100);
    // The broker took a message for each of those gets; its answers come through now.
    link.release();

    const accounted = async () => (await messageCount(queue)) === bodies.length - consumed.length;
    await waitFor(accounted, 5_000).catch(() => undefined);
    const queued = await drain(queue);
    const inQueue = queued.map((message) => message.bodyToString() ?? "");
    const missing = bodies.filter((body) => !consumed.includes(body) && !inQueue.includes(body));
    expect({ consumed: consumed.length, missing }).toEqual({ consumed: 2, missing: [] });
    // Never both consumed and queued, and the three that came back say they were delivered once.
    expect(inQueue.filter((body) => consumed.includes(body))).toEqual([]);
    expect(queued.filter((message) => message.redelivered)).toHaveLength(3);

    // The route goes on as before.
    await fetch(`${gateway.url}/late`, { method: "POST", body: "after", headers: { "content-type": "text/plain" } });
    expect(await get()).toBe(200);
    expect(consumed.at(-1)).toBe("after");
  });
});
