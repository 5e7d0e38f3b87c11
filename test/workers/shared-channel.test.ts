/**
 * One caller's request headers cannot close the channel that every caller of a route publishes
 * on, inside workerd against the real broker (RabbitMQ 3.10 here). A reply-to naming the broker's
 * direct reply-to (for which it closed the route's shared confirm channel: every publish in flight
 * on it failed with 502) and an expiration past what RabbitMQ takes are each a 400 naming the
 * header before anything is sent, and the publishes of an honest caller in flight on the same
 * route at that moment are all confirmed (202) and all in the queue. (Exchanges the broker
 * refuses, from the request, are the route object's to keep apart: neighbours-publishing.test.ts.)
 */
import { describe, expect, it } from "vitest";
import { BROKER_URL, drain, withQueue } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

/** Honest publishes on either side of the hostile one, all in flight together. */
const HONEST = 24;

/**
 * Sends `hostile` in the middle of {@link HONEST} honest publishes, all at once, and checks that the
 * hostile one is a 400 matching `reason` and every honest one was confirmed and enqueued.
 */
const alongsideHonestCallers = async (
  queue: string,
  send: ReturnType<typeof gatewayFor>,
  hostile: { path: string; headers: Record<string, string> },
  reason: RegExp,
) => {
  const honest = (i: number) => send("POST", "/jobs", { body: `honest ${i}`, headers: { "content-type": "text/plain" } });
  const before = Array.from({ length: HONEST / 2 }, (_, i) => honest(i));
  const refused = send("POST", hostile.path, { body: "hostile", headers: { "content-type": "text/plain", ...hostile.headers } });
  const after = Array.from({ length: HONEST / 2 }, (_, i) => honest(HONEST / 2 + i));
  const answers = await Promise.all([...before, ...after]);
  const hostileAnswer = await refused;
  const seen = {
    hostile: { status: hostileAnswer.status, body: (await hostileAnswer.json()) as unknown },
    honest: await Promise.all(answers.map(async (answer) => `${answer.status}${answer.status === 202 ? "" : ` ${await answer.text()}`}`)),
    queued: (await drain(queue)).map((message) => message.bodyToString()).sort(),
  };
  expect(seen).toEqual({
    hostile: { status: 400, body: { error: expect.stringMatching(reason), route: expect.any(String) } },
    honest: Array.from({ length: HONEST }, () => "202"),
    queued: Array.from({ length: HONEST }, (_, i) => `honest ${i}`).sort(),
  });
};

const publishingRoute = (id: string, queue: string) =>
  `routes:\n  - { id: ${id}, path: /jobs, amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} } } }\n`;

describe("a reply-to the broker reserves for direct reply-to", () => {
  it.each(["amq.rabbitmq.reply-to", "amq.rabbitmq.reply-to.g1h2AA5yZXBseUAxMzc5ODQ5MQAAAAwAAAAAZFSPGA=="])(
    "X-Reply-To: %s is a 400 before anything is sent; honest publishes in flight are all confirmed",
    (replyTo) =>
      withQueue("reply-to", async (queue) => {
        const send = gatewayFor(publishingRoute(uniqueRouteId("reply-to"), queue));
        await alongsideHonestCallers(
          queue,
          send,
          { path: "/jobs", headers: { "x-reply-to": replyTo } },
          /^header X-Reply-To: .*direct reply-to/,
        );
      }),
  );

  it("is told apart as the broker does: other names, other cases, are ordinary queue names", () =>
    withQueue("reply-to-ok", async (queue) => {
      const send = gatewayFor(publishingRoute(uniqueRouteId("reply-to-ok"), queue));
      for (const replyTo of ["AMQ.RABBITMQ.REPLY-TO", "amq.rabbitmq.reply-tox", "replies.amq.rabbitmq.reply-to"]) {
        const answer = await send("POST", "/jobs", { body: replyTo, headers: { "x-reply-to": replyTo } });
        expect(answer.status, replyTo).toBe(202);
      }
      expect((await drain(queue)).map((message) => message.properties.replyTo)).toEqual([
        "AMQ.RABBITMQ.REPLY-TO",
        "amq.rabbitmq.reply-tox",
        "replies.amq.rabbitmq.reply-to",
      ]);
    }));
});

describe("an expiration past what RabbitMQ takes", () => {
  it("X-Expiration over 4294967295 is a 400 before anything is sent; honest publishes in flight are all confirmed", () =>
    withQueue("expiration", async (queue) => {
      const send = gatewayFor(publishingRoute(uniqueRouteId("expiration"), queue));
      await alongsideHonestCallers(
        queue,
        send,
        { path: "/jobs", headers: { "x-expiration": "4294967296" } },
        /^header X-Expiration: .*4294967295/,
      );
    }));

  it("X-Expiration of 4294967295 is published as it is", () =>
    withQueue("expiration-max", async (queue) => {
      const send = gatewayFor(publishingRoute(uniqueRouteId("expiration-max"), queue));
      expect((await send("POST", "/jobs", { body: "x", headers: { "x-expiration": "4294967295" } })).status).toBe(202);
      expect((await drain(queue)).map((message) => message.properties.expiration)).toEqual(["4294967295"]);
    }));
});
