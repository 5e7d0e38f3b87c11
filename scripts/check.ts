/**
 * `npm run check [-- FILE | --routes FILE]`: validates the routes file (the argument, else
 * `$ROUTES`, else routes.yaml). Prints one line per problem, each naming the route and the field,
 * and exits 1; prints a summary and exits 0 when it is valid.
 */
import { envReferences } from "../src/config/env-references";
import { displayPath, loadRoutesOrExit, routesPath } from "./lib/routes-file";

const path = routesPath();
const config = loadRoutesOrExit(path);
const names = envReferences(config);
process.stdout.write(`${displayPath(path)}: ${config.routes.length} route(s), valid\n`);
if (names.length > 0) process.stdout.write(`reads from the environment: ${names.join(", ")}\n`);
