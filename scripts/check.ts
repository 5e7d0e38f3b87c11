/**
 * `npm run check [-- FILE | --routes FILE] [--live]`: validates the routes file (the argument, else
 * `$ROUTES`, else routes.yaml). Prints one line per problem, each naming the route and the field,
 * and exits 1; prints a summary and exits 0 when it is valid. With `--live` it then connects to
 * each broker and verifies the topology and the routes' exchanges and queues (creating nothing).
 */
import { capacityWarnings } from "../src/config/capacity";
import { pushWarnings } from "../src/config/push-warnings";
import { deadLetterWarnings } from "../src/config/dead-letter-warnings";
import { envReferences } from "../src/config/env-references";
import { resolveConfig } from "../src/config/resolve-config";
import { liveCheck } from "./lib/live-check";
import { displayPath, fail, loadRoutesOrExit, routesPath } from "./lib/routes-file";

const path = routesPath();
const config = loadRoutesOrExit(path);
const names = envReferences(config);
// What `npm start` would refuse, check refuses too: the ${NAME}s that are set here, filled in.
const resolved = resolveConfig(config, Object.fromEntries(names.map((name) => [name, process.env[name] ?? `\${${name}}`])));
if (!resolved.ok) fail(resolved.problems.map((problem) => `${displayPath(path)}: ${problem}`));
process.stdout.write(`${displayPath(path)}: ${config.routes.length} route(s), valid\n`);
if (names.length > 0) process.stdout.write(`reads from the environment: ${names.join(", ")}\n`);
for (const warning of [...capacityWarnings(config), ...pushWarnings(config), ...deadLetterWarnings(config)])
  process.stdout.write(`${displayPath(path)}: warning: ${warning}\n`);

if (process.argv.includes("--live")) {
  const unset = names.filter((name) => process.env[name] === undefined);
  if (unset.length > 0) fail([`${displayPath(path)}: --live needs ${unset.join(", ")} set in the environment`]);
  const problems = await liveCheck(resolved.config);
  if (problems.length > 0) fail(problems.map((problem) => `${displayPath(path)}: ${problem}`));
  process.stdout.write(`${displayPath(path)}: the brokers have everything the routes need\n`);
}
