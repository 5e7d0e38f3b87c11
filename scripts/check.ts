/**
 * `npm run check`: validates `$ROUTES` (default routes.yaml). Prints one line per problem, each
 * naming the route and the field, and exits 1; prints a summary and exits 0 when it is valid.
 */
import { envReferences } from "../src/config/env-references";
import { loadRoutesOrExit, routesPath } from "./lib/routes-file";

const config = loadRoutesOrExit();
const names = envReferences(config);
process.stdout.write(`${routesPath()}: ${config.routes.length} route(s), valid\n`);
if (names.length > 0) process.stdout.write(`reads from the environment: ${names.join(", ")}\n`);
