import type { Context } from "hono";
import type { GatewayEnv } from "../env";

/**
 * Lets `work` run to its end after the answer is sent or the client went away (the request's
 * `waitUntil`, up to 30 s on Cloudflare). Without an execution context (the app called
 * directly, as in some tests) the work simply runs by itself.
 */
export const runBeyondResponse = (c: Context<GatewayEnv>, work: Promise<unknown>): void => {
  try {
    c.executionCtx.waitUntil(work);
  } catch {
    // No execution context: nothing ends the work early either.
  }
};
