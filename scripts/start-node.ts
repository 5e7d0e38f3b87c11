/**
 * `npm run start:node [-- FILE | --routes FILE]`: the gateway on Node (@hono/node-server), every
 * route's broker connections in this process. Same environment and answers as `npm start`.
 */
import { nodeServe } from "./lib/node-serve";
import { startSelfHosted } from "./lib/self-hosted-start";

await startSelfHosted("npm run start:node", nodeServe);
