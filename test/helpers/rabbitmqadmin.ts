/**
 * The real `rabbitmqadmin`, as the broker's own management plugin serves it (`/cli/rabbitmqadmin`),
 * run with Python 3: the tool the gateway's management API dialect is judged by. It is fetched from
 * the broker under test, so it is the version that matches that broker's API.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The broker's management API (the plugin `.ci/run` enables). */
export const MANAGEMENT_URL = process.env.RABBITMQ_MANAGEMENT_URL ?? "http://127.0.0.1:15672";
/** The broker's own user for its management API (the local broker's default). */
export const MANAGEMENT_USER = { user: "guest", password: "guest" };

let script: string | undefined;

/** Downloads `rabbitmqadmin` from the broker once per test file. */
export const fetchRabbitmqadmin = async (): Promise<string> => {
  if (script) return script;
  const response = await fetch(`${MANAGEMENT_URL}/cli/rabbitmqadmin`);
  if (!response.ok)
    throw new Error(`the broker's management plugin did not serve rabbitmqadmin (${response.status}); enable rabbitmq_management`);
  const path = join(mkdtempSync(join(tmpdir(), "gw-rabbitmqadmin-")), "rabbitmqadmin");
  writeFileSync(path, await response.text());
  script = path;
  return path;
};

export interface AdminRun {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs `rabbitmqadmin` against `host:port` as `user`, with `args` and optional standard input. */
export const rabbitmqadmin = async (
  endpoint: { port: number; user: string; password: string },
  args: string[],
  stdin?: Buffer | string,
): Promise<AdminRun> => {
  const path = await fetchRabbitmqadmin();
  const argv = [path, "-H", "127.0.0.1", "-P", String(endpoint.port), "-u", endpoint.user, "-p", endpoint.password, ...args];
  return new Promise((resolve) => {
    const child = execFile("/usr/bin/python3", argv, { timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ stdout, stderr, code: error ? ((error as { code?: number }).code ?? 1) : 0 });
    });
    child.stdin?.end(stdin ?? "");
  });
};

/** The broker's own management API port. */
export const managementPort = (): number => Number(new URL(MANAGEMENT_URL).port || 15672);
