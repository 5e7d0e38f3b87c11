/**
 * `npm run deploy`: `wrangler deploy`, after the routes file has been validated (wrangler's build
 * step validates it again). Extra arguments go to wrangler.
 */
import { spawnSync } from "node:child_process";
import { envReferences } from "../src/config/env-references";
import { loadRoutesOrExit } from "./lib/routes-file";

const config = loadRoutesOrExit();
const names = envReferences(config);
if (names.length > 0) {
  process.stdout.write(`routes read ${names.join(", ")} from the environment: set each with \`npx wrangler secret put NAME\`\n`);
}
const result = spawnSync("npx", ["wrangler", "deploy", ...process.argv.slice(2)], { stdio: "inherit" });
process.exit(result.status ?? 1);
