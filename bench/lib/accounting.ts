/** What a run's queue says about its 2xx answers. */
export interface Accounting {
  /** 2xx answers whose message is not in the queue. */
  lost: number;
  /** Messages beyond the 2xx answers, up to the bound: requests nobody waited for at the deadline. */
  unanswered: number;
  /** Messages beyond even that bound. */
  duplicated: number;
}

/**
 * Compares the messages a run left in (or took from) its queue with its 2xx answers: fewer
 * messages than 2xx is a loss; more is first the requests in flight at the load generator's
 * deadline (at most `bound`, one per connection), then duplicates.
 */
export const account = (messages: number, ok: number, bound: number): Accounting => ({
  lost: Math.max(0, ok - messages),
  unanswered: Math.min(Math.max(0, messages - ok), bound),
  duplicated: Math.max(0, messages - ok - bound),
});
