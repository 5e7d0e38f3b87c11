/**
 * The build step (wrangler.toml `[build] command`): validates the routes file and writes it as
 * the module the Worker imports, so the Worker never reads YAML or disk at run time.
 * `${NAME}` references stay as written; the Worker fills them from its environment.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { loadRoutesOrExit, routesPath } from "./lib/routes-file";

export const GENERATED_MODULE = fileURLToPath(new URL("../src/generated/routes.ts", import.meta.url));

/** Writes the module for `path`; returns whether it changed (so watchers are not woken for nothing). */
export const compileRoutes = (path = routesPath()): boolean => {
  const config = loadRoutesOrExit(path);
  const source = [
    `// Generated from ${relative(resolve(dirname(GENERATED_MODULE), "../.."), path).replaceAll("\\", "/")} by scripts/compile-routes.ts. Do not edit.`,
    `import type { GatewayConfig } from "../config/schema";`,
    ``,
    `export const routesConfig: GatewayConfig = ${JSON.stringify(config, null, 2)};`,
    ``,
  ].join("\n");
  mkdirSync(dirname(GENERATED_MODULE), { recursive: true });
  let previous = "";
  try {
    previous = readFileSync(GENERATED_MODULE, "utf8");
  } catch {
    // first build
  }
  if (previous === source) return false;
  writeFileSync(GENERATED_MODULE, source);
  return true;
};

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) compileRoutes();
