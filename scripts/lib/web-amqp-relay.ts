import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { connect } from "node:net";
import type { GatewayConfig } from "../../src/config/schema";

/** Where a local relay forwards to: `$AMQP_TCP_ADDRESS`, default RabbitMQ's 127.0.0.1:5672. */
const brokerAddress = (): string => process.env.AMQP_TCP_ADDRESS ?? "127.0.0.1:5672";

const LOCAL_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** `host:port` of every `ws://` URL on this machine that the routes use. */
export const localRelayAddresses = (config: GatewayConfig): string[] => {
  const addresses = new Set<string>();
  for (const route of config.routes) {
    const url = route.amqp.url;
    if (!url.startsWith("ws://")) continue;
    const parsed = new URL(url);
    if (LOCAL_HOSTS.has(parsed.hostname)) addresses.add(`${parsed.hostname === "[::1]" ? "::1" : parsed.hostname}:${parsed.port || "80"}`);
  }
  return [...addresses];
};

export const isListening = (address: string, timeoutMs = 1000): Promise<boolean> => {
  const { host, port } = splitAddress(address);
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (listening: boolean) => {
      socket.destroy();
      resolve(listening);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
};

const splitAddress = (address: string) => {
  const at = address.lastIndexOf(":");
  return { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
};

/** A local Web-AMQP relay the routes need: one this process started, or one found listening. */
export interface LocalRelay {
  address: string;
  /** The relay this process started (to stop with it); undefined when one was already listening. */
  process: ChildProcess | undefined;
  /** Where a started relay forwards to. */
  target: string;
}

/**
 * Starts a Web-AMQP relay (Debian's websockify) on each local `ws://` address that nothing
 * listens on yet, forwarding to the broker's TCP port. RabbitMQ does not speak Web-AMQP itself;
 * CloudAMQP and LavinMQ do, and there no relay is needed. Returns each relay, started or found.
 */
export const ensureWebAmqpRelays = async (
  config: GatewayConfig,
  track: (relay: LocalRelay) => void = () => undefined,
): Promise<LocalRelay[]> => {
  const relays: LocalRelay[] = [];
  for (const address of localRelayAddresses(config)) {
    const target = brokerAddress();
    const relay = { address, target, process: (await isListening(address)) ? undefined : await startRelay(address, target) };
    track(relay);
    relays.push(relay);
  }
  return relays;
};

let setprivFound: boolean | undefined;
const hasSetpriv = (): boolean => (setprivFound ??= !spawnSync("setpriv", ["--version"], { stdio: "ignore" }).error);

/** Every relay this process started: none outlives it, however it exits (a relay left behind would keep forwarding to an old target). */
const started = new Set<ChildProcess>();
process.on("exit", () => {
  for (const relay of started) relay.kill();
});

export const startRelay = async (address: string, target = brokerAddress()): Promise<ChildProcess> => {
  if (spawnSync("websockify", ["--help"], { stdio: "ignore" }).error) {
    throw new Error(`a Web-AMQP relay is needed on ${address} but websockify is not installed (apt-get install websockify)`);
  }
  // websockify serves each connection from a forked child, which keeps the listening socket open:
  // the relay gets a process group of its own, and kill() ends the whole group, or the port would
  // stay open (and forwarding) after the relay was stopped.
  // And it dies with this process however this one ends (even killed outright, when no exit
  // handler runs): setpriv (util-linux) asks the kernel to kill it when its parent is gone.
  // SIGKILL, here and in kill(): websockify catches SIGTERM and, seen here, does not always exit
  // on it; a relay has nothing to shut down gracefully (the gateway's connections end either way).
  const relay = hasSetpriv()
    ? spawn("setpriv", ["--pdeathsig", "KILL", "--", "websockify", address, target], { stdio: "ignore", detached: true })
    : spawn("websockify", [address, target], { stdio: "ignore", detached: true });
  const killRelayOnly = relay.kill.bind(relay);
  relay.kill = (signal: NodeJS.Signals | number = "SIGKILL") => {
    try {
      if (relay.pid === undefined) return false;
      process.kill(-relay.pid, signal);
      return true;
    } catch {
      return killRelayOnly(signal);
    }
  };
  started.add(relay);
  relay.once("exit", () => started.delete(relay));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (relay.exitCode !== null) throw new Error(`websockify ${address} ${target} exited with code ${relay.exitCode}`);
    if (await isListening(address, 200)) return relay;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  relay.kill();
  throw new Error(`websockify did not start listening on ${address} within 10 s`);
};
