import { readFileSync } from "node:fs";
import { relative, resolve } from "node:path";
import { parseRoutes } from "../../src/config/parse-routes";
import type { GatewayConfig } from "../../src/config/schema";
import { bodySchemaProblems } from "./body-schemas";

/**
 * Where the routes file was named on the command line: `--routes FILE`, `--routes=FILE`, or the
 * first argument ending in `.yaml` or `.yml`. Returns the path and the other arguments (which
 * `npm run deploy` passes on to wrangler).
 */
export const routesArgument = (args: readonly string[]): { path: string | undefined; rest: string[] } => {
  const rest: string[] = [];
  let path: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    if (path === undefined && arg === "--routes" && i + 1 < args.length) path = args[++i];
    else if (path === undefined && arg.startsWith("--routes=")) path = arg.slice("--routes=".length);
    else if (path === undefined && !arg.startsWith("-") && /\.ya?ml$/i.test(arg)) path = arg;
    else rest.push(arg);
  }
  return { path, rest };
};

/**
 * The routes file in use: named on the command line (see {@link routesArgument}), else `$ROUTES`,
 * else routes.yaml in the current directory. The same rule for check, start and deploy.
 */
export const routesPath = (args: readonly string[] = process.argv.slice(2)): string =>
  resolve(routesArgument(args).path ?? process.env.ROUTES ?? "routes.yaml");

/** The path as a user would write it: relative to the current directory when it is below it. */
export const displayPath = (path: string): string =>
  relative(process.cwd(), path).startsWith("..") ? path : relative(process.cwd(), path);

/**
 * Reads and validates the routes file, or prints one line per problem to stderr and exits 1.
 * Used by check, start, compile (and so by test and deploy): all of them refuse a bad file
 * the same way, before anything is served or uploaded.
 */
export const loadRoutesOrExit = (path = routesPath()): GatewayConfig => {
  const name = displayPath(path);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    fail([`${name}: cannot read the routes file (${(error as NodeJS.ErrnoException).code ?? String(error)})`]);
  }
  const result = parseRoutes(text, name);
  if (!result.ok) fail(result.problems);
  const schemaProblems = bodySchemaProblems(result.config, name);
  if (schemaProblems.length > 0) fail(schemaProblems);
  return result.config;
};

export function fail(problems: string[]): never {
  for (const problem of problems) process.stderr.write(`${problem}\n`);
  process.exit(1);
}
