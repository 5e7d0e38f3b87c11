/**
 * Idempotent retries when the broker holds publishers back (a memory alarm), with the gateway as
 * `npm start` runs it, against a disposable RabbitMQ node of the test's own: the one on
 * 127.0.0.1:5672 is never alarmed. A request that is not confirmed in time, retried with its
 * Idempotency-Key once the alarm is over, leaves exactly one copy in the queue.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { declareQueue, deleteQueue, drain as drainFrom, messageCount, uniqueName } from "../helpers/broker";
import { startDisposableBroker, type DisposableBroker } from "../helpers/disposable-broker";
import { npmStart, waitFor, type RunningGateway } from "./npm-start";

const queue = uniqueName("idem-faults");
const route = `idem-fault-${queue.slice(-8)}`;
const CONFIRM_TIMEOUT_MS = 500;

const ROUTES = (url: string) => `
routes:
  - id: ${route}
    path: /in
    amqp:
      enabled: true
      url: "${url}"
      connect_timeout_ms: 2000
      producer: { routing_key: ${queue}, confirm_timeout_ms: ${CONFIRM_TIMEOUT_MS}, dedupe_window_s: 600 }
`;

let broker: DisposableBroker;
let gateway: RunningGateway;
/** The gateway's Durable Object storage, kept across its restart. */
const stateDir = mkdtempSync(join(tmpdir(), "gw-state-"));

interface Answer {
  status: number;
  replayed: string | null;
  error: string | undefined;
}

const post = async (body: string, key: string): Promise<Answer> => {
  const response = await fetch(`${gateway.url}/in`, {
    method: "POST",
    body,
    headers: { "content-type": "application/json", "idempotency-key": key },
    signal: AbortSignal.timeout(20_000),
  });
  const json = (await response.json()) as { error?: string };
  return { status: response.status, replayed: response.headers.get("idempotent-replayed"), error: json.error };
};

beforeAll(async () => {
  broker = await startDisposableBroker();
  await declareQueue(queue, {}, broker.url);
  gateway = await npmStart(ROUTES(broker.url), { STATE_DIR: stateDir });
}, 180_000);
// A test that failed halfway must not leave an alarmed broker behind.
afterEach(async () => {
  await broker?.setMemoryAlarm(false);
});
afterAll(async () => {
  await gateway?.stop();
  if (broker) await deleteQueue(queue, broker.url);
  await broker?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

describe("a publish held back by a memory alarm, retried with its Idempotency-Key", () => {
  it("is answered 504 while held, its late confirm is recorded, and the retry replays it: exactly one copy", async () => {
    // The publishing connection is open, and has published, before the alarm.
    expect((await post('"warm-up"', "warm-up")).status).toBe(202);
    expect(await drainFrom(queue, broker.url)).toHaveLength(1);

    const key = `held-${queue.slice(-8)}`;
    await broker.setMemoryAlarm(true);
    try {
      // RabbitMQ blocks a connection (and sends it connection.blocked) only once it publishes under
      // the alarm: this publish is written to the socket, then held, so it is a 504 (sent, outcome
      // unknown), not a 503 (refused before sending).
      const first = await post('"held back"', key);
      expect(first, JSON.stringify(first)).toMatchObject({ status: 504, replayed: null });
      expect(first.error).toMatch(/did not confirm the message within 500 ms; it may or may not have been enqueued/);
      // A retry while the first still awaits its confirm waits for it, up to confirm_timeout_ms, and publishes nothing.
      const during = await post('"held back"', key);
      expect(during, JSON.stringify(during)).toMatchObject({ status: 504, replayed: null });
      expect(during.error).toMatch(/earlier request with this Idempotency-Key is still awaiting the broker's confirm after 500 ms/);
      // The broker took nothing meanwhile (an independent client on the same node).
      expect(await messageCount(queue, broker.url)).toBe(0);
    } finally {
      await broker.setMemoryAlarm(false);
    }

    // Unblocked, the broker takes the held message and confirms it, long after its request was answered.
    await waitFor(async () => (await messageCount(queue, broker.url)) === 1, 15_000);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    // A new gateway process on the same state: nothing of the first request is left in memory, so a
    // replay can only come from the late confirm recorded in the route object's storage.
    await gateway.stop();
    gateway = await npmStart(ROUTES(broker.url), { STATE_DIR: stateDir });

    const retry = await post('"held back"', key);
    expect(retry, JSON.stringify(retry)).toEqual({ status: 202, replayed: "true", error: undefined });
    const messages = await drainFrom(queue, broker.url);
    expect(messages.map((message) => [message.bodyString(), message.properties.messageId])).toEqual([['"held back"', key]]);
    // Another repeat is a replay too, and still publishes nothing.
    expect(await post('"held back"', key)).toMatchObject({ status: 202, replayed: "true" });
    expect(await messageCount(queue, broker.url)).toBe(0);
  });
});
