import type { LeaseResult, LeaseSettlement } from "../contract/route-calls";
import type { RouteStorage } from "./route-storage";
import type { CancelTimer, ObjectTimers } from "../object-timers";
import type { LeasedMessage } from "./message-retries";
import { LeasedBodies } from "./leased-bodies";
import { RouteFailureError } from "../contract/failures";

interface Lease {
  /** The message, its body kept apart (in {@link LeasedBodies}) until it is put back. */
  message: Omit<LeasedMessage, "body">;
  cancelTimer: CancelTimer;
  /** When it runs out (epoch ms). */
  expiresAt: number;
}

/** What a route object does with a lease's message when it goes back (see `MessageRetries`). */
export type PutBack = (message: LeasedMessage, delayS: number) => Promise<"requeued" | "dead_lettered">;

/** Where a route object keeps its lives (see `#life`), and how many. */
const LIVES_KEY = "lease_lives";
const LIVES_KEPT = 1000;

/** Outcomes of settled and expired leases are remembered this long, to answer a late or repeated settle clearly. */
const REMEMBER_MS = 15 * 60 * 1000;
/** ... and at most this many (the oldest are forgotten first). */
const REMEMBER_AT_MOST = 100_000;

/**
 * Messages handed out unacknowledged under `ack: lease`, until the client settles them with
 * `POST <path>/ack` or `/nack`, or their lease runs out (then they are requeued and come back
 * with `redelivered: true`). If the connection they came on drops, the broker requeues them by
 * itself, and settling them answers 410. Lease ids are random UUIDs: one cannot settle another
 * client's lease by guessing.
 */
export class Leases {
  readonly #leases = new Map<string, Lease>();
  readonly #ended = new Map<string, { outcome: LeaseResult["outcome"]; at: number }>();
  /** Leases a settle is under way for: another settle of one of them meanwhile is a 409, not "unknown". */
  readonly #settling = new Set<string>();
  readonly #onExpired: () => void;
  readonly #putBack: PutBack;
  /** The leased messages' bodies, kept until their leases end. */
  readonly #bodies: LeasedBodies;
  /** Each lease's expiry: on the object's timers, as a caller may hold any number of leases. */
  readonly #timers: ObjectTimers;
  /**
   * This object's life: the first 8 hex digits of each lease id it hands out. A lease id of
   * another life was handed out before the object restarted (evicted, or the Worker redeployed),
   * when its connection closed and the broker put the message back: 410, not "never handed out".
   */
  readonly #life = crypto.randomUUID().slice(0, 8);
  /** The object's earlier lives, from its storage (the most recent {@link LIVES_KEPT}). */
  readonly #earlierLives: ReadonlySet<string>;

  /**
   * @param storage - where the object's lives are kept, so that a lease of an earlier one is told from an id never handed out
   * @param onExpired - called once per lease that ran out (for the `expired` counter)
   * @param timers - the object's timers, for the leases' expiries
   * @param putBack - puts a nacked or expired lease's message back (or to its dead letters)
   */
  constructor(storage: RouteStorage, onExpired: () => void, timers: ObjectTimers, putBack: PutBack) {
    this.#onExpired = onExpired;
    this.#putBack = putBack;
    this.#bodies = new LeasedBodies(storage.sql);
    this.#timers = timers;
    const earlier = storage.kv.get<string[]>(LIVES_KEY) ?? [];
    this.#earlierLives = new Set(earlier);
    storage.kv.put(LIVES_KEY, [...earlier, this.#life].slice(-LIVES_KEPT));
  }

  /**
   * Leases `message` for `timeoutMs` to `caller`; returns its id (a UUID: 96 random bits after the
   * object's life). `body` is the message's body: a copy is kept until the lease ends (see {@link LeasedBodies}).
   */
  lease(message: Omit<LeasedMessage, "body">, body: ArrayBuffer, timeoutMs: number, caller: string | undefined): string {
    const id = `${this.#life}${crypto.randomUUID().slice(8)}`;
    this.#bodies.keep(id, body, caller);
    const lease: Lease = { message, cancelTimer: () => undefined, expiresAt: 0 };
    this.#leases.set(id, lease);
    this.#expireAfter(id, lease, timeoutMs);
    return id;
  }

  /** Settles each lease id, in order; never throws, every id gets its own result. */
  async settle(ids: readonly string[], how: LeaseSettlement): Promise<LeaseResult[]> {
    return Promise.all(ids.map((id) => this.#settleOne(id, how)));
  }

  /** How many leases are outstanding now. */
  get size(): number {
    return this.#leases.size;
  }

  async #settleOne(id: string, how: LeaseSettlement): Promise<LeaseResult> {
    const lease = this.#leases.get(id);
    if (!lease) return this.#notHeld(id);
    if (typeof how === "object" && "extendMs" in how) return this.#extend(id, lease, how.extendMs);
    this.#leases.delete(id);
    lease.cancelTimer();
    this.#settling.add(id);
    try {
      return await this.#settleHeld(id, lease, how);
    } finally {
      this.#settling.delete(id);
    }
  }

  async #settleHeld(id: string, lease: Lease, how: Exclude<LeaseSettlement, { extendMs: number }>): Promise<LeaseResult> {
    const { delivery } = lease.message;
    if (delivery.channel.closed) {
      this.#bodies.drop(id);
      return this.#gone(id);
    }
    const delayS = typeof how === "object" ? how.delayS : 0;
    // Due no sooner than this: the copy can only be published after now.
    const returnsAt = new Date(Date.now() + delayS * 1000).toISOString();
    let outcome: "acked" | "requeued" | "rejected" | "dead_lettered";
    try {
      if (how === "ack") await delivery.ack();
      else if (how === "reject") await delivery.nack(false);
      outcome = how === "ack" ? "acked" : how === "reject" ? "rejected" : await this.#putBack(this.#withBody(id, lease), delayS);
    } catch (error) {
      if (delivery.channel.closed) {
        this.#bodies.drop(id);
        return this.#gone(id);
      }
      // A delay the broker did not take: the message is still this lease's, until it runs out.
      this.#leases.set(id, lease);
      this.#expireAfter(id, lease, Math.max(0, lease.expiresAt - Date.now()));
      // A copy sent but not confirmed may be in the delay queues all the same: then it comes twice.
      const unsure =
        error instanceof RouteFailureError && error.kind === "no_answer"
          ? " (the delayed copy may have reached the broker: then the message comes twice)"
          : "";
      return { lease_id: id, status: 503, outcome: "not_settled", error: `${errorMessage(error)}; the lease is still held${unsure}` };
    }
    this.#bodies.drop(id);
    this.#remember(id, outcome);
    return {
      lease_id: id,
      status: 200,
      outcome,
      ...(outcome === "requeued" && delayS > 0 ? { returns_at: returnsAt } : {}),
    };
  }

  /** Sets the lease to expire `ms` from now (a consumer that needs longer than it planned). */
  #extend(id: string, lease: Lease, ms: number): LeaseResult {
    // Its connection is gone: the broker has the message back already, whatever the lease says.
    if (lease.message.delivery.channel.closed) {
      this.#leases.delete(id);
      lease.cancelTimer();
      this.#bodies.drop(id);
      return this.#gone(id);
    }
    lease.cancelTimer();
    this.#expireAfter(id, lease, ms);
    return { lease_id: id, status: 200, outcome: "extended", expires_at: new Date(lease.expiresAt).toISOString() };
  }

  /** Puts the message back once `ms` have passed, unless the lease is settled or extended first. */
  #expireAfter(id: string, lease: Lease, ms: number): void {
    lease.expiresAt = Date.now() + ms;
    lease.cancelTimer = this.#timers.after(ms, () => {
      if (this.#leases.get(id) !== lease) return;
      this.#leases.delete(id);
      this.#remember(id, "expired");
      this.#onExpired();
      const { delivery } = lease.message;
      this.#putBack(this.#withBody(id, lease), 0)
        .catch(() => delivery.nack(true))
        .catch(() => undefined)
        .finally(() => this.#bodies.drop(id));
    });
  }

  /** The lease's message with its kept body, to put it back. */
  #withBody(id: string, lease: Lease): LeasedMessage {
    return { ...lease.message, body: this.#bodies.read(id) };
  }

  #gone(id: string): LeaseResult {
    this.#remember(id, "gone");
    return {
      lease_id: id,
      status: 410,
      outcome: "gone",
      error: "the connection it was leased on was lost; the broker has put the message back in the queue",
    };
  }

  #notHeld(id: string): LeaseResult {
    if (this.#settling.has(id)) {
      return { lease_id: id, status: 409, outcome: "already_settled", error: "another request is settling it now" };
    }
    const ended = this.#ended.get(id);
    if (!ended && this.#earlierLives.has(id.slice(0, 8))) {
      return {
        lease_id: id,
        status: 410,
        outcome: "gone",
        // What became of it before the restart is not known here (settled outcomes are kept in
        // memory only): if it was not settled by then, the closed connection put it back.
        error:
          "leased before the route's object restarted (evicted, idle or redeployed); if it was not settled before that, the broker has put the message back in the queue",
      };
    }
    if (!ended) return { lease_id: id, status: 404, outcome: "unknown", error: "no such lease (never handed out, or long settled)" };
    if (ended.outcome === "expired") {
      return { lease_id: id, status: 410, outcome: "expired", error: "the lease ran out; the message went back to the queue" };
    }
    if (ended.outcome === "gone") return this.#gone(id);
    return { lease_id: id, status: 409, outcome: "already_settled", error: `already settled (${ended.outcome})` };
  }

  #remember(id: string, outcome: LeaseResult["outcome"]): void {
    const now = Date.now();
    this.#ended.delete(id);
    this.#ended.set(id, { outcome, at: now });
    for (const [key, entry] of this.#ended) {
      if (this.#ended.size <= REMEMBER_AT_MOST && now - entry.at < REMEMBER_MS) break;
      this.#ended.delete(key);
    }
  }
}

const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error));
