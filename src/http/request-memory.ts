import { MAX_ANSWER_BYTES } from "../contract/messages";
import { NameCache } from "../name-cache";
import { MEMORY_WAIT_MS, MemoryBudget, SMALL_BYTES, type Lane, type Reservation } from "../memory-budget";
import { GatewayError, RETRY_AFTER_SECONDS } from "./gateway-error";

/**
 * Bytes of bodies the Worker's isolate holds at once: requests' bodies read and passed on, answers'
 * bodies taken and built. With the copies the runtime makes of them (the body read, the copy sent
 * to the route's object, a batch's elements, a JSON answer's text), well inside the isolate's 128 MB
 * (measured: BENCHMARKS.md, "Memory").
 */
export const WORKER_MEMORY_BYTES = 16 * 1024 * 1024;

/** The isolate's budget: module state, so shared by every request the isolate serves. */
export const workerMemory = new MemoryBudget(WORKER_MEMORY_BYTES);

/**
 * Holds `bytes` for one request, waiting up to a second for room, or refuses it with 503 and
 * Retry-After before anything of it is read or taken (`what` says what was not done). `caller` is the rate-limited caller, where the
 * route has a `rate_limit`: one caller may hold at most half of the budget.
 */
export const holdMemory = async (
  routeId: string,
  lane: Lane,
  bytes: number,
  caller: string | undefined,
  what: string,
): Promise<Reservation> => {
  const held = workerMemory.take(bytes, lane, caller) ?? (await workerMemory.takeWithin(bytes, lane, caller, MEMORY_WAIT_MS));
  if (held) return held;
  throw memoryRefusal(routeId, what);
};

/** The 503 of a request the isolate's memory has no room for; `what` says what was not done. */
export const memoryRefusal = (routeId: string, what: string): GatewayError =>
  new GatewayError(
    503,
    `the gateway is holding as many message bytes as it can at once (other requests' bodies); ${what}, retry`,
    routeId,
    {
      "Retry-After": String(RETRY_AFTER_SECONDS),
    },
  );

/** How many answers of the largest size the budget holds at once. */
const ANSWERS_AT_ONCE = 2;

/**
 * The body size answers from each queue of each route have lately had (this isolate's view), to
 * plan a take's room by: per queue, so that one caller's queue of large messages does not make
 * another caller's small answers look large. Bounded: the queue may come from the request.
 */
const typicalAnswers = new NameCache<number>(10_000);

/** Where a take's answers come from: a route (or the management API) and the queue it reads for this request. */
export interface AnswerSource {
  id: string;
  amqp: { consumer: { queue: string } };
}

const answersOf = (target: AnswerSource): string => `${target.id}\n${target.amqp.consumer.queue}`;

/**
 * Room for the answer of a take of up to `max` messages from `target`, planned by the body size
 * its answers have lately had (64 KiB while unknown), times `expansion` (a JSON batch
 * holds each body again as text); 503 when even one message's worth does not fit. The room's
 * `bytes / expansion` is what the route's object may answer with.
 */
export const holdAnswerRoom = async (
  target: AnswerSource,
  max: number,
  expansion: number,
  caller: string | undefined,
  what: string,
): Promise<Reservation> => {
  const routeId = target.id;
  const { want, least } = answerPlan(target, max, expansion);
  const room = workerMemory.room("answer", caller);
  return (
    workerMemory.take(want, "answer", caller) ??
    (room >= least ? workerMemory.take(room, "answer", caller) : undefined) ??
    (await holdMemory(routeId, "answer", least, caller, what))
  );
};

/**
 * What a take of up to `max` messages from `target` would hold (`want`), and at least (`least`:
 * one message), times `expansion`, by the body size its answers have lately had (64 KiB while
 * unknown), within a share of the budget, so that several answers can be taken at once.
 */
export const answerPlan = (target: AnswerSource, max: number, expansion: number): { want: number; least: number } => {
  const each = typicalAnswers.get(answersOf(target)) ?? SMALL_BYTES;
  const want = Math.min(Math.min(MAX_ANSWER_BYTES, max * each) * expansion, Math.floor(workerMemory.largest / ANSWERS_AT_ONCE));
  return { want, least: Math.min(want, each * expansion) };
};

/**
 * The reservation of a long-poll or a stream's take: nothing while it waits (a thousand waiting
 * clients must not hold the isolate's memory that other requests need), resized to its answer
 * once that is in. What all the waits can be answered with at once is bounded by the route
 * object's own budget, which sends no more than it has room for.
 */
export const holdNothingYet = (caller: string | undefined): Reservation => workerMemory.holdNothing("answer", caller);

/** Learns the body sizes of an answer from `target` (the largest at once, a smaller one slowly). */
export const learnAnswer = (target: AnswerSource, bodies: readonly number[]): void => {
  if (bodies.length === 0) return;
  const largest = Math.max(...bodies);
  const typical = typicalAnswers.get(answersOf(target));
  typicalAnswers.set(answersOf(target), typical === undefined || largest >= typical ? largest : Math.round(0.9 * typical + 0.1 * largest));
};
