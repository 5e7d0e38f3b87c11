import { createServer } from "node:net";

/** Prints `<command>: <line>` to stderr and exits 1: how the start commands refuse to start. */
export const refuser =
  (command: string) =>
  (line: string): never => {
    process.stderr.write(`${command}: ${line}\n`);
    process.exit(1);
  };

/** `$PORT` (default 8787) as a port number, or `refuse` with one clear line. */
export const portFromEnvironment = (refuse: (line: string) => never): number => {
  const text = process.env.PORT ?? "8787";
  const port = Number(text);
  if (!/^\d+$/.test(text) || port < 1 || port > 65535) refuse(`PORT must be a port number from 1 to 65535, not "${text}"`);
  return port;
};

/** Whether `host:port` can be listened on now (nothing else holds it). */
export const portIsFree = (host: string, port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", () => resolve(false));
    probe.listen(port, host, () => probe.close(() => resolve(true)));
  });
