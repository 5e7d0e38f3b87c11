/**
 * Who may call a route and how often: `cors`, `auth` and `rate_limit`, each valid at the top of
 * routes.yaml (the default for every route) and on a route (replacing the default for it), and
 * `admin` for `GET /amqp`.
 */
import * as v from "valibot";
import { isMessageHeader } from "../contract/header-names";
import { hasEnvReference } from "./env-references";
import { unknownKeyMessage } from "./unknown-key-message";

/** A whole number from `min` to `max`, its refusals naming the field `name`. */
const wholeNumber = (name: string, min: number, max: number) =>
  v.pipe(
    v.number(`${name} must be a number`),
    v.integer(`${name} must be a whole number`),
    v.minValue(min, min === 0 ? `${name} must not be negative` : `${name} must be at least ${min}`),
    v.maxValue(max, `${name} must be at most ${max}`),
  );
const strictObject = <const TEntries extends v.ObjectEntries>(entries: TEntries) =>
  v.strictObject(entries, unknownKeyMessage(Object.keys(entries)));

const stringList = (what: string) =>
  v.array(
    v.pipe(v.string(`each of ${what} must be a string`), v.minLength(1, `${what} must not hold an empty string`)),
    `${what} must be a list`,
  );

/** `https://app.example.com` or `http://localhost:8080`: a scheme, a host, a port; nothing else. */
const isOrigin = (text: string): boolean => {
  try {
    const url = new URL(text);
    return (url.protocol === "https:" || url.protocol === "http:") && url.origin === text && !text.includes("*");
  } catch {
    return false;
  }
};

/**
 * What is wrong with a `cors.allow_origins` list, or undefined. An entry from `${NAME}` is
 * checked once the environment is known (at `npm start`, and in the Worker), with this same rule.
 */
export const originsProblem = (origins: readonly string[], credentials: boolean): string | undefined => {
  const bad = origins.filter((origin) => origin !== "*" && !hasEnvReference(origin) && !isOrigin(origin));
  if (bad.length > 0) {
    return `allow_origins: ${bad.join(", ")} is not an origin (scheme://host[:port]: no path, no trailing /, no wildcard)`;
  }
  if (origins.includes("*") && origins.length > 1) return 'allow_origins: "*" must be the only entry';
  if (origins.includes("*") && credentials) {
    return 'allow_origins: "*" cannot be used with allow_credentials: true (browsers refuse it); list the origins';
  }
  return undefined;
};

const CorsSchema = v.pipe(
  strictObject({
    /** Exact origins (`https://app.example.com`), or `["*"]` for any origin (not with credentials). */
    allow_origins: v.pipe(stringList("allow_origins"), v.minLength(1, "allow_origins must list at least one origin")),
    /** Request headers a page may send; default: any header it asks for. */
    allow_headers: v.optional(stringList("allow_headers")),
    /** Response headers a page may read; default: every header the gateway sets. */
    expose_headers: v.optional(stringList("expose_headers")),
    /** Let pages send cookies and HTTP authentication (default false). */
    allow_credentials: v.optional(v.boolean("allow_credentials must be true or false"), false),
    /** Seconds a browser may cache a preflight answer (default 600). */
    max_age: v.optional(wholeNumber("max_age", 0, 86_400), 600),
  }),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const problem = originsProblem(dataset.value.allow_origins, dataset.value.allow_credentials);
    if (problem) addIssue({ message: problem });
  }),
);
export type CorsConfig = v.InferOutput<typeof CorsSchema>;

/** The header an API key is read from when the route names neither `header` nor `query`. */
export const DEFAULT_API_KEY_HEADER = "X-API-Key";

const ApiKeySchema = v.pipe(
  strictObject({
    /** Request header that carries the key (default `X-API-Key`). */
    header: v.optional(
      v.pipe(
        v.string("header must be a string"),
        v.regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, "header must be a header name"),
        v.check(
          (name) => !isMessageHeader(name),
          (issue) =>
            `${String(issue.input)} is published with the message (a property or X-AMQP-Header-*), so the key would reach every consumer; use another header`,
        ),
      ),
    ),
    /** Query parameter that carries the key, instead of a header. */
    query: v.optional(v.pipe(v.string("query must be a string"), v.minLength(1, "query must not be empty"))),
    /** Accepted keys; use `${NAME}` so that they stay out of the file. */
    keys: v.pipe(stringList("keys"), v.minLength(1, "keys must list at least one key")),
  }),
  v.check((auth) => !(auth.header && auth.query), "give header or query, not both"),
);

/** Algorithms a bearer JWT may be signed with. */
export const JWT_ALGORITHMS = [
  "HS256",
  "HS384",
  "HS512",
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];
const isSymmetric = (alg: string) => alg.startsWith("HS");

const BearerJwtSchema = v.pipe(
  strictObject({
    /** Shared secret for HS256 (HS384, HS512) tokens. */
    secret: v.optional(v.pipe(v.string("secret must be a string"), v.minLength(1, "secret must not be empty"))),
    /** `https://` URL of the issuer's JSON Web Key Set, for RS256, ES256 and the other public-key algorithms. */
    jwks_url: v.optional(
      v.pipe(
        v.string("jwks_url must be a string"),
        v.check((url) => hasEnvReference(url) || /^https?:\/\/[^/]/.test(url), "jwks_url must be an http(s) URL"),
      ),
    ),
    /** Required `iss` claim. */
    issuer: v.optional(v.pipe(v.string("issuer must be a string"), v.minLength(1, "issuer must not be empty"))),
    /** Required `aud` claim: the token must name this audience (or one of these). */
    audience: v.optional(
      v.union(
        [
          v.pipe(v.string(), v.minLength(1, "audience must not be empty")),
          v.pipe(stringList("audience"), v.minLength(1, "audience must list at least one name")),
        ],
        "audience must be a name or a list of names, not empty",
      ),
    ),
    /** Accepted `alg`s (default HS256 with `secret`, RS256 and ES256 with `jwks_url`). */
    algorithms: v.optional(
      v.pipe(
        v.array(
          v.picklist(JWT_ALGORITHMS, (issue) => `unknown algorithm ${String(issue.input)} (use ${JWT_ALGORITHMS.join(", ")})`),
          "algorithms must be a list",
        ),
        v.minLength(1, "algorithms must not be empty"),
      ),
    ),
    /** Claims the token must carry (any value). */
    required_claims: v.optional(stringList("required_claims"), []),
    /** Seconds of clock difference tolerated for `exp` and `nbf` (default 30). */
    clock_skew_s: v.optional(
      v.pipe(
        v.number("clock_skew_s must be a number"),
        v.integer("clock_skew_s must be a whole number"),
        v.minValue(0, "clock_skew_s must not be negative"),
        v.maxValue(600, "clock_skew_s must be at most 600"),
      ),
      30,
    ),
  }),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const { secret, jwks_url, algorithms, ...claims } = dataset.value;
    if ((secret === undefined) === (jwks_url === undefined)) {
      addIssue({ message: "give secret (HS256) or jwks_url (RS256, ES256), one of the two" });
      return NEVER;
    }
    const accepted = algorithms ?? (secret === undefined ? (["RS256", "ES256"] as JwtAlgorithm[]) : (["HS256"] as JwtAlgorithm[]));
    const wrongKind = accepted.filter((alg) => isSymmetric(alg) !== (secret !== undefined));
    if (wrongKind.length > 0) {
      addIssue({
        message: `algorithms: ${wrongKind.join(", ")} cannot be verified with ${secret === undefined ? "jwks_url" : "a secret"}`,
      });
      return NEVER;
    }
    const key = secret === undefined ? { jwks_url: jwks_url ?? "" } : { secret };
    return { ...key, ...claims, algorithms: accepted };
  }),
);

const BasicSchema = strictObject({
  /** User name → password; use `${NAME}` for the passwords. */
  users: v.pipe(
    v.record(
      v.pipe(v.string(), v.regex(/^[^:]+$/, "a user name must not be empty or hold a colon")),
      v.pipe(v.string("each password must be a string"), v.minLength(1, "a password must not be empty")),
      "users must be a mapping of name to password",
    ),
    v.check((users) => Object.keys(users).length > 0, "users must list at least one user"),
  ),
});

/**
 * `none` (public), or a mapping with exactly one of `api_key`, `bearer_jwt` and `basic`. Comes
 * out as a tagged union, so the code that checks credentials switches on `kind`.
 */
const AuthMappingSchema = v.pipe(
  strictObject({ api_key: v.optional(ApiKeySchema), bearer_jwt: v.optional(BearerJwtSchema), basic: v.optional(BasicSchema) }),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const { api_key, bearer_jwt, basic } = dataset.value;
    const given = [api_key && "api_key", bearer_jwt && "bearer_jwt", basic && "basic"].filter(Boolean);
    if (given.length !== 1) {
      addIssue({
        message: `auth takes exactly one of api_key, bearer_jwt, basic${given.length > 1 ? ` (got ${given.join(", ")})` : ""}`,
      });
      return NEVER;
    }
    if (api_key) {
      const where = api_key.query === undefined ? { header: api_key.header ?? DEFAULT_API_KEY_HEADER } : { query: api_key.query };
      return { kind: "api_key" as const, ...where, keys: api_key.keys };
    }
    if (bearer_jwt) return { kind: "bearer_jwt" as const, ...bearer_jwt };
    return { kind: "basic" as const, users: basic?.users ?? {} };
  }),
);
const NoneSchema = v.pipe(
  v.literal("none", "auth must be none, or a mapping with one of api_key, bearer_jwt, basic"),
  v.transform(() => ({ kind: "none" as const })),
);
// Chosen by the input's shape, so that a mistake inside a mapping is reported as itself.
export const AuthSchema = v.lazy((input) => (input !== null && typeof input === "object" ? AuthMappingSchema : NoneSchema));
export type AuthConfig = v.InferOutput<typeof AuthSchema>;

export const RATE_LIMIT_KEYS = ["ip", "api_key", "jwt_sub"] as const;

export const RateLimitSchema = strictObject({
  /** Requests allowed per key in each period. */
  requests: v.pipe(
    v.number("requests must be a number"),
    v.integer("requests must be a whole number"),
    v.minValue(1, "requests must be at least 1"),
  ),
  /** The period in seconds. */
  period_s: wholeNumber("period_s", 1, 86_400),
  /** Whom the limit counts: the client's IP (default), its API key, or its JWT's `sub`. */
  key: v.optional(v.picklist(RATE_LIMIT_KEYS, `key must be one of ${RATE_LIMIT_KEYS.join(", ")}`), "ip"),
  /**
   * Long-polls and streams one caller may hold open at once on one route object (default 16, at
   * most 1000): a stream is one request however long it lasts, so the request rate alone does not
   * bound them.
   */
  open_waits: v.optional(wholeNumber("open_waits", 1, 1000), 16),
});
export type RateLimitConfig = v.InferOutput<typeof RateLimitSchema>;

/** `none`, or the mapping `schema` takes: how a route drops a top-level `cors` or `rate_limit`. */
const orNone = <TSchema extends v.GenericSchema>(schema: TSchema, what: string) =>
  v.lazy((input) =>
    input !== null && typeof input === "object" ? schema : v.literal("none", `${what} must be none or a mapping`),
  ) as unknown as v.GenericSchema<v.InferInput<TSchema> | "none", v.InferOutput<TSchema> | "none">;

/** The keys that may appear both at the top of routes.yaml and on a route. */
export const accessEntries = {
  /** Which web pages may call the route; without it (or with `none`), requests from pages are refused. */
  cors: v.optional(orNone(CorsSchema, "cors")),
  /** How callers prove who they are (default `none`: public). */
  auth: v.optional(AuthSchema),
  /** How many requests each caller may make (`none`: no limit). */
  rate_limit: v.optional(orNone(RateLimitSchema, "rate_limit")),
};

export const AdminSchema = strictObject({
  /** Serve `GET /amqp` without `ADMIN_TOKEN`; `npm run deploy` refuses to deploy an unprotected `/amqp` otherwise. */
  public: v.optional(v.boolean("public must be true or false"), false),
  /** `GET /openapi.json`: `public` (the default), or `private`, behind the admin token as `/amqp`. */
  openapi: v.optional(v.picklist(["public", "private"], "openapi must be public or private"), "public"),
});
