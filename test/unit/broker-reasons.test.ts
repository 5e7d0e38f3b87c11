import { describe, expect, it } from "vitest";
import { isAbout, isConnectionRefusal } from "../../src/amqp/queue-directory";
import { causeOf } from "../../src/amqp/publish-ledger";
import { isChannelError } from "../../src/amqp/broker-errors";

/** amqp-client's error for a channel the broker closed with `reason`. */
const closed = (reason: string, code: number) => new Error(`channel 2 closed: ${reason} (${code})`);

describe("the broker's reasons for closing a channel", () => {
  it("are channel errors whatever the names they quote hold, line breaks included", () => {
    expect(isChannelError(closed("NOT_FOUND - no queue 'inbox.alice\n' in vhost '/'", 404))).toBe(true);
    expect(isChannelError(closed("NOT_FOUND - no queue '\rinbox.alice' in vhost '/'", 404))).toBe(true);
    expect(isChannelError(new Error("connection closed: NOT_IMPLEMENTED - basic.get not supported (540)"))).toBe(false);
  });

  it("are about a queue only when they name exactly that queue", () => {
    const missing = (name: string) => closed(`NOT_FOUND - no queue '${name}' in vhost '/'`, 404);
    const refused = (name: string) => closed(`ACCESS_REFUSED - access to queue '${name}' in vhost '/' refused for user 'app'`, 403);
    expect(isAbout(missing("inbox.alice"), "queue", "inbox.alice")).toBe(true);
    expect(isAbout(refused("inbox.alice"), "queue", "inbox.alice")).toBe(true);
    // Another request's name that holds this one, quotes and all, is another name.
    for (const other of ["inbox.alice\n", "\rinbox.alice", "inbox.alice' x", "inbox.alice' in vhost '/", "x queue 'inbox.alice"]) {
      expect(isAbout(missing(other), "queue", "inbox.alice"), JSON.stringify(other)).toBe(false);
      expect(isAbout(refused(other), "queue", "inbox.alice"), JSON.stringify(other)).toBe(false);
      expect(isAbout(missing(other), "queue", other), JSON.stringify(other)).toBe(true);
    }
  });

  it("tell the stream queue a get closed the connection over", () => {
    const error = new Error(
      "connection closed: NOT_IMPLEMENTED - basic.get not supported by stream queues queue 'events' in vhost '/' (540)",
    );
    expect(isConnectionRefusal(error)).toBe(true);
    expect(isAbout(error, "queue", "events")).toBe(true);
    expect(isAbout(error, "queue", "inbox")).toBe(false);
    expect(isConnectionRefusal(new Error("connection closed: CONNECTION_FORCED - broker forced connection closure (320)"))).toBe(false);
  });

  it("name the exchange they refused, line breaks included", () => {
    expect(causeOf(closed("NOT_FOUND - no exchange 'orders\n' in vhost '/'", 404))).toEqual({ exchange: "orders\n" });
    expect(causeOf(closed("ACCESS_REFUSED - access to exchange 'a' b' in vhost '/' refused for user 'app'", 403))).toEqual({
      exchange: "a' b",
    });
  });
});
