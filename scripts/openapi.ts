/**
 * `npm run openapi [-- FILE]`: the OpenAPI 3.1 document of the routes file (named as for check,
 * start and deploy: FILE, else $ROUTES, else routes.yaml), on standard output; the same document
 * the gateway serves at `GET /openapi.json`, without its `servers`. It names no secret: `${NAME}`
 * references are not read.
 */
import { loadRoutesOrExit, routesPath } from "./lib/routes-file";
import { openApiDocument } from "../src/http/openapi";

process.stdout.write(`${JSON.stringify(openApiDocument(loadRoutesOrExit(routesPath())), null, 2)}\n`);
