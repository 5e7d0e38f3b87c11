/**
 * What the browser tests share: Debian's Chromium, headless, driven by playwright-core, and page
 * servers on 127.0.0.1, each on a port of its own (an origin of its own).
 */
import { createServer, type Server } from "node:http";
import { chromium, type Browser } from "playwright-core";

export const launchChromium = (): Promise<Browser> =>
  chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run", "--disable-sync"],
  });

/** A blank HTML page at an origin of its own. */
export const pageServer = async (): Promise<{ server: Server; origin: string }> => {
  const server = createServer((_request, response) => {
    response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    response.end("<!doctype html><title>page</title>");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (typeof address !== "object" || !address) throw new Error("page server has no port");
  return { server, origin: `http://127.0.0.1:${address.port}` };
};

export const closeServer = (server: Server | undefined) =>
  new Promise<void>((resolve) => {
    if (!server) return resolve();
    server.closeAllConnections();
    server.close(() => resolve());
  });
