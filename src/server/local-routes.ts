import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { AmqpRoute, type RouteHost } from "../amqp/amqp-route";
import { ROUTE_CALLS } from "../amqp/route-api";
import type { RouteApi, RouteDirectory } from "../contract/route-calls";
import type { LoggingEnv } from "../log";
import { sqliteStorage } from "./sqlite-storage";
import { lockStateDir } from "./state-dir-lock";

export interface LocalRoutesOptions {
  /** Where each shard keeps its SQLite file; in memory without. */
  stateDir: string | undefined;
  /** How the routes log. */
  env: LoggingEnv;
  /** Makes a shard's route (the benchmark's answers without the broker on its no-AMQP routes). */
  makeRoute?: (host: RouteHost) => AmqpRoute;
}

interface Shard {
  route: AmqpRoute;
  api: RouteApi;
  closeStorage: () => void;
}

/**
 * Every route shard of a Node or Deno server, held in the process itself: what a Durable Object
 * namespace is on Cloudflare, without a call in between. A shard is made on first use, with its
 * storage in `<stateDir>/<name>.sqlite` (in memory without a state directory), and lives as long as
 * the process. `shards: N` is N of them, so N broker connections of each kind.
 */
export class LocalRoutes implements RouteDirectory {
  readonly #shards = new Map<string, Shard>();
  readonly #stateDir: string | undefined;
  readonly #env: LoggingEnv;
  readonly #makeRoute: (host: RouteHost) => AmqpRoute;
  readonly #unlock: () => void;

  /** Throws when the state directory cannot be made, or another live process uses it. */
  constructor(options: LocalRoutesOptions) {
    this.#stateDir = options.stateDir;
    this.#env = options.env;
    this.#makeRoute = options.makeRoute ?? ((host) => new AmqpRoute(host));
    if (this.#stateDir) mkdirSync(this.#stateDir, { recursive: true });
    this.#unlock = this.#stateDir ? lockStateDir(this.#stateDir) : () => undefined;
  }

  /** Opens the shards named now (their storage), so that a file that cannot be used stops the start, not a request. */
  open(names: readonly string[]): void {
    for (const name of names) this.get(name);
  }

  get(name: string): RouteApi {
    let shard = this.#shards.get(name);
    if (!shard) this.#shards.set(name, (shard = this.#open(name)));
    return shard.api;
  }

  #open(name: string): Shard {
    const storage = sqliteStorage(this.#stateDir ? join(this.#stateDir, fileName(name)) : ":memory:");
    const route = this.#makeRoute({ storage, env: this.#env });
    // Each call answers later, as across a Durable Object's RPC: the HTTP side is one code for
    // every runtime, and a call never runs inside the caller's synchronous step.
    const api = Object.fromEntries(ROUTE_CALLS.map((call) => [call, answerLater(route, call)])) as unknown as RouteApi;
    return { route, api, closeStorage: () => storage.close() };
  }

  /** Every long-poll answers now and every stream ends (see {@link AmqpRoute.stopWaits}). */
  stopWaits(): void {
    for (const shard of this.#shards.values()) shard.route.stopWaits();
  }

  /** Closes every broker connection (what was handed out and not settled goes back to its queue) and storage. */
  async close(): Promise<void> {
    const shards = [...this.#shards.values()];
    this.#shards.clear();
    await Promise.all(shards.map((shard) => shard.route.close()));
    for (const shard of shards) shard.closeStorage();
    this.#unlock();
  }
}

/** `route[call]` as a function whose answer (or failure) comes on a later microtask. */
const answerLater =
  (route: AmqpRoute, call: keyof RouteApi) =>
  (...args: unknown[]): Promise<unknown> =>
    Promise.resolve().then(() => (route[call] as (...args: unknown[]) => unknown).call(route, ...args));

/**
 * A shard's file name: its name made safe for a path (no `/`, no `..` of its own), shortened with
 * a digest when a long route id would pass the file system's limit on a name.
 */
const fileName = (name: string): string => {
  const safe = encodeURIComponent(name).replaceAll(".", "%2E");
  return safe.length <= 120
    ? `${safe}.sqlite`
    : `${safe.slice(0, 80)}-${createHash("sha256").update(name).digest("hex").slice(0, 32)}.sqlite`;
};
