import type { GatewayConfig } from "../../src/config/schema";
import { redactUrl } from "../../src/contract/redaction";
import { displayPath } from "./routes-file";
import type { LocalRelay } from "./web-amqp-relay";

/**
 * What `npm start`, `npm run start:node` and `npm run start:deno` print once they serve: the
 * routes file and the URL, then one line per route and per Web-AMQP relay.
 */
export const startBanner = (path: string, url: string, config: GatewayConfig, relays: readonly LocalRelay[]): string => {
  const lines = [`amqp-edge-gateway serving ${displayPath(path)} on ${url}`, ...describeRoutes(config), ...describeManagementApi(config)];
  for (const relay of relays) {
    lines.push(
      relay.process
        ? `  Web-AMQP relay: started websockify on ${relay.address}, forwarding to ${relay.target} (stopped with the gateway)`
        : `  Web-AMQP relay: found one listening on ${relay.address}; using it`,
    );
  }
  return `${lines.join("\n")}\n`;
};

/** One line per route: what it serves and where it goes, the password hidden. */
const describeRoutes = (config: GatewayConfig): string[] =>
  config.routes.map((route) => {
    const amqp = route.amqp;
    const producer = amqp.producer;
    const objects = amqp.topology.flatMap((topology) => [
      ...topology.exchanges.map((exchange) => `${topology.mode} exchange ${exchange.name}`),
      ...topology.queues.map((queue) => `${topology.mode} queue ${queue.name}`),
      ...topology.bindings.map((binding) => `${topology.mode} binding ${binding.source} → ${binding.destination}`),
    ]);
    const roles = [
      producer
        ? `${producer.reply ? "calls (request/reply) via" : "publishes to"} exchange "${producer.exchange}" with routing key "${producer.routing_key}"` +
          (producer.dedupe_window_s > 0 ? ` (Idempotency-Key remembered ${producer.dedupe_window_s} s)` : "")
        : undefined,
      amqp.consumer?.push
        ? `pushes queue "${amqp.consumer.queue}" to ${pushTarget(amqp.consumer.push.url)} (GET: its state; POST /pause, /resume: admin token)`
        : amqp.consumer
          ? `consumes from queue "${amqp.consumer.queue}"${amqp.consumer.auto_ack ? " (auto_ack)" : ""}`
          : undefined,
      objects.length > 0 ? `topology: ${objects.join(", ")}` : undefined,
    ].filter(Boolean);
    const path = `${route.path}${route.path_prefix ? "/*" : ""}`;
    const access = [
      `auth ${route.auth.kind}`,
      // Without cors no origin is listed, the gateway's own included: every page request is refused.
      route.cors ? `cors ${route.cors.allow_origins.join(" ")}` : "cors none: requests from web pages refused",
      ...(route.rate_limit ? [`rate limit ${route.rate_limit.requests}/${route.rate_limit.period_s}s per ${route.rate_limit.key}`] : []),
    ];
    return `  ${route.id}: ${route.methods.join(", ")} ${path}: ${roles.join("; ")}, via ${redactUrl(amqp.url)} (${access.join(", ")})`;
  });

/** The management API's line, when routes.yaml has `management_api`. */
const describeManagementApi = (config: GatewayConfig): string[] => {
  const management = config.management_api;
  if (!management) return [];
  const list = (names: string[]) => (names.length > 0 ? names.join(", ") : "none");
  return [
    `  management_api: POST /api/exchanges/{vhost}/{exchange}/publish (exchanges: ${list(management.exchanges)}) and ` +
      `POST /api/queues/{vhost}/{queue}/get (queues: ${list(management.queues)}), via ${redactUrl(management.amqp.url)} (auth ${management.auth.kind})`,
  ];
};

/** A push endpoint as the banner shows it: its origin, never a path or a query (either may hold a token). */
const pushTarget = (url: string): string => {
  try {
    // The origin alone: some webhook URLs carry their secret in the path (/services/T/B/<token>).
    return new URL(url).origin;
  } catch {
    return "its endpoint";
  }
};
