import type { RouteConfig, RouteMethod } from "../config/schema";

/**
 * Routes that share a path (the documentation's `/api/jobs` example has a POST route and a GET route). A request
 * matches the path first and picks a route by method, so a path that exists but does not serve
 * the method answers 405 with `Allow`, not 404.
 */
export interface RouteGroup {
  /** Hono patterns for the group: the path, and everything below it for `path_prefix`. */
  patterns: string[];
  routes: RouteConfig[];
  /** Every method some route of the group serves. */
  allowed: RouteMethod[];
}

export const groupRoutes = (routes: readonly RouteConfig[]): RouteGroup[] => {
  const groups = new Map<string, RouteGroup>();
  for (const route of routes) {
    const key = `${route.path_prefix ? "prefix" : "exact"} ${route.path}`;
    const group = groups.get(key) ?? { patterns: patternsOf(route), routes: [], allowed: [] };
    group.routes.push(route);
    group.allowed = [...new Set([...group.allowed, ...route.methods])];
    groups.set(key, group);
  }
  return [...groups.values()];
};

const patternsOf = (route: RouteConfig): string[] => {
  if (!route.path_prefix) return [route.path];
  const base = route.path.replace(/\/+$/, "");
  return base === "" ? ["/*"] : [base, `${base}/*`];
};

/** The route of `group` that serves `method`, if any. */
export const routeForMethod = (group: RouteGroup, method: string): RouteConfig | undefined =>
  group.routes.find((route) => (route.methods as string[]).includes(method));
