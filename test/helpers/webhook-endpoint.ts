/**
 * A webhook endpoint of the test's own, for push routes: a Node HTTP server on 127.0.0.1 that
 * records every request and checks its signature with the `standardwebhooks` package (not with
 * code of ours). `answer` decides each request's fate; `down` and `up` take it off the network
 * and back on the same port (a refused connection, as an endpoint that is down gives).
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";

export interface ReceivedWebhook {
  /** The body as UTF-8 text (the package verifies text bodies only). */
  body: string;
  headers: IncomingHttpHeaders;
  at: number;
  verified: boolean;
}

export interface WebhookEndpoint {
  /** http://127.0.0.1:<port> */
  url: string;
  received: ReceivedWebhook[];
  /** Answers a request; by default 204 at once. */
  answer: (entry: ReceivedWebhook, response: ServerResponse) => void;
  /** Stops listening and cuts every open connection: pushes meet a refused connection. */
  down(): Promise<void>;
  /** Listens again, on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
}

export const answerAtOnce = (_entry: ReceivedWebhook, response: ServerResponse): void => void response.writeHead(204).end();

export const startWebhookEndpoint = async (secret: string): Promise<WebhookEndpoint> => {
  const webhook = new Webhook(secret);
  const server = createServer((request, response) => {
    let body = "";
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => (body += chunk));
    request.on("end", () => {
      let verified = true;
      try {
        webhook.verify(body, request.headers as Record<string, string>, { jsonParse: false });
      } catch {
        verified = false;
      }
      const entry = { body, headers: request.headers, at: Date.now(), verified };
      endpoint.received.push(entry);
      endpoint.answer(entry, response);
    });
  });
  const listen = (port: number) => new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const stop = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  await listen(0);
  const port = (server.address() as AddressInfo).port;
  const endpoint: WebhookEndpoint = {
    url: `http://127.0.0.1:${port}`,
    received: [],
    answer: answerAtOnce,
    down: stop,
    up: () => listen(port),
    close: () => (server.listening ? stop() : Promise.resolve()),
  };
  return endpoint;
};
