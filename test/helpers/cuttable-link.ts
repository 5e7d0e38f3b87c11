/**
 * A TCP relay between the gateway and a broker that a test can cut at once: every connection
 * through it is destroyed, as a network failure would, without the broker saying goodbye. Faster
 * and more abrupt than `rabbitmqctl close_connection`, which takes seconds on a busy machine and
 * lets the broker close politely. It can also hold back what the broker sends (a slow network or
 * a stalled broker, as the gateway sees it) while what the gateway sends still goes through.
 */
import { connect, createServer, type Socket } from "node:net";

export interface CuttableLink {
  /** `host:port` to connect to instead of the broker. */
  address: string;
  /** Destroys every connection through the link now; new ones are accepted again. Returns how many were cut. */
  cut(): number;
  /** From now on, what the broker sends on every connection is kept back (in order) until {@link release}. */
  hold(): void;
  /** Passes on what was kept back, and everything after it. */
  release(): void;
  close(): Promise<void>;
}

export const startCuttableLink = async (target: { host: string; port: number }): Promise<CuttableLink> => {
  const pairs = new Set<[Socket, Socket]>();
  let holding = false;
  const server = createServer((client) => {
    const upstream = connect(target);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const close = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
    client.pipe(upstream);
    if (!holding) upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (typeof address !== "object" || !address) throw new Error("the link has no address");
  const cut = () => {
    const count = pairs.size;
    for (const [client, upstream] of pairs) {
      client.destroy();
      upstream.destroy();
    }
    pairs.clear();
    return count;
  };
  return {
    address: `127.0.0.1:${address.port}`,
    cut,
    hold() {
      holding = true;
      // Unpiped, the broker's side stops flowing: what it sends waits in its buffer, in order.
      for (const [client, upstream] of pairs) upstream.unpipe(client);
    },
    release() {
      holding = false;
      for (const [client, upstream] of pairs) upstream.pipe(client);
    },
    close() {
      cut();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
};
