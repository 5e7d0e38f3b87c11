import { setsLength, writtenStream } from "./written-stream";
import type { Context } from "hono";
import type { ConsumeOutcome, HandedMessage } from "../contract/route-calls";
import { MAX_WAIT_S, type ConsumingRoute } from "../config/schema";
import type { GatewayEnv } from "../env";
import { admissionFor, shardFor } from "./access/admission";
import { failureError, GatewayError } from "./gateway-error";
import { shardedId } from "./sharded-ids";
import { messageHeaders } from "../contract/message-headers";
import { messageJson } from "./message-json";
import { consumingTarget } from "./request-templates";
import { runBeyondResponse } from "./beyond-response";
import { routeClient } from "./route-client";
import { settleDeliveries } from "./settle-deliveries";
import { streamEvents, wantsEventStream, WRITE_HOLD_MS } from "./stream-handler";
import { untrustedBodyHeaders } from "../contract/untrusted-body";
import { answerPlan, holdAnswerRoom, holdNothingYet, learnAnswer } from "./request-memory";
import { releaseBuffer } from "../release-buffer";
import { SMALL_BYTES } from "../memory-budget";
import type { RouteTarget } from "../contract/route-settings";

/** The most messages one `GET ?max=N` may ask for, whatever the route allows. */
export const MAX_BATCH_CONSUME = 100;

/**
 * GET and the other consuming methods.
 *
 * - Plain: one message with its properties as headers (200), or 204 when the queue is empty.
 * - `?max=N` (1 to the route's `max_messages`): up to N messages as JSON,
 *   `{"messages": [...], "remaining": M}`, or 204.
 * - `?wait=S`: either of the above, waiting up to S seconds for the first message.
 * - `Accept: text/event-stream` on a route with `consumer.stream`: Server-Sent Events.
 *
 * With auto-ack the messages are the client's once taken. Under `ack: lease` each carries a lease
 * id (`X-Lease-Id`, or `lease_id` in a batch) to settle with `POST <path>/ack` or `/nack`.
 * Otherwise (`auto_ack: false`) they are acknowledged once the answer's body has been written to
 * the client's connection, and requeued if it could not be (at least once); if the Worker never
 * settles them (it went away) the object requeues them after a minute.
 */
export const consume = async (c: Context<GatewayEnv>, route: ConsumingRoute): Promise<Response> => {
  if (route.amqp.consumer.stream && wantsEventStream(c)) return streamEvents(c, route);
  const target = consumingTarget(c, route);
  const max = batchSize(c, route);
  const admission = admissionFor(c, route);
  const shard = shardFor(target, admission);
  const waitMs = waitTime(c, route);
  const waitId = waitMs > 0 ? crypto.randomUUID() : undefined;
  // A batch's JSON holds each body again as text (base64 a third larger), while it is built.
  const expansion = max === undefined ? 1 : JSON_EXPANSION;
  // A long-poll holds nothing while it waits; a take that answers at once holds its answer's room.
  const held = waitId
    ? holdNothingYet(admission?.key)
    : await holdAnswerRoom(target, max ?? 1, expansion, admission?.key, "nothing was taken");
  const maxBytes = waitId ? answerPlan(target, max ?? 1, expansion).want : held.bytes;
  let settling = false;
  try {
    if (waitId) endWaitOnDisconnect(c, target, shard, waitId);
    const outcome = await routeClient(c.env, target, shard).call("consume", async (object): Promise<ConsumeOutcome> =>
      object.consume(target, {
        max: max ?? 1,
        method: c.req.method,
        maxBytes: Math.floor(maxBytes / expansion),
        holdMs: WRITE_HOLD_MS,
        ...(admission ? { admission } : {}),
        ...(waitId ? { waitMs, waitId } : {}),
      }),
    );
    if (!outcome.ok) throw failureError(outcome, target.id);
    const sizes = outcome.messages.map((one) => one.message.body.byteLength);
    learnAnswer(target, sizes);
    held.resize(sizes.reduce((sum, size) => sum + size, 0) * expansion);
    // A wait's answer holds room in the route's object too, until it is written (or, for
    // messages acknowledged once written, until they are settled).
    const heldByObject = waitId !== undefined && outcome.messages.length > 0 && outcome.messages.every((one) => one.settle === undefined);
    const written = () => {
      held.release();
      if (heldByObject) endWait(c, target, shard, waitId);
    };
    const response = answer(c, target, shard, outcome, max, written);
    settling = response.settling;
    return response.response;
  } finally {
    if (!settling) held.release();
  }
};

/**
 * The answer to a take: 204, one message, or a batch as JSON; `settling` when its messages are
 * acknowledged once it is written, and `written` is called then.
 */
const answer = (
  c: Context<GatewayEnv>,
  target: RouteTarget,
  shard: number,
  outcome: Extract<ConsumeOutcome, { ok: true }>,
  max: number | undefined,
  written: () => void,
): { response: Response; settling: boolean } => {
  const { messages, remaining } = outcome;
  const [first] = messages;
  if (!first) return { response: c.body(null, 204), settling: false };
  const leaseIdOf = (id: string) => shardedId(shard, id);
  // Neither form of answer can fail, whatever the messages' properties hold: nothing here can
  // leave a message at the head of its queue or lose one taken with auto-ack.
  const [body, headers] =
    max === undefined
      ? [new Uint8Array(first.message.body), singleMessageHeaders(first, leaseIdOf)]
      : [
          encoder.encode(JSON.stringify({ messages: messages.map((one) => messageJson(one, leaseIdOf)), remaining: remaining ?? null })),
          new Headers([["Content-Type", "application/json"], ...untrustedBodyHeaders("application/json")]),
        ];
  // In the JSON now: nothing reads the bodies again.
  if (max !== undefined) for (const one of messages) releaseBuffer(one.message.body);
  // Stated, so that the request's log line can count the bytes it sent.
  headers.set("Content-Length", String(body.byteLength));
  const tokens = messages.flatMap((one) => (one.settle === undefined ? [] : [one.settle]));
  // A small answer goes out whole into the connection's buffers: its room is free at once. A
  // larger one keeps its room until it has been written (a client that does not read holds it),
  // so that what clients have yet to read counts in the isolate's memory.
  if (tokens.length === 0 && body.byteLength <= SMALL_BYTES) {
    written();
    return { response: new Response(body, { status: 200, headers }), settling: true };
  }
  return {
    response: settledOnceWritten(c, body, headers, async (wasWritten) => {
      written();
      if (tokens.length > 0) await settleDeliveries(c, target, shard, tokens, wasWritten ? "ack" : "requeue");
    }),
    settling: true,
  };
};

/** How much larger than its bodies a batch's JSON answer gets while it is built (text, base64, the encoded JSON). */
const JSON_EXPANSION = 3;

const encoder = new TextEncoder();

/**
 * The answer, with `settle` called once its body has been written to the client's connection
 * (true), or could not be (false: the client went away). The body goes through a stream that
 * holds nothing of its own ({@link writtenStream}): a write completes only when the runtime has
 * taken the bytes to send them.
 */
const settledOnceWritten = (
  c: Context<GatewayEnv>,
  body: Uint8Array,
  headers: Headers,
  settle: (written: boolean) => Promise<void>,
): Response => {
  const { readable, writable } = writtenStream(body.byteLength);
  if (!setsLength()) headers.set("content-length", String(body.byteLength));
  const writer = writable.getWriter();
  writer.closed.catch(() => undefined);
  const delivery = (async () => {
    let written = false;
    try {
      if (body.byteLength > 0) await writer.write(body);
      await writer.close();
      written = true;
    } catch {
      await writer.abort().catch(() => undefined);
    }
    await settle(written).catch(() => undefined);
  })();
  runBeyondResponse(c, delivery);
  return new Response(readable, { status: 200, headers });
};

/** `?max=N` as a number within the route's `max_messages`, or undefined without it; 400 otherwise. */
const batchSize = (c: Context<GatewayEnv>, route: ConsumingRoute): number | undefined => {
  const raw = c.req.query("max");
  if (raw === undefined) return undefined;
  const cap = Math.min(route.amqp.consumer.max_messages, MAX_BATCH_CONSUME);
  if (!/^[0-9]{1,3}$/.test(raw) || Number(raw) < 1 || Number(raw) > cap) {
    throw new GatewayError(400, `query max must be a whole number from 1 to ${cap}`, route.id);
  }
  return Number(raw);
};

/** `?wait=S` (or the route's `wait_s`) in milliseconds; 400 outside 0 to 20 s. */
const waitTime = (c: Context<GatewayEnv>, route: ConsumingRoute): number => {
  const raw = c.req.query("wait");
  if (raw === undefined) return Math.round(route.amqp.consumer.wait_s * 1000);
  const seconds = Number(raw);
  if (!/^[0-9]{1,2}(\.[0-9]{1,3})?$/.test(raw) || seconds > MAX_WAIT_S) {
    throw new GatewayError(400, `query wait must be a number of seconds from 0 to ${MAX_WAIT_S}`, route.id);
  }
  return Math.round(seconds * 1000);
};

/**
 * When the client goes away mid-wait (the runtime aborts the request's signal), its place in the
 * object's line is given up at once, so that no message is handed to a client that is gone.
 */
const endWaitOnDisconnect = (c: Context<GatewayEnv>, target: RouteTarget, shard: number, waitId: string): void => {
  c.req.raw.signal.addEventListener("abort", () => endWait(c, target, shard, waitId));
};

/** Tells the object that wait `waitId` is over: its client left, or its answer is written (the room held for it is free). */
const endWait = (c: Context<GatewayEnv>, target: RouteTarget, shard: number, waitId: string): void => {
  const ended = routeClient(c.env, target, shard)
    .object()
    .cancelWait(waitId)
    .catch(() => undefined);
  runBeyondResponse(c, ended);
};

/** One message's properties as headers, with its lease id under `ack: lease`. */
const singleMessageHeaders = ({ message, leaseId }: HandedMessage, leaseIdOf: (id: string) => string): Headers => {
  const headers = messageHeaders(message);
  if (leaseId !== undefined) headers.set("X-Lease-Id", leaseIdOf(leaseId));
  return headers;
};
