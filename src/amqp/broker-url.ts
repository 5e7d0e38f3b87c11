/**
 * What the gateway needs to know about a broker URL. For `ws(s)://` URLs the userinfo holds the
 * credentials, the path is the relay's endpoint and the vhost is the `vhost` query parameter
 * (default `/`); for `amqp(s)://` URLs the usual AMQP URI rules hold (the vhost is the path).
 */
export interface BrokerEndpoint {
  /** The URL amqp-client connects to (for WebSocket URLs, without the `vhost` parameter). */
  connectUrl: string;
  /** The vhost for WebSocket URLs; TCP URLs carry theirs in the path. */
  vhost: string | undefined;
  transport: "tcp" | "websocket";
  /** Whether the connection is encrypted (`amqps://`, `wss://`). */
  tls: boolean;
}

export const brokerEndpoint = (url: string): BrokerEndpoint => {
  const parsed = new URL(url);
  if (parsed.protocol === "ws:" || parsed.protocol === "wss:") {
    const vhost = parsed.searchParams.get("vhost") ?? "/";
    parsed.searchParams.delete("vhost");
    return { connectUrl: parsed.toString(), vhost, transport: "websocket", tls: parsed.protocol === "wss:" };
  }
  return { connectUrl: url, vhost: undefined, transport: "tcp", tls: parsed.protocol === "amqps:" };
};
