import autocannon from "autocannon";

/** What one load run measured. */
export interface LoadResult {
  /** Mean requests per second over the run. */
  rps: number;
  p50: number;
  p99: number;
  /** 2xx answers (the ones that claim success). */
  ok: number;
  /** Answers with a status of 200 exactly (a consume that got a message). */
  status200: number;
  /** Non-2xx answers, connection errors and timeouts. */
  errors: number;
  seconds: number;
}

export interface LoadOptions {
  url: string;
  connections: number;
  /** Seconds to run, or a number of requests. */
  seconds?: number;
  amount?: number;
  method?: "GET" | "POST";
  headers?: Record<string, string>;
  body?: string;
}

/** Runs autocannon (no hand-rolled load loop) and keeps the figures the report needs. */
export const load = async (options: LoadOptions): Promise<LoadResult> => {
  const started = Date.now();
  let status200 = 0;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        ...(options.amount ? { amount: options.amount } : { duration: options.seconds ?? 5 }),
        method: options.method ?? "GET",
        headers: options.headers ?? {},
        ...(options.body === undefined ? {} : { body: options.body }),
        timeout: 30,
      },
      (error, finished) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(finished)),
    );
    instance.on("response", (_client, statusCode) => {
      if (statusCode === 200) status200++;
    });
  });
  const seconds = (Date.now() - started) / 1000;
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok: result["2xx"],
    status200,
    errors: result.non2xx + result.errors + result.timeouts,
    seconds,
  };
};
