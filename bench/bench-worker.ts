/**
 * The gateway as deployed, plus baselines for the benchmark.
 *
 * The gateway's own no-AMQP ceiling: two routes of the bench's routes file ({@link NO_AMQP_ROUTES})
 * are served by the gateway like any other, but their object answers without the broker (a
 * publish confirmed at once, a GET with a canned message). A route's publishes and consumes are
 * judged against these: the difference is what the broker work, and the object's own handling of
 * the request (counters, rate limit, memory budget), cost.
 *
 * The runtime's bare ceiling: `POST /__ceiling/<route id>` reads the body, calls the route's
 * Durable Object with the message, as a publish does, and answers 202, with none of the gateway's
 * middleware, access checks or memory accounting; the object answers "confirmed" without any AMQP
 * work. It is what the HTTP runtime and the Worker → object hop alone can do on this machine.
 * (The body must be read: a route that leaves it unread breaks keep-alive connections in workerd
 * under load.)
 *
 * Three baselines for what a request costs the runtime itself (`npm run profile -- get-alone`,
 * `get-object-call`, `get-object-call-route`): `GET /__baseline/alone` answers 250 bytes from the
 * Worker alone, `GET /__baseline/object-call` does the same after an empty call to the
 * bench-consume route's object, and `GET /__baseline/object-call-route` after a call that carries
 * the route's settings, as every gateway call does. Their ratios are the price of one call to a
 * Durable Object here, and of its argument (BENCHMARKS.md, "The object call").
 *
 * Requests are told apart before either Hono app sees them, so the gateway's routes and the
 * ceiling each pay for one router, as the gateway does when deployed.
 */
import { Hono } from "hono";
import type { Env, GatewayEnv } from "../src/env";
import gateway, { AmqpRouteObject as GatewayRouteObject } from "../src/index";
import { routesConfig } from "../src/generated/routes";
import type { ConsumeOutcome, ConsumeRequest, PublishManyOutcome, PublishManyRequest } from "../src/contract/route-calls";
import { routeObject } from "../src/http/route-client";
import { resolveConfig } from "../src/config/resolve-config";
import { acceptWithoutPublishing, noAmqpConsume, noAmqpPublish } from "./lib/no-amqp";
import { BASELINE_PREFIX, CEILING_PREFIX } from "./lib/worker-paths";
import type { ConsumingTarget } from "../src/contract/route-settings";

export class AmqpRouteObject extends GatewayRouteObject {
  /** What `publishMany` receives, answered as if every message were confirmed. */
  acceptWithoutPublishing(request: PublishManyRequest): PublishManyOutcome {
    return acceptWithoutPublishing(request);
  }

  override async publishMany(request: PublishManyRequest): Promise<PublishManyOutcome> {
    return noAmqpPublish(request) ?? super.publishMany(request);
  }

  override async consume(route: ConsumingTarget, request: ConsumeRequest): Promise<ConsumeOutcome> {
    return noAmqpConsume(route) ?? super.consume(route, request);
  }

  /**
   * The push section's ceiling (bench/lib/push.ts): `count` POSTs of `bodyOf(i)` to `url`,
   * `concurrency` at a time, each with its own timeout as a push attempt has: what fetch alone
   * can do from a route object here, without AMQP, signing or headers. Resolves when all answered.
   */
  async fetchLoop(url: string, count: number, concurrency: number, padding: number): Promise<number> {
    let next = 0;
    let failed = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < count) {
          const head = `${next++} 0 `;
          const timeout = new AbortController();
          const timer = setTimeout(() => timeout.abort(), 10_000);
          try {
            const response = await fetch(url, {
              method: "POST",
              body: head + "x".repeat(Math.max(0, padding - head.length)),
              signal: timeout.signal,
            });
            await response.body?.cancel();
            if (!response.ok) failed++;
          } catch {
            failed++;
          } finally {
            clearTimeout(timer);
          }
        }
      }),
    );
    return failed;
  }

  /** Nothing: the object call alone. */
  nothing(): number {
    return 0;
  }

  /** Nothing, given a route's settings, as every call of the gateway is. */
  nothingWith(route: unknown): number {
    return route === undefined ? 1 : 0;
  }
}

const resolvedConfigs = new WeakMap<Env, ReturnType<typeof resolveConfig>>();
const resolvedFor = (env: Env): ReturnType<typeof resolveConfig> => {
  let resolved = resolvedConfigs.get(env);
  if (!resolved) resolvedConfigs.set(env, (resolved = resolveConfig(routesConfig, env)));
  return resolved;
};

const ceiling = new Hono<GatewayEnv>();
ceiling.post(`${CEILING_PREFIX}:route`, async (c) => {
  // Resolved once per environment, as the gateway does (src/http/gateway.ts).
  const resolved = resolvedFor(c.env);
  const target = resolved.ok ? resolved.config.routes.find((candidate) => candidate.id === c.req.param("route")) : undefined;
  if (!target?.amqp.producer) return c.json({ error: "no such route" }, 404);
  const body = await c.req.arrayBuffer();
  const object = routeObject(c.env, target) as unknown as DurableObjectStub<AmqpRouteObject>;
  const contentType = c.req.header("content-type") ?? "application/json";
  await object.acceptWithoutPublishing({
    route: { ...target, amqp: { ...target.amqp, producer: target.amqp.producer } },
    messages: [{ body, properties: { contentType } }],
  });
  return c.json({ status: "published" }, 202);
});

const baseline = new Hono<GatewayEnv>();
const BASELINE_BODY = "x".repeat(250);
baseline.post(`${BASELINE_PREFIX}fetch-loop`, async (c) => {
  const { url, count, concurrency, padding } = await c.req.json<{ url: string; count: number; concurrency: number; padding: number }>();
  // An object of its own, as a push route's is.
  const object = c.env.AMQP_ROUTE.get(c.env.AMQP_ROUTE.idFromName("bench-fetch-loop")) as unknown as DurableObjectStub<AmqpRouteObject>;
  return c.json({ failed: await object.fetchLoop(url, count, concurrency, padding) });
});
baseline.get(`${BASELINE_PREFIX}alone`, (c) => c.body(BASELINE_BODY, 200, { "content-type": "application/json" }));
baseline.get(`${BASELINE_PREFIX}object-call`, async (c) => {
  const object = c.env.AMQP_ROUTE.get(c.env.AMQP_ROUTE.idFromName("bench-consume")) as unknown as DurableObjectStub<AmqpRouteObject>;
  await object.nothing();
  return c.body(BASELINE_BODY, 200, { "content-type": "application/json" });
});

baseline.get(`${BASELINE_PREFIX}object-call-route`, async (c) => {
  const resolved = resolvedFor(c.env);
  const route = resolved.ok ? resolved.config.routes.find((candidate) => candidate.id === "bench-consume") : undefined;
  if (!route) return c.json({ error: "no bench-consume route" }, 500);
  const object = c.env.AMQP_ROUTE.get(c.env.AMQP_ROUTE.idFromName("bench-consume")) as unknown as DurableObjectStub<AmqpRouteObject>;
  // What the gateway's calls carry: the route's id and settings.
  await object.nothingWith({ id: route.id, amqp: route.amqp });
  return c.body(BASELINE_BODY, 200, { "content-type": "application/json" });
});

export default {
  fetch: (request: Request, env: Env, ctx: ExecutionContext) =>
    request.url.includes(CEILING_PREFIX)
      ? ceiling.fetch(request, env, ctx)
      : request.url.includes(BASELINE_PREFIX)
        ? baseline.fetch(request, env, ctx)
        : gateway.fetch(request, env, ctx),
  // Push routes start from the Cron Trigger, as deployed (npm start runs it at start).
  scheduled: gateway.scheduled,
} satisfies ExportedHandler<Env>;
