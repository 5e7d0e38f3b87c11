import { resolveConfig, type ResolveResult } from "../config/resolve-config";
import type { GatewayConfig } from "../config/schema";
import type { Env } from "../env";
import { createLogger } from "../log";
import { createApp } from "./app";
import { ensurePushes } from "./push-handlers";

type FetchHandler = (request: Request, env: Env, ctx?: ExecutionContext) => Response | Promise<Response>;

/**
 * The Worker's fetch handler for `config`: the app is built once per environment object, from the
 * routes with `${NAME}` filled from that environment (its vars and secrets), so a request never
 * resolves anything. A variable that is not set answers every request with 500 naming the
 * variable (never a value), so a forgotten `wrangler secret put` is obvious.
 */
export const createGateway = (config: GatewayConfig): { fetch: FetchHandler; scheduled: ScheduledHandler } => {
  const apps = new WeakMap<Env, FetchHandler>();
  const resolutions = new WeakMap<Env, ResolveResult>();
  const resolve = (env: Env): ResolveResult => {
    let resolved = resolutions.get(env);
    if (!resolved) {
      resolved = resolveConfig(config, env);
      if (!resolved.ok) createLogger(env).log("error", "the gateway is misconfigured", { problems: resolved.problems.join("; ") });
      resolutions.set(env, resolved);
    }
    return resolved;
  };
  const appFor = (env: Env): FetchHandler => {
    let app = apps.get(env);
    if (!app) {
      const resolved = resolve(env);
      app = resolved.ok ? createApp(resolved.config).fetch : misconfigured(resolved.problems);
      apps.set(env, app);
    }
    return app;
  };
  return {
    fetch: (request, env, ctx) => appFor(env)(request, env, ctx),
    // Cloudflare's cron trigger (wrangler.toml), and the servers' start: every push route's shards
    // that do not run (evicted, restarted, just deployed) start again.
    scheduled: async (_controller, env) => {
      const resolved = resolve(env);
      if (resolved.ok) await ensurePushes(env, resolved.config.routes);
    },
  };
};

type ScheduledHandler = (controller: unknown, env: Env, ctx?: ExecutionContext) => Promise<void>;

const misconfigured =
  (problems: string[]): FetchHandler =>
  () =>
    Response.json({ error: `the gateway is misconfigured: ${problems.join("; ")}`, route: null }, { status: 500 });
