import { RouteFailureError, type FailureKind } from "./route-failure";

/**
 * Races `work` against a timer. Every broker operation goes through this: a dead peer or a
 * blocked connection must turn into an answer, never a request that hangs.
 */
export const withTimeout = <T>(work: Promise<T>, ms: number, kind: FailureKind, message: string): Promise<T> => {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RouteFailureError(kind, message)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
};
