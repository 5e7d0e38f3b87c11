/** Starts the local Web-AMQP relay (websockify on 15670) for the ws:// tests, if none is running. */
import type { ChildProcess } from "node:child_process";
import { isListening, startRelay } from "../../scripts/lib/web-amqp-relay";

let relay: ChildProcess | undefined;

export async function setup() {
  if (!(await isListening("127.0.0.1:15670"))) relay = await startRelay("127.0.0.1:15670");
}

export function teardown() {
  relay?.kill();
}
