/**
 * Builds a gateway inside workerd from a routes YAML, exactly as the Worker does from the
 * compiled routes (`${NAME}` filled from the bindings), and sends it requests with the real Durable Object binding.
 */
import { env } from "cloudflare:test";
import { parseRoutes } from "../../src/config/parse-routes";
import { createGateway } from "../../src/http/gateway";
import type { Env } from "../../src/env";

/**
 * The gateway logs a line per request; a test run prints none of them, unless a test listens
 * (it sets this while it reads the console).
 */
export const gatewayLogs = { heard: false };

export const gatewayFor = (yaml: string, overrides: Partial<Env> = {}) => {
  const result = parseRoutes(yaml);
  if (!result.ok) throw new Error(`test routes are invalid:\n${result.problems.join("\n")}`);
  const gateway = createGateway(result.config);
  const quiet = { ...env, LOG_LEVEL: "none", ...overrides } as Env;
  const heard = { ...env, LOG_LEVEL: "info", ...overrides } as Env;
  // A path is sent to http://gateway.test; a whole URL as it is (the request's own origin is its host, as workerd builds it from Host).
  return async (method: string, path: string, init: RequestInit = {}): Promise<Response> =>
    gateway.fetch(
      new Request(/^https?:/.test(path) ? path : `http://gateway.test${path}`, { method, ...init }),
      gatewayLogs.heard ? heard : quiet,
    );
};

/** A route id no other test uses, so each test gets fresh Durable Objects and counters. */
export const uniqueRouteId = (name: string) => `${name}-${crypto.randomUUID().slice(0, 8)}`;
