/**
 * The management API dialect (`management_api`) through `npm start` (and the Node and Deno
 * servers), judged by the real `rabbitmqadmin` that the broker's management plugin serves: the
 * same command lines against the gateway and against the broker's own API give the same output,
 * and what the gateway answers is checked against the broker with our own AMQP client.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, drain, messageCount, uniqueName, withChannel } from "../helpers/broker";
import { MANAGEMENT_USER, managementPort, rabbitmqadmin, type AdminRun } from "../helpers/rabbitmqadmin";
import { npmStart, type RunningGateway } from "./npm-start";

const PASSWORD = "ops-secret-for-the-management-e2e";
const queue = uniqueName("mgmt");
const other = uniqueName("mgmt-other");
const missing = uniqueName("mgmt-missing");
const big = uniqueName("mgmt-big");
const internal = uniqueName("mgmt-internal");
/** A queue that refuses every publish (reject-publish at length 0): the broker nacks them. */
const rejecting = uniqueName("mgmt-rejecting");
const exchange = uniqueName("mgmt-x");
const unlisted = uniqueName("mgmt-unlisted");
/** Listed in the block, but not on the broker: each publish there makes the broker close a channel. */
const missingExchange = uniqueName("no-such-exchange");
let gateway: RunningGateway;
let ops: { port: number; user: string; password: string };
const broker = { port: managementPort(), ...MANAGEMENT_USER };

beforeAll(async () => {
  await declareQueue(queue);
  await declareQueue(other);
  await declareQueue(unlisted);
  await declareQueue(big);
  await declareQueue(rejecting, { "x-max-length": 0, "x-overflow": "reject-publish" });
  await withChannel(async (channel) => {
    await channel.exchangeDeclare(exchange, "topic", { durable: false, autoDelete: false });
    await channel.queueBind(other, exchange, "orders.#");
    await channel.exchangeDeclare(internal, "direct", { durable: false, autoDelete: false, internal: true });
  });
  gateway = await npmStart(
    `routes:
  - id: unrelated
    path: /unrelated
    amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} } }
management_api:
  url: "${BROKER_URL}"
  auth: { basic: { users: { ops: "\${OPS_PASSWORD}" } } }
  exchanges: [amq.default, ${exchange}, ${missingExchange}, ${internal}]
  queues: [${queue}, ${other}, ${missing}, ${big}]
`,
    { OPS_PASSWORD: PASSWORD },
  );
  ops = { port: Number(new URL(gateway.url).port), user: "ops", password: PASSWORD };
}, 180_000);

afterAll(async () => {
  await gateway?.stop();
  for (const name of [queue, other, unlisted, big, rejecting]) await deleteQueue(name);
  for (const name of [exchange, internal]) await withChannel((channel) => channel.exchangeDelete(name)).catch(() => undefined);
});

const PROPERTIES = JSON.stringify({
  headers: { a: 1, b: "x", c: true, d: [1, "y", { e: -3_000_000_000 }], f: { g: 2.5, h: "é" }, big: 3_000_000_000 },
  delivery_mode: 2,
  priority: 3,
  timestamp: 1_700_000_000,
  content_type: "text/plain",
  content_encoding: "utf-8",
  message_id: "m-1",
  correlation_id: "c-1",
  reply_to: "replies",
  expiration: "600000",
  type: "order",
  user_id: "guest",
  app_id: "billing",
  unknown_property: "ignored, as the broker ignores it",
});

/** One script of rabbitmqadmin command lines, each with its standard input: run in order against `endpoint`. */
const script = (unrouted: string): Array<[string[], string?]> => [
  [["publish", "exchange=amq.default", `routing_key=${queue}`, "payload=hello"]],
  [["publish", `routing_key=${queue}`, "payload=with properties", `properties=${PROPERTIES}`]],
  // No payload argument: rabbitmqadmin reads standard input and sends it as base64.
  [["publish", `routing_key=${queue}`], "from standard input ✓"],
  [["publish", `routing_key=${unrouted}`, "payload=nobody takes this"]],
  [["publish", `exchange=${exchange}`, "routing_key=orders.eu.created", "payload=to a topic"]],
  [["publish", `exchange=${exchange}`, "routing_key=invoices.created", "payload=routed nowhere"]],
  [["get", `queue=${queue}`, "count=10"]],
  [["-f", "raw_json", "get", `queue=${queue}`, "count=10", "ackmode=ack_requeue_true"]],
  [["-f", "pretty_json", "get", `queue=${queue}`, "count=1", "encoding=base64"]],
  [["-f", "long", "get", `queue=${queue}`, "count=1", "ackmode=reject_requeue_true"]],
  [["-f", "tsv", "get", `queue=${queue}`, "count=2", "ackmode=ack_requeue_false"]],
  [["-f", "kvp", "get", `queue=${queue}`, "count=5", "ackmode=reject_requeue_false"]],
  [["get", `queue=${queue}`]],
  [["-f", "raw_json", "get", `queue=${other}`, "count=3", "ackmode=ack_requeue_false"]],
  [["get", `queue=${missing}`]],
  // Refused by the broker: its API's 400 with the reply code, which rabbitmqadmin prints.
  [["publish", `exchange=${missingExchange}`, "routing_key=x", "payload=x"]],
  [["publish", `exchange=${internal}`, "routing_key=x", "payload=x"]],
  // Returned, with headers the broker changes or the client reads back differently: BCC taken out, a long.
  [["publish", `routing_key=${unrouted}`, "payload=bcc", 'properties={"headers":{"BCC":["nobody-here"]}}']],
  [["publish", `routing_key=${unrouted}`, "payload=long", 'properties={"headers":{"n":1,"list":[2,{"m":3}]}}']],
  // Sender-selected distribution: the message goes to the CC'd queue too, and keeps its CC.
  [["publish", `routing_key=${unrouted}`, "payload=cc", `properties={"headers":{"CC":["${queue}"]}}`]],
  [["-f", "raw_json", "get", `queue=${queue}`, "ackmode=ack_requeue_false"]],
  // A negative confirm: "rejected Unable to publish message. Check queue limits."
  [["publish", `routing_key=${rejecting}`, "payload=refused by the queue"]],
];

const runScript = async (endpoint: typeof broker, unrouted: string): Promise<AdminRun[]> => {
  const runs: AdminRun[] = [];
  for (const [args, stdin] of script(unrouted)) runs.push(await rabbitmqadmin(endpoint, args, stdin));
  return runs;
};

describe("the management API dialect, judged by rabbitmqadmin", () => {
  it("the same command lines give the same output against the gateway and against the broker's own API", async () => {
    const unrouted = uniqueName("unrouted");
    const throughGateway = await runScript(ops, unrouted);
    expect(await messageCount(queue)).toBe(0);
    const throughBroker = await runScript(broker, unrouted);
    // Every line of output, errors included (a missing queue's "Not found: /api/queues/...").
    expect(throughGateway.map(({ stdout, stderr, code }) => ({ stdout, stderr, code }))).toEqual(
      throughBroker.map(({ stdout, stderr, code }) => ({ stdout, stderr, code })),
    );
    // And what the script says happened did happen.
    const outputs = throughGateway.map((run) => run.stdout);
    expect(outputs.slice(0, 6)).toEqual([
      "Message published\n",
      "Message published\n",
      "Message published\n",
      "Message published but NOT routed\n",
      "Message published\n",
      "Message published but NOT routed\n",
    ]);
    const raw = JSON.parse(outputs[7] ?? "") as Array<Record<string, unknown>>;
    expect(raw.map((message) => message.payload)).toEqual(["hello", "with properties", "from standard input ✓"]);
    expect(raw[1]?.properties).toEqual({ ...JSON.parse(PROPERTIES), unknown_property: undefined });
    expect(throughGateway[14]?.stderr).toContain(`Not found: /api/queues/%2F/${missing}/get`);
    expect(throughGateway[15]?.stderr).toContain(`404 NOT_FOUND - no exchange '${missingExchange}' in vhost '/'`);
    expect(throughGateway[16]?.stderr).toContain(`403 ACCESS_REFUSED - cannot publish to internal exchange '${internal}'`);
    expect(outputs.slice(17, 20)).toEqual([
      "Message published but NOT routed\n",
      "Message published but NOT routed\n",
      "Message published\n",
    ]);
    expect(JSON.parse(outputs[20] ?? "")).toMatchObject([{ payload: "cc", properties: { headers: { CC: [queue] } } }]);
    expect(throughGateway[21]?.stderr).toContain("rejected Unable to publish message. Check queue limits.");
    expect(await messageCount(queue)).toBe(0);
  }, 120_000);

  it("a message published through the gateway is the one the broker's own API publishes", async () => {
    const args = ["publish", `routing_key=${queue}`, "payload=twin", `properties=${PROPERTIES}`];
    await rabbitmqadmin(ops, args);
    await rabbitmqadmin(broker, args);
    const [viaGateway, viaBroker] = await drain(queue);
    expect(viaGateway?.bodyToString()).toBe("twin");
    expect(viaGateway?.properties).toEqual(viaBroker?.properties);
    expect(viaGateway?.routingKey).toBe(viaBroker?.routingKey);
  });

  it("refuses what is outside its lists (403), wrong credentials (401), and says why", async () => {
    const publishOutside = await rabbitmqadmin(ops, ["publish", `exchange=amq.direct`, `routing_key=${unlisted}`, "payload=x"]);
    expect(publishOutside.code).not.toBe(0);
    expect(publishOutside.stderr).toContain("403");
    const getOutside = await rabbitmqadmin(ops, ["get", `queue=${unlisted}`]);
    // rabbitmqadmin shows a 403 with its body: the broker-shaped error and its reason.
    expect(getOutside.stderr).toContain("Received response 403");
    expect(getOutside.stderr).toMatch(
      new RegExp(`"error":"access_refused","reason":"reading queue .+${unlisted}.+ is not permitted here"`),
    );
    const otherVhost = await rabbitmqadmin(ops, ["-V", "elsewhere", "get", `queue=${queue}`]);
    expect(otherVhost.stderr).toContain("403");
    const wrong = await rabbitmqadmin({ ...ops, password: "not it" }, ["get", `queue=${queue}`]);
    expect(wrong.stderr).toContain("Access refused");
    const anonymous = await fetch(`${gateway.url}/api/queues/%2F/${queue}/get`, { method: "POST", body: "{}" });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toMatch(/^Basic /);
    expect(await messageCount(unlisted)).toBe(0);
  });

  it("answers a request it cannot carry out with a 400 in the broker's shape, and publishes nothing", async () => {
    const post = (path: string, body: string) =>
      fetch(`${gateway.url}${path}`, {
        method: "POST",
        body,
        headers: { Authorization: `Basic ${btoa(`ops:${PASSWORD}`)}`, "Content-Type": "application/json" },
      });
    const publish = `/api/exchanges/%2F/amq.default/publish`;
    const bad: Array<[string, string, RegExp]> = [
      [publish, "not json", /JSON/],
      [publish, JSON.stringify({ routing_key: queue, payload: 5 }), /payload must be a string/],
      [publish, JSON.stringify({ routing_key: queue, payload: "%%%", payload_encoding: "base64" }), /base64/],
      [publish, JSON.stringify({ routing_key: queue, payload: "x", properties: { headers: { n: null } } }), /null/],
      [publish, JSON.stringify({ routing_key: queue, payload: "x", properties: { user_id: "someone-else" } }), /user_id/],
      [publish, JSON.stringify({ routing_key: queue, payload: "x", properties: { expiration: "soon" } }), /expiration/],
      [publish, JSON.stringify({ routing_key: queue, payload: "x", properties: { headers: { CC: "one" } } }), /CC/],
      [publish, JSON.stringify({ routing_key: queue, payload: "x", properties: { reply_to: "amq.rabbitmq.reply-to" } }), /reply_to/],
      [publish, JSON.stringify({ routing_key: queue, payload: "x", properties: { headers: { "runway-delivery-count": 9 } } }), /gateway/],
      [publish, JSON.stringify({ routing_key: queue, payload: "x", properties: { headers: { big: "y".repeat(140_000) } } }), /frame/],
      [publish, JSON.stringify({ routing_key: "k".repeat(256), payload: "x" }), /routing_key/],
      // A crafted one (a pid of the broker's node) made RabbitMQ 3.10 close the shared connection.
      [
        publish,
        JSON.stringify({ routing_key: "amq.rabbitmq.reply-to.g2dkAA1yYWJiaXRAbG9jYWxob3N0AAAAAAAAAAAAAAAAAA==.x", payload: "x" }),
        /direct reply-to/,
      ],
      [`/api/queues/%2F/${queue}/get`, JSON.stringify({ count: 1, ackmode: "ack_maybe" }), /ackmode/],
      [`/api/queues/%2F/${queue}/get`, JSON.stringify({ count: -1, ackmode: "ack_requeue_true" }), /count/],
      [`/api/queues/%2F/${queue}/get`, JSON.stringify({ count: 1, ackmode: "ack_requeue_true", encoding: "hex" }), /encoding/],
    ];
    for (const [path, body, reason] of bad) {
      const response = await post(path, body);
      expect(response.status, body.slice(0, 80)).toBe(400);
      const answer = (await response.json()) as { error: string; reason: string; route: string };
      expect(answer).toMatchObject({ error: "bad_request", route: "management_api" });
      expect(answer.reason).toMatch(reason);
    }
    expect(await messageCount(queue)).toBe(0);
  });

  it("under concurrency, beside callers whose requests the broker refuses, every routed publish is on the queue once and every get takes each message once", async () => {
    const post = (path: string, body: unknown) =>
      fetch(`${gateway.url}${path}`, {
        method: "POST",
        body: JSON.stringify(body),
        headers: { Authorization: `Basic ${btoa(`ops:${PASSWORD}`)}` },
      });
    const bodies = Array.from({ length: 400 }, (_, index) => `honest-${index}-${crypto.randomUUID()}`);
    const hostile = async () => {
      for (let index = 0; index < 40; index++) {
        await post(`/api/exchanges/%2F/${missingExchange}/publish`, { routing_key: queue, payload: "refused" });
        await post(`/api/exchanges/%2F/amq.default/publish`, { routing_key: queue, payload: "x", properties: { expiration: "-1" } });
        await post(`/api/queues/%2F/${missing}/get`, { count: 5, ackmode: "ack_requeue_false" });
      }
    };
    const routed: string[] = [];
    const honest = async (slice: string[]) => {
      for (const payload of slice) {
        const response = await post(`/api/exchanges/%2F/amq.default/publish`, { routing_key: queue, payload });
        expect(response.status).toBe(200);
        if (((await response.json()) as { routed: boolean }).routed) routed.push(payload);
      }
    };
    await Promise.all([
      ...Array.from({ length: 8 }, (_, worker) => honest(bodies.filter((_, index) => index % 8 === worker))),
      hostile(),
      hostile(),
    ]);
    expect(routed.sort()).toEqual([...bodies].sort());
    // Concurrent gets that acknowledge: each message is taken by exactly one of them.
    const taken: string[] = [];
    const getter = async () => {
      for (;;) {
        const response = await post(`/api/queues/%2F/${queue}/get`, { count: 7, ackmode: "ack_requeue_false", encoding: "auto" });
        expect(response.status).toBe(200);
        const messages = (await response.json()) as Array<{ payload: string }>;
        if (messages.length === 0) return;
        taken.push(...messages.map((message) => message.payload));
      }
    };
    await Promise.all(Array.from({ length: 6 }, getter));
    expect(taken.sort()).toEqual([...bodies].sort());
    expect(await messageCount(queue)).toBe(0);
  }, 120_000);

  it("tells two callers' same message apart when the broker returns one without its BCC", async () => {
    // The broker strips BCC from what it delivers and returns: A's copy (BCC'd to the queue, so
    // routed) and B's (the same body, unroutable) look alike when B's comes back.
    const post = (body: unknown) =>
      fetch(`${gateway.url}/api/exchanges/%2F/amq.default/publish`, {
        method: "POST",
        body: JSON.stringify(body),
        headers: { Authorization: `Basic ${btoa(`ops:${PASSWORD}`)}` },
      }).then(async (response) => ((await response.json()) as { routed: boolean }).routed);
    const nowhere = uniqueName("nowhere");
    // Persistent, so that A's confirm waits for the disk while B's return comes at once.
    const same = { delivery_mode: 2 };
    const answers = await Promise.all(
      Array.from({ length: 120 }, (_, index) =>
        post(
          index % 2 === 0
            ? { routing_key: nowhere, payload: "same", properties: { ...same, headers: { BCC: [other] } } }
            : { routing_key: nowhere, payload: "same", properties: same },
        ),
      ),
    );
    expect(answers.filter((_, index) => index % 2 === 0)).toEqual(Array(60).fill(true));
    expect(answers.filter((_, index) => index % 2 === 1)).toEqual(Array(60).fill(false));
    expect((await drain(other)).length).toBe(60);
  });

  it("takes what fits in its room whatever count asks, leaves the rest in the queue, and truncate shortens only the payload", async () => {
    const megabyte = new Uint8Array(1024 * 1024).fill(0x61);
    await withChannel(async (channel) => {
      for (let index = 0; index < 8; index++) await channel.basicPublish("", big, megabyte);
    });
    const response = await fetch(`${gateway.url}/api/queues/%2F/${big}/get`, {
      method: "POST",
      body: JSON.stringify({ count: 8, ackmode: "ack_requeue_false", encoding: "auto", truncate: 16 }),
      headers: { Authorization: `Basic ${btoa(`ops:${PASSWORD}`)}` },
    });
    expect(response.status).toBe(200);
    const messages = (await response.json()) as Array<{ payload: string; payload_bytes: number }>;
    expect(messages.length).toBeGreaterThanOrEqual(1);
    expect(messages.length).toBeLessThan(8);
    for (const message of messages) expect(message).toMatchObject({ payload: "a".repeat(16), payload_bytes: 1024 * 1024 });
    const left = await drain(big);
    expect(left.length).toBe(8 - messages.length);
    // At most the one message that did not fit was taken and put back.
    expect(left.filter((message) => message.redelivered).length).toBeLessThanOrEqual(1);
  });
});
