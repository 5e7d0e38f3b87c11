/**
 * The Node or Deno server as the benchmark runs it (bench/lib/runtimes.ts): `npm run start:node`
 * or `start:deno` exactly, except that the bench's no-AMQP routes answer without the broker
 * (bench/lib/no-amqp.ts), as they do in the bench Worker. Which runtime is the one running it.
 */
import { AmqpRoute } from "../src/amqp/amqp-route";
import type { ConsumeOutcome, ConsumeRequest, PublishManyOutcome, PublishManyRequest } from "../src/contract/route-calls";
import { denoServe } from "../scripts/lib/deno-serve";
import { nodeServe } from "../scripts/lib/node-serve";
import { startSelfHosted } from "../scripts/lib/self-hosted-start";
import { noAmqpConsume, noAmqpPublish } from "./lib/no-amqp";
import type { ConsumingTarget } from "../src/contract/route-settings";

class BenchRoute extends AmqpRoute {
  override async publishMany(request: PublishManyRequest): Promise<PublishManyOutcome> {
    return noAmqpPublish(request) ?? super.publishMany(request);
  }

  override async consume(route: ConsumingTarget, request: ConsumeRequest): Promise<ConsumeOutcome> {
    return noAmqpConsume(route) ?? super.consume(route, request);
  }
}

const onDeno = "Deno" in globalThis;
await startSelfHosted(onDeno ? "bench (deno)" : "bench (node)", onDeno ? denoServe : nodeServe, {
  makeRoute: (host) => new BenchRoute(host),
});
