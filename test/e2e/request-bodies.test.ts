/**
 * Request bodies as a real client sends them over a socket, through `npm start`: a settle body
 * sent chunked and far over its limit is answered 413 once the limit is passed, and the gateway
 * stops taking the upload (the client's writes are cut short) instead of reading it all.
 */
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, uniqueName } from "../helpers/broker";
import { npmStart, type RunningGateway } from "./npm-start";

const queue = uniqueName("request-bodies");
const route = `bodies-${queue.slice(-8)}`;

let gateway: RunningGateway;

beforeAll(async () => {
  await declareQueue(queue);
  gateway = await npmStart(
    `routes:
  - { id: ${route}, path: /jobs, amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} }, consumer: { queue: ${queue}, ack: lease } } }
`,
  );
}, 180_000);

afterAll(async () => {
  await gateway?.stop();
  await deleteQueue(queue);
});

/**
 * Sends `head` and then up to `total` bytes of chunked body as fast as the socket takes them;
 * resolves once the server has closed the connection (or after 30 s), with what it answered and
 * how much of the body the client had written by then.
 */
const chunkedUpload = (path: string, total: number) =>
  new Promise<{ statusLine: string; writtenWhenAnswered: number; written: number; closedByServer: boolean }>((resolve) => {
    const url = new URL(gateway.url);
    const socket = connect(Number(url.port), url.hostname);
    const chunk = Buffer.alloc(64 * 1024, 32);
    const frame = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n")]);
    let written = 0;
    let writtenWhenAnswered = -1;
    let answer = "";
    let finished = false;
    const finish = (closedByServer: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ statusLine: answer.split("\r\n")[0] ?? "", writtenWhenAnswered, written, closedByServer });
    };
    const timer = setTimeout(() => finish(false), 30_000);
    socket.on("data", (data) => {
      if (writtenWhenAnswered < 0) writtenWhenAnswered = written;
      answer += data.toString("latin1");
    });
    // A reset (the server closed with unread data) or an orderly close: either way it stopped taking the body.
    socket.on("error", () => finish(true));
    socket.on("close", () => finish(true));
    socket.write(`POST ${path} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
    const pump = () => {
      while (!finished && written < total) {
        written += frame.length;
        if (!socket.write(frame)) return void socket.once("drain", pump);
      }
      if (!finished) socket.write("0\r\n\r\n");
    };
    pump();
  });

describe("a settle body sent chunked, far over its 64 KiB limit", () => {
  it("is answered 413, and the gateway stops taking the upload long before its end", async () => {
    const total = 256 * 1024 * 1024;
    const upload = await chunkedUpload("/jobs/ack", total);
    // What the socket buffers between client and server hold, not the 256 MiB (read whole, it grew workerd by gigabytes).
    expect(upload.written).toBeLessThan(32 * 1024 * 1024);
    expect(upload.closedByServer).toBe(true);
    expect(upload.statusLine).toBe("HTTP/1.1 413 Payload Too Large");
  });
});
