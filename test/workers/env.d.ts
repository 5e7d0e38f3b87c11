import type { Env } from "../../src/env";

declare module "cloudflare:test" {
  // Declaration merging: the test env is the Worker's.
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface ProvidedEnv extends Env {}
}
