/**
 * `npm run deploy [-- FILE | --routes FILE] [wrangler arguments]`: `wrangler deploy`, after the
 * routes file has been validated (wrangler's build step, which compiles that same file, validates
 * it again). Other arguments go to wrangler.
 */
import { spawnSync } from "node:child_process";
import { envReferences } from "../src/config/env-references";
import { displayPath, loadRoutesOrExit, routesArgument, routesPath } from "./lib/routes-file";

const path = routesPath();
const config = loadRoutesOrExit(path);
const names = envReferences(config);
process.stdout.write(`deploying ${displayPath(path)}: ${config.routes.length} route(s)\n`);
if (names.length > 0) {
  process.stdout.write(`routes read ${names.join(", ")} from the environment: set each with \`npx wrangler secret put NAME\`\n`);
}
const result = spawnSync("npx", ["wrangler", "deploy", ...routesArgument(process.argv.slice(2)).rest], {
  stdio: "inherit",
  env: { ...process.env, ROUTES: path },
});
process.exit(result.status ?? 1);
