/**
 * `management_api` in routes.yaml: RabbitMQ's management API dialect for publishing and getting,
 * so that scripts written for `rabbitmqadmin` or the broker's HTTP API work against the gateway.
 * Off unless the block is there; when it is, `auth` is required.
 */
import * as v from "valibot";
import { AuthSchema, RateLimitSchema } from "./access-schema";
import { amqpUrlProblem } from "./amqp-url";
import { unknownKeyMessage } from "./unknown-key-message";
import { DEFAULT_EXCHANGE_NAME } from "../contract/management-api";
import { SHORT_STRING_BYTES, utf8Length } from "../contract/frame-limits";
import type { ManagementTarget } from "../contract/management-api";
import type { AuthConfig, RateLimitConfig } from "./access-schema";

/** The name of the management API's object, and the `route` its answers name (no route may have it as its id). */
export const MANAGEMENT_API_ID = "management_api";

/** Largest publish body by default: the JSON of a 1 MiB payload in base64, with room for its properties. */
const DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024;

const nameList = (what: string) =>
  v.array(
    v.pipe(
      v.string(`each of ${what} must be a string`),
      v.minLength(1, `${what} must not hold an empty name (the default exchange is ${DEFAULT_EXCHANGE_NAME})`),
      v.check((name) => utf8Length(name) <= SHORT_STRING_BYTES, `each of ${what} must be at most ${SHORT_STRING_BYTES} bytes in UTF-8`),
    ),
    `${what} must be a list of names`,
  );

const wholeNumber = (name: string, min: number, max: number) =>
  v.pipe(
    v.number(`${name} must be a number`),
    v.integer(`${name} must be a whole number`),
    v.minValue(min, `${name} must be at least ${min}`),
    v.maxValue(max, `${name} must be at most ${max}`),
  );

const ManagementApiFields = v.strictObject(
  {
    /** The broker the management API's requests reach, as a route's `amqp.url` (its vhost is the only one served). */
    url: v.pipe(
      v.string("url must be a string"),
      v.rawCheck(({ dataset, addIssue }) => {
        if (!dataset.typed) return;
        const problem = amqpUrlProblem(dataset.value);
        if (problem) addIssue({ message: problem });
      }),
    ),
    /** How callers prove who they are: required, any kind but `none` (rabbitmqadmin sends basic credentials). */
    auth: AuthSchema,
    /** The exchanges that may be published to (`amq.default` is the default exchange); any other is 403. */
    exchanges: v.optional(nameList("exchanges"), []),
    /** The queues that may be read; any other is 403. */
    queues: v.optional(nameList("queues"), []),
    /** How many requests each caller may make (default: no limit). */
    rate_limit: v.optional(RateLimitSchema),
    /** Largest publish request body in bytes (default 2 MiB: a 1 MiB payload in base64). */
    max_body_bytes: v.optional(wholeNumber("max_body_bytes", 1, 24 * 1024 * 1024), DEFAULT_MAX_BODY_BYTES),
    /** Longest wait in milliseconds for the broker: a publish's confirm, a get's answer (default 5000). */
    operation_timeout_ms: v.optional(wholeNumber("operation_timeout_ms", 1, 60_000), 5000),
  },
  unknownKeyMessage(["url", "auth", "exchanges", "queues", "rate_limit", "max_body_bytes", "operation_timeout_ms"]),
);

/** The validated block, with what its object needs to connect. */
export interface ManagementApiConfig extends ManagementTarget {
  auth: Exclude<AuthConfig, { kind: "none" }>;
  rate_limit?: RateLimitConfig;
  exchanges: string[];
  queues: string[];
  max_body_bytes: number;
}

export const ManagementApiSchema = v.pipe(
  ManagementApiFields,
  v.rawTransform(({ dataset, addIssue, NEVER }): ManagementApiConfig => {
    const { url, auth, exchanges, queues, rate_limit, max_body_bytes, operation_timeout_ms } = dataset.value;
    if (auth.kind === "none") {
      addIssue({
        message: "auth: the management API needs auth (basic, api_key or bearer_jwt); it publishes to and reads from the broker",
      });
      return NEVER;
    }
    const needed = rate_limit?.key === "api_key" ? "api_key" : rate_limit?.key === "jwt_sub" ? "bearer_jwt" : undefined;
    if (needed && auth.kind !== needed) {
      addIssue({ message: `rate_limit.key ${rate_limit?.key ?? ""} needs auth ${needed} (it has ${auth.kind})` });
      return NEVER;
    }
    return {
      id: MANAGEMENT_API_ID,
      auth,
      ...(rate_limit ? { rate_limit } : {}),
      exchanges: [...new Set(exchanges)],
      queues: [...new Set(queues)],
      max_body_bytes,
      amqp: {
        url,
        topology: [],
        heartbeat_s: 30,
        connect_timeout_ms: 5000,
        shards: 1,
        operation_timeout_ms,
        idle_disconnect_s: 60,
      },
    };
  }),
);
