import type { GatewayConfig, RouteConfig } from "../config/schema";
import { resolveConfig } from "../config/resolve-config";
import { GatewayError } from "./gateway-error";

type Resolved = { ok: true; routes: Map<string, RouteConfig> } | { ok: false; problems: string[] };
const cache = new WeakMap<object, WeakMap<GatewayConfig, Resolved>>();

/**
 * The routes with `${NAME}` filled from the Worker's environment, by id. Resolved once per
 * environment object; a variable that is not set answers 500 naming the variable (never a
 * value), so a forgotten `wrangler secret put` is obvious.
 */
export const resolvedRoutes = (config: GatewayConfig, env: Record<string, unknown>): Map<string, RouteConfig> => {
  let perEnv = cache.get(env);
  if (!perEnv) cache.set(env, (perEnv = new WeakMap()));
  let resolved = perEnv.get(config);
  if (!resolved) {
    const result = resolveConfig(config, env);
    resolved = result.ok ? { ok: true, routes: new Map(result.config.routes.map((route) => [route.id, route])) } : result;
    perEnv.set(config, resolved);
  }
  if (!resolved.ok) throw new GatewayError(500, `the gateway is misconfigured: ${resolved.problems.join("; ")}`, null);
  return resolved.routes;
};
