// Reproduction for docs/upstream/amqp-client-nack-multiple.md
// Usage: npm install @cloudamqp/amqp-client@4.1.1 && node repro-nack-multiple.mjs
// AMQP_URL defaults to amqp://guest:guest@127.0.0.1:5672/
import { AMQPClient } from "@cloudamqp/amqp-client";

const url = process.env.AMQP_URL || "amqp://guest:guest@127.0.0.1:5672/";
const queue = `gw-upstream-nack-multiple-${Date.now()}`;

const conn = await new AMQPClient(url).connect();
const ch = await conn.channel();
// Holds 10 messages and refuses the rest; RabbitMQ nacks the refused publishes.
await ch.queueDeclare(queue, { durable: false }, { "x-max-length": 10, "x-overflow": "reject-publish" });
await ch.confirmSelect();

const state = []; // per message: "pending" | "confirmed" | "rejected"
const queued = new Set(); // bodies actually taken out of the queue
const count = (s) => state.filter((x) => x === s).length;

async function round(n) {
  // publish n small unique messages without awaiting each, then await them all (10 s at most)
  const publishes = Array.from({ length: n }, () => {
    const i = state.push("pending") - 1;
    return ch.basicPublish("", queue, `msg-${i}`).then(
      () => (state[i] = "confirmed"),
      () => (state[i] = "rejected"),
    );
  });
  await Promise.race([Promise.all(publishes), new Promise((r) => setTimeout(r, 10_000))]);
  for (let msg; (msg = await ch.basicGet(queue, { noAck: true }));) queued.add(msg.bodyString());
}
const report = () =>
  console.log(
    `after ${state.length} publishes: confirmed ${count("confirmed")}, rejected ${count("rejected")}, ` +
      `pending ${count("pending")}; queued ${queued.size}`,
  );

await round(2000); // 10 fit, the rest are refused
report();
// The queue has been drained, so these fit; RabbitMQ acks them, often several at once (multiple bit set).
for (let k = 0; k < 5; k++) await round(10);
report();
const lost = state.filter((s, i) => s === "confirmed" && !queued.has(`msg-${i}`)).length;
console.log(`confirmed but never queued: ${lost}`);
const ok = lost === 0 && count("pending") === 0 && count("confirmed") === queued.size;
console.log(ok ? "OK: confirms match what the broker enqueued" : "BUG: confirms do not match what the broker enqueued");

await ch.queueDelete(queue);
await conn.close();
process.exit(ok ? 0 : 1);
