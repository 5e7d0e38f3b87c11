import type { LeaseResult, LeaseSettlement } from "../contract/route-calls";
import type { RouteStorage } from "./route-storage";
import type { AMQPMessage } from "@cloudamqp/amqp-client";
import type { CancelTimer, ObjectTimers } from "../object-timers";

interface Lease {
  delivery: AMQPMessage;
  cancelTimer: CancelTimer;
}

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
  readonly #onExpired: () => void;
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
   */
  constructor(storage: RouteStorage, onExpired: () => void, timers: ObjectTimers) {
    this.#onExpired = onExpired;
    this.#timers = timers;
    const earlier = storage.kv.get<string[]>(LIVES_KEY) ?? [];
    this.#earlierLives = new Set(earlier);
    storage.kv.put(LIVES_KEY, [...earlier, this.#life].slice(-LIVES_KEPT));
  }

  /** Leases `delivery` for `timeoutMs`; returns its id (a UUID: 96 random bits after the object's life). */
  lease(delivery: AMQPMessage, timeoutMs: number): string {
    const id = `${this.#life}${crypto.randomUUID().slice(8)}`;
    this.#leases.set(id, { delivery, cancelTimer: this.#expireAfter(id, delivery, timeoutMs) });
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
    if (typeof how === "object") return this.#extend(id, lease, how.extendMs);
    this.#leases.delete(id);
    lease.cancelTimer();
    if (lease.delivery.channel.closed) return this.#gone(id);
    try {
      if (how === "ack") await lease.delivery.ack();
      else await lease.delivery.nack(how === "requeue");
    } catch {
      return this.#gone(id);
    }
    const outcome = how === "ack" ? "acked" : how === "requeue" ? "requeued" : "rejected";
    this.#remember(id, outcome);
    return { lease_id: id, status: 200, outcome };
  }

  /** Sets the lease to expire `ms` from now (a consumer that needs longer than it planned). */
  #extend(id: string, lease: Lease, ms: number): LeaseResult {
    // Its connection is gone: the broker has the message back already, whatever the lease says.
    if (lease.delivery.channel.closed) {
      this.#leases.delete(id);
      lease.cancelTimer();
      return this.#gone(id);
    }
    lease.cancelTimer();
    lease.cancelTimer = this.#expireAfter(id, lease.delivery, ms);
    return { lease_id: id, status: 200, outcome: "extended", expires_at: new Date(Date.now() + ms).toISOString() };
  }

  /** Puts the message back once `ms` have passed, unless the lease is settled or extended first. */
  #expireAfter(id: string, delivery: AMQPMessage, ms: number): CancelTimer {
    return this.#timers.after(ms, () => {
      if (!this.#leases.delete(id)) return;
      this.#remember(id, "expired");
      this.#onExpired();
      delivery.nack(true).catch(() => undefined);
    });
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
