/**
 * The benchmark's routes, queues and payloads, shared by `npm run bench` and `npm run profile`.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AMQP_URL } from "./broker";
import { CEILING_PREFIX, NO_AMQP_ROUTES, payloadOf } from "./worker-paths";

/** One queue per variant, so each run's messages can be counted on their own. */
export const QUEUES = {
  tcp: "bench-gateway-tcp",
  ws: "bench-gateway-ws",
  mgmt: "bench-management",
  /** The same management API requests, served by the gateway's `management_api`. */
  mgmtGateway: "bench-management-gateway",
  s2: "bench-shards-2",
  s4: "bench-shards-4",
  batch: "bench-batch",
  direct: "bench-direct",
  subGateway: "bench-consume-gateway",
  subGatewayWs: "bench-consume-gateway-ws",
  subManagement: "bench-consume-management",
  subManagementGateway: "bench-consume-management-gateway",
  /** Where the no-AMQP publish route would publish: must stay empty (the bench checks). */
  noAmqp: "bench-no-amqp",
};

export const PAYLOADS = { "250 B": payloadOf(250), "16 KiB": payloadOf(16 * 1024) };

/** The gateway's own no-AMQP ceiling: routes served like the others, whose objects answer without the broker (bench/bench-worker.ts). */
export const NO_AMQP_PATHS = { publish: "/pub/no-amqp", consume: "/sub/no-amqp" } as const;

const ROUTES = `
routes:
  - { id: bench-tcp, path: /pub/tcp, amqp: { enabled: true, url: "${AMQP_URL}", producer: { routing_key: ${QUEUES.tcp} } } }
  - { id: ${NO_AMQP_ROUTES.publish}, path: ${NO_AMQP_PATHS.publish}, amqp: { enabled: true, url: "${AMQP_URL}", producer: { routing_key: ${QUEUES.noAmqp} } } }
  - { id: bench-ws, path: /pub/ws, amqp: { enabled: true, url: "ws://guest:guest@127.0.0.1:15670/?vhost=/", producer: { routing_key: ${QUEUES.ws} } } }
  - { id: bench-s2, path: /pub/s2, amqp: { enabled: true, url: "${AMQP_URL}", shards: 2, producer: { routing_key: ${QUEUES.s2} } } }
  - { id: bench-s4, path: /pub/s4, amqp: { enabled: true, url: "${AMQP_URL}", shards: 4, producer: { routing_key: ${QUEUES.s4} } } }
  - { id: bench-batch, path: /batch, amqp: { enabled: true, url: "${AMQP_URL}", producer: { routing_key: ${QUEUES.batch}, batch: true } } }
  - { id: bench-consume, path: /sub, amqp: { enabled: true, url: "${AMQP_URL}", consumer: { queue: ${QUEUES.subGateway}, auto_ack: true } } }
  - { id: ${NO_AMQP_ROUTES.consume}, path: ${NO_AMQP_PATHS.consume}, amqp: { enabled: true, url: "${AMQP_URL}", consumer: { queue: ${QUEUES.subGateway}, auto_ack: true } } }
  - { id: bench-consume-ws, path: /sub/ws, amqp: { enabled: true, url: "ws://guest:guest@127.0.0.1:15670/?vhost=/", consumer: { queue: ${QUEUES.subGatewayWs}, auto_ack: true } } }
# The broker's management API's requests, served by the gateway: the same credentials (guest) as the broker's own.
management_api:
  url: "${AMQP_URL}"
  auth: { basic: { users: { guest: guest } } }
  exchanges: [amq.default]
  queues: [${QUEUES.subManagementGateway}]
`;

/** Writes `yaml` to a temporary file and points $ROUTES at it, for the next local gateway to serve. */
export const writeRoutes = (yaml: string): void => {
  const routesFile = join(mkdtempSync(join(tmpdir(), "bench-routes-")), "routes.yaml");
  writeFileSync(routesFile, yaml);
  process.env.ROUTES = routesFile;
};

/** Points $ROUTES at the throughput sections' routes. */
export const useBenchRoutes = (): void => writeRoutes(ROUTES);

/** The Worker the benchmark serves: the gateway plus the no-AMQP ceiling route. */
export const BENCH_WORKER = "bench/bench-worker.ts";

export { BASELINE_PREFIX } from "./worker-paths";

/** The ceiling route for the bench-tcp route (`bench/bench-worker.ts`). */
export const CEILING_PATH = `${CEILING_PREFIX}bench-tcp`;
