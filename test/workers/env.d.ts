import type { Env as GatewayBindings } from "../../src/env";

declare global {
  namespace Cloudflare {
    // Declaration merging: the test env (`env` of cloudflare:test) is the Worker's.
    // eslint-disable-next-line @typescript-eslint/no-empty-object-type
    interface Env extends GatewayBindings {}
  }
}
