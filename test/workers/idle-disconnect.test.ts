/**
 * `idle_disconnect_s`: a route's objects close their broker connections once the route has had
 * no request for that long and nothing is held for a client, and the next request connects
 * again; `never` keeps them, with an alarm that keeps the object awake. (Whether the broker sees
 * the connection go is checked from outside, in test/e2e/idle-disconnect.test.ts.)
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { BROKER_URL, drain, messageCount, publishDirect, uniqueName, withQueue } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";
import { withResponder } from "./responder";

const json = { "content-type": "application/json" };

const routes = (id: string, queue: string, idle: string) => `
routes:
  - { id: ${id}-in, path: /in, amqp: { enabled: true, url: "${BROKER_URL}", idle_disconnect_s: ${idle}, producer: { routing_key: ${queue} } } }
  - { id: ${id}, path: /jobs, amqp: { enabled: true, url: "${BROKER_URL}", idle_disconnect_s: ${idle}, consumer: { queue: ${queue}, ack: lease, lease_timeout_ms: 20000 } } }
`;

const connected = async (send: ReturnType<typeof gatewayFor>, id: string): Promise<boolean> => {
  const stats = (await (await send("GET", "/amqp")).json()) as Record<string, { connected: boolean }>;
  return stats[id]?.connected ?? false;
};

describe("a route with idle_disconnect_s", () => {
  it("closes its connection after that long without a request, and the next request connects again", () =>
    withQueue("idle", async (queue) => {
      const id = uniqueRouteId("idle");
      const send = gatewayFor(routes(id, queue, "1"));
      expect((await send("POST", "/in", { body: '"first"', headers: json })).status).toBe(202);
      expect(await connected(send, `${id}-in`)).toBe(true);
      await vi.waitUntil(async () => !(await connected(send, `${id}-in`)), { timeout: 4000, interval: 100 });
      expect((await send("POST", "/in", { body: '"second"', headers: json })).status).toBe(202);
      expect(await connected(send, `${id}-in`)).toBe(true);
      expect((await drain(queue)).map((message) => message.bodyString())).toEqual(['"first"', '"second"']);
    }));

  it(
    "loses and repeats nothing when callers come back just as it lets go",
    () =>
      withQueue("idle-race", async (queue) => {
        const id = uniqueRouteId("idle-race");
        const send = gatewayFor(`
routes:
  - { id: ${id}-in, path: /in, amqp: { enabled: true, url: "${BROKER_URL}", idle_disconnect_s: 1, producer: { routing_key: ${queue} } } }
  - { id: ${id}, path: /jobs, amqp: { enabled: true, url: "${BROKER_URL}", idle_disconnect_s: 1, consumer: { queue: ${queue}, auto_ack: true } } }
`);
        const deadline = Date.now() + 6000;
        // Pauses around the idle time, so that requests land before, during and after a disconnect.
        const pause = () => new Promise((resolve) => setTimeout(resolve, 700 + Math.random() * 700));
        const accepted: string[] = [];
        const consumed: string[] = [];
        const failed: number[] = [];
        let sawDisconnected = false;
        const publishers = Array.from({ length: 3 }, async (_, publisher) => {
          for (let n = 0; Date.now() < deadline; n++) {
            await pause();
            const body = `"p${publisher}-${n}"`;
            const answer = await send("POST", "/in", { body, headers: json });
            await answer.arrayBuffer();
            if (answer.status === 202) accepted.push(body);
            else failed.push(answer.status);
          }
        });
        const consumers = Array.from({ length: 2 }, async () => {
          while (Date.now() < deadline) {
            await pause();
            const answer = await send("GET", "/jobs");
            if (answer.status === 200) consumed.push(await answer.text());
            else if (answer.status === 204) await answer.arrayBuffer();
            else failed.push(answer.status);
          }
        });
        const watcher = (async () => {
          while (Date.now() < deadline) {
            if (!(await connected(send, `${id}-in`)) || !(await connected(send, id))) sawDisconnected = true;
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        })();
        await Promise.all([...publishers, ...consumers, watcher]);
        expect(sawDisconnected).toBe(true);
        expect(failed).toEqual([]);
        const left = (await drain(queue)).map((message) => message.bodyString() ?? "");
        // Every 202 consumed once or still in the queue; nothing consumed that was not accepted.
        expect([...consumed, ...left].sort()).toEqual([...accepted].sort());
      }),
    20_000,
  );

  it(
    "keeps its connection while a lease is held, and lets go once it is settled",
    () =>
      withQueue("idle", async (queue) => {
        const id = uniqueRouteId("idle-lease");
        const send = gatewayFor(routes(id, queue, "1"));
        await publishDirect(queue, "leased");
        const taken = await send("GET", "/jobs");
        expect(taken.status).toBe(200);
        const leaseId = taken.headers.get("x-lease-id") ?? "";
        // Three times the idle time: the lease holds the connection (closing it would requeue the message).
        await new Promise((resolve) => setTimeout(resolve, 3000));
        expect(await connected(send, id)).toBe(true);
        const acked = await send("POST", "/jobs/ack", { headers: json, body: JSON.stringify({ lease_ids: [leaseId] }) });
        expect(((await acked.json()) as { results: Array<{ outcome: string }> }).results[0]?.outcome).toBe("acked");
        // Looked at again every few seconds while something was held.
        await vi.waitUntil(async () => !(await connected(send, id)), { timeout: 9000, interval: 200 });
        expect(await messageCount(queue)).toBe(0);
      }),
    20_000,
  );

  it("keeps its connection while an async request's reply is kept for its client, which would die with the object", async () => {
    const queue = uniqueName("idle-rpc");
    const id = uniqueRouteId("idle-rpc");
    await withResponder(
      queue,
      (request) => ({ body: `reply to ${request.bodyToString() ?? ""}` }),
      async () => {
        const send = gatewayFor(`
routes:
  - { id: ${id}, path: /rpc, methods: [POST], amqp: { enabled: true, url: "${BROKER_URL}", idle_disconnect_s: 1, producer: { routing_key: ${queue}, reply: true, reply_timeout_ms: 4000 } } }
`);
        const accepted = await send("POST", "/rpc", { body: "one", headers: { prefer: "respond-async" } });
        expect(accepted.status).toBe(202);
        const location = accepted.headers.get("location") ?? "";
        // Three times the idle time, the reply in and unread: still connected, the reply still there.
        await new Promise((resolve) => setTimeout(resolve, 3000));
        expect(await connected(send, id)).toBe(true);
        const reply = await send("GET", location);
        expect(await reply.text()).toBe("reply to one");
        // Once the kept reply has expired, the route lets go.
        await vi.waitUntil(async () => !(await connected(send, id)), { timeout: 12_000, interval: 200 });
      },
    );
  }, 25_000);

  it("never: keeps its connection, and an alarm wakes the object while it is connected", () =>
    withQueue("idle", async (queue) => {
      const id = uniqueRouteId("never");
      const send = gatewayFor(routes(id, queue, "never"));
      expect((await send("POST", "/in", { body: '"kept"', headers: json })).status).toBe(202);
      const stub = env.AMQP_ROUTE.get(env.AMQP_ROUTE.idFromName(`${id}-in`));
      const alarm = await runInDurableObject(stub, (_, state) => state.storage.getAlarm());
      expect(alarm).toBeGreaterThan(Date.now());
      expect(await runDurableObjectAlarm(stub)).toBe(true);
      // Set again by the alarm, since the object is still connected.
      expect(await runInDurableObject(stub, (_, state) => state.storage.getAlarm())).toBeGreaterThan(Date.now());
      expect(await connected(send, `${id}-in`)).toBe(true);
      expect(await messageCount(queue)).toBe(1);
    }));
});
