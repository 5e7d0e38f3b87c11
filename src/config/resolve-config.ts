import { resolveEnvReferences } from "./env-references";
import { amqpUrlProblem, type GatewayConfig } from "./schema";

export type ResolveResult = { ok: true; config: GatewayConfig } | { ok: false; problems: string[] };

/**
 * Fills `${NAME}` from `env` and checks what could only be checked once the values are known
 * (the scheme of a URL that came from the environment).
 */
export const resolveConfig = (config: GatewayConfig, env: Record<string, unknown>): ResolveResult => {
  const { value, missing } = resolveEnvReferences(config, env);
  const problems = missing.map((name) => `\${${name}} is used in the routes but is not set in the environment`);
  for (const route of value.routes) {
    const problem = missing.length > 0 ? undefined : amqpUrlProblem(route.amqp.url);
    if (problem) problems.push(`route "${route.id}": amqp.url: ${problem}`);
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, config: value };
};
