import type { AMQPChannel } from "@cloudamqp/amqp-client";
import { brokerReason, replyCodeOf } from "./broker-errors";
import type { BindingConfig, ExchangeConfig, QueueConfig, TopologyConfig } from "../contract/route-settings";

/** One object of the topology that is missing or not as routes.yaml describes it. */
export interface TopologyProblem {
  /** `queue jobs`, `exchange events`, `binding events → queue jobs (key "a.#")`. */
  object: string;
  /** What is wrong, in words: "x-queue-type is classic on the broker, quorum in routes.yaml". */
  problem: string;
  /** The broker's own reply, for the record. */
  reason: string;
  /** Its AMQP reply code: 404 missing, 406 different, 403 not allowed. */
  code: number;
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
    // What the gateway itself would create: when checking on its behalf, that is not missing.
    const declared = new Set(
      topologies
        .filter((topology) => topology.mode === "declare")
        .flatMap((topology) => [
          ...topology.exchanges.map((exchange) => `exchange ${exchange.name}`),
          ...topology.queues.map((queue) => `queue ${queue.name}`),
        ]),
    );
    const all = topologies.flatMap((topology) =>
      steps(topology, options.verifyOnly ? "verify" : topology.mode, {
        existenceOnly: options.existenceOnly ?? false,
        forDeclare: options.verifyOnly === true && topology.mode === "declare",
      }),
    );
    for (const step of all) {
      if (!channel || channel.closed) channel = await open();
      try {
        await step.run(channel);
      } catch (error) {
        const code = replyCodeOf(error);
        if (options.verifyOnly && code === 404 && declared.has(step.object)) continue;
        // Not a refusal of this step: the connection itself failed, and the caller must see that.
        if (code === undefined) throw error;
        problems.push({ object: step.object, code, ...describe(error) });
        if (!options.all) break;
      }
    }
  } finally {
    if (channel && !channel.closed) await channel.close().catch(() => undefined);
  }
  return problems;
};

/**
 * The arguments as the broker's table should hold them: amqp-client writes an integer below 2^32
 * as a signed 32-bit one, so 2^31 and up would arrive negative; such integers go as 64-bit.
 */
const table = (args: Record<string, string | number | boolean>): Record<string, string | number | boolean | bigint> =>
  Object.fromEntries(
    Object.entries(args).map(([key, value]) => [
      key,
      typeof value === "number" && Number.isInteger(value) && (value >= 2 ** 31 || value < -(2 ** 31)) ? BigInt(value) : value,
    ]),
  );

/** How a block is checked: existence only (a route's own exchange and queue), or on behalf of a declare block (check --live). */
interface StepOptions {
  existenceOnly: boolean;
  /** Verifying what a `declare` block will do: a user who may not declare it is a problem, not "unchecked". */
  forDeclare: boolean;
}

const steps = (topology: TopologyConfig, mode: TopologyConfig["mode"], options: StepOptions): Step[] => [
  ...topology.exchanges.map((exchange) => exchangeStep(exchange, mode, options)),
  ...topology.queues.map((queue) => queueStep(queue, mode, options)),
  ...topology.bindings.flatMap((binding) => bindingSteps(binding, mode)),
];

const exchangeStep = (exchange: ExchangeConfig, mode: TopologyConfig["mode"], options: StepOptions): Step => ({
  object: `exchange ${exchange.name}`,
  run: async (channel) => {
    if (mode === "verify") await channel.exchangeDeclare(exchange.name, exchange.type, { passive: true });
    if (mode === "verify" && options.existenceOnly) return;
    await equivalentOrUnchecked(mode === "verify" && !options.forDeclare, () =>
      channel.exchangeDeclare(
        exchange.name,
        exchange.type,
        { durable: exchange.durable, autoDelete: exchange.auto_delete, internal: exchange.internal },
        table(exchange.arguments),
      ),
    );
  },
});

const queueStep = (queue: QueueConfig, mode: TopologyConfig["mode"], options: StepOptions): Step => ({
  object: `queue ${queue.name}`,
  run: async (channel) => {
    if (mode === "verify") await channel.queueDeclare(queue.name, { passive: true });
    if (mode === "verify" && options.existenceOnly) return;
    await equivalentOrUnchecked(mode === "verify" && !options.forDeclare, () =>
      channel.queueDeclare(
        queue.name,
        { durable: queue.durable, exclusive: queue.exclusive, autoDelete: queue.auto_delete },
        table(queue.arguments),
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
          ? channel.queueBind(binding.destination, binding.source, binding.routing_key, table(binding.arguments))
          : channel.exchangeBind(binding.destination, binding.source, binding.routing_key, table(binding.arguments)),
    },
  ];
};

/**
 * The non-passive declare, which compares settings with an existing object. Under verify, a user
 * without configure permission may not redeclare even an equivalent object: the passive check
 * has passed, so existence is all that can be verified then.
 */
const equivalentOrUnchecked = async (verifying: boolean, declare: () => Promise<unknown>): Promise<void> => {
  try {
    await declare();
  } catch (error) {
    if (verifying && replyCodeOf(error) === 403) return;
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
  if (/^ACCESS_REFUSED/.test(reason)) {
    return { problem: `the broker refused the route's user (declaring needs the configure permission): ${reason}`, reason };
  }
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
