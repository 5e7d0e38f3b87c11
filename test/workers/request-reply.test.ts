/**
 * Request/reply inside workerd against the real broker: a responder of the tests' own
 * (./responder.ts: an amqp-client consumer that answers each request on its reply_to), the synchronous
 * answer with the reply's body and properties, the timeout (504, the request was published), the
 * async form polled at its Location, and many concurrent requests each getting their own reply.
 */
import { describe, expect, it } from "vitest";
import { BROKER_URL, uniqueName } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";
import { withResponder } from "./responder";

const rpcRoute = (queue: string, timeoutMs = 1500) => `routes:
  - id: ${uniqueRouteId("rpc")}
    path: /rpc/:service
    methods: [POST]
    amqp:
      enabled: true
      url: "${BROKER_URL}"
      producer: { routing_key: ${queue}, reply: true, reply_timeout_ms: ${timeoutMs} }
`;

describe("request/reply", () => {
  it("answers 200 with the reply's body, content type and properties", async () => {
    const queue = uniqueName("rpc");
    await withResponder(
      queue,
      (request) => ({ body: `echo:${request.bodyToString() ?? ""}`, properties: { messageId: "pong-1", headers: { served: "yes" } } }),
      async () => {
        const send = gatewayFor(rpcRoute(queue));
        const answer = await send("POST", "/rpc/echo", { body: "hello" });
        expect(answer.status).toBe(200);
        expect(await answer.text()).toBe("echo:hello");
        expect(answer.headers.get("content-type")).toBe("text/plain");
        expect(answer.headers.get("x-message-id")).toBe("pong-1");
        expect(answer.headers.get("x-amqp-header-served")).toBe("yes");
        expect(answer.headers.get("x-correlation-id")).toMatch(/^0\.[0-9a-f-]{36}$/);
        // Where the reply came through (the gateway's own reply channel) is not the client's business.
        expect(answer.headers.get("x-routing-key")).toBeNull();
        expect(answer.headers.get("x-exchange")).toBeNull();
        // Prefer: a preference that only starts with respond-async is not it: answered at once.
        const notAsync = await send("POST", "/rpc/echo", {
          body: "sync",
          headers: { Prefer: "respond-async-not, foo; respond-async=false" },
        });
        expect(notAsync.status).toBe(200);
        expect(await notAsync.text()).toBe("echo:sync");
      },
    );
  });

  it("answers 504 when no reply comes in time, saying the request was published", async () => {
    const queue = uniqueName("rpc-silent");
    let heard = 0;
    await withResponder(
      queue,
      () => {
        heard++;
        return undefined;
      },
      async () => {
        const send = gatewayFor(rpcRoute(queue, 300));
        const answer = await send("POST", "/rpc/x", { body: "anyone?" });
        expect(answer.status).toBe(504);
        expect(((await answer.json()) as { error: string }).error).toMatch(/no reply within 300 ms.*the request was published/);
        expect(heard).toBe(1);
      },
    );
  });

  it("with Prefer: respond-async, answers 202 with a Location that is 202 while pending, 200 with the reply, 404 once expired", async () => {
    const queue = uniqueName("rpc-async");
    const held: Array<() => void> = [];
    await withResponder(
      queue,
      // Answers only when the test lets it.
      () => new Promise((resolve) => held.push(() => resolve({ body: "later" }))),
      async () => {
        const send = gatewayFor(rpcRoute(queue, 1000));
        const accepted = await send("POST", "/rpc/slow", { body: "job", headers: { Prefer: "respond-async" } });
        expect(accepted.status).toBe(202);
        expect(accepted.headers.get("preference-applied")).toBe("respond-async");
        const location = accepted.headers.get("location") ?? "";
        expect(location).toMatch(/^\/rpc\/slow\/replies\/0\.[0-9a-f-]{36}$/);
        expect(await accepted.json()).toMatchObject({ status: "accepted", location });
        const pending = await send("GET", location);
        expect(pending.status).toBe(202);
        expect(await pending.json()).toMatchObject({ status: "pending" });
        await expect.poll(() => held.length).toBeGreaterThan(0);
        for (const release of held) release();
        await expect.poll(async () => (await send("GET", location)).status).toBe(200);
        // Fetched again while it is kept: the same reply.
        expect(await (await send("GET", location)).text()).toBe("later");
        await new Promise((resolve) => setTimeout(resolve, 1300));
        expect((await send("GET", location)).status).toBe(404);
        expect((await send("GET", "/rpc/slow/replies/not-an-id")).status).toBe(404);
      },
    );
  });

  it("gives 200 concurrent requests each its own reply, over one reply consumer", async () => {
    const queue = uniqueName("rpc-many");
    await withResponder(
      queue,
      (request) => ({ body: `re:${request.bodyToString() ?? ""}` }),
      async () => {
        const send = gatewayFor(rpcRoute(queue, 10000));
        const answers = await Promise.all(
          Array.from({ length: 200 }, async (_, index) => {
            const answer = await send("POST", "/rpc/many", { body: `request-${index}` });
            return { status: answer.status, body: await answer.text() };
          }),
        );
        expect(answers.filter((answer) => answer.status !== 200)).toEqual([]);
        expect(answers.map((answer) => answer.body)).toEqual(Array.from({ length: 200 }, (_, index) => `re:request-${index}`));
      },
    );
  });

  it("refuses a request that sets its own reply_to or correlation_id (400), and a request no queue takes (422, mandatory by default on reply routes), publishing nothing", async () => {
    const queue = uniqueName("rpc-refused");
    let heard = 0;
    await withResponder(
      queue,
      () => {
        heard++;
        return { body: "unexpected" };
      },
      async () => {
        const send = gatewayFor(rpcRoute(queue));
        for (const header of ["X-Correlation-Id", "X-Reply-To"]) {
          const answer = await send("POST", "/rpc/x", { body: "x", headers: { [header]: "mine" } });
          expect(answer.status).toBe(400);
          expect(((await answer.json()) as { error: string }).error).toMatch(new RegExp(`header ${header.toLowerCase()}`));
        }
        const nowhere = gatewayFor(`routes:
  - id: ${uniqueRouteId("rpc-nowhere")}
    path: /nowhere
    methods: [POST]
    amqp:
      enabled: true
      url: "${BROKER_URL}"
      producer: { routing_key: ${queue}-no-such-queue, reply: true, reply_timeout_ms: 2000 }
`);
        const unroutable = await nowhere("POST", "/nowhere", { body: "x" });
        expect(unroutable.status).toBe(422);
        expect(heard).toBe(0);
      },
    );
  });
});
