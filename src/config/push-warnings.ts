/**
 * What `npm run check` warns about on a push route: things that are not wrong, but that lose or
 * repeat messages unless the broker is set up for them.
 */
import type { GatewayConfig } from "./schema";

/** RabbitMQ's default `consumer_timeout`: a delivery unacknowledged longer closes its channel. */
export const RABBITMQ_CONSUMER_TIMEOUT_MS = 30 * 60 * 1000;

export const pushWarnings = (config: GatewayConfig): string[] =>
  config.routes.flatMap((route) => {
    const consumer = route.amqp.consumer;
    const push = consumer?.push;
    if (!consumer || !push) return [];
    const warnings: string[] = [];
    const declared = route.amqp.topology.flatMap((topology) => topology.queues).find((queue) => queue.name === consumer.queue);
    if (!declared || declared.arguments["x-dead-letter-exchange"] === undefined) {
      warnings.push(
        `route "${route.id}": consumer.push: queue ${consumer.queue} has no x-dead-letter-exchange in this file's topology; a message that fails ${push.max_attempts} attempts is dropped unless the queue has a dead-letter exchange (declared here, or by a policy)`,
      );
    }
    // The longest a message can wait unacknowledged: every attempt's timeout and every delay at its most (+50% jitter).
    let longest = push.max_attempts * push.timeout_ms;
    for (let failed = 1; failed < push.max_attempts; failed++)
      longest += 1.5 * Math.min(push.max_backoff_ms, push.backoff_ms * 2 ** (failed - 1));
    if (longest > RABBITMQ_CONSUMER_TIMEOUT_MS) {
      warnings.push(
        `route "${route.id}": consumer.push: a message may stay unacknowledged up to ${Math.round(longest / 60_000)} min across its attempts, longer than RabbitMQ's consumer_timeout (30 min by default): the broker would then close the channel and deliver it again from attempt 1`,
      );
    }
    return warnings;
  });
