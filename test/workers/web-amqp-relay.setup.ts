/**
 * Starts the tests' own Web-AMQP relay (websockify) in front of the test broker, for the ws://
 * tests: on a port of its own, never one a user's relay may hold with another target.
 */
import type { ChildProcess } from "node:child_process";
import { isListening, startRelay } from "../../scripts/lib/web-amqp-relay";
import { brokerAddress, TEST_RELAY_ADDRESS } from "../helpers/broker";

let relay: ChildProcess | undefined;

export async function setup() {
  // Already listening: the relay of another test run on this machine, in front of the same broker.
  if (await isListening(TEST_RELAY_ADDRESS)) return;
  relay = await startRelay(TEST_RELAY_ADDRESS, brokerAddress());
}

export function teardown() {
  relay?.kill();
}
