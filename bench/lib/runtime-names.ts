/** The `runtimes` section's shape and variant names, shared by its runner (runtimes.ts) and its verdicts (report.ts). */
export const RUNTIMES = ["workerd", "node", "deno"] as const;
export type Runtime = (typeof RUNTIMES)[number];

/** The section's variant names, shared with the verdicts (report.ts). */
export const RUNTIME_VARIANT = {
  publish: (runtime: Runtime) => `${runtime} POST`,
  publishCeiling: (runtime: Runtime) => `${runtime} POST, no AMQP`,
  consume: (runtime: Runtime) => `${runtime} GET`,
  consumeCeiling: (runtime: Runtime) => `${runtime} GET, no AMQP`,
};

/**
 * The broker's own floor in the section: amqp-client publishing with confirms, and taking with
 * `basic.get`, straight over TCP with as many operations in flight as the runtimes have
 * connections. No gateway can answer faster than the broker does its part on the same cores.
 */
export const BROKER_FLOOR = {
  publish: "broker: amqp-client direct publish",
  consume: "broker: amqp-client direct get",
} as const;

/** Connections of every run in the section. */
export const RUNTIME_CONNECTIONS = 64;

/** Each runtime's peak resident set over the section (VmHWM of its process), in MB. */
export type RuntimePeaks = Partial<Record<Runtime, number>>;
