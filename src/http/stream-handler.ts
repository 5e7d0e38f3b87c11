import { GatewayError } from "./gateway-error";
import { messageJson } from "./message-json";
import { writtenStream } from "./written-stream";
import type { Context } from "hono";
import type { ConsumeOutcome } from "../contract/route-calls";
import type { ConsumedMessage } from "../contract/messages";
import { base64 } from "../base64";
import type { ConsumingRoute } from "../config/schema";
import type { GatewayEnv } from "../env";
import { admissionFor, shardFor } from "./access/admission";
import { failureError } from "./gateway-error";
import { consumingTarget } from "./request-templates";
import { routeClient } from "./route-client";
import { settleDeliveries } from "./settle-deliveries";
import { runBeyondResponse } from "./beyond-response";
import { untrustedBodyHeaders } from "../contract/untrusted-body";
import { answerPlan, holdAnswerRoom, holdNothingYet, learnAnswer } from "./request-memory";
import type { Reservation } from "../memory-budget";

/** A comment goes out when no message has come for this long, so that proxies and browsers keep the stream open. */
export const HEARTBEAT_MS = 15_000;
/** When no message follows an event within this long, a comment is written to confirm the event's connection. */
const CONFIRM_AFTER_MS = 250;
/** How long the object holds a message for its answer (or event) to be written before it requeues it. */
export const WRITE_HOLD_MS = 60_000;

const EVENT_STREAM_TYPE = "text/event-stream; charset=utf-8";

const encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Whether the request asks for Server-Sent Events (an `EventSource` does). */
export const wantsEventStream = (c: Context<GatewayEnv>): boolean => c.req.header("accept")?.includes("text/event-stream") ?? false;

/**
 * `GET` with `Accept: text/event-stream` on a route with `consumer.stream`: Server-Sent Events,
 * one event per message. The Worker takes one message at a time from the route's object (a
 * long-poll of {@link HEARTBEAT_MS}, a heartbeat comment when it ends empty), writes its event,
 * and acknowledges the message only once that write, and the next one, have gone through to the
 * client's connection; a write that fails (the client went away) puts the unconfirmed messages
 * back in the queue (at least once, whatever the route's `auto_ack` or `ack`).
 *
 * `Last-Event-ID`, which a reconnecting `EventSource` sends, is accepted but a queue cannot
 * replay: the stream goes on with what the queue holds. The event that was being written when
 * the connection broke comes again, with the same id when the message has a `message_id`, so a
 * client can recognise it.
 */
export const streamEvents = async (c: Context<GatewayEnv>, route: ConsumingRoute): Promise<Response> => {
  const envelope = c.req.query("envelope");
  if (envelope !== undefined && envelope !== "json") {
    throw new GatewayError(400, `envelope must be json (each event's data the message as a ?max batch shows it), or left out`, route.id);
  }
  const eventOf = envelope === "json" ? jsonEventOf : plainEventOf;
  const target = consumingTarget(c, route);
  const admission = admissionFor(c, route);
  const shard = shardFor(target, admission);
  const client = routeClient(c.env, target, shard);
  const waitId = crypto.randomUUID();
  let open = true;
  // Room for the message being taken and written, held until its event is written: a client that
  // reads slowly holds its event, and the isolate's memory is every stream's.
  let held: Reservation | undefined;
  const take = async (waitMs: number, continued: boolean): Promise<ConsumeOutcome> => {
    held?.release();
    // The first take answers at once and holds its room; a later one waits, and holds nothing meanwhile.
    held = continued
      ? holdNothingYet(admission?.key)
      : await holdAnswerRoom(target, 1, EVENT_EXPANSION, admission?.key, "nothing was taken");
    const room = held;
    const maxBytes = continued ? answerPlan(target, 1, EVENT_EXPANSION).want : room.bytes;
    const outcome = await client.call("consume", async (object): Promise<ConsumeOutcome> =>
      object.consume(target, {
        max: 1,
        method: "GET",
        maxBytes: Math.floor(maxBytes / EVENT_EXPANSION),
        waitMs,
        waitId,
        holdMs: WRITE_HOLD_MS,
        holdAll: true,
        // The stream is one request: counted, and held to the rate limit, once (a continued take
        // only keeps its place among the caller's open waits).
        ...(continued ? { continued } : {}),
        ...(admission ? { admission } : {}),
      }),
    );
    const sizes = outcome.ok ? outcome.messages.map((one) => one.message.body.byteLength) : [];
    learnAnswer(target, sizes);
    room.resize((sizes[0] ?? 0) * EVENT_EXPANSION);
    return outcome;
  };
  // The first take answers before the stream opens, so that a refusal is a plain error answer.
  let first: ConsumeOutcome;
  try {
    first = await take(0, false);
  } catch (error) {
    held?.release();
    throw error;
  }
  if (!first.ok) {
    held?.release();
    throw failureError(first, route.id);
  }

  // The body stream holds no chunk of its own (writtenStream): a write completes only when the
  // response has read the chunk to send it, so "written" means passed to the client's connection.
  const { readable, writable } = writtenStream();
  const writer = writable.getWriter();
  // The client went away: the runtime aborts the request (deployed, or a reset connection), or
  // cancels the body it was reading. Either ends the stream's wait at once.
  const leave = () => {
    if (!open) return;
    open = false;
    void client
      .object()
      .cancelWait(waitId)
      .catch(() => undefined);
  };
  c.req.raw.signal.addEventListener("abort", leave);
  writer.closed.catch(leave);
  const settle = (token: number | undefined, outcome: "ack" | "requeue") =>
    token === undefined ? Promise.resolve() : settleDeliveries(c, target, shard, [token], outcome);

  // An event is acknowledged only once a later write has gone through too: a connection the
  // client closed cleanly still takes one write (into the kernel's buffer) before it fails, so the
  // success of the next one is what says the event's connection was alive. When no message
  // follows soon, a bare comment is that next write.
  const run = async (): Promise<void> => {
    await writer.write(encoder.encode("retry: 1000\n: connected\n\n"));
    let outcome: ConsumeOutcome = first;
    let sequence = 0;
    let unconfirmed: number | undefined;
    for (;;) {
      if (!outcome.ok) {
        await writer.write(encoder.encode(`event: error\ndata: ${JSON.stringify({ error: outcome.message, route: route.id })}\n\n`));
        break;
      }
      const [handed] = outcome.messages;
      if (!open) {
        // The client left while this was being taken: it goes back unwritten.
        await settle(handed?.settle, "requeue");
        break;
      }
      if (!handed && unconfirmed === undefined && outcome === first) {
        // Nothing waiting at the start: no heartbeat is due yet.
        outcome = await take(HEARTBEAT_MS, true);
        continue;
      }
      const chunk = handed ? eventOf(handed.message, ++sequence) : unconfirmed === undefined ? ": heartbeat\n\n" : ":\n\n";
      try {
        await writtenWithin(writer.write(encoder.encode(chunk)), STALLED_WRITE_MS);
      } catch {
        // Gone, or reading nothing: the stream ends (aborted, so that nothing waits on the write).
        await writer.abort().catch(() => undefined);
        await settle(unconfirmed, "requeue");
        await settle(handed?.settle, "requeue");
        unconfirmed = undefined;
        break;
      }
      await settle(unconfirmed, "ack");
      unconfirmed = handed?.settle;
      if (!open) break;
      outcome = await take(unconfirmed === undefined ? HEARTBEAT_MS : CONFIRM_AFTER_MS, true);
    }
    await settle(unconfirmed, "requeue");
    await writer.close().catch(() => undefined);
    // Ended: its place among the caller's open waits is free again.
    leave();
  };
  const running = run()
    .catch(() => writer.abort().catch(() => undefined))
    .finally(() => held?.release());
  runBeyondResponse(c, running);
  return new Response(readable, {
    status: 200,
    headers: [
      ["Content-Type", EVENT_STREAM_TYPE],
      ["Cache-Control", "no-cache, no-transform"],
      // Proxies such as nginx would otherwise hold events back.
      ["X-Accel-Buffering", "no"],
      ...untrustedBodyHeaders(EVENT_STREAM_TYPE),
    ],
  });
};

/**
 * How long an event may wait for the client to take it: a client that reads nothing holds its
 * event, and the room it takes, for good. The stream ends before the route's object would requeue
 * the message by itself ({@link WRITE_HOLD_MS}) and before it would stop counting the stream
 * among its caller's open waits, so the message goes back and the caller's place is given up
 * together.
 */
const STALLED_WRITE_MS = WRITE_HOLD_MS - 10_000;

/** Resolves when `write` does; rejects when it has not within `ms`. */
const writtenWithin = async (write: Promise<void>, ms: number): Promise<void> => {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      write,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("the client took nothing")), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
};

/**
 * An event holds its body again as text (or base64), while it is built and written; as JSON
 * (`?envelope=json`) a few escaped characters may take more, within the same bound as a batch's.
 */
const EVENT_EXPANSION = 2;

/**
 * One event: `id:` the message id (or the stream's count), `data:` each line of the body; a body
 * that is not UTF-8 is base64, with `event: binary`.
 */
export const plainEventOf = (message: ConsumedMessage, sequence: number): string => {
  let text: string | undefined;
  try {
    text = utf8.decode(message.body);
  } catch {
    text = undefined;
  }
  const id = (message.messageId ?? String(sequence)).replace(/[\r\n\0]/g, "");
  const head = `id: ${id}\n${text === undefined ? "event: binary\n" : ""}`;
  const data = text === undefined ? [base64(new Uint8Array(message.body))] : text.split(/\r\n|\r|\n/);
  return `${head}${data.map((line) => `data: ${line}\n`).join("")}\n`;
};

/**
 * With `?envelope=json`: one event whose `data:` is the message as a `?max` batch shows it (its
 * body, properties, `redelivered` and `delivery_count`), on one line; `id:` as in a plain event.
 */
export const jsonEventOf = (message: ConsumedMessage, sequence: number): string => {
  const id = (message.messageId ?? String(sequence)).replace(/[\r\n\0]/g, "");
  return `id: ${id}\ndata: ${JSON.stringify(messageJson({ message }, (leaseId) => leaseId))}\n\n`;
};
