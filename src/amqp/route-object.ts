import { DurableObject } from "cloudflare:workers";
import type { LoggingEnv } from "../log";
import { AmqpRoute } from "./amqp-route";
import type { RouteApi } from "../contract/route-calls";

type Args<K extends keyof RouteApi> = Parameters<RouteApi[K]>;

/**
 * The Durable Object that holds one route shard on Cloudflare (keyed by the shard's name): a thin
 * wrapper that gives an {@link AmqpRoute} the object's storage and alarm and exposes its calls
 * over RPC. Everything the route does is in AmqpRoute, which the Node and Deno servers hold
 * themselves.
 *
 * Of its environment it reads only how to log, so it does not depend on the Worker's `Env`,
 * which names this class for its binding.
 */
export class AmqpRouteObject extends DurableObject<LoggingEnv> implements RouteApi {
  readonly #route: AmqpRoute;

  constructor(ctx: DurableObjectState, env: LoggingEnv) {
    super(ctx, env);
    this.#route = new AmqpRoute({ storage: ctx.storage, env, wakeAt: (at) => ctx.storage.setAlarm(at) });
  }

  async publishMany(...args: Args<"publishMany">) {
    return this.#route.publishMany(...args);
  }
  async request(...args: Args<"request">) {
    return this.#route.request(...args);
  }
  reply(...args: Args<"reply">) {
    return Promise.resolve(this.#route.reply(...args));
  }
  async consume(...args: Args<"consume">) {
    return this.#route.consume(...args);
  }

  cancelWait(...args: Args<"cancelWait">) {
    return Promise.resolve(this.#route.cancelWait(...args));
  }
  async settleLeases(...args: Args<"settleLeases">) {
    return this.#route.settleLeases(...args);
  }
  refuseAttempt(...args: Args<"refuseAttempt">) {
    return Promise.resolve(this.#route.refuseAttempt(...args));
  }
  async settle(...args: Args<"settle">) {
    return this.#route.settle(...args);
  }
  stats(...args: Args<"stats">) {
    return Promise.resolve(this.#route.stats(...args));
  }
  async readiness(...args: Args<"readiness">) {
    return this.#route.readiness(...args);
  }
  async push(...args: Args<"push">) {
    return this.#route.push(...args);
  }
  metrics(...args: Args<"metrics">) {
    return Promise.resolve(this.#route.metrics(...args));
  }
  async deadLetters(...args: Args<"deadLetters">) {
    return this.#route.deadLetters(...args);
  }
  async redrive(...args: Args<"redrive">) {
    return this.#route.redrive(...args);
  }

  async managementPublish(...args: Args<"managementPublish">) {
    return this.#route.managementPublish(...args);
  }
  async managementGet(...args: Args<"managementGet">) {
    return this.#route.managementGet(...args);
  }

  override alarm(): void {
    this.#route.alarm();
  }
}
