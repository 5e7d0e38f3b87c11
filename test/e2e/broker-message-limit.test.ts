/**
 * A broker whose `max_message_size` is below the route's `max_body_bytes` closes the channel of a
 * message over it. One caller sending such bodies must get its own 413, and the callers publishing
 * beside it on the same route only their 202s, every one of them in the queue. Against a
 * disposable RabbitMQ node of the test's own, its limit lowered at run time, with the gateway as
 * `npm start` runs it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { drain, uniqueName, withChannel } from "../helpers/broker";
import { startDisposableBroker, type DisposableBroker } from "../helpers/disposable-broker";
import { npmStart, type RunningGateway } from "./npm-start";

const queue = uniqueName("message-limit");
const BROKER_LIMIT = 256 * 1024;

let broker: DisposableBroker;
let gateway: RunningGateway;

beforeAll(async () => {
  broker = await startDisposableBroker();
  // Channels opened from now on refuse larger messages (PRECONDITION_FAILED, channel closed).
  await broker.rabbitmqctl("eval", `application:set_env(rabbit, max_message_size, ${BROKER_LIMIT}).`);
  await withChannel((channel) => channel.queueDeclare(queue, { durable: false }), broker.url);
  gateway = await npmStart(`
routes:
  - { id: limit, path: /in, amqp: { enabled: true, url: "${broker.url}", producer: { routing_key: ${queue}, max_body_bytes: 1048576 } } }
`);
}, 180_000);

afterAll(async () => {
  await gateway?.stop();
  await broker?.stop();
});

describe("bodies over the broker's max_message_size, beside small ones on the same route", () => {
  it("are each their sender's 413, and every small publish beside them is a 202 that is queued", async () => {
    const post = async (body: string) => {
      const response = await fetch(`${gateway.url}/in`, { method: "POST", body, headers: { "content-type": "text/plain" } });
      return { status: response.status, error: response.status === 202 ? undefined : ((await response.json()) as { error: string }).error };
    };
    const small = Array.from({ length: 400 }, (_, index) => `small-${index}-${crypto.randomUUID()}`);
    const large = Array.from({ length: 20 }, (_, index) => `large-${index}-`.padEnd(BROKER_LIMIT + 4096, "z"));
    const honest = (async () => {
      const answers = [];
      // Eight callers at once, each one after the other.
      for (let index = 0; index < small.length; index += 8) answers.push(...(await Promise.all(small.slice(index, index + 8).map(post))));
      return answers;
    })();
    const hostile = (async () => {
      const answers = [];
      for (const body of large) answers.push(await post(body));
      return answers;
    })();
    const [honestAnswers, hostileAnswers] = await Promise.all([honest, hostile]);
    expect(honestAnswers.filter((answer) => answer.status !== 202)).toEqual([]);
    expect(hostileAnswers.map((answer) => answer.status)).toEqual(large.map(() => 413));
    // The first is the broker's own refusal; once it is known, the gateway refuses before sending.
    expect(hostileAnswers[0]?.error).toMatch(/message size \d+ is larger than (configured )?max size/);
    expect(hostileAnswers.at(-1)?.error).toMatch(new RegExp(`more than the ${BROKER_LIMIT} the broker takes`));
    const queued = (await drain(queue, broker.url)).map((message) => message.bodyString());
    expect([...queued].sort()).toEqual([...small].sort());
  });
});
