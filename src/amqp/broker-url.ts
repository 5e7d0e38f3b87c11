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
}

export const brokerEndpoint = (url: string): BrokerEndpoint => {
  const parsed = new URL(url);
  if (parsed.protocol === "ws:" || parsed.protocol === "wss:") {
    const vhost = parsed.searchParams.get("vhost") ?? "/";
    parsed.searchParams.delete("vhost");
    return { connectUrl: parsed.toString(), vhost, transport: "websocket" };
  }
  return { connectUrl: url, vhost: undefined, transport: "tcp" };
};

/** The URL with its password shown as `***`, for `/amqp` and error messages. */
export const redactUrl = (url: string): string => {
  try {
    const parsed = new URL(url);
    if (!parsed.password) return url;
    parsed.password = "***";
    return parsed.toString().replace("%2A%2A%2A", "***");
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@/]*@/, "//$1:***@");
  }
};
