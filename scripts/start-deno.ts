/**
 * `npm run start:deno [-- FILE | --routes FILE]`: the gateway on Deno 2 (`Deno.serve`), every
 * route's broker connections in this process. Same environment and answers as `npm start`.
 */
import { denoServe } from "./lib/deno-serve";
import { startSelfHosted } from "./lib/self-hosted-start";

await startSelfHosted("npm run start:deno", denoServe);
