/**
 * The vhost and user a broker URL connects with, as amqp-client reads them: for `amqp(s)://` the
 * path and the userinfo (default `/` and `guest`); for `ws(s)://` the `vhost` query parameter and
 * the userinfo. Like the rest of `src/contract/`, this module imports nothing of the gateway's.
 */
export const brokerVhost = (url: string): string => {
  const parsed = new URL(url);
  if (parsed.protocol === "ws:" || parsed.protocol === "wss:") return parsed.searchParams.get("vhost") ?? "/";
  return decodeURIComponent(parsed.pathname.slice(1)) || "/";
};

export const brokerUser = (url: string): string => decodeURIComponent(new URL(url).username) || "guest";
