import type { RouteCounters, RouteStats } from "../contract/route-calls";
import {
  CONFIRM_BUCKETS_S,
  REQUEST_BUCKETS_S,
  addHistograms,
  emptyHistogram,
  requestLabels,
  type HistogramData,
  type RouteGauges,
  type RouteMeasures,
} from "../contract/metrics";

/** Prometheus' text exposition format, the version every scraper reads. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** One route's shards, as `GET /amqp/metrics` reads them. */
export interface RouteShardsMetrics {
  route: string;
  shards: Array<RouteStats & { measures: RouteMeasures; shard: number }>;
}

/** Each `/amqp` counter as a Prometheus counter: its name and what it counts. */
const COUNTERS: Record<keyof RouteCounters, [string, string]> = {
  total_requests: ["runway_requests_total", "Requests that reached the route's objects (not those refused by its rate_limit)."],
  total_errors: ["runway_errors_total", "Requests that failed at the broker or in the route's objects."],
  published: ["runway_published_total", "Messages the broker confirmed."],
  consumed: ["runway_consumed_total", "Messages handed to clients and acknowledged."],
  rejected: ["runway_rejected_total", "Requests refused by the route's rate_limit."],
  leased: ["runway_leased_total", "Messages handed out on a lease."],
  acked: ["runway_acked_total", "Leases acknowledged."],
  nacked: ["runway_nacked_total", "Leases nacked."],
  expired: ["runway_expired_total", "Leases that ran out."],
  pushed: ["runway_pushed_total", "Messages pushed to a webhook and acknowledged."],
  push_failures: ["runway_push_failures_total", "Failed push attempts."],
  dead_lettered: ["runway_dead_lettered_total", "Messages rejected to their dead letters (max_deliveries, a push's max_attempts)."],
};

const GAUGES: Record<keyof RouteGauges, [string, string]> = {
  publishes_in_flight: ["runway_publishes_in_flight", "Publishes sent and awaiting the broker's confirm."],
  leases_held: ["runway_leases_held", "Messages on a lease now."],
  long_poll_waiters: ["runway_long_poll_waiters", "Clients waiting for a message now (long-polls, streams)."],
  push_in_flight: ["runway_push_in_flight", "Push deliveries under way now."],
};

/**
 * The routes' metrics in Prometheus' text format: every `/amqp` counter as a `_total` counter and
 * the gauges summed over each route's shards (`route` label), whether each shard is connected
 * (`route`, `shard`), and two histograms with fixed buckets, added up bucket by bucket: the
 * duration of the requests the route's objects served, by `method` and `status_class`, and the
 * broker's confirm latency.
 */
export const renderMetrics = (routes: RouteShardsMetrics[]): string => {
  const lines: string[] = [];
  const family = (name: string, type: string, help: string) => lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  for (const [key, [name, help]] of Object.entries(COUNTERS) as Array<[keyof RouteCounters, [string, string]]>) {
    family(name, "counter", help);
    for (const { route, shards } of routes) lines.push(`${name}${labels({ route })} ${sum(shards, (shard) => shard[key])}`);
  }
  family("runway_connected", "gauge", "Whether a route shard has a broker connection open (1) or not (0).");
  for (const { route, shards } of routes) {
    for (const shard of shards) lines.push(`runway_connected${labels({ route, shard: String(shard.shard) })} ${shard.connected ? 1 : 0}`);
  }
  for (const [key, [name, help]] of Object.entries(GAUGES) as Array<[keyof RouteGauges, [string, string]]>) {
    family(name, "gauge", help);
    for (const { route, shards } of routes) lines.push(`${name}${labels({ route })} ${sum(shards, (shard) => shard.measures.gauges[key])}`);
  }
  family(
    "runway_request_duration_seconds",
    "histogram",
    "How long the route's objects took to serve a request, by method and class of answer.",
  );
  for (const { route, shards } of routes) {
    const keys = [...new Set(shards.flatMap((shard) => Object.keys(shard.measures.requests)))].sort();
    for (const key of keys) {
      const total = shards.reduce(
        (all, shard) => addHistograms(all, shard.measures.requests[key] ?? emptyHistogram(REQUEST_BUCKETS_S)),
        emptyHistogram(REQUEST_BUCKETS_S),
      );
      histogram(lines, "runway_request_duration_seconds", { route, ...requestLabels(key) }, REQUEST_BUCKETS_S, total);
    }
  }
  family("runway_confirm_latency_seconds", "histogram", "How long the broker took to confirm a publish after it was sent.");
  for (const { route, shards } of routes) {
    const total = shards.reduce((all, shard) => addHistograms(all, shard.measures.confirms), emptyHistogram(CONFIRM_BUCKETS_S));
    histogram(lines, "runway_confirm_latency_seconds", { route }, CONFIRM_BUCKETS_S, total);
  }
  return `${lines.join("\n")}\n`;
};

/** A histogram's cumulative buckets, `+Inf` last, then its sum and count. */
const histogram = (lines: string[], name: string, base: Record<string, string>, buckets: readonly number[], data: HistogramData): void => {
  let cumulative = 0;
  buckets.forEach((bound, index) => {
    cumulative += data.counts[index] ?? 0;
    lines.push(`${name}_bucket${labels({ ...base, le: String(bound) })} ${cumulative}`);
  });
  lines.push(`${name}_bucket${labels({ ...base, le: "+Inf" })} ${data.count}`);
  lines.push(`${name}_sum${labels(base)} ${data.sum}`);
  lines.push(`${name}_count${labels(base)} ${data.count}`);
};

const sum = <T>(items: T[], of: (item: T) => number): number => items.reduce((total, item) => total + of(item), 0);

/** `{name="value",...}`, each value escaped as the text format wants (backslash, double quote, line feed). */
const labels = (values: Record<string, string>): string =>
  `{${Object.entries(values)
    .map(([name, value]) => `${name}="${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`)
    .join(",")}}`;
