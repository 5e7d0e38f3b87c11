/**
 * What a route shard measures for `GET /amqp/metrics`: fixed-bucket histograms (so that shards
 * add up bucket by bucket, and a record is a few additions), and the gauges of what it holds now.
 * Plain structured-clonable data, like the rest of `src/contract/`.
 */

/** Upper bounds in seconds of the request-duration buckets (a long-poll waits up to 20 s). */
export const REQUEST_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;
/** Upper bounds in seconds of the broker's confirm-latency buckets. */
export const CONFIRM_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] as const;

/** One histogram: `counts[i]` observations within bucket i (not cumulative; the last is +Inf). */
export interface HistogramData {
  counts: number[];
  sum: number;
  count: number;
}

/** What a request to a route shard is labelled by: its HTTP method and the class of its answer (`2xx`, `4xx`, `5xx`). */
export interface RequestLabels {
  method: string;
  status_class: string;
}

export interface RouteGauges {
  /** Publishes sent and awaiting the broker's confirm. */
  publishes_in_flight: number;
  leases_held: number;
  /** Clients waiting in a long-poll (or a stream's wait for its next message). */
  long_poll_waiters: number;
  /** Push deliveries under way. */
  push_in_flight: number;
}

/** A shard's measures: request durations by labels (`method status_class` as key), confirm latency, gauges. */
export interface RouteMeasures {
  requests: Record<string, HistogramData>;
  confirms: HistogramData;
  gauges: RouteGauges;
}

/** An empty histogram for `buckets`. */
export const emptyHistogram = (buckets: readonly number[]): HistogramData => ({
  counts: Array.from({ length: buckets.length + 1 }, () => 0),
  sum: 0,
  count: 0,
});

/** Adds `seconds` to `histogram` over `buckets`. */
export const observe = (histogram: HistogramData, buckets: readonly number[], seconds: number): void => {
  let index = buckets.findIndex((bound) => seconds <= bound);
  if (index === -1) index = buckets.length;
  histogram.counts[index] = (histogram.counts[index] ?? 0) + 1;
  histogram.sum += seconds;
  histogram.count += 1;
};

/** `a` and `b` added, bucket by bucket. */
export const addHistograms = (a: HistogramData, b: HistogramData): HistogramData => ({
  counts: a.counts.map((count, index) => count + (b.counts[index] ?? 0)),
  sum: a.sum + b.sum,
  count: a.count + b.count,
});

/** The key of a request histogram: its labels. */
export const requestKey = ({ method, status_class }: RequestLabels): string => `${method} ${status_class}`;
export const requestLabels = (key: string): RequestLabels => {
  const [method = "", status_class = ""] = key.split(" ");
  return { method, status_class };
};
