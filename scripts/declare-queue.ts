/**
 * `npm run declare-queue -- NAME [NAME ...]`: declares durable queues, so that a fresh broker
 * has the queue the routes publish to and consume from. Publishing to the default exchange with
 * no queue named by the routing key drops the message, and `basic.get` on a missing queue fails.
 * The broker is `$AMQP_URL` (default amqp://guest:guest@127.0.0.1:5672/).
 */
import { AMQPClient } from "@cloudamqp/amqp-client";

const names = process.argv.slice(2);
if (names.length === 0) {
  process.stderr.write("usage: npm run declare-queue -- QUEUE [QUEUE ...]\n");
  process.exit(2);
}
const url = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672/";
try {
  const connection = await new AMQPClient(url).connect();
  const channel = await connection.channel();
  for (const name of names) {
    const { messageCount } = await channel.queueDeclare(name, { durable: true });
    process.stdout.write(`queue "${name}" is declared (durable, ${messageCount} message(s) in it)\n`);
  }
  await connection.close();
} catch (error) {
  process.stderr.write(`declare-queue: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
