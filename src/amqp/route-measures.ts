import {
  CONFIRM_BUCKETS_S,
  REQUEST_BUCKETS_S,
  emptyHistogram,
  observe,
  requestKey,
  type HistogramData,
  type RequestLabels,
  type RouteGauges,
  type RouteMeasures,
} from "../contract/metrics";

/**
 * A route shard's histograms for `GET /amqp/metrics`: how long its requests took, by method and
 * class of answer, and how long the broker took to confirm its publishes. A record is a bucket
 * search and three additions; the histograms live in memory (an object's restart starts them
 * again, as Prometheus expects of a process's counters).
 */
export class RouteMeasurer {
  readonly #requests = new Map<string, HistogramData>();
  readonly #confirms = emptyHistogram(CONFIRM_BUCKETS_S);

  /** A request that took `ms` milliseconds, answered with `labels`. */
  request(labels: RequestLabels, ms: number): void {
    const key = requestKey(labels);
    let histogram = this.#requests.get(key);
    if (!histogram) this.#requests.set(key, (histogram = emptyHistogram(REQUEST_BUCKETS_S)));
    observe(histogram, REQUEST_BUCKETS_S, ms / 1000);
  }

  /** A publish the broker confirmed `ms` milliseconds after it was sent. */
  confirm(ms: number): void {
    observe(this.#confirms, CONFIRM_BUCKETS_S, ms / 1000);
  }

  /** The histograms now, with `gauges`. */
  snapshot(gauges: RouteGauges): RouteMeasures {
    return {
      requests: Object.fromEntries([...this.#requests].map(([key, histogram]) => [key, structuredClone(histogram)])),
      confirms: structuredClone(this.#confirms),
      gauges,
    };
  }
}
