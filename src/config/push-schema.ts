/**
 * `amqp.consumer.push` in routes.yaml: deliver the route's queue to a webhook, at least once,
 * signed with Standard Webhooks. Its output is the contract's `PushConfig`
 * (src/contract/route-settings.ts); the delivery is `src/push/`.
 */
import * as v from "valibot";
import { webhookSecretKey } from "../contract/webhook-secret";
import { hasEnvReference } from "./env-references";
import { unknownKeyMessage } from "./unknown-key-message";

/** Most deliveries one push route has in flight. */
export const MAX_PUSH_CONCURRENCY = 256;
/** Most attempts of one message. */
export const MAX_PUSH_ATTEMPTS = 100;
/** Longest wait for one attempt's answer. */
export const MAX_PUSH_TIMEOUT_MS = 120_000;
/** Longest delay between two attempts: a message waiting for its retry stays unacknowledged (see README on RabbitMQ's consumer timeout). */
export const MAX_PUSH_BACKOFF_MS = 60 * 60 * 1000;

/** Request headers a push sets itself, which `push.headers` may not replace. */
const OWN_HEADERS = /^(content-type|content-length|host|transfer-encoding|connection|webhook-.*)$/i;
/**
 * Headers of the connection, not of the request: Node's fetch refuses them (every attempt failed,
 * and the message was dead-lettered) while workerd's drops them, so one file behaved two ways.
 */
const CONNECTION_HEADERS = /^(keep-alive|upgrade|expect|te|trailer|proxy-.*)$/i;
/** An HTTP field name (RFC 9110 token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** What is wrong with `url` as a push endpoint (http or https with a host), or undefined; a `${NAME}` in it is checked once filled in. */
export const pushUrlProblem = (url: string): string | undefined => {
  if (hasEnvReference(url)) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "is not a URL";
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
    return `scheme "${parsed.protocol.replace(/:$/, "")}" is not http or https`;
  if (!parsed.hostname) return "has no host";
  // Never sent as they are (fetch refuses them) and quoted by errors: a credential goes in push.headers.
  if (parsed.username || parsed.password) return "must not carry credentials; send them in push.headers (Authorization)";
  return undefined;
};

/** What is wrong with an extra header's value, or undefined; checked again once `${NAME}` is filled in. Never repeats it. */
export const pushHeaderValueProblem = (value: string): string | undefined =>
  /[\0\r\n]/.test(value)
    ? "must not contain CR, LF or NUL"
    : /[^\t\x20-\x7e]/.test(value)
      ? // Latin-1 went as Latin-1 from Node and as UTF-8 from workerd: the endpoint read two values.
        "must be visible ASCII, spaces or tabs (an HTTP header value; percent-encode anything else)"
      : undefined;

/** What is wrong with `secret` as a Standard Webhooks secret, or undefined; a `${NAME}` is checked once filled in. Never repeats it. */
export const pushSecretProblem = (secret: string): string | undefined => {
  if (hasEnvReference(secret)) return undefined;
  const parsed = webhookSecretKey(secret);
  return "problem" in parsed ? parsed.problem : undefined;
};

const bounded = (what: string, max: number) =>
  v.pipe(
    v.number(`${what} must be a number`),
    v.integer(`${what} must be a whole number`),
    v.minValue(1, `${what} must be at least 1`),
    v.maxValue(max, `${what} must be at most ${max}`),
  );

const checked = (what: string, problemOf: (text: string) => string | undefined) =>
  v.pipe(
    v.string(`${what} must be a string`),
    v.rawCheck(({ dataset, addIssue }) => {
      if (!dataset.typed) return;
      const problem = problemOf(dataset.value);
      if (problem) addIssue({ message: `${what} ${problem}` });
    }),
  );

export const PushSchema = v.pipe(
  v.strictObject(
    {
      /** The endpoint, http(s); may contain `${NAME}`. */
      url: checked("push.url", pushUrlProblem),
      /** Standard Webhooks secret, `whsec_<base64>`; write it as `${NAME}`. */
      secret: checked("push.secret", pushSecretProblem),
      /** Deliveries in flight, 1 to 256 (default 1: queue order kept, retries included). */
      concurrency: v.optional(bounded("push.concurrency", MAX_PUSH_CONCURRENCY), 1),
      /** Per attempt, in milliseconds (default 10000). */
      timeout_ms: v.optional(bounded("push.timeout_ms", MAX_PUSH_TIMEOUT_MS), 10_000),
      /** Then the message is rejected to its queue's dead-letter exchange (default 5, 1 to 100). */
      max_attempts: v.optional(bounded("push.max_attempts", MAX_PUSH_ATTEMPTS), 5),
      /** First retry's delay (default 1000), doubling with jitter... */
      backoff_ms: v.optional(bounded("push.backoff_ms", MAX_PUSH_BACKOFF_MS), 1000),
      /** ...up to this (default 60000). */
      max_backoff_ms: v.optional(bounded("push.max_backoff_ms", MAX_PUSH_BACKOFF_MS), 60_000),
      /** Extra request headers, such as Authorization; may contain `${NAME}`; their values are never logged. */
      headers: v.optional(
        v.record(
          v.pipe(
            v.string(),
            v.regex(HEADER_NAME, "push.headers: a header name must be an HTTP token"),
            v.check(
              (name) => !OWN_HEADERS.test(name),
              (issue) => `push.headers: ${String(issue.input)} is set by the push itself`,
            ),
            v.check(
              (name) => !CONNECTION_HEADERS.test(name),
              (issue) => `push.headers: ${String(issue.input)} is a header of the connection, which the runtime sets or refuses`,
            ),
          ),
          v.pipe(
            v.string("push.headers: each value must be a string"),
            v.rawCheck(({ dataset, addIssue }) => {
              if (!dataset.typed) return;
              const problem = pushHeaderValueProblem(dataset.value);
              if (problem) addIssue({ message: `push.headers: a value ${problem}` });
            }),
          ),
          "push.headers must be a mapping",
        ),
        {},
      ),
    },
    unknownKeyMessage(["url", "secret", "concurrency", "timeout_ms", "max_attempts", "backoff_ms", "max_backoff_ms", "headers"]),
  ),
  v.check((push) => push.max_backoff_ms >= push.backoff_ms, "push.max_backoff_ms must be at least push.backoff_ms"),
);
