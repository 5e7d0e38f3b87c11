/**
 * Who may call a route and how often, inside workerd: `auth` (api_key by header or query,
 * bearer_jwt, basic, none), `cors` (allowed and refused origins, preflights, the headers on every
 * error answer), `rate_limit` (429, `rejected` in `GET /amqp`, recovery), request ids, secure
 * headers, the one log line per request, and that no secret ever reaches an answer or a log line.
 */
import { sign } from "hono/jwt";
import { afterEach, describe, expect, it, vi } from "vitest";
import { BROKER_URL, DEAD_URL, declareQueue, deleteQueue, drain, messageCount, publishDirect, uniqueName } from "../helpers/broker";
import { gatewayFor, gatewayLogs, uniqueRouteId } from "./gateway";

type ErrorBody = { error: string; route: string | null };
type Stats = Record<string, { total_requests: number; total_errors: number; published: number; rejected: number }>;

const ORIGIN = "https://app.example.com";
const OTHER_ORIGIN = "https://evil.example.net";

/** A secret no other string in the gateway or the tests could contain by chance. */
const secret = (what: string) => `${what}-${crypto.randomUUID().replaceAll("-", "")}`;

const now = () => Math.floor(Date.now() / 1000);
const basic = (user: string, password: string) => `Basic ${btoa(`${user}:${password}`)}`;

/** A producer route on `path` publishing to `queue`; `access` is YAML flow entries (`auth: ..., cors: ...`). */
const producerRoute = (id: string, path: string, queue: string, access = "", url = BROKER_URL, producerExtra = "") =>
  `  - { id: ${id}, path: ${path}, ${access ? `${access}, ` : ""}amqp: { enabled: true, url: "${url}", connect_timeout_ms: 2000, producer: { routing_key: ${queue}${producerExtra} } } }\n`;
const consumerRoute = (id: string, path: string, queue: string, access = "") =>
  `  - { id: ${id}, path: ${path}, ${access ? `${access}, ` : ""}amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, auto_ack: true } } }\n`;

/** Runs `test` with fresh queues, deleting them afterwards. */
const withQueues = async (prefix: string, count: number, test: (...queues: string[]) => Promise<void>) => {
  const queues = Array.from({ length: count }, (_, index) => uniqueName(`${prefix}${index}`));
  for (const queue of queues) await declareQueue(queue);
  try {
    await test(...queues);
  } finally {
    for (const queue of queues) await deleteQueue(queue);
  }
};

/** Everything written to the console while it is installed, one string per call, not printed. */
const captureConsole = () => {
  const lines: string[] = [];
  const text = (value: unknown): string => {
    if (typeof value === "string") return value;
    if (value instanceof Error)
      return `${value.name}: ${value.message}\n${value.stack ?? ""}\n${value.cause === undefined ? "" : text(value.cause)}`;
    try {
      return JSON.stringify(value) ?? String(value);
    } catch {
      return String(value);
    }
  };
  gatewayLogs.heard = true;
  const spies = (["log", "info", "warn", "error", "debug"] as const).map((level) =>
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      lines.push(args.map(text).join(" "));
    }),
  );
  return {
    lines,
    /** The JSON request lines (event "request") captured so far. */
    requests: () =>
      lines.flatMap((line) => {
        try {
          const parsed = JSON.parse(line) as Record<string, unknown>;
          return parsed.event === "request" ? [parsed] : [];
        } catch {
          return [];
        }
      }),
    restore: () => {
      gatewayLogs.heard = false;
      for (const spy of spies) spy.mockRestore();
    },
  };
};
afterEach(() => {
  gatewayLogs.heard = false;
  vi.restoreAllMocks();
});

/** The answer's status, headers and body as one string, for searching; the body is read. */
const transcript = async (response: Response) =>
  `${response.status}\n${[...response.headers].map(([name, value]) => `${name}: ${value}`).join("\n")}\n\n${await response.text()}`;

const stats = async (gateway: ReturnType<typeof gatewayFor>, id: string) => ((await (await gateway("GET", "/amqp")).json()) as Stats)[id];

describe("auth: api_key", () => {
  it("in a header: missing or wrong key is 401 with WWW-Authenticate and nothing published; the right key publishes", () =>
    withQueues("apikey", 1, async (queue) => {
      const id = uniqueRouteId("apikey");
      const gateway = gatewayFor(
        `routes:\n${producerRoute(id, "/in", queue!, 'auth: { api_key: { header: X-API-Key, keys: ["${APP_KEY}"] } }')}`,
        {
          APP_KEY: "k1-right",
        } as never,
      );
      const missing = await gateway("POST", "/in", { body: "m" });
      expect(missing.status).toBe(401);
      expect(missing.headers.get("www-authenticate")).toMatch(/^ApiKey /);
      expect(missing.headers.get("content-type")).toMatch(/application\/json/);
      expect(await missing.json()).toEqual({ error: expect.stringContaining("X-API-Key"), route: id });

      const wrong = await gateway("POST", "/in", { body: "w", headers: { "x-api-key": "k1-wrong" } });
      expect(wrong.status).toBe(401);
      expect(wrong.headers.get("www-authenticate")).toMatch(/^ApiKey /);
      expect(((await wrong.json()) as ErrorBody).route).toBe(id);
      // A key in the wrong place (query parameter instead of the header) is no key.
      expect((await gateway("POST", "/in?key=k1-right", { body: "q" })).status).toBe(401);
      expect(await messageCount(queue!)).toBe(0);

      const right = await gateway("POST", "/in", { body: "ok", headers: { "x-api-key": "k1-right" } });
      expect(right.status).toBe(202);
      expect(await messageCount(queue!)).toBe(1);
    }));

  it("in a query parameter: the right key publishes, a wrong one or one in the header is 401, and the log has no query", () =>
    withQueues("apiquery", 1, async (queue) => {
      const id = uniqueRouteId("apiquery");
      const key = secret("qkey");
      const gateway = gatewayFor(
        `routes:\n${producerRoute(id, "/in", queue!, 'auth: { api_key: { query: key, keys: ["${APP_KEY}", other-key] } }')}`,
        {
          APP_KEY: key,
        } as never,
      );
      const captured = captureConsole();
      try {
        expect((await gateway("POST", `/in?key=${key}`, { body: "ok" })).status).toBe(202);
        expect((await gateway("POST", "/in?key=other-key", { body: "second key" })).status).toBe(202);
        const wrong = await gateway("POST", "/in?key=nope", { body: "w" });
        expect(wrong.status).toBe(401);
        expect(wrong.headers.get("www-authenticate")).toContain('query="key"');
        expect(((await wrong.json()) as ErrorBody).route).toBe(id);
        expect((await gateway("POST", "/in", { body: "h", headers: { "x-api-key": key } })).status).toBe(401);
        expect((await gateway("POST", "/in", { body: "none" })).status).toBe(401);
        expect(await messageCount(queue!)).toBe(2);
        const lines = captured.requests().filter((line) => line.route === id);
        expect(lines.map((line) => [line.path, line.status])).toEqual([
          ["/in", 202],
          ["/in", 202],
          ["/in", 401],
          ["/in", 401],
          ["/in", 401],
        ]);
        expect(captured.lines.join("\n")).not.toContain(key);
      } finally {
        captured.restore();
      }
    }));

  it("auth: none on a route makes it public under a top-level api_key default that the other routes keep", () =>
    withQueues("none", 2, async (open, guarded) => {
      const [publicId, guardedId] = [uniqueRouteId("public"), uniqueRouteId("guarded")];
      const gateway = gatewayFor(
        `auth: { api_key: { keys: ["\${APP_KEY}"] } }\nroutes:\n${producerRoute(publicId, "/open", open!, "auth: none")}${producerRoute(guardedId, "/guarded", guarded!)}`,
        { APP_KEY: "top-level-key" } as never,
      );
      expect((await gateway("POST", "/open", { body: "anyone" })).status).toBe(202);
      const refused = await gateway("POST", "/guarded", { body: "nobody" });
      expect(refused.status).toBe(401);
      expect(await refused.json()).toMatchObject({ route: guardedId });
      // The default header is X-API-Key.
      expect((await gateway("POST", "/guarded", { body: "keyed", headers: { "X-API-Key": "top-level-key" } })).status).toBe(202);
      expect(await messageCount(open!)).toBe(1);
      expect(await messageCount(guarded!)).toBe(1);
    }));
});

describe("auth: bearer_jwt", () => {
  const jwtRoute = (id: string, queue: string) =>
    `routes:\n${producerRoute(
      id,
      "/jobs",
      queue,
      'auth: { bearer_jwt: { secret: "${JWT_SECRET}", issuer: "https://id.example.com", audience: jobs, required_claims: [tenant], clock_skew_s: 0 } }',
    )}`;
  const good = { sub: "alice", iss: "https://id.example.com", aud: "jobs", tenant: "t1" };

  it("a valid token publishes; expired or forged is 401, wrong issuer or audience or a missing claim is 403; none of those publish", () =>
    withQueues("jwt", 1, async (queue) => {
      const id = uniqueRouteId("jwt");
      const jwtSecret = secret("jwt");
      const gateway = gatewayFor(jwtRoute(id, queue!), { JWT_SECRET: jwtSecret } as never);
      const post = (token: string | undefined, headers: Record<string, string> = {}) =>
        gateway("POST", "/jobs", { body: "{}", headers: token === undefined ? headers : { authorization: `Bearer ${token}`, ...headers } });
      const expectRefused = async (response: Response, status: 401 | 403, wwwAuthenticate: RegExp, error: RegExp) => {
        expect(response.status).toBe(status);
        expect(response.headers.get("www-authenticate")).toMatch(wwwAuthenticate);
        const body = (await response.json()) as ErrorBody;
        expect(body.route).toBe(id);
        expect(body.error).toMatch(error);
      };

      await expectRefused(await post(undefined), 401, /^Bearer realm=/, /requires Authorization: Bearer/);
      await expectRefused(await post(undefined, { authorization: "Token abc" }), 401, /^Bearer /, /malformed/);
      await expectRefused(await post("not.a.jwt"), 401, /invalid_token/, /./);
      const expired = await sign({ ...good, exp: now() - 60 }, jwtSecret, "HS256");
      await expectRefused(await post(expired), 401, /error="invalid_token"/, /expired/);
      const forged = await sign({ ...good, exp: now() + 600 }, secret("another-secret"), "HS256");
      await expectRefused(await post(forged), 401, /error="invalid_token"/, /signature/);
      const wrongAudience = await sign({ ...good, aud: "billing", exp: now() + 600 }, jwtSecret, "HS256");
      await expectRefused(await post(wrongAudience), 403, /insufficient_scope/, /audience/);
      const wrongIssuer = await sign({ ...good, iss: "https://elsewhere.example.com", exp: now() + 600 }, jwtSecret, "HS256");
      await expectRefused(await post(wrongIssuer), 403, /insufficient_scope/, /issuer/);
      const { tenant: _tenant, ...withoutTenant } = good;
      const noClaim = await sign({ ...withoutTenant, exp: now() + 600 }, jwtSecret, "HS256");
      await expectRefused(await post(noClaim), 403, /insufficient_scope/, /tenant/);
      // An unsigned token (alg "none") is no token.
      const b64url = (value: object) => btoa(JSON.stringify(value)).replaceAll("=", "").replaceAll("+", "-").replaceAll("/", "_");
      const unsigned = `${b64url({ alg: "none", typ: "JWT" })}.${b64url({ ...good, exp: now() + 600 })}.`;
      await expectRefused(await post(unsigned), 401, /invalid_token/, /./);
      // Another algorithm than the route's (HS512 with the right secret) is refused too.
      const otherAlg = await sign({ ...good, exp: now() + 600 }, jwtSecret, "HS512");
      await expectRefused(await post(otherAlg), 401, /invalid_token/, /HS512/);
      expect(await messageCount(queue!)).toBe(0);

      const valid = await sign({ ...good, exp: now() + 600 }, jwtSecret, "HS256");
      expect((await post(valid)).status).toBe(202);
      // An audience list that holds the route's audience is fine.
      const listed = await sign({ ...good, aud: ["other", "jobs"], exp: now() + 600 }, jwtSecret, "HS256");
      expect((await post(listed)).status).toBe(202);
      expect(await messageCount(queue!)).toBe(2);
    }));
});

describe("auth: bearer_jwt options", () => {
  it("clock_skew_s tolerates a just-expired token (default 30 s), nbf in the future is 401, audience may be a list", () =>
    withQueues("jwtopts", 1, async (queue) => {
      const [lenient, strict] = [uniqueRouteId("jwt-lenient"), uniqueRouteId("jwt-strict")];
      const jwtSecret = secret("jwt");
      const gateway = gatewayFor(
        "routes:\n" +
          producerRoute(lenient, "/lenient", queue!, `auth: { bearer_jwt: { secret: "${jwtSecret}", audience: [jobs, reports] } }`) +
          producerRoute(strict, "/strict", queue!, `auth: { bearer_jwt: { secret: "${jwtSecret}", clock_skew_s: 0 } }`),
      );
      const post = async (path: string, claims: Record<string, unknown>) =>
        gateway("POST", path, {
          body: "{}",
          headers: { authorization: `Bearer ${await sign({ sub: "s", ...claims }, jwtSecret, "HS256")}` },
        });
      const justExpired = { aud: "reports", exp: now() - 10 };
      expect((await post("/lenient", justExpired)).status).toBe(202);
      expect((await post("/strict", justExpired)).status).toBe(401);
      expect((await post("/lenient", { aud: "jobs", exp: now() - 120 })).status).toBe(401);
      const early = await post("/strict", { nbf: now() + 120 });
      expect(early.status).toBe(401);
      expect(((await early.json()) as ErrorBody).error).toMatch(/not valid yet/);
      expect((await post("/lenient", { aud: "billing", exp: now() + 60 })).status).toBe(403);
      // No aud claim at all, where the route names an audience: a genuine token for somewhere else.
      expect((await post("/lenient", { exp: now() + 60 })).status).toBe(403);
      expect(await messageCount(queue!)).toBe(1);
    }));
});

describe("auth: basic", () => {
  it("a good login publishes; a bad password, an unknown user, a missing or malformed header are 401 with a Basic challenge", () =>
    withQueues("basic", 1, async (queue) => {
      const id = uniqueRouteId("basic");
      const password = secret("pw");
      const gateway = gatewayFor(
        `routes:\n${producerRoute(id, "/in", queue!, 'auth: { basic: { users: { alice: "${ALICE_PASSWORD}" } } }')}`,
        {
          ALICE_PASSWORD: password,
        } as never,
      );
      const post = (headers: Record<string, string>) => gateway("POST", "/in", { body: "b", headers });
      for (const headers of [
        {},
        { authorization: basic("alice", `${password}x`) },
        { authorization: basic("alice", "") },
        { authorization: basic("bob", password) },
        { authorization: "Basic !!!not-base64" },
        { authorization: `Bearer ${password}` },
      ]) {
        const refused = await post(headers);
        expect(refused.status, JSON.stringify(headers)).toBe(401);
        expect(refused.headers.get("www-authenticate")).toMatch(/^Basic realm=/);
        expect(((await refused.json()) as ErrorBody).route).toBe(id);
      }
      expect(await messageCount(queue!)).toBe(0);
      expect((await post({ authorization: basic("alice", password) })).status).toBe(202);
      expect(await messageCount(queue!)).toBe(1);
    }));
});

describe("cors", () => {
  it("a disallowed Origin is 403 without Access-Control-Allow-Origin and publishes nothing; an allowed one publishes", () =>
    withQueues("cors", 1, async (queue) => {
      const id = uniqueRouteId("cors");
      const gateway = gatewayFor(`routes:\n${producerRoute(id, "/in", queue!, `cors: { allow_origins: ["${ORIGIN}"] }`)}`);
      const refused = await gateway("POST", "/in", { body: "x", headers: { origin: OTHER_ORIGIN, "content-type": "text/plain" } });
      expect(refused.status).toBe(403);
      expect(refused.headers.get("access-control-allow-origin")).toBeNull();
      expect(await refused.json()).toEqual({ error: expect.stringContaining(OTHER_ORIGIN), route: id });
      // "null" (a sandboxed page, a file://) is an origin too.
      expect((await gateway("POST", "/in", { body: "x", headers: { origin: "null" } })).status).toBe(403);
      expect(await messageCount(queue!)).toBe(0);

      const allowed = await gateway("POST", "/in", { body: "y", headers: { origin: ORIGIN } });
      expect(allowed.status).toBe(202);
      expect(allowed.headers.get("access-control-allow-origin")).toBe(ORIGIN);
      expect(allowed.headers.get("access-control-expose-headers")).toMatch(/X-Request-Id/i);
      expect(allowed.headers.get("access-control-allow-credentials")).toBeNull();
      expect(allowed.headers.get("vary")).toMatch(/origin/i);
      // Without Origin (curl, a server) the request is not a CORS request at all.
      expect((await gateway("POST", "/in", { body: "z" })).status).toBe(202);
      expect(await messageCount(queue!)).toBe(2);
    }));

  it("a route without cors refuses every request from a web page, its own origin's included, and takes those from elsewhere", () =>
    withQueues("nocors", 1, async (queue) => {
      const id = uniqueRouteId("nocors");
      const gateway = gatewayFor(`routes:\n${producerRoute(id, "/in", queue!)}`);
      const refused = await gateway("POST", "/in", { body: "x", headers: { origin: ORIGIN } });
      expect(refused.status).toBe(403);
      expect(refused.headers.get("access-control-allow-origin")).toBeNull();
      expect(((await refused.json()) as ErrorBody).route).toBe(id);
      expect(await messageCount(queue!)).toBe(0);
      // Same origin (or a Host made to match, as DNS rebinding does), and a page's no-CORS request (an <img>).
      expect((await gateway("POST", "/in", { body: "same", headers: { origin: "http://gateway.test" } })).status).toBe(403);
      expect((await gateway("POST", "/in", { body: "img", headers: { "sec-fetch-site": "cross-site" } })).status).toBe(403);
      expect(await messageCount(queue!)).toBe(0);
      // curl and servers send neither header; a URL typed into the address bar says `none`.
      expect((await gateway("POST", "/in", { body: "none" })).status).toBe(202);
      expect((await gateway("POST", "/in", { body: "typed", headers: { "sec-fetch-site": "none" } })).status).toBe(202);
      expect(await messageCount(queue!)).toBe(2);
    }));

  it("a route's cors replaces the top-level one; '*' allows any origin", () =>
    withQueues("replace", 2, async (narrowQueue, anyQueue) => {
      const [narrow, any] = [uniqueRouteId("narrow"), uniqueRouteId("any")];
      const gateway = gatewayFor(
        `cors: { allow_origins: ["${ORIGIN}"] }\nroutes:\n${producerRoute(narrow, "/narrow", narrowQueue!, 'cors: { allow_origins: ["https://partner.example.org"] }')}${producerRoute(any, "/any", anyQueue!, 'cors: { allow_origins: ["*"] }')}`,
      );
      // The top-level origin is not allowed on the route that lists its own.
      expect((await gateway("POST", "/narrow", { body: "x", headers: { origin: ORIGIN } })).status).toBe(403);
      const partner = await gateway("POST", "/narrow", { body: "p", headers: { origin: "https://partner.example.org" } });
      expect(partner.status).toBe(202);
      expect(partner.headers.get("access-control-allow-origin")).toBe("https://partner.example.org");
      const anyone = await gateway("POST", "/any", { body: "a", headers: { origin: OTHER_ORIGIN } });
      expect(anyone.status).toBe(202);
      expect(anyone.headers.get("access-control-allow-origin")).toBe("*");
      expect(await messageCount(narrowQueue!)).toBe(1);
      expect(await messageCount(anyQueue!)).toBe(1);
    }));

  it("a preflight for an allowed origin is 204 with the route's CORS headers, needs no credentials and never consumes", async () => {
    const queue = uniqueName("preflight");
    await declareQueue(queue);
    try {
      await publishDirect(queue, "keep me");
      const id = uniqueRouteId("preflight");
      const gateway = gatewayFor(
        `routes:\n${consumerRoute(
          id,
          "/out",
          queue,
          `auth: { api_key: { keys: [k] } }, cors: { allow_origins: ["${ORIGIN}"], allow_headers: [X-API-Key, Content-Type], expose_headers: [X-Message-Id], allow_credentials: true, max_age: 120 }`,
        )}`,
      );
      const preflight = await gateway("OPTIONS", "/out", {
        headers: { origin: ORIGIN, "access-control-request-method": "GET", "access-control-request-headers": "x-api-key" },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get("access-control-allow-origin")).toBe(ORIGIN);
      expect(preflight.headers.get("access-control-allow-methods")).toMatch(/\bGET\b/);
      expect(preflight.headers.get("access-control-allow-methods")).not.toMatch(/\bPOST\b/);
      expect(preflight.headers.get("access-control-allow-headers")).toBe("X-API-Key,Content-Type");
      expect(preflight.headers.get("access-control-allow-credentials")).toBe("true");
      expect(preflight.headers.get("access-control-max-age")).toBe("120");
      expect(await messageCount(queue)).toBe(1);

      // The real request: the configured expose_headers and credentials.
      const taken = await gateway("GET", "/out", { headers: { origin: ORIGIN, "x-api-key": "k" } });
      expect(taken.status).toBe(200);
      expect(await taken.text()).toBe("keep me");
      expect(taken.headers.get("access-control-allow-origin")).toBe(ORIGIN);
      expect(taken.headers.get("access-control-allow-credentials")).toBe("true");
      expect(taken.headers.get("access-control-expose-headers")).toBe("X-Message-Id");
    } finally {
      await deleteQueue(queue);
    }
  });

  it("a preflight from a disallowed origin is 403 without Access-Control-Allow-Origin, and consumes nothing", async () => {
    const queue = uniqueName("preflight-no");
    await declareQueue(queue);
    try {
      await publishDirect(queue, "keep me");
      const id = uniqueRouteId("preflight-no");
      const gateway = gatewayFor(`routes:\n${consumerRoute(id, "/out", queue, `cors: { allow_origins: ["${ORIGIN}"] }`)}`);
      const refused = await gateway("OPTIONS", "/out", { headers: { origin: OTHER_ORIGIN, "access-control-request-method": "GET" } });
      expect(refused.status).toBe(403);
      expect(refused.headers.get("access-control-allow-origin")).toBeNull();
      expect(refused.headers.get("access-control-allow-methods")).toBeNull();
      expect(((await refused.json()) as ErrorBody).route).toBe(id);
      // A route without cors refuses every cross-origin preflight.
      const bare = gatewayFor(`routes:\n${consumerRoute(uniqueRouteId("bare"), "/out", queue)}`);
      const bareRefused = await bare("OPTIONS", "/out", { headers: { origin: ORIGIN, "access-control-request-method": "GET" } });
      expect(bareRefused.status).toBe(403);
      expect(bareRefused.headers.get("access-control-allow-origin")).toBeNull();
      expect(await messageCount(queue)).toBe(1);
    } finally {
      await deleteQueue(queue);
    }
  });

  it("a preflight is answered with the cors of the route that serves the method asked for", () =>
    withQueues("split", 1, async (queue) => {
      const [writer, reader] = [uniqueRouteId("writer"), uniqueRouteId("reader")];
      await publishDirect(queue!, "stays");
      const gateway = gatewayFor(
        "routes:\n" +
          `  - { id: ${writer}, path: /jobs, methods: [POST], cors: { allow_origins: ["${ORIGIN}"] }, amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} } } }\n` +
          `  - { id: ${reader}, path: /jobs, methods: [GET], cors: { allow_origins: ["https://dashboard.example.com"] }, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue}, auto_ack: true } } }\n`,
      );
      const preflight = (origin: string, method: string) =>
        gateway("OPTIONS", "/jobs", { headers: { origin, "access-control-request-method": method } });
      const dashboardGet = await preflight("https://dashboard.example.com", "GET");
      expect(dashboardGet.status).toBe(204);
      expect(dashboardGet.headers.get("access-control-allow-origin")).toBe("https://dashboard.example.com");
      expect(dashboardGet.headers.get("access-control-allow-methods")).toMatch(/\bGET\b/);
      const appPost = await preflight(ORIGIN, "POST");
      expect(appPost.status).toBe(204);
      expect(appPost.headers.get("access-control-allow-origin")).toBe(ORIGIN);
      expect(appPost.headers.get("access-control-allow-methods")).toMatch(/\bPOST\b/);
      // Each origin only for its own route's method.
      const dashboardPost = await preflight("https://dashboard.example.com", "POST");
      expect(dashboardPost.status).toBe(403);
      expect(dashboardPost.headers.get("access-control-allow-origin")).toBeNull();
      const appGet = await preflight(ORIGIN, "GET");
      expect(appGet.status).toBe(403);
      expect(appGet.headers.get("access-control-allow-origin")).toBeNull();
      expect(await messageCount(queue!)).toBe(1);
    }));

  it("error answers carry the CORS headers: 401, 404, 405, 413, 429, 503 and 502", () =>
    withQueues("corserr", 2, async (queue, limited) => {
      const cors = `cors: { allow_origins: ["${ORIGIN}"] }`;
      const ids = {
        auth: uniqueRouteId("c-auth"),
        small: uniqueRouteId("c-small"),
        limited: uniqueRouteId("c-limited"),
        dead: uniqueRouteId("c-dead"),
        login: uniqueRouteId("c-login"),
      };
      const gateway = gatewayFor(
        `cors: { allow_origins: ["${ORIGIN}"] }\nroutes:\n` +
          producerRoute(ids.auth, "/auth", queue!, `${cors}, auth: { api_key: { keys: [k] } }`) +
          producerRoute(ids.small, "/small", queue!, cors, BROKER_URL, ", max_body_bytes: 16") +
          producerRoute(ids.limited, "/limited", limited!, `${cors}, rate_limit: { requests: 1, period_s: 3600 }`) +
          producerRoute(ids.dead, "/dead", queue!, cors, DEAD_URL) +
          producerRoute(ids.login, "/login", queue!, cors, "amqp://guest:not-the-password@127.0.0.1:5672/"),
      );
      const headers = { origin: ORIGIN };
      expect((await gateway("POST", "/limited", { body: "first", headers })).status).toBe(202);
      const answers: Array<[string, Response, number, string | null]> = [
        ["401", await gateway("POST", "/auth", { body: "x", headers }), 401, ids.auth],
        ["404", await gateway("GET", "/nowhere", { headers }), 404, null],
        ["405", await gateway("GET", "/auth", { headers }), 405, ids.auth],
        ["413", await gateway("POST", "/small", { body: "x".repeat(100), headers }), 413, ids.small],
        ["429", await gateway("POST", "/limited", { body: "second", headers }), 429, ids.limited],
        ["503", await gateway("POST", "/dead", { body: "x", headers }), 503, ids.dead],
        ["502", await gateway("POST", "/login", { body: "x", headers }), 502, ids.login],
      ];
      for (const [name, response, status, route] of answers) {
        expect(response.status, name).toBe(status);
        expect(response.headers.get("access-control-allow-origin"), name).toBe(ORIGIN);
        expect(response.headers.get("x-request-id"), name).toBeTruthy();
        expect(response.headers.get("x-content-type-options"), name).toBe("nosniff");
        expect(((await response.json()) as ErrorBody).route, name).toBe(route);
      }
      expect(await messageCount(queue!)).toBe(0);
      expect(await messageCount(limited!)).toBe(1);
    }));
});

describe("rate_limit", () => {
  it("over the limit is 429 with Retry-After, nothing more reaches the broker, `rejected` counts it; after the period it recovers", () =>
    withQueues("limit", 1, async (queue) => {
      const id = uniqueRouteId("limit");
      const gateway = gatewayFor(`routes:\n${producerRoute(id, "/in", queue!, "rate_limit: { requests: 3, period_s: 1, key: ip }")}`);
      const post = (body: string) => gateway("POST", "/in", { body, headers: { "cf-connecting-ip": "203.0.113.7" } });
      // At once, so that no token is refilled between them.
      const burst = await Promise.all(Array.from({ length: 5 }, (_, index) => post(`m${index}`)));
      const statuses = burst.map((response) => response.status).sort();
      expect(statuses).toEqual([202, 202, 202, 429, 429]);
      for (const refused of burst.filter((response) => response.status === 429)) {
        expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
        expect(Number(refused.headers.get("retry-after"))).toBeLessThanOrEqual(1);
        expect(refused.headers.get("content-type")).toMatch(/application\/json/);
        expect(await refused.json()).toEqual({ error: expect.stringMatching(/rate limit/), route: id });
      }
      expect(await messageCount(queue!)).toBe(3);
      expect(await stats(gateway, id)).toMatchObject({ total_requests: 3, total_errors: 0, published: 3, rejected: 2 });

      // Another client (IP) has its own bucket.
      expect((await gateway("POST", "/in", { body: "other", headers: { "cf-connecting-ip": "198.51.100.1" } })).status).toBe(202);

      await new Promise((resolve) => setTimeout(resolve, 1100));
      const after = await Promise.all(Array.from({ length: 3 }, (_, index) => post(`later${index}`)));
      expect(after.map((response) => response.status)).toEqual([202, 202, 202]);
      expect(await messageCount(queue!)).toBe(7);
      expect(await stats(gateway, id)).toMatchObject({ total_errors: 0, published: 7, rejected: 2 });
    }));

  it("key: api_key counts each key apart; key: jwt_sub each token subject apart", () =>
    withQueues("limitkeys", 2, async (byKey, bySub) => {
      const [keyId, subId] = [uniqueRouteId("bykey"), uniqueRouteId("bysub")];
      const jwtSecret = secret("jwt");
      const gateway = gatewayFor(
        "routes:\n" +
          producerRoute(
            keyId,
            "/key",
            byKey!,
            "auth: { api_key: { keys: [key-a, key-b] } }, rate_limit: { requests: 1, period_s: 3600, key: api_key }",
          ) +
          producerRoute(
            subId,
            "/sub",
            bySub!,
            `auth: { bearer_jwt: { secret: "${jwtSecret}" } }, rate_limit: { requests: 1, period_s: 3600, key: jwt_sub }`,
          ),
      );
      const withKey = (key: string) => gateway("POST", "/key", { body: key, headers: { "x-api-key": key } });
      expect((await withKey("key-a")).status).toBe(202);
      expect((await withKey("key-a")).status).toBe(429);
      expect((await withKey("key-b")).status).toBe(202);
      // Refused by auth before the limit: not counted as rejected.
      expect((await withKey("key-c")).status).toBe(401);
      expect(await messageCount(byKey!)).toBe(2);

      const token = (sub: string) => sign({ sub, exp: now() + 600 }, jwtSecret, "HS256");
      const withSub = async (sub: string) =>
        gateway("POST", "/sub", { body: sub, headers: { authorization: `Bearer ${await token(sub)}` } });
      expect((await withSub("alice")).status).toBe(202);
      // A second token of the same subject shares the bucket.
      expect((await withSub("alice")).status).toBe(429);
      expect((await withSub("bob")).status).toBe(202);
      expect(await messageCount(bySub!)).toBe(2);

      const all = (await (await gateway("GET", "/amqp")).json()) as Stats;
      expect(all[keyId]).toMatchObject({ published: 2, rejected: 1, total_errors: 0 });
      expect(all[subId]).toMatchObject({ published: 2, rejected: 1, total_errors: 0 });
    }));

  it("a rate-limited consumer route takes no message once over the limit", async () => {
    const queue = uniqueName("limit-get");
    await declareQueue(queue);
    try {
      for (const body of ["one", "two", "three"]) await publishDirect(queue, body);
      const id = uniqueRouteId("limit-get");
      const gateway = gatewayFor(`routes:\n${consumerRoute(id, "/out", queue, "rate_limit: { requests: 1, period_s: 3600 }")}`);
      expect((await gateway("GET", "/out")).status).toBe(200);
      const refused = await gateway("GET", "/out");
      expect(refused.status).toBe(429);
      expect(refused.headers.get("retry-after")).toBeTruthy();
      expect(await messageCount(queue)).toBe(2);
      expect(await stats(gateway, id)).toMatchObject({ consumed: 1, rejected: 1, total_errors: 0 });
    } finally {
      await deleteQueue(queue);
    }
  });
});

describe("rate_limit on a sharded route", () => {
  it("holds exactly across the shards: each caller is counted in one object", () =>
    withQueues("limitshards", 1, async (queue) => {
      const id = uniqueRouteId("limit-shards");
      const gateway = gatewayFor(
        `routes:\n  - { id: ${id}, path: /in, rate_limit: { requests: 2, period_s: 3600 }, amqp: { enabled: true, url: "${BROKER_URL}", shards: 4, producer: { routing_key: ${queue} } } }\n`,
      );
      const statuses: number[] = [];
      for (let index = 0; index < 8; index++)
        statuses.push((await gateway("POST", "/in", { body: `m${index}`, headers: { "cf-connecting-ip": "192.0.2.9" } })).status);
      expect(statuses).toEqual([202, 202, 429, 429, 429, 429, 429, 429]);
      expect(await messageCount(queue!)).toBe(2);
      expect(await stats(gateway, id)).toMatchObject({ published: 2, rejected: 6, total_errors: 0 });
    }));
});

describe("request ids, secure headers and logs", () => {
  it("a sane incoming X-Request-Id is echoed, an insane one replaced; each answer gets its own; nosniff everywhere", () =>
    withQueues("reqid", 1, async (queue) => {
      const id = uniqueRouteId("reqid");
      const gateway = gatewayFor(`routes:\n${producerRoute(id, "/in", queue!, "auth: { api_key: { keys: [k] } }")}`);
      const echoed = await gateway("POST", "/in", { body: "x", headers: { "x-api-key": "k", "x-request-id": "client-req-42" } });
      expect(echoed.status).toBe(202);
      expect(echoed.headers.get("x-request-id")).toBe("client-req-42");
      expect(echoed.headers.get("x-content-type-options")).toBe("nosniff");
      const insane = await gateway("POST", "/in", { body: "x", headers: { "x-api-key": "k", "x-request-id": "has spaces <and> tags" } });
      expect(insane.status).toBe(202);
      expect(insane.headers.get("x-request-id")).toMatch(/^[\w=-]{8,}$/);
      const again = await gateway("POST", "/in", { body: "x", headers: { "x-api-key": "k" } });
      expect(again.headers.get("x-request-id")).toMatch(/^[\w=-]{8,}$/);
      expect(again.headers.get("x-request-id")).not.toBe(insane.headers.get("x-request-id"));
      for (const response of [
        await gateway("POST", "/in", { body: "x" }),
        await gateway("GET", "/nowhere"),
        await gateway("GET", "/amqp"),
      ]) {
        expect(response.headers.get("x-content-type-options")).toBe("nosniff");
      }
    }));

  it("error answers of a route without cors carry X-Request-Id too (401, 403, 404, 405, 413, 429, 503), the id of their log line", () =>
    withQueues("reqid-err", 1, async (queue) => {
      const [keyed, small, limited, dead] = [
        uniqueRouteId("re-key"),
        uniqueRouteId("re-small"),
        uniqueRouteId("re-limit"),
        uniqueRouteId("re-dead"),
      ];
      const gateway = gatewayFor(
        "routes:\n" +
          producerRoute(keyed, "/key", queue!, "auth: { api_key: { keys: [k] } }") +
          producerRoute(small, "/small", queue!, "", BROKER_URL, ", max_body_bytes: 16") +
          producerRoute(limited, "/limited", queue!, "rate_limit: { requests: 1, period_s: 3600 }") +
          producerRoute(dead, "/dead", queue!, "", DEAD_URL),
      );
      expect((await gateway("POST", "/limited", { body: "first" })).status).toBe(202);
      const captured = captureConsole();
      try {
        const answers: Array<[string, Response]> = [
          ["401", await gateway("POST", "/key", { body: "x" })],
          ["403", await gateway("POST", "/key", { body: "x", headers: { origin: OTHER_ORIGIN, "x-api-key": "k" } })],
          ["404", await gateway("GET", "/nowhere")],
          ["405", await gateway("GET", "/key")],
          ["413", await gateway("POST", "/small", { body: "x".repeat(100) })],
          ["429", await gateway("POST", "/limited", { body: "second" })],
          ["503", await gateway("POST", "/dead", { body: "x" })],
        ];
        const missing = answers.filter(([, response]) => !response.headers.get("x-request-id")).map(([name]) => name);
        expect(missing, "answers without X-Request-Id").toEqual([]);
        const logged = captured.requests().map((line) => line.request_id);
        expect(answers.map(([, response]) => response.headers.get("x-request-id"))).toEqual(logged);
        expect(answers.map(([name, response]) => `${name} ${response.status}`)).toEqual(answers.map(([name]) => `${name} ${name}`));
      } finally {
        captured.restore();
      }
    }));

  it("writes one JSON line per request with its id, route, method, path, status, duration and sizes", () =>
    withQueues("log", 1, async (queue) => {
      const id = uniqueRouteId("log");
      const gateway = gatewayFor(`routes:\n${producerRoute(id, "/in", queue!, "auth: { api_key: { keys: [k] } }")}`);
      const captured = captureConsole();
      try {
        const accepted = await gateway("POST", "/in?trace=1", { body: "12345", headers: { "x-api-key": "k", "content-length": "5" } });
        const refused = await gateway("POST", "/in", { body: "x" });
        const missing = await gateway("GET", "/nowhere");
        const lines = captured.requests();
        expect(lines).toHaveLength(3);
        const [first, second, third] = lines as Array<Record<string, unknown>>;
        expect(first).toMatchObject({
          level: "info",
          event: "request",
          request_id: accepted.headers.get("x-request-id"),
          route: id,
          method: "POST",
          path: "/in",
          status: 202,
          bytes_in: 5,
        });
        expect(first!.time).toMatch(/^\d{4}-\d\d-\d\dT/);
        expect(typeof first!.duration_ms).toBe("number");
        expect(first!.error).toBeUndefined();
        expect(refused.status).toBe(401);
        expect(second).toMatchObject({
          level: "warn",
          request_id: expect.stringMatching(/^[\w=-]{8,}$/),
          route: id,
          method: "POST",
          path: "/in",
          status: 401,
        });
        expect(second!.error).toMatch(/API key/);
        expect(missing.status).toBe(404);
        expect(third).toMatchObject({
          level: "warn",
          request_id: expect.stringMatching(/^[\w=-]{8,}$/),
          route: null,
          method: "GET",
          path: "/nowhere",
          status: 404,
        });
        expect(new Set(lines.map((line) => line.request_id)).size).toBe(3);
      } finally {
        captured.restore();
      }
    }));

  it("the log line names the route its answer names, a 405 and a refused origin on a route's path included", () =>
    withQueues("logroute", 1, async (queue) => {
      const id = uniqueRouteId("logroute");
      const gateway = gatewayFor(`routes:\n${producerRoute(id, "/in", queue!)}`);
      const captured = captureConsole();
      try {
        const answers = [
          await gateway("POST", "/in", { body: "x", headers: { origin: OTHER_ORIGIN } }),
          await gateway("GET", "/in"),
          await gateway("GET", "/in", { headers: { origin: OTHER_ORIGIN } }),
        ];
        const named = await Promise.all(answers.map(async (response) => [response.status, ((await response.json()) as ErrorBody).route]));
        // A method the path does not serve is 405 whatever the origin: it reaches no route, so no broker.
        expect(named).toEqual([
          [403, id],
          [405, id],
          [405, id],
        ]);
        expect(captured.requests().map((line) => [line.status, line.route])).toEqual(named);
      } finally {
        captured.restore();
      }
    }));

  it("the log line counts the bytes of the answer's body (bytes_out)", async () => {
    const queue = uniqueName("bytes-out");
    await declareQueue(queue);
    const captured = captureConsole();
    try {
      await publishDirect(queue, "0123456789");
      const id = uniqueRouteId("bytes-out");
      const taken = await gatewayFor(`routes:\n${consumerRoute(id, "/out", queue)}`)("GET", "/out");
      expect(taken.status).toBe(200);
      expect(await taken.text()).toBe("0123456789");
      const [line] = captured.requests().filter((one) => one.route === id);
      expect(line).toMatchObject({ status: 200, bytes_out: 10 });
    } finally {
      captured.restore();
      await deleteQueue(queue);
    }
  });

  it("LOG_FORMAT=pretty writes a text line; LOG_LEVEL=error keeps only the 5xx lines", () =>
    withQueues("logfmt", 1, async (queue) => {
      const [id, dead] = [uniqueRouteId("pretty"), uniqueRouteId("pretty-dead")];
      const yaml = `routes:\n${producerRoute(id, "/in", queue!)}${producerRoute(dead, "/dead", queue!, "", DEAD_URL)}`;
      const captured = captureConsole();
      try {
        const pretty = gatewayFor(yaml, { LOG_FORMAT: "pretty" } as never);
        expect((await pretty("POST", "/in", { body: "x" })).status).toBe(202);
        // (The objects log their own events with the Worker's own bindings, not the overrides: only the request line is looked at.)
        const line = captured.lines.find((one) => one.includes(`route=${id}`));
        expect(line).toBeDefined();
        expect(line!.startsWith("{")).toBe(false);
        expect(line).toMatch(/INFO\s+request /);
        expect(line).toContain(`route=${id}`);
        expect(line).toContain("status=202");

        captured.lines.length = 0;
        const quiet = gatewayFor(yaml, { LOG_LEVEL: "error" } as never);
        expect((await quiet("POST", "/in", { body: "y" })).status).toBe(202);
        expect((await quiet("GET", "/nowhere")).status).toBe(404);
        expect((await quiet("POST", "/dead", { body: "z" })).status).toBe(503);
        const requestLines = captured.requests();
        expect(requestLines.map((one) => [one.level, one.route, one.status])).toEqual([["error", dead, 503]]);
      } finally {
        captured.restore();
      }
    }));
});

describe("secrets", () => {
  it("no API key, JWT secret, basic password or broker password appears in any answer or log line", async () => {
    const queue = uniqueName("secrets");
    await declareQueue(queue);
    const captured = captureConsole();
    try {
      const appKey = secret("appkey");
      const jwtSecret = secret("jwtsecret");
      const password = secret("alicepw");
      const brokerPassword = secret("brokerpw");
      const adminToken = secret("admintoken");
      const ids = Object.fromEntries(["key", "query", "jwt", "basic", "dead", "login"].map((name) => [name, uniqueRouteId(`s-${name}`)]));
      const cors = `cors: { allow_origins: ["${ORIGIN}"] }`;
      const gateway = gatewayFor(
        "routes:\n" +
          producerRoute(ids.key!, "/key", queue, `${cors}, auth: { api_key: { keys: ["\${APP_KEY}"] } }`) +
          producerRoute(ids.query!, "/query", queue, `auth: { api_key: { query: key, keys: ["\${APP_KEY}"] } }`) +
          producerRoute(
            ids.jwt!,
            "/jwt",
            queue,
            'auth: { bearer_jwt: { secret: "${JWT_SECRET}", audience: jobs, required_claims: [tenant] } }',
          ) +
          producerRoute(ids.basic!, "/basic", queue, 'auth: { basic: { users: { alice: "${ALICE_PASSWORD}" } } }') +
          producerRoute(ids.dead!, "/dead", queue, "", `amqp://guest:${brokerPassword}@127.0.0.1:1/`) +
          producerRoute(ids.login!, "/login", queue, "", `amqp://guest:${brokerPassword}@127.0.0.1:5672/`),
        { APP_KEY: appKey, JWT_SECRET: jwtSecret, ALICE_PASSWORD: password, ADMIN_TOKEN: adminToken } as never,
      );
      const valid = await sign({ sub: "s", aud: "jobs", tenant: "t", exp: now() + 600 }, jwtSecret, "HS256");
      const noTenant = await sign({ sub: "s", aud: "jobs", exp: now() + 600 }, jwtSecret, "HS256");
      const expired = await sign({ sub: "s", aud: "jobs", tenant: "t", exp: now() - 600 }, jwtSecret, "HS256");
      const requests: Array<[string, string, RequestInit, number]> = [
        ["POST", "/key", { body: "k", headers: { "x-api-key": appKey } }, 202],
        // One character off (never the key itself: its last character may be a 0).
        ["POST", "/key", { body: "k", headers: { "x-api-key": `${appKey.slice(0, -1)}${appKey.endsWith("0") ? "1" : "0"}` } }, 401],
        ["POST", "/key", { body: "k", headers: { origin: OTHER_ORIGIN, "x-api-key": appKey } }, 403],
        ["GET", "/key", { headers: { "x-api-key": appKey, origin: ORIGIN } }, 405],
        ["POST", `/query?key=${appKey}`, { body: "q" }, 202],
        ["POST", `/query?key=${appKey}x`, { body: "q" }, 401],
        ["POST", "/query", { body: "q", headers: { "x-api-key": appKey } }, 401],
        ["POST", "/jwt", { body: "j", headers: { authorization: `Bearer ${valid}` } }, 202],
        ["POST", "/jwt", { body: "j", headers: { authorization: `Bearer ${noTenant}` } }, 403],
        ["POST", "/jwt", { body: "j", headers: { authorization: `Bearer ${expired}` } }, 401],
        ["POST", "/jwt", { body: "j", headers: { authorization: `Bearer ${jwtSecret}` } }, 401],
        ["POST", "/basic", { body: "b", headers: { authorization: basic("alice", password) } }, 202],
        ["POST", "/basic", { body: "b", headers: { authorization: basic("alice", `${password}x`) } }, 401],
        ["POST", "/basic", { body: "b", headers: { authorization: basic(password, password) } }, 401],
        ["POST", "/dead", { body: "d" }, 503],
        ["POST", "/login", { body: "l" }, 502],
        ["GET", "/amqp", { headers: { authorization: `Bearer ${adminToken}` } }, 200],
        ["GET", "/amqp", { headers: { authorization: "Bearer wrong" } }, 401],
        ["GET", "/amqp", { headers: { authorization: `Bearer ${adminToken}`, accept: "text/html" } }, 200],
      ];
      const answers: string[] = [];
      for (const [method, path, init, status] of requests) {
        const response = await gateway(method, path, init);
        const text = await transcript(response);
        expect(response.status, `${method} ${path}: ${text}`).toBe(status);
        answers.push(`${method} ${path.split("?")[0]}\n${text}`);
      }
      const published = await drain(queue);
      expect(published).toHaveLength(4);
      answers.push(
        ...published.map((message) => `published message\n${message.bodyString() ?? ""}\n${JSON.stringify(message.properties)}`),
      );
      // Let the objects finish anything they log after answering (a failed connect, a closed socket).
      await new Promise((resolve) => setTimeout(resolve, 500));

      expect(captured.requests()).toHaveLength(requests.length);
      const logs = captured.lines.join("\n");
      const base64 = (text: string) => btoa(text);
      const secrets: Record<string, string> = {
        "the API key": appKey,
        "the JWT secret": jwtSecret,
        "the basic password": password,
        "the basic credentials": base64(`alice:${password}`),
        "the broker password": brokerPassword,
        "the admin token": adminToken,
        "the bearer token": valid,
        "the bearer token's signature": valid.split(".")[2]!,
      };
      for (const [what, value] of Object.entries(secrets)) {
        for (const answer of answers) {
          expect(answer.includes(value), `${what} in the answer to ${answer}`).toBe(false);
        }
        expect(logs.includes(value), `${what} in the log:\n${logs}`).toBe(false);
      }
      // And the broker password is shown as *** in GET /amqp.
      expect(answers.find((answer) => answer.startsWith("GET /amqp") && answer.includes('"url"'))).toContain("guest:***@127.0.0.1:1/");
    } finally {
      captured.restore();
      await deleteQueue(queue);
    }
  });
});
