/** Controls the real RabbitMQ with rabbitmqctl, for the fault tests. Asynchronous, so load keeps flowing meanwhile. */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

export const rabbitmqctl = async (...args: string[]): Promise<string> => {
  try {
    return (await run("rabbitmqctl", ["-q", ...args], { encoding: "utf8", timeout: 120_000 })).stdout;
  } catch (error) {
    const { stderr = "", stdout = "" } = error as { stderr?: string; stdout?: string };
    throw new Error(`rabbitmqctl ${args.join(" ")} failed: ${stderr}${stdout}`);
  }
};

/** Closes every connection whose client-provided name starts with `prefix`; returns how many. */
export const closeConnectionsNamed = async (prefix: string, reason = "closed by a fault test"): Promise<number> => {
  const listing = await rabbitmqctl("list_connections", "pid", "client_properties", "--no-table-headers");
  const pids = listing
    .split("\n")
    .filter((line) => line.includes(`{"connection_name","${prefix}`))
    .map((line) => line.split("\t")[0] ?? "");
  await Promise.all(pids.map((pid) => rabbitmqctl("close_connection", pid, reason)));
  return pids.length;
};

/** Makes sure the broker's app is running again (a fault test stops it). */
export const restoreBroker = async (): Promise<void> => {
  await rabbitmqctl("start_app");
  await rabbitmqctl("await_startup", "--timeout", "60");
};
