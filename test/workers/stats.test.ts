import { runInDurableObject, env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { FLUSH_DELAY_MS, RouteCountersStore } from "../../src/amqp/route-counters";
import { declareQueue, deleteQueue, uniqueName } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

const routes = (publisher: string, consumer: string, queue: string) => `
routes:
  - { id: ${publisher}, path: /in, amqp: { enabled: true, url: "amqp://guest:guest@127.0.0.1:5672/", producer: { routing_key: ${queue} } } }
  - { id: ${consumer}, path: /out, amqp: { enabled: true, url: "amqp://guest:guest@127.0.0.1:5672/", consumer: { queue: ${queue}, auto_ack: true } } }
`;

describe("GET /amqp", () => {
  it("counts requests, errors, published and consumed per route, with the password hidden", async () => {
    const queue = uniqueName("stats");
    await declareQueue(queue);
    try {
      const [publisher, consumer] = [uniqueRouteId("pub"), uniqueRouteId("sub")];
      const gateway = gatewayFor(routes(publisher, consumer, queue));
      for (let i = 0; i < 3; i++) expect((await gateway("POST", "/in", { body: "{}" })).status).toBe(202);
      expect((await gateway("GET", "/out")).status).toBe(200);
      expect((await gateway("GET", "/out")).status).toBe(200);
      expect((await gateway("GET", "/out")).status).toBe(200);
      expect((await gateway("GET", "/out")).status).toBe(204);
      await deleteQueue(queue);
      expect((await gateway("GET", "/out")).status).toBe(404);

      const stats = await (await gateway("GET", "/amqp")).json();
      expect(stats).toEqual({
        [publisher]: {
          url: "amqp://guest:***@127.0.0.1:5672/",
          total_requests: 3,
          total_errors: 0,
          published: 3,
          consumed: 0,
          rejected: 0,
          leased: 0,
          acked: 0,
          nacked: 0,
          expired: 0,
          pushed: 0,
          push_failures: 0,
          dead_lettered: 0,
          connected: true,
          last_error: null,
        },
        [consumer]: {
          url: "amqp://guest:***@127.0.0.1:5672/",
          total_requests: 5,
          total_errors: 1,
          published: 0,
          consumed: 3,
          rejected: 0,
          leased: 0,
          acked: 0,
          nacked: 0,
          expired: 0,
          pushed: 0,
          push_failures: 0,
          dead_lettered: 0,
          connected: true,
          last_error: { message: `queue "${queue}" does not exist`, at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) },
        },
      });
    } finally {
      await deleteQueue(queue);
    }
  });

  it("keeps the counters in the object's storage, so they outlive the object", async () => {
    const queue = uniqueName("persist");
    await declareQueue(queue);
    try {
      const [publisher, consumer] = [uniqueRouteId("pub"), uniqueRouteId("sub")];
      expect((await gatewayFor(routes(publisher, consumer, queue))("POST", "/in", { body: "{}" })).status).toBe(202);
      const stub = env.AMQP_ROUTE.get(env.AMQP_ROUTE.idFromName(publisher));
      // Writes are coalesced: they reach storage within FLUSH_DELAY_MS.
      await new Promise((resolve) => setTimeout(resolve, FLUSH_DELAY_MS + 200));
      // What a new instance of the object (after eviction or a restart) would start from: counters
      // built afresh from its storage alone.
      const restored = await runInDurableObject(stub, (_, state) => new RouteCountersStore(state.storage).snapshot());
      expect(restored).toEqual({
        total_requests: 1,
        total_errors: 0,
        published: 1,
        consumed: 0,
        rejected: 0,
        leased: 0,
        acked: 0,
        nacked: 0,
        expired: 0,
        pushed: 0,
        push_failures: 0,
        dead_lettered: 0,
        last_error: null,
      });
    } finally {
      await deleteQueue(queue);
    }
  });

  it("requires the bearer token when ADMIN_TOKEN is set", async () => {
    const gateway = gatewayFor(routes(uniqueRouteId("pub"), uniqueRouteId("sub"), "unused"), { ADMIN_TOKEN: "s3cret-token" });
    const missing = await gateway("GET", "/amqp");
    expect(missing.status).toBe(401);
    expect(await missing.json()).toEqual({ error: "this endpoint requires Authorization: Bearer <ADMIN_TOKEN>", route: null });
    expect((await gateway("GET", "/amqp", { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
    expect((await gateway("GET", "/amqp", { headers: { authorization: "Basic abc" } })).status).toBe(401);
    expect((await gateway("GET", "/amqp", { headers: { authorization: "Bearer s3cret-token" } })).status).toBe(200);
  });

  it("accepts an ADMIN_TOKEN with characters a bearer token68 cannot have, compared as sent", async () => {
    const gateway = gatewayFor(routes(uniqueRouteId("pub"), uniqueRouteId("sub"), "unused"), { ADMIN_TOKEN: "Adm!n:T0ken" });
    const denied = await gateway("GET", "/amqp", { headers: { authorization: "Bearer Adm!n:T0keN" } });
    expect(denied.status).toBe(401);
    expect(denied.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect((await gateway("GET", "/amqp", { headers: { authorization: "Bearer Adm!n:T0ken" } })).status).toBe(200);
    // HTTP drops a header's outer spaces: a token set with some still works without them.
    const padded = gatewayFor(routes(uniqueRouteId("pub"), uniqueRouteId("sub"), "unused"), { ADMIN_TOKEN: " padded-token " });
    expect((await padded("GET", "/amqp", { headers: { authorization: "Bearer padded-token" } })).status).toBe(200);
  });
});

describe("the counters of a route whose URL changes", () => {
  it("start again from zero, rather than show one broker's totals under another's URL", async () => {
    const queue = uniqueName("moved");
    await declareQueue(queue);
    try {
      const id = uniqueRouteId("moved");
      const at = (url: string) =>
        gatewayFor(`routes:\n  - { id: ${id}, path: /in, amqp: { enabled: true, url: "${url}", producer: { routing_key: ${queue} } } }\n`);
      const before = at("amqp://guest:guest@127.0.0.1:5672/");
      for (let i = 0; i < 2; i++) expect((await before("POST", "/in", { body: "{}" })).status).toBe(202);
      const after = at("amqp://guest:guest@localhost:5672/");
      const stats = async () => ((await (await after("GET", "/amqp")).json()) as Record<string, { url: string; published: number }>)[id];
      expect(await stats()).toMatchObject({ url: "amqp://guest:***@localhost:5672/", published: 0 });
      expect((await after("POST", "/in", { body: "{}" })).status).toBe(202);
      expect(await stats()).toMatchObject({ published: 1 });
    } finally {
      await deleteQueue(queue);
    }
  });
});
