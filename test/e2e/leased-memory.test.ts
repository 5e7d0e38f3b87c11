/**
 * Leased messages keep no body in memory: a lease holds what it needs to settle the message (its
 * channel and delivery tag) for as long as the lease lasts, and the body went out with the answer.
 * 200 leased 1 MiB messages once held 200 MiB of workerd for their lease time. The resident set
 * cannot tell (workerd's allocator keeps what it freed), so the isolate is asked through its
 * inspector, after a garbage collection, how many bytes of buffers are still alive.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startLocalGateway, type LocalGateway } from "../../scripts/lib/local-gateway";
import { BROKER_URL, uniqueName, withChannel } from "../helpers/broker";
import { freePort, routesFile } from "./npm-start";

const queue = uniqueName("leased-memory");
const MESSAGES = 200;
let gateway: LocalGateway;
let inspectorPort: number;

/** MiB of buffers alive in the gateway's isolate after a full garbage collection (workerd's inspector). */
const liveBuffersMb = async (): Promise<number> => {
  const targets = (await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json()) as Array<{
    title: string;
    webSocketDebuggerUrl: string;
  }>;
  const target = targets.find(({ title }) => title.includes("core:user"));
  if (!target) throw new Error(`no inspector target for the gateway (${targets.map(({ title }) => title).join(", ")})`);
  const socket = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
  try {
    let id = 0;
    const call = (method: string) =>
      new Promise<Record<string, number>>((resolve) => {
        const mine = ++id;
        const onMessage = (data: WebSocket.RawData) => {
          const message = JSON.parse((Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)).toString()) as {
            id?: number;
            result?: Record<string, number>;
          };
          if (message.id !== mine) return;
          socket.off("message", onMessage);
          resolve(message.result ?? {});
        };
        socket.on("message", onMessage);
        socket.send(JSON.stringify({ id: mine, method }));
      });
    await call("HeapProfiler.collectGarbage");
    const usage = await call("Runtime.getHeapUsage");
    return (usage.backingStorageSize ?? Number.NaN) / (1024 * 1024);
  } finally {
    socket.close();
  }
};

beforeAll(async () => {
  await withChannel(async (channel) => {
    await channel.queueDeclare(queue, { durable: false });
    await channel.confirmSelect();
    const mebibyte = "l".repeat(1024 * 1024);
    await Promise.all(Array.from({ length: MESSAGES + 20 }, () => channel.basicPublish("", queue, mebibyte)));
  });
  process.env.ROUTES = routesFile(
    `routes:\n  - { id: leased-memory, path: /jobs, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, ack: lease, lease_timeout_ms: 120000 } } }\n`,
  );
  process.env.LOG_LEVEL = "none";
  inspectorPort = await freePort();
  gateway = await startLocalGateway({ host: "127.0.0.1", port: await freePort(), inspectorPort });
}, 120_000);

afterAll(async () => {
  await gateway?.stop();
  await withChannel((channel) => channel.queueDelete(queue)).catch(() => undefined);
  delete process.env.ROUTES;
});

describe("messages leased out", () => {
  it("hold no body in the gateway for their lease time", async () => {
    const take = async (): Promise<string[]> => {
      const answer = await fetch(`${gateway.url}/jobs?max=10`);
      if (answer.status !== 200) return [];
      const batch = (await answer.json()) as { messages: Array<{ lease_id: string }> };
      return batch.messages.map((message) => message.lease_id);
    };
    // Served a few first, acknowledged: the gateway as it is once it has carried such messages.
    const warm = [...(await take()), ...(await take())];
    await fetch(`${gateway.url}/jobs/ack`, {
      method: "POST",
      body: JSON.stringify({ lease_ids: warm }),
      headers: { "content-type": "application/json" },
    });
    const idle = await liveBuffersMb();
    const leases: string[] = [];
    while (leases.length < MESSAGES) {
      const taken = await take();
      if (taken.length === 0) break;
      leases.push(...taken);
    }
    expect(leases.length).toBeGreaterThanOrEqual(MESSAGES);
    const held = (await liveBuffersMb()) - idle;
    // 200 MiB of bodies, were they kept.
    expect(held).toBeLessThan(20);
    const acked = await fetch(`${gateway.url}/jobs/ack`, {
      method: "POST",
      body: JSON.stringify({ lease_ids: leases }),
      headers: { "content-type": "application/json" },
    });
    expect(acked.status).toBe(200);
  }, 90_000);
});
