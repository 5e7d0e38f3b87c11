import { resolveEnvReferences } from "../../src/config/env-references";
import type { GatewayConfig } from "../../src/config/schema";

/**
 * The host of `url` as a browser would normalise it (`127.1` → `127.0.0.1`, IPv4-mapped IPv6 in
 * hex, lower case, no trailing dot): parsed as `http:`, since WHATWG URL only normalises hosts of
 * the special schemes.
 */
const normalisedHost = (url: string): string | undefined => {
  try {
    return new URL(url.replace(/^[a-z][a-z0-9+.-]*:/i, "http:")).hostname.replace(/\.$/, "");
  } catch {
    return undefined;
  }
};

/** Hosts that only mean something on the machine the gateway runs on, never on Cloudflare. */
const isLoopback = (host: string): boolean =>
  host === "localhost" ||
  host.endsWith(".localhost") ||
  /^127\.\d+\.\d+\.\d+$/.test(host) ||
  host === "0.0.0.0" ||
  host === "[::1]" ||
  host === "[::]" ||
  /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(host) ||
  host === "[::ffff:0:0]";

/** A value written into the file rather than taken whole from the environment (`hunter2${X}` is literal). */
const isLiteral = (value: string): boolean => value.replace(/\$\{[A-Za-z_][A-Za-z0-9_]*\}/g, "") !== "";

/**
 * Why a routes file must not be deployed as it is, one line each: `/amqp` left public without
 * ADMIN_TOKEN (unless the file says `admin: { public: true }`), and, unless `allowLocal`, a broker
 * URL with a literal password or a loopback host (also when it comes from `${NAME}`, whose value
 * is known here), a `jwks_url` over plain http, or a credential written into `auth` instead of
 * `${NAME}`. Secrets belong in the environment, where `npm run deploy` uploads them as Worker
 * secrets; a file with them in it ends up in the bundle and in version control.
 */
export const deployProblems = (config: GatewayConfig, env: Record<string, string | undefined>, allowLocal: boolean): string[] => {
  const problems: string[] = [];
  if (!config.admin.public && !env.ADMIN_TOKEN?.trim()) {
    problems.push(
      "GET /amqp would be public: set ADMIN_TOKEN in the environment (npm run deploy uploads it as a Worker secret), or put `admin: { public: true }` in the routes file",
    );
  }
  if (allowLocal) return problems;
  const local = " (pass --allow-local to deploy it anyway)";
  const resolved = (text: string) => resolveEnvReferences(text, env).value;
  for (const route of config.routes) {
    const written = route.amqp.url;
    const url = resolved(written);
    const userInfo = /^[a-z][a-z0-9+.-]*:\/\/([^@/?#]*)@/i.exec(written)?.[1];
    const password = userInfo?.includes(":") ? userInfo.slice(userInfo.indexOf(":") + 1) : undefined;
    if (password && isLiteral(password)) {
      problems.push(`route "${route.id}": amqp.url has a literal password; write it as \${NAME} and set NAME in the environment${local}`);
    }
    // A reference not set here (a password that is already a Worker secret) stands in as "x".
    const host = normalisedHost(url.replace(/\$\{[A-Za-z_][A-Za-z0-9_]*\}/g, "x"));
    if (host && isLoopback(host)) {
      problems.push(
        `route "${route.id}": amqp.url points at ${host}, which is the Cloudflare machine itself once deployed, not your broker${local}`,
      );
    }
    problems.push(...pushProblems(route, resolved, local));
    const auth = route.auth;
    if (auth.kind === "bearer_jwt" && "jwks_url" in auth && /^http:/i.test(resolved(auth.jwks_url))) {
      problems.push(
        `route "${route.id}": auth.bearer_jwt.jwks_url is plain http: the signing keys could be swapped on the way; use https${local}`,
      );
    }
    for (const literal of literalCredentials(auth)) {
      problems.push(`route "${route.id}": auth ${literal} is written into the file; write it as \${NAME}${local}`);
    }
  }
  return [...new Set(problems)];
};

const literalCredentials = (auth: GatewayConfig["routes"][number]["auth"]): string[] => {
  switch (auth.kind) {
    case "api_key":
      return auth.keys.some(isLiteral) ? ["api_key.keys"] : [];
    case "basic":
      return Object.values(auth.users).some(isLiteral) ? ["basic.users (a password)"] : [];
    case "bearer_jwt":
      return "secret" in auth && isLiteral(auth.secret) ? ["bearer_jwt.secret"] : [];
    case "none":
      return [];
  }
};

/**
 * A push route's: its secret, or an `Authorization` header, written into the file; an endpoint on
 * the loopback address (the Cloudflare machine itself once deployed).
 */
const pushProblems = (route: GatewayConfig["routes"][number], resolved: (text: string) => string, local: string): string[] => {
  const push = route.amqp.consumer?.push;
  if (!push) return [];
  const problems: string[] = [];
  if (isLiteral(push.secret)) {
    problems.push(`route "${route.id}": consumer.push.secret is written into the file; write it as \${NAME}${local}`);
  }
  for (const [name, value] of Object.entries(push.headers)) {
    if (/^(authorization|proxy-authorization)$/i.test(name) && isLiteral(value.replace(/^(Bearer|Basic|Token)\s+/i, ""))) {
      problems.push(
        `route "${route.id}": consumer.push.headers.${name} is written into the file; write its credential as \${NAME}${local}`,
      );
    }
  }
  const host = normalisedHost(resolved(push.url).replace(/\$\{[A-Za-z_][A-Za-z0-9_]*\}/g, "x"));
  if (host && isLoopback(host)) {
    problems.push(`route "${route.id}": consumer.push.url points at ${host}, which is the Cloudflare machine itself once deployed${local}`);
  }
  return problems;
};
