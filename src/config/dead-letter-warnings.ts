/**
 * What `npm run check` warns about on a route with `consumer.max_deliveries`: a message delivered
 * that many times is rejected to its queue's dead-letter exchange, and dropped where it has none.
 */
import type { GatewayConfig } from "./schema";

export const deadLetterWarnings = (config: GatewayConfig): string[] =>
  config.routes.flatMap((route) => {
    const consumer = route.amqp.consumer;
    if (!consumer || consumer.max_deliveries === undefined) return [];
    const declared = route.amqp.topology.flatMap((topology) => topology.queues).find((queue) => queue.name === consumer.queue);
    if (declared && declared.arguments["x-dead-letter-exchange"] !== undefined) return [];
    return [
      `route "${route.id}": consumer.max_deliveries: queue ${consumer.queue} has no x-dead-letter-exchange in this file's topology; a message delivered ${consumer.max_deliveries} times is dropped unless the queue has a dead-letter exchange (declared here, or by a policy)`,
    ];
  });
