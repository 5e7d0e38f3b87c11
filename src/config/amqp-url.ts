import { redactUrl } from "../contract/redaction";
import { hasEnvReference } from "./env-references";

/** URL schemes the gateway can connect with (TCP or Web-AMQP over WebSocket). */
const AMQP_SCHEMES = ["amqp:", "amqps:", "ws:", "wss:"] as const;

/**
 * Scheme check for `amqp.url`. A URL whose scheme comes from `${NAME}` is checked again once the
 * environment is known (at `npm start`, and in the Worker).
 */
export const amqpUrlProblem = (url: string): string | undefined => {
  if (/^\$\{/.test(url)) return undefined;
  if (url.trim() !== url) return "must not start or end with spaces";
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return hasEnvReference(url)
      ? undefined
      : `"${redactUrl(url)}" is not a URL (percent-encode special characters in the user and password: / as %2F, # as %23, @ as %40, ? as %3F, : as %3A, % as %25)`;
  }
  if (!(AMQP_SCHEMES as readonly string[]).includes(parsed.protocol)) {
    return `scheme "${parsed.protocol.replace(/:$/, "")}" is not supported (use amqp, amqps, ws or wss)`;
  }
  if (!parsed.hostname && !hasEnvReference(url)) return "has no host";
  return undefined;
};
