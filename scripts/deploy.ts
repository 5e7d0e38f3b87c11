/**
 * `npm run deploy [-- FILE | --routes FILE] [--allow-local] [wrangler arguments]`: `wrangler
 * deploy`, after the routes file has been validated (wrangler's build step, which compiles that
 * same file, validates it again) and checked as safe to put on the internet
 * (`scripts/lib/deploy-safety.ts`). ADMIN_TOKEN and every `${NAME}` the routes use that is set
 * in the environment are uploaded as Worker secrets with the deploy (wrangler's
 * `--secrets-file`, a temporary file readable only by this user, removed afterwards). Other
 * arguments go to wrangler.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { envReferences } from "../src/config/env-references";
import { deployProblems } from "./lib/deploy-safety";
import { displayPath, loadRoutesOrExit, routesArgument, routesPath } from "./lib/routes-file";

const args = routesArgument(process.argv.slice(2)).rest;
const allowLocal = args.includes("--allow-local");
const wranglerArgs = args.filter((arg) => arg !== "--allow-local");

const path = routesPath();
const config = loadRoutesOrExit(path);
const problems = deployProblems(config, process.env, allowLocal);
if (problems.length > 0) {
  for (const problem of problems) process.stderr.write(`${displayPath(path)}: ${problem}\n`);
  process.exit(1);
}

const names = envReferences(config);
const secrets = Object.fromEntries(
  [...names, "ADMIN_TOKEN"].flatMap((name) => (process.env[name] ? [[name, process.env[name]] as const] : [])),
);
const unset = names.filter((name) => !process.env[name]);
process.stdout.write(`deploying ${displayPath(path)}: ${config.routes.length} route(s)\n`);
if (Object.keys(secrets).length > 0) process.stdout.write(`uploading as Worker secrets: ${Object.keys(secrets).join(", ")}\n`);
if (unset.length > 0) {
  process.stdout.write(`not set here, so they must already be Worker secrets (\`npx wrangler secret put NAME\`): ${unset.join(", ")}\n`);
}

const dir = mkdtempSync(join(tmpdir(), "gw-deploy-secrets-"));
const secretsFile = join(dir, "secrets.json");
try {
  writeFileSync(secretsFile, JSON.stringify(secrets), { mode: 0o600 });
  const secretArgs = Object.keys(secrets).length > 0 ? ["--secrets-file", secretsFile] : [];
  const result = spawnSync("npx", ["wrangler", "deploy", ...secretArgs, ...wranglerArgs], {
    stdio: "inherit",
    env: { ...process.env, ROUTES: path },
  });
  process.exitCode = result.status ?? 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
