import { DelayQueues } from "./delay-queues";
import { AMQPSession, type AMQPTlsOptions } from "@cloudamqp/amqp-client";
import { brokerEndpoint } from "./broker-url";
import { redactSecrets, redactUrl } from "../contract/redaction";
import { ConnectBackoff } from "./connect-backoff";
import { PublishWindow } from "./publish-window";
import "./socket-timer-fix";
import { brokerReason, replyCodeOf } from "./broker-errors";
import { RouteFailureError } from "../contract/failures";
import type { Deadlines } from "./deadlines";
import type { Logger } from "../log";
import { newChannel } from "./session-channels";
import { QueueDirectory } from "./queue-directory";
import { ReplyChannel } from "./reply-channel";
import type { WaitingConsumer } from "./waiting-consumer";
import { PublishChannels } from "./publish-channels";
import { onReturned } from "./publish-ledger";
import { applyTopology, problemLine } from "./topology";
import type { TopologyConfig } from "../contract/route-settings";

/** How to reach the broker; two connections with equal settings are interchangeable. */
export interface ConnectionSettings {
  /** Broker URL, `${NAME}` already resolved. */
  url: string;
  /** AMQP heartbeat in seconds; 0 turns it off. */
  heartbeatSeconds: number;
  /** Longest wait in milliseconds for the connection to open. */
  connectTimeoutMs: number;
  /** Connection name shown by the broker (`rabbitmqctl list_connections name`). */
  name: string;
  /** Exchanges, queues and bindings applied on every (re)connect, before the connection serves a request. */
  topology: readonly TopologyConfig[];
  /** Longest wait in milliseconds for the topology's pass (the route's `operation_timeout_ms`). */
  operationTimeoutMs: number;
  /**
   * Sends each frame at once (TCP_NODELAY), for a connection whose requests wait on the broker's
   * answer one at a time (a consume's basic.get, then its ack). Left off where many publishes are
   * in flight: Nagle's algorithm gathers them into fewer packets, which the broker, on the same
   * machine as often as not, reads with less work.
   */
  noDelay: boolean;
}

/** How long a failed topology stands before the next request tries it again. */
const TOPOLOGY_RETRY_MS = 1000;

/** The topology's application on one broker connection (`generation` counts reconnects). */
interface AppliedTopology {
  generation: number;
  outcome: Promise<void>;
  done: boolean;
  failedAt?: number;
}

type State = { status: "zero" } | { status: "starting"; ready: Promise<AMQPSession> } | { status: "started"; session: AMQPSession };

/**
 * One AMQP connection, opened on first use. The states follow partyserver's Server:
 * "zero" (nothing open) → "starting" (one connect in flight, which every concurrent caller
 * awaits: 64 simultaneous first requests open one connection) → "started". A failed connect goes
 * back to "zero" and rethrows, so the next request tries again instead of finding a broken object.
 *
 * A failed connect is not retried by every request that follows: {@link ConnectBackoff} spaces the
 * attempts (exponential, with jitter) and answers with the last failure meanwhile. Once started,
 * amqp-client's AMQPSession owns reconnection (exponential backoff, with jitter added here). While
 * it is reconnecting, callers get an immediate "unavailable" rather than waiting for it.
 */
export class BrokerConnection {
  #state: State = { status: "zero" };
  #closed = false;
  /** Bounds the publishes in flight on this connection. */
  readonly window = new PublishWindow();
  /** The channels this connection publishes on, and what it knows of what the broker takes. */
  // Its shared channel is taken at once only while this connection is open and not closed for
  // good: a retired connection's channel may look open for a round trip after its close.
  readonly publishing = new PublishChannels(
    () => this.session(),
    () => !this.#closed && this.connected,
  );
  /** The queues this connection knows to exist, checked on channels of their own. */
  readonly queues = new QueueDirectory(async () => newChannel(await this.session()));
  /**
   * Request/reply's channel on this connection (direct reply-to), opened on first use: a reply
   * comes back on the connection its request went out on.
   */
  readonly replies = new ReplyChannel(() => this.session());
  /**
   * The long-poll consumers on this connection, by queue (made by the route, which owns the room
   * their answers take): a new connection starts with none.
   */
  readonly waiting = new Map<string, WaitingConsumer>();
  /** The broker's delay queues as this connection has declared them (nacks with a delay, `X-Delay`). */
  readonly delays = new DelayQueues();
  readonly #backoff = new ConnectBackoff();
  /** Bumped on every connect and reconnect: the topology is applied once per connection. */
  #generation = 0;
  #topology: AppliedTopology | undefined;
  readonly #topologyKey: string;

  readonly #deadlines: Deadlines;
  readonly #logger: Logger;

  /**
   * @param deadlines - the owning route object's deadlines, which bound the connect
   * @param logger - where connection events go (connected, lost, reconnect failed, blocked, unblocked)
   */
  constructor(
    readonly settings: ConnectionSettings,
    deadlines: Deadlines,
    logger: Logger,
  ) {
    this.#deadlines = deadlines;
    this.#logger = logger;
    this.#topologyKey = JSON.stringify(settings.topology);
  }

  /** True when settings that would open a different connection are asked for. */
  differsFrom(settings: ConnectionSettings): boolean {
    const mine = this.settings;
    return (
      mine.url !== settings.url ||
      mine.heartbeatSeconds !== settings.heartbeatSeconds ||
      mine.connectTimeoutMs !== settings.connectTimeoutMs ||
      mine.name !== settings.name ||
      mine.operationTimeoutMs !== settings.operationTimeoutMs ||
      (mine.topology.length + settings.topology.length > 0 && this.#topologyKey !== JSON.stringify(settings.topology))
    );
  }

  /** Whether the connection is open right now. */
  get connected(): boolean {
    return this.#state.status === "started" && !this.#state.session.closed;
  }

  /**
   * The open session, connecting first if needed, with the route's topology applied on it.
   * Rejects with a {@link RouteFailureError}.
   */
  async session(): Promise<AMQPSession> {
    const session = await this.#session();
    if (this.settings.topology.length > 0 && !(this.#topology?.done && this.#topology.generation === this.#generation)) {
      await this.#topologyOn(session);
    }
    return session;
  }

  async #session(): Promise<AMQPSession> {
    const state = this.#state;
    if (state.status === "started") {
      if (state.session.closed) throw new RouteFailureError("unavailable", "the connection to the broker was lost; reconnecting");
      return state.session;
    }
    if (state.status === "starting") return state.ready;
    const waiting = this.#backoff.waiting();
    if (waiting) throw waiting;
    const ready = this.#connect();
    this.#state = { status: "starting", ready };
    try {
      const session = await ready;
      this.#state = { status: "started", session };
      this.#backoff.succeeded();
      return session;
    } catch (error) {
      this.#state = { status: "zero" };
      if (error instanceof RouteFailureError) {
        this.#backoff.failed(error);
        this.#logger.log("warn", "broker connect failed", {
          connection: this.settings.name,
          url: redactUrl(this.settings.url),
          reason: error.message,
        });
      }
      throw error;
    }
  }

  /**
   * Applies the topology on this connection once: concurrent first requests share one pass, and
   * after a failure every request answers with it until a second has passed, then one tries again.
   */
  #topologyOn(session: AMQPSession): Promise<void> {
    const current = this.#topology;
    // A failure stands for a second, across reconnects too: a declare that makes the broker close
    // the whole connection must not be retried on every reconnect.
    if (current?.failedAt !== undefined && Date.now() - current.failedAt < TOPOLOGY_RETRY_MS) return current.outcome;
    if (current?.generation === this.#generation && current.failedAt === undefined) return current.outcome;
    const applied: AppliedTopology = { generation: this.#generation, done: false, outcome: Promise.resolve() };
    const event = { connection: this.settings.name, url: redactUrl(this.settings.url) };
    applied.outcome = (async () => {
      let problems;
      const ms = this.settings.operationTimeoutMs;
      try {
        problems = await this.#deadlines.within(
          applyTopology(() => newChannel(session), this.settings.topology),
          ms,
          "unavailable",
          `topology: the broker did not answer its declares within ${ms} ms (operation_timeout_ms)`,
        );
      } catch (error) {
        applied.failedAt = Date.now();
        if (error instanceof RouteFailureError) throw error;
        throw new RouteFailureError(
          "unavailable",
          `the connection to the broker was lost while applying the topology: ${brokerReason(error)}`,
        );
      }
      const [first] = problems;
      if (first) {
        applied.failedAt = Date.now();
        this.#logger.log("error", "topology failed", { ...event, object: first.object, reason: first.reason });
        const line = problemLine(first);
        const message = `topology: ${line.includes(first.reason) ? line : `${line} (${first.reason})`}`;
        // The route's user may not declare it: the configuration, which a retry will not fix (502).
        if (first.code === 403) throw new RouteFailureError("misconfigured", message);
        throw new RouteFailureError("unavailable", message, TOPOLOGY_RETRY_MS / 1000);
      }
      applied.done = true;
      this.#logger.log("info", "topology applied", event);
    })();
    applied.outcome.catch(() => undefined);
    this.#topology = applied;
    return applied.outcome;
  }

  /** Closes the connection for good (the route's configuration moved on, or the object is going away). */
  async close(): Promise<void> {
    this.#closed = true;
    const state = this.#state;
    this.#state = { status: "zero" };
    const session =
      state.status === "started" ? state.session : state.status === "starting" ? await state.ready.catch(() => undefined) : undefined;
    await session?.stop().catch(() => undefined);
  }

  async #connect(): Promise<AMQPSession> {
    if (this.#closed) throw new RouteFailureError("unavailable", "the connection was closed");
    const { url, heartbeatSeconds, connectTimeoutMs, name } = this.settings;
    let endpoint: ReturnType<typeof brokerEndpoint>;
    try {
      endpoint = brokerEndpoint(url);
    } catch (error) {
      throw connectFailure(error, url);
    }
    let connectedOnce = false;
    const event = { connection: name, url: redactUrl(url) };
    const reasonOf = (error?: Error) => (error ? redactSecrets(brokerReason(error), url) : undefined);
    const attempt = AMQPSession.connect(endpoint.connectUrl, {
      ...(endpoint.vhost === undefined ? {} : { vhost: endpoint.vhost }),
      heartbeat: heartbeatSeconds,
      // RabbitMQ's own maximum: amqp-client's default of 8 KiB splits a 16 KiB body into three frames.
      frameMax: 131_072,
      // amqp-client spreads these into its socket's options, TLS or not: without TCP_NODELAY, Node
      // and Deno hold a small frame back until the last one is acknowledged (Nagle beside the
      // broker's delayed ACK), about 40 ms a basic.get. (Its type names only the TLS fields.)
      tlsOptions: { noDelay: this.settings.noDelay } as AMQPTlsOptions,
      name,
      logger: null,
      // Each return goes to the ledger of the channel it came on.
      onreturn: onReturned,
      onconnect: () => {
        this.#generation++;
        this.#logger.log("info", connectedOnce ? "broker reconnected" : "broker connected", event);
      },
      ondisconnect: (error) => {
        if (!this.#closed) this.#logger.log("warn", "broker connection lost; reconnecting", { ...event, reason: reasonOf(error) });
      },
      onfailed: (error) => this.#logger.log("error", "broker reconnect gave up", { ...event, reason: reasonOf(error) }),
      onblocked: (reason) => this.#logger.log("warn", "broker blocked publishing", { ...event, reason }),
      onunblocked: () => this.#logger.log("info", "broker unblocked publishing", event),
      // A gateway wants its route back soon after the broker is: start at 0.5 s, never wait more than 5 s.
      reconnectInterval: 500,
      maxReconnectInterval: 5000,
      // The session's own backoff has no jitter: add up to half a second to each reconnect, so the
      // routes that lost one broker together do not all knock at once when it is back.
      beforeConnect: () => (connectedOnce ? new Promise<void>((resolve) => setTimeout(resolve, Math.random() * 500)) : undefined),
    });
    attempt.then(() => (connectedOnce = true)).catch(() => undefined);
    try {
      const session = await this.#deadlines.within(
        attempt,
        connectTimeoutMs,
        "unavailable",
        `could not connect to the broker within ${connectTimeoutMs} ms`,
      );
      if (this.#closed) {
        await session.stop().catch(() => undefined);
        throw new RouteFailureError("unavailable", "the connection was closed");
      }
      return session;
    } catch (error) {
      // A connect that completes after its timeout must not leave a connection open behind us.
      attempt.then((late) => late.stop()).catch(() => undefined);
      if (error instanceof RouteFailureError) throw error;
      const failure = connectFailure(error, url);
      throw endpoint.tls && failure.kind === "unavailable" ? await tlsFailure(failure, url) : failure;
    }
  }
}

/**
 * workerd reports a refused TCP connection and a failed TLS handshake (an untrusted or mismatched
 * certificate, a port that does not speak TLS) with the same words, "proxy request failed, cannot
 * connect to the specified address", which sends a user looking at the network. When plain TCP
 * does reach the host and port, the TLS handshake is what failed: say so, and what to do about it.
 */
const tlsFailure = async (failure: RouteFailureError, url: string): Promise<RouteFailureError> => {
  const { hostname, port } = new URL(url);
  const reachable = await tcpReachable(hostname, Number(port) || (url.startsWith("wss:") ? 443 : 5671));
  if (!reachable) return failure;
  return new RouteFailureError(
    "unavailable",
    `could not connect to the broker: ${hostname}:${port} is reachable, but the TLS handshake failed (the port may not speak TLS, ` +
      "or the broker's certificate is not trusted: it must chain to a public CA when deployed; locally, pass a private CA with NODE_EXTRA_CA_CERTS)",
  );
};

/** Whether a plain TCP connection to `hostname:port` opens within two seconds (and is closed again). */
const tcpReachable = async (hostname: string, port: number): Promise<boolean> => {
  try {
    const { connect } = await import("cloudflare:sockets");
    const socket = connect({ hostname: hostname.replace(/^\[|\]$/g, ""), port });
    socket.closed.catch(() => undefined);
    const opened = await Promise.race([
      socket.opened.then(
        () => true,
        () => false,
      ),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 2000)),
    ]);
    await socket.close().catch(() => undefined);
    return opened;
  } catch {
    return false;
  }
};

/**
 * A failed connect as the client should see it. The broker refusing the login (403) or the vhost
 * (530) is the route's configuration, not a passing outage: 502 without Retry-After, since
 * retrying the same request cannot help. Anything else (refused, unreachable, TLS) may pass.
 */
const connectFailure = (error: unknown, url: string): RouteFailureError => {
  const reason = redactSecrets(brokerReason(error), url);
  const code = replyCodeOf(error);
  if (code === 403)
    return new RouteFailureError(
      "misconfigured",
      `the broker refused the route's login (check the user and password in amqp.url): ${reason}`,
    );
  if (code === 530) return new RouteFailureError("misconfigured", `the broker refused the route's vhost (check amqp.url): ${reason}`);
  return new RouteFailureError("unavailable", `could not connect to the broker: ${reason}`);
};
