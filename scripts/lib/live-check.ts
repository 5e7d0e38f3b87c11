/**
 * `npm run check -- --live`: connects to each broker the routes use and verifies, without
 * creating anything, what the gateway will need there: every topology block (whatever its mode),
 * and each route's fixed exchange and queue unless its topology declares them. One line per
 * problem, such as `route "enqueue": queue jobs: x-queue-type is classic on the broker, quorum in routes.yaml`.
 */
import { AMQPSession } from "@cloudamqp/amqp-client";
import { WebSocket as NodeWebSocket } from "ws";
import { brokerEndpoint } from "../../src/amqp/broker-url";
import { redactSecrets, redactUrl } from "../../src/contract/redaction";
import { brokerReason } from "../../src/amqp/broker-errors";
import { newChannel } from "../../src/amqp/session-channels";
import { applyTopology, problemLine } from "../../src/amqp/topology";
import { isTemplate } from "../../src/config/templates";
import type { GatewayConfig, RouteConfig } from "../../src/config/schema";
import * as v from "valibot";
import { TopologySchema } from "../../src/config/topology-schema";
import type { TopologyConfig } from "../../src/contract/route-settings";

/** The problems found, one line each (none: everything the routes need is there). */
export const liveCheck = async (config: GatewayConfig, timeoutMs = 5000): Promise<string[]> => {
  // Node 20 has no WebSocket of its own; amqp-client's ws:// transport needs one.
  globalThis.WebSocket ??= NodeWebSocket as unknown as typeof WebSocket;
  const byUrl = new Map<string, RouteConfig[]>();
  for (const route of config.routes) byUrl.set(route.amqp.url, [...(byUrl.get(route.amqp.url) ?? []), route]);
  const lines: string[] = [];
  for (const [url, routes] of byUrl) lines.push(...(await checkBroker(url, routes, timeoutMs)));
  return [...new Set(lines)];
};

const checkBroker = async (url: string, routes: RouteConfig[], timeoutMs: number): Promise<string[]> => {
  const names = routes.map((route) => `route "${route.id}"`).join(", ");
  let session: AMQPSession;
  try {
    const endpoint = brokerEndpoint(url);
    const connecting = AMQPSession.connect(endpoint.connectUrl, {
      ...(endpoint.vhost === undefined ? {} : { vhost: endpoint.vhost }),
      name: "amqp-edge-gateway check --live",
      logger: null,
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      session = await Promise.race([
        connecting,
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs))),
      ]);
    } catch (error) {
      // A connection that opens after the timeout is closed, not left holding the process open.
      connecting.then((late) => late.stop()).catch(() => undefined);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  } catch (error) {
    return [`${names}: cannot connect to ${redactUrl(url)}: ${redactSecrets(reasonOf(error), url)}`];
  }
  try {
    const lines: string[] = [];
    const open = () => newChannel(session);
    for (const route of routes) {
      // The route's blocks together: a binding may name what the top-level block declares.
      const problems = [
        ...(await applyTopology(open, route.amqp.topology, { verifyOnly: true, all: true })),
        ...(await applyTopology(open, [neededObjects(route)], { verifyOnly: true, all: true, existenceOnly: true })),
      ];
      lines.push(...problems.map((problem) => `route "${route.id}": ${problemLine(problem)}`));
    }
    return lines;
  } catch (error) {
    return [`${names}: the connection to ${redactUrl(url)} failed during the check: ${redactSecrets(reasonOf(error), url)}`];
  } finally {
    await session.stop().catch(() => undefined);
  }
};

/**
 * What the route names and must find on the broker, as a topology to verify for existence: its
 * fixed exchange, its consumer's fixed queue and dead-letter queue, and for a producer on the default exchange the
 * queue its fixed routing key names (else the broker drops every message, and confirms it).
 * Left out: what its topology declares (the gateway creates those) and what the request names.
 */
const neededObjects = (route: RouteConfig): TopologyConfig => {
  const declared = route.amqp.topology.filter((topology) => topology.mode === "declare");
  // amq.* objects are the broker's own (and the schema refuses to describe them).
  const fixed = (name: string | undefined): name is string =>
    name !== undefined && name !== "" && !isTemplate(name) && !name.startsWith("amq.");
  const producer = route.amqp.producer;
  const exchanges = [producer?.exchange].filter(fixed).filter((name) => !declared.some((t) => t.exchanges.some((e) => e.name === name)));
  const queues = [
    route.amqp.consumer?.queue,
    route.amqp.consumer?.dead_letter_queue,
    producer?.exchange === "" ? producer.routing_key : undefined,
  ]
    .filter(fixed)
    .filter((name) => !declared.some((t) => t.queues.some((q) => q.name === name)));
  // Through the schema, for its defaults: only the names matter to an existence check.
  return v.parse(TopologySchema, {
    mode: "verify",
    exchanges: exchanges.map((name) => ({ name })),
    queues: [...new Set(queues)].map((name) => ({ name })),
  });
};

/** An error's words: amqp-client's errors, and the WebSocket's error events, which are not Errors. */
const reasonOf = (error: unknown): string => {
  if (error instanceof Error) return brokerReason(error);
  const message = (error as { message?: unknown } | null)?.message;
  if (typeof message === "string" && message !== "") return message;
  const type = (error as { type?: unknown } | null)?.type;
  return typeof type === "string" ? `the WebSocket failed (${type} event): is the Web-AMQP relay up?` : String(error);
};
