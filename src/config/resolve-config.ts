import { resolveEnvReferences } from "./env-references";
import { originsProblem, type AuthConfig } from "./access-schema";
import { amqpUrlProblem, type GatewayConfig } from "./schema";
import { pushHeaderValueProblem, pushSecretProblem, pushUrlProblem } from "./push-schema";

export type ResolveResult = { ok: true; config: GatewayConfig } | { ok: false; problems: string[] };

/**
 * Fills `${NAME}` from `env` and checks what could only be checked once the values are known:
 * the scheme of a URL, the origins of `cors`, that no credential of `auth` is blank, and a push's
 * endpoint and secret.
 */
export const resolveConfig = (config: GatewayConfig, env: Record<string, unknown>): ResolveResult => {
  const { value, missing } = resolveEnvReferences(config, env);
  const problems = missing.map((name) => `\${${name}} is used in the routes but is not set in the environment`);
  if (missing.length === 0) {
    for (const route of value.routes) {
      const problem = amqpUrlProblem(route.amqp.url);
      if (problem) problems.push(`route "${route.id}": amqp.url: ${problem}`);
      const origins = route.cors && originsProblem(route.cors.allow_origins, route.cors.allow_credentials);
      if (origins) problems.push(`route "${route.id}": cors.${origins}`);
      const push = route.amqp.consumer?.push;
      if (push) {
        const url = pushUrlProblem(push.url);
        if (url) problems.push(`route "${route.id}": amqp.consumer.push.url ${url}`);
        // Named, never shown: it is a credential.
        const secret = pushSecretProblem(push.secret);
        if (secret) problems.push(`route "${route.id}": amqp.consumer.push.secret ${secret}`);
        for (const [name, value] of Object.entries(push.headers)) {
          const header = pushHeaderValueProblem(value);
          if (header) problems.push(`route "${route.id}": amqp.consumer.push.headers.${name} ${header} once \${NAME} is filled in`);
        }
      }
      for (const field of blankCredentials(route.auth)) {
        problems.push(`route "${route.id}": auth.${field} is empty once \${NAME} is filled in; an empty credential would let anyone in`);
      }
    }
    const management = value.management_api;
    if (management) {
      const problem = amqpUrlProblem(management.amqp.url);
      if (problem) problems.push(`management_api.url: ${problem}`);
      for (const field of blankCredentials(management.auth)) {
        problems.push(`management_api: auth.${field} is empty once \${NAME} is filled in; an empty credential would let anyone in`);
      }
    }
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, config: value };
};

/** The credentials of `auth` that are empty or blank (an unset-looking `${NAME}` set to ""). */
const blankCredentials = (auth: AuthConfig): string[] => {
  const blank = (value: string) => value.trim() === "";
  switch (auth.kind) {
    case "api_key":
      return auth.keys.some(blank) ? ["api_key.keys"] : [];
    case "basic":
      return Object.entries(auth.users).flatMap(([user, password]) => (blank(password) ? [`basic.users.${user}`] : []));
    case "bearer_jwt":
      return "secret" in auth && blank(auth.secret) ? ["bearer_jwt.secret"] : [];
    case "none":
      return [];
  }
};
