import type { GatewayConfig } from "../../src/config/schema";
import { hasEnvReference } from "../../src/config/env-references";

/** Hosts that only mean something on the machine the gateway runs on, never on Cloudflare. */
const isLoopback = (hostname: string): boolean =>
  hostname === "localhost" || hostname === "[::1]" || hostname === "0.0.0.0" || /^127\.\d+\.\d+\.\d+$/.test(hostname);

/**
 * Why a routes file must not be deployed as it is, one line each: `/amqp` left public without
 * ADMIN_TOKEN (unless the file says `admin: { public: true }`), and, unless `allowLocal`, a broker
 * URL with a literal password or a loopback host, or a credential written into `auth` instead of
 * `${NAME}`. Secrets belong in the environment, where `npm run deploy` uploads them as Worker
 * secrets; a file with them in it ends up in the bundle and in version control.
 */
export const deployProblems = (config: GatewayConfig, env: Record<string, string | undefined>, allowLocal: boolean): string[] => {
  const problems: string[] = [];
  if (!config.admin.public && !env.ADMIN_TOKEN) {
    problems.push(
      "GET /amqp would be public: set ADMIN_TOKEN in the environment (npm run deploy uploads it as a Worker secret), or put `admin: { public: true }` in the routes file",
    );
  }
  if (allowLocal) return problems;
  const local = " (pass --allow-local to deploy it anyway)";
  for (const route of config.routes) {
    const url = route.amqp.url;
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      parsed = undefined;
    }
    if (parsed?.password && !hasEnvReference(decodeURIComponent(parsed.password))) {
      problems.push(`route "${route.id}": amqp.url has a literal password; write it as \${NAME} and set NAME in the environment${local}`);
    }
    if (parsed && !hasEnvReference(parsed.hostname) && isLoopback(parsed.hostname)) {
      problems.push(
        `route "${route.id}": amqp.url points at ${parsed.hostname}, which is the Cloudflare machine itself once deployed, not your broker${local}`,
      );
    }
    for (const literal of literalCredentials(route.auth)) {
      problems.push(`route "${route.id}": auth ${literal} is written into the file; write it as \${NAME}${local}`);
    }
  }
  return [...new Set(problems)];
};

const literalCredentials = (auth: GatewayConfig["routes"][number]["auth"]): string[] => {
  const literal = (value: string) => !hasEnvReference(value);
  switch (auth.kind) {
    case "api_key":
      return auth.keys.some(literal) ? ["api_key.keys"] : [];
    case "basic":
      return Object.values(auth.users).some(literal) ? ["basic.users (a password)"] : [];
    case "bearer_jwt":
      return "secret" in auth && literal(auth.secret) ? ["bearer_jwt.secret"] : [];
    case "none":
      return [];
  }
};
