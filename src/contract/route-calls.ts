/**
 * The calls the HTTP side makes of a route shard and their answers (the messages they carry are
 * `messages.ts`, the route's settings `route-settings.ts`). Plain structured-clonable objects
 * only: the route's resolved settings travel with every call, so the shard always acts on the
 * configuration that is deployed now. Like the rest of `src/contract/`, this module imports
 * nothing of the gateway's.
 */
import type { RouteFailure } from "./failures";
import type { RouteMeasures } from "./metrics";
import type { ManagementGetOutcome, ManagementGetRequest, ManagementPublishOutcome, ManagementPublishRequest } from "./management-api";
import type { ConsumedMessage, OutgoingMessage } from "./messages";
import type { ConsumingTarget, PublishingTarget, RouteTarget } from "./route-settings";

/** A caller and its share of a route's `rate_limit`, as the HTTP side found them. */
export interface Admission {
  /** The caller: `ip:<address>`, `key:<digest>` of an API key, `user:<name>`, or `sub:<sub>` of a JWT; never a credential. */
  key: string;
  requests: number;
  periodS: number;
  /** Long-polls and streams the caller may hold open at once. */
  openWaits: number;
}

/** What one request with an `Idempotency-Key` asks of the window. */
export interface IdempotentRequest {
  key: string;
  /**
   * Who sent it (`key:<digest>`, `user:<name>`, `jwt:...`), or "" on a route without `auth`: a key
   * is one caller's, so another caller's same key is another request.
   */
  caller: string;
  /** SHA-256 of what the request publishes (exchange, routing key, bodies): the same key for something else is refused. */
  fingerprint: string;
  /** How long a key is remembered, from its first request. */
  windowMs: number;
  /** Most keys remembered; the oldest go first. */
  maxEntries: number;
  /** Most keys one caller may hold; past it its own oldest go first, not another caller's. */
  maxEntriesPerCaller: number;
  /** How long a repeat waits for a first request that is still awaiting its confirms. */
  waitMs: number;
}

/** One HTTP request's messages for the route's object to publish: one message, or a batch. */
export interface PublishManyRequest {
  route: PublishingTarget;
  messages: OutgoingMessage[];
  /** The caller and its limit, when the route has a `rate_limit`. */
  admission?: Admission;
  /** The request's `Idempotency-Key`, when the route has `dedupe_window_s`. */
  idempotency?: IdempotentRequest;
  /** The request's HTTP method (`POST`, `PUT`), for `/amqp/metrics` (default POST). */
  method?: string;
  /** `X-Delay` (routes with `producer.allow_delay`): the messages enter their exchange no sooner than this many milliseconds from now. */
  delayMs?: number;
}

/**
 * Whether each message was confirmed, in the order they were sent; or the request refused as a
 * whole (`rate_limit`, an `Idempotency-Key` used for other content or still in flight).
 */
export type PublishOutcome = { ok: true } | RouteFailure;
export interface PublishManyOutcome {
  outcomes: PublishOutcome[];
  refused?: RouteFailure;
  /** Every message was confirmed under the same `Idempotency-Key` before: nothing was published again. */
  replayed?: boolean;
}

/** One request/reply call (`producer.reply`): the request, published with `id` as its correlation id. */
export interface ReplyRequest {
  route: PublishingTarget;
  message: OutgoingMessage;
  /** `<shard>.<uuid>`: the correlation id, and the reply's id in `<path>/replies/<id>`. */
  id: string;
  /** `Prefer: respond-async`: answer once the request is confirmed, and keep the reply for the client to fetch. */
  async: boolean;
  admission?: Admission;
}

/** The reply (none yet for an async request), or why there is none. */
export type ReplyOutcome = { ok: true; reply?: ConsumedMessage } | RouteFailure;

/**
 * The messages taken, and `remaining` in the queue after the last (the broker's count). For each,
 * `settle` is set when the route does not auto-ack: the Worker must call the object's `settle`
 * with it, "ack" once its response is ready, "requeue" if anything failed.
 */
export type ConsumeOutcome = { ok: true; messages: HandedMessage[]; remaining?: number } | RouteFailure;

/** What a consume asks for: up to `max` messages, within the caller's rate limit, waiting up to `waitMs` for the first. */
export interface ConsumeRequest {
  max: number;
  /** The request's HTTP method (`GET`, `DELETE`, `PATCH`), for `/amqp/metrics` (default GET). */
  method?: string;
  admission?: Admission;
  /** Most body bytes the answer may carry, the first message whatever its size (default, and at most, `MAX_ANSWER_BYTES` of `src/contract/messages.ts`). */
  maxBytes?: number;
  /** Long-poll: how long to wait when the queue is empty (0 or absent: answer at once). */
  waitMs?: number;
  /** Names the wait, so that the Worker can end it when its client goes away (the object's `cancelWait`). */
  waitId?: string;
  /** How long a message held for `settle` waits for it before it is requeued (default `operation_timeout_ms`). */
  holdMs?: number;
  /** Hold every message for `settle`, whatever the route's mode (auto-ack or lease): a stream acknowledges each once its event is written. */
  holdAll?: boolean;
  /** A stream's next take after its first: not a request of its own (not counted, not rate-limited again; its admission only keeps the stream among its caller's open waits). */
  continued?: boolean;
}

/** One message handed to the Worker, with what settles it: nothing (auto-ack), a lease id, or a token for `settle`. */
export interface HandedMessage {
  message: ConsumedMessage;
  settle?: number;
  leaseId?: string;
}

export type SettleOutcome = { ok: true } | RouteFailure;

/** The per-route figures behind `GET /amqp`. */
export interface RouteCounters {
  total_requests: number;
  total_errors: number;
  published: number;
  consumed: number;
  /** Requests refused by the route's `rate_limit` (never sent to the broker, not errors). */
  rejected: number;
  /** Under `ack: lease`: messages handed out on a lease, acknowledged, nacked, and whose lease ran out. */
  leased: number;
  acked: number;
  nacked: number;
  expired: number;
  /** Under `consumer.push`: messages acknowledged after the endpoint's 2xx, failed attempts, and messages rejected after their last. */
  pushed: number;
  push_failures: number;
  dead_lettered: number;
}

/** The route's most recent failure. */
export interface LastError {
  message: string;
  /** When it happened, as an ISO 8601 timestamp. */
  at: string;
}

export interface RouteStats extends RouteCounters {
  /** Whether a connection to the broker is open right now. */
  connected: boolean;
  /** The most recent failure, or null if there has been none. */
  last_error: LastError | null;
}

/** What `GET <path>/replies/<id>` finds: the reply, still waiting, why there is none, or nothing known. */
export type ReplyState =
  | { status: "pending" }
  | { status: "arrived"; message: ConsumedMessage }
  | { status: "failed"; failure: RouteFailure }
  | { status: "unknown" };

/**
 * What a settle request does to each lease: `ack`; `nack` with requeue (at once, or `delayS`
 * seconds from now), or without (dead-letter or drop); or extend it to expire `extendMs` from now.
 */
export type LeaseSettlement = "ack" | "requeue" | "reject" | { delayS: number } | { extendMs: number };

/** The outcome of settling one lease id, as the client gets it. */
export interface LeaseResult {
  lease_id: string;
  /**
   * HTTP-like status of this id: 200 settled (or extended), 404 unknown, 409 settled before, 410
   * back in the queue already, 503 not settled now (a delay the broker did not take): still leased.
   */
  status: 200 | 404 | 409 | 410 | 503;
  outcome:
    "acked" | "requeued" | "rejected" | "dead_lettered" | "extended" | "unknown" | "already_settled" | "expired" | "gone" | "not_settled";
  /** An extended lease's new expiry (ISO time). */
  expires_at?: string;
  /** A message nacked with a delay: when it is back in its queue at the soonest (ISO time). */
  returns_at?: string;
  error?: string;
}

/** Every counter at zero: the start of a route's counts, and of a sum over its shards. */
export const ZERO_COUNTERS: Readonly<RouteCounters> = {
  total_requests: 0,
  total_errors: 0,
  published: 0,
  consumed: 0,
  rejected: 0,
  leased: 0,
  acked: 0,
  nacked: 0,
  expired: 0,
  pushed: 0,
  push_failures: 0,
  dead_lettered: 0,
};

/** A push route shard's delivery (`consumer.push`), as `GET <path>` shows it. */
export interface PushState {
  /** `starting`: not paused, but not delivering yet (connecting, or the broker refused). */
  state: "running" | "paused" | "starting";
  /** Messages being attempted or waiting for their retry. */
  in_flight: number;
  last_error: { message: string; at: string } | null;
  last_success_at: string | null;
}

/** What a push control call does: start it unless it runs or is paused (and answer its state), pause it, resume it. */
export type PushAction = "ensure" | "pause" | "resume";

/**
 * A route shard as the HTTP side calls it: each call answers later, across a Durable Object's
 * RPC or in the same process (`src/server/local-routes.ts`), so that the HTTP side is one code
 * for every runtime. The route side's `AmqpRoute` does the work behind each call.
 */
export interface RouteApi {
  publishMany(request: PublishManyRequest): Promise<PublishManyOutcome>;
  request(request: ReplyRequest): Promise<ReplyOutcome>;
  reply(id: string, admission?: Admission): Promise<ReplyState | RouteFailure>;
  consume(route: ConsumingTarget, request: ConsumeRequest): Promise<ConsumeOutcome>;
  cancelWait(waitId: string): Promise<void>;
  settleLeases(ids: string[], how: LeaseSettlement, admission?: Admission): Promise<LeaseResult[] | RouteFailure>;
  refuseAttempt(admission: Admission): Promise<RouteFailure | undefined>;
  settle(tokens: number[], outcome: "ack" | "requeue"): Promise<SettleOutcome>;
  stats(url: string): Promise<RouteStats>;
  readiness(route: RouteTarget): Promise<{ ok: true } | RouteFailure>;
  push(route: ConsumingTarget, action: PushAction): Promise<PushState | RouteFailure>;
  metrics(url: string): Promise<RouteStats & { measures: RouteMeasures }>;
  deadLetters(route: ConsumingTarget, max: number): Promise<DeadLetters | RouteFailure>;
  redrive(route: ConsumingTarget, max: number): Promise<Redriven | RouteFailure>;
  managementPublish(request: ManagementPublishRequest): Promise<ManagementPublishOutcome>;
  managementGet(request: ManagementGetRequest): Promise<ManagementGetOutcome>;
}

/** Most dead letters one `GET <path>/dead` shows, and one `POST <path>/redrive` moves. */
export const MAX_PEEKED = 100;
export const MAX_REDRIVEN = 10_000;

/** `GET <path>/dead`: up to `max` messages of the route's `dead_letter_queue`, left where they are. */
export interface DeadLetters {
  ok: true;
  messages: ConsumedMessage[];
}

/** `POST <path>/redrive`: how many dead letters were moved back to the route's queue. */
export interface Redriven {
  ok: true;
  moved: number;
  /** Why it stopped before `max`, when the broker refused a message (which stays a dead letter). */
  error?: string;
}

/** Where the HTTP side finds a route shard by its name (see `src/http/route-client.ts`). */
export interface RouteDirectory {
  get(name: string, locationHint?: string): RouteApi;
}
