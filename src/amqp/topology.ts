import type { AMQPChannel } from "@cloudamqp/amqp-client";
import type { BindingConfig, ExchangeConfig, QueueConfig, TopologyConfig } from "../config/topology-schema";
import { brokerReason, replyCodeOf } from "./route-failure";

/** One object of the topology that is missing or not as routes.yaml describes it. */
export interface TopologyProblem {
  /** `queue jobs`, `exchange events`, `binding events → queue jobs (key "a.#")`. */
  object: string;
  /** What is wrong, in words: "x-queue-type is classic on the broker, quorum in routes.yaml". */
  problem: string;
  /** The broker's own reply, for the record. */
  reason: string;
}

export interface ApplyOptions {
  /** Verify every block, whatever its `mode` (`npm run check -- --live`). */
  verifyOnly?: boolean;
  /** Go on after a problem and report each (check); the gateway stops at the first. */
  all?: boolean;
  /** Verify that each exchange and queue exists, not its settings (the objects a route names, whose settings routes.yaml does not give). */
  existenceOnly?: boolean;
}

interface Step {
  object: string;
  /** Verified on behalf of a `declare` block (`check --live`), so missing is not a problem. */
  creatable?: boolean;
  run: (channel: AMQPChannel) => Promise<void>;
}

/**
 * Applies `topologies` in order, exchanges before queues before bindings within each, on channels
 * from `open` (a refused declare closes its channel, so the next step gets a new one). Declare
 * creates what is missing; verify checks existence passively and then, for exchanges and queues,
 * redeclares with the same settings, which the broker accepts only when they are equivalent
 * (a passive declare ignores arguments) and which cannot create anything that did not exist a
 * moment before. AMQP cannot ask whether a binding exists without making it, so verify checks a
 * binding's two ends only.
 */
export const applyTopology = async (
  open: () => Promise<AMQPChannel>,
  topologies: readonly TopologyConfig[],
  options: ApplyOptions = {},
): Promise<TopologyProblem[]> => {
  const problems: TopologyProblem[] = [];
  let channel: AMQPChannel | undefined;
  try {
    const all = topologies.flatMap((topology) =>
      steps(topology, options.verifyOnly ? "verify" : topology.mode, options.existenceOnly ?? false).map((step) => ({
        ...step,
        creatable: options.verifyOnly === true && topology.mode === "declare",
      })),
    );
    for (const step of all) {
      if (!channel || channel.closed) channel = await open();
      try {
        await step.run(channel);
      } catch (error) {
        // Checking a block the gateway declares: what is missing, it will create.
        if (step.creatable && replyCodeOf(error) === 404) continue;
        // Not a refusal of this step: the connection itself failed, and the caller must see that.
        if (replyCodeOf(error) === undefined) throw error;
        problems.push({ object: step.object, ...describe(error) });
        if (!options.all) break;
      }
    }
  } finally {
    if (channel && !channel.closed) await channel.close().catch(() => undefined);
  }
  return problems;
};

const steps = (topology: TopologyConfig, mode: TopologyConfig["mode"], existenceOnly: boolean): Step[] => [
  ...topology.exchanges.map((exchange) => exchangeStep(exchange, mode, existenceOnly)),
  ...topology.queues.map((queue) => queueStep(queue, mode, existenceOnly)),
  ...topology.bindings.flatMap((binding) => bindingSteps(binding, mode)),
];

const exchangeStep = (exchange: ExchangeConfig, mode: TopologyConfig["mode"], existenceOnly: boolean): Step => ({
  object: `exchange ${exchange.name}`,
  run: async (channel) => {
    if (mode === "verify") await channel.exchangeDeclare(exchange.name, exchange.type, { passive: true });
    if (mode === "verify" && existenceOnly) return;
    await equivalentOrUnchecked(mode, () =>
      channel.exchangeDeclare(
        exchange.name,
        exchange.type,
        { durable: exchange.durable, autoDelete: exchange.auto_delete, internal: exchange.internal },
        exchange.arguments,
      ),
    );
  },
});

const queueStep = (queue: QueueConfig, mode: TopologyConfig["mode"], existenceOnly: boolean): Step => ({
  object: `queue ${queue.name}`,
  run: async (channel) => {
    if (mode === "verify") await channel.queueDeclare(queue.name, { passive: true });
    if (mode === "verify" && existenceOnly) return;
    await equivalentOrUnchecked(mode, () =>
      channel.queueDeclare(
        queue.name,
        { durable: queue.durable, exclusive: queue.exclusive, autoDelete: queue.auto_delete },
        queue.arguments,
      ),
    );
  },
});

const bindingSteps = (binding: BindingConfig, mode: TopologyConfig["mode"]): Step[] => {
  const destination = `${binding.destination_type} ${binding.destination}`;
  if (mode === "verify") {
    return [
      { object: `exchange ${binding.source}`, run: (channel) => channel.exchangeDeclare(binding.source, "direct", { passive: true }) },
      {
        object: destination,
        run: async (channel) => {
          if (binding.destination_type === "queue") await channel.queueDeclare(binding.destination, { passive: true });
          else await channel.exchangeDeclare(binding.destination, "direct", { passive: true });
        },
      },
    ];
  }
  return [
    {
      object: `binding ${binding.source} → ${destination} (key "${binding.routing_key}")`,
      run: (channel) =>
        binding.destination_type === "queue"
          ? channel.queueBind(binding.destination, binding.source, binding.routing_key, binding.arguments)
          : channel.exchangeBind(binding.destination, binding.source, binding.routing_key, binding.arguments),
    },
  ];
};

/**
 * The non-passive declare, which compares settings with an existing object. Under verify, a user
 * without configure permission may not redeclare even an equivalent object: the passive check
 * has passed, so existence is all that can be verified then.
 */
const equivalentOrUnchecked = async (mode: TopologyConfig["mode"], declare: () => Promise<unknown>): Promise<void> => {
  try {
    await declare();
  } catch (error) {
    if (mode === "verify" && replyCodeOf(error) === 403) return;
    throw error;
  }
};

/**
 * RabbitMQ's refusal in words. "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue
 * 'jobs' in vhost '/': received 'quorum' but current is 'classic'" becomes "x-queue-type is
 * classic on the broker, quorum in routes.yaml".
 */
export const describe = (error: unknown): { problem: string; reason: string } => {
  const reason = brokerReason(error).replace(/ \(\d{3}\)$/, "");
  const inequivalent = /inequivalent arg '([^']+)' for \S+ '.*' in vhost '.*': received (.+) but current is (.+)$/.exec(reason);
  if (inequivalent) {
    const [, field = "", wanted = "", current = ""] = inequivalent;
    // A queue declared without x-queue-type is a classic queue.
    const shown = (text: string) => (field === "x-queue-type" && text === "none" ? "classic" : valueOf(text));
    return { problem: `${field} is ${shown(current)} on the broker, ${shown(wanted)} in routes.yaml`, reason };
  }
  if (/^NOT_FOUND - no (queue|exchange) /.test(reason)) return { problem: "does not exist on the broker", reason };
  if (/^ACCESS_REFUSED/.test(reason)) return { problem: `the broker refused the route's user: ${reason}`, reason };
  return { problem: `the broker refused it: ${reason}`, reason };
};

/** `'quorum'`, `the value '1000' of type 'signedint'` or `none`, as a reader would say it. */
const valueOf = (text: string): string => {
  if (text === "none") return "not set";
  const quoted = /^(?:the value )?'(.*?)'(?: of type '.*')?$/.exec(text);
  return quoted?.[1] ?? text;
};

/** One line per problem: `queue jobs: x-queue-type is classic on the broker, quorum in routes.yaml`. */
export const problemLine = (problem: TopologyProblem): string => `${problem.object}: ${problem.problem}`;
