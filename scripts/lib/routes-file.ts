import { readFileSync } from "node:fs";
import { relative, resolve } from "node:path";
import { parseRoutes } from "../../src/config/parse-routes";
import type { GatewayConfig } from "../../src/config/schema";

/** The routes file in use: `$ROUTES`, or routes.yaml in the current directory. */
export const routesPath = (): string => resolve(process.env.ROUTES ?? "routes.yaml");

/**
 * Reads and validates the routes file, or prints one line per problem to stderr and exits 1.
 * Used by check, start, compile (and so by test and deploy): all of them refuse a bad file
 * the same way, before anything is served or uploaded.
 */
export const loadRoutesOrExit = (path = routesPath()): GatewayConfig => {
  const name = relative(process.cwd(), path).startsWith("..") ? path : relative(process.cwd(), path);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    fail([`${name}: cannot read the routes file (${(error as NodeJS.ErrnoException).code ?? String(error)})`]);
  }
  const result = parseRoutes(text, name);
  if (!result.ok) fail(result.problems);
  return result.config;
};

export function fail(problems: string[]): never {
  for (const problem of problems) process.stderr.write(`${problem}\n`);
  process.exit(1);
}
