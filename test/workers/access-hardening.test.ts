/**
 * What a hostile review of `auth`, `cors` and `rate_limit` found, each pinned: refused logins
 * spend the caller's rate limit, a blank credential from the environment refuses to serve, an
 * exact and a prefix route on one path each apply their own cors, tokens of real identity
 * providers (`typ: at+jwt`, a JWKS with `kid`s) are accepted, a `sub`-less token cannot share a
 * `jwt_sub` bucket, and a route can drop a top-level `cors` or `rate_limit` with `none`.
 */
import { sign } from "hono/jwt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, messageCount, uniqueName } from "../helpers/broker";
import { gatewayFor, uniqueRouteId } from "./gateway";

type ErrorBody = { error: string; route: string | null };

const basic = (user: string, password: string) => `Basic ${btoa(`${user}:${password}`)}`;
const route = (id: string, path: string, queue: string, access: string, extra = "") =>
  `  - { id: ${id}, path: ${path}, ${access}, amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} }${extra} } }\n`;

const withQueue = async (test: (queue: string) => Promise<void>) => {
  const queue = uniqueName("harden");
  await declareQueue(queue);
  try {
    await test(queue);
  } finally {
    await deleteQueue(queue);
  }
};

describe("a route with auth and rate_limit", () => {
  it("counts refused logins against the caller's IP: guessing ends in 429, and nothing is published", () =>
    withQueue(async (queue) => {
      const id = uniqueRouteId("guess");
      const send = gatewayFor(
        `routes:\n${route(id, "/in", queue, 'auth: { basic: { users: { alice: "${ALICE}" } } }, rate_limit: { requests: 3, period_s: 60 }')}`,
        { ALICE: "right-password-7" },
      );
      const attempt = (password: string, ip = "198.51.100.7") =>
        send("POST", "/in", { body: "x", headers: { authorization: basic("alice", password), "cf-connecting-ip": ip } });
      const statuses = [];
      for (let i = 0; i < 5; i++) statuses.push((await attempt(`guess-${i}`)).status);
      expect(statuses).toEqual([401, 401, 401, 429, 429]);
      const limited = await attempt("right-password-7");
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
      // Another caller is not held back by the guesser.
      expect((await attempt("right-password-7", "198.51.100.8")).status).toBe(202);
      expect(await messageCount(queue)).toBe(1);
      const stats = (await (await send("GET", "/amqp")).json()) as Record<string, { rejected: number; total_errors: number }>;
      expect(stats[id]).toMatchObject({ rejected: 3, total_errors: 0 });
    }));
});

describe("a rate limit under concurrent requests", () => {
  it.each([1, 4])("admits exactly its limit of 30 requests sent at once (%i shard(s)), and the queue holds exactly those", (shards) =>
    withQueue(async (queue) => {
      const id = uniqueRouteId("burst");
      const send = gatewayFor(`routes:\n${route(id, "/in", queue, "rate_limit: { requests: 10, period_s: 60 }", `, shards: ${shards}`)}`);
      const statuses = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          send("POST", "/in", { body: `b${i}`, headers: { "cf-connecting-ip": "203.0.113.9" } }).then((r) => r.status),
        ),
      );
      expect(statuses.filter((status) => status === 202)).toHaveLength(10);
      expect(statuses.filter((status) => status === 429)).toHaveLength(20);
      expect(await messageCount(queue)).toBe(10);
    }),
  );
});

describe("a credential from the environment that is blank", () => {
  it("makes the gateway refuse to serve, naming the field and never a value", async () => {
    const send = gatewayFor(
      `routes:\n${route(uniqueRouteId("blank"), "/in", "unused", 'auth: { basic: { users: { bob: "${BOB_PASSWORD}" } } }')}`,
      {
        BOB_PASSWORD: " ",
      },
    );
    const answer = await send("POST", "/in", { body: "x", headers: { authorization: basic("bob", "") } });
    expect(answer.status).toBe(500);
    expect(((await answer.json()) as ErrorBody).error).toMatch(/auth\.basic\.users\.bob is empty once \$\{NAME\} is filled in/);
  });

  it("keeps /amqp closed when ADMIN_TOKEN is only spaces", async () => {
    const send = gatewayFor(`routes:\n${route(uniqueRouteId("admin"), "/in", "unused", "auth: none")}`, { ADMIN_TOKEN: "  " });
    const answer = await send("GET", "/amqp", { headers: { authorization: basic("x", "") } });
    expect(answer.status).toBe(500);
  });
});

describe("an exact route and a prefix route on one path", () => {
  it("each apply their own cors, for requests and preflights", () =>
    withQueue(async (queue) => {
      const [exact, prefix] = [uniqueRouteId("exact"), uniqueRouteId("prefix")];
      const send = gatewayFor(`routes:
  - { id: ${exact}, path: /mix, methods: [GET], cors: { allow_origins: ["https://other.example.com"] }, amqp: { enabled: true, url: "${BROKER_URL}", consumer: { queue: ${queue} } } }
  - { id: ${prefix}, path: /mix, path_prefix: true, methods: [POST], cors: { allow_origins: ["https://app.example.com"] }, amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} } } }
`);
      const origin = { origin: "https://app.example.com" };
      const preflight = await send("OPTIONS", "/mix", { headers: { ...origin, "access-control-request-method": "POST" } });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
      const posted = await send("POST", "/mix", { body: "x", headers: origin });
      expect(posted.status).toBe(202);
      // The exact route's GET keeps its own origin list.
      expect((await send("GET", "/mix", { headers: origin })).status).toBe(403);
      expect(await messageCount(queue)).toBe(1);
    }));
});

describe("a route's none", () => {
  it("drops a top-level cors or rate_limit for that route", () =>
    withQueue(async (queue) => {
      const [open, limited] = [uniqueRouteId("open"), uniqueRouteId("limited")];
      const send = gatewayFor(`cors: { allow_origins: ["https://app.example.com"] }
rate_limit: { requests: 1, period_s: 60 }
routes:
${route(open, "/open", queue, "cors: none, rate_limit: none")}${route(limited, "/limited", queue, "auth: none")}`);
      const origin = { origin: "https://app.example.com" };
      expect((await send("POST", "/open", { body: "a", headers: origin })).status).toBe(403);
      expect((await send("POST", "/open", { body: "b" })).status).toBe(202);
      expect((await send("POST", "/open", { body: "c" })).status).toBe(202);
      expect((await send("POST", "/limited", { body: "d", headers: origin })).status).toBe(202);
      expect((await send("POST", "/limited", { body: "e", headers: origin })).status).toBe(429);
      expect(await messageCount(queue)).toBe(3);
    }));
});

describe("bearer_jwt with tokens of real identity providers", () => {
  const SECRET = "jwt-secret-for-hardening-tests-0123456789";
  const now = () => Math.floor(Date.now() / 1000);

  it("accepts typ at+jwt (RFC 9068 access tokens), and refuses a sub-less token where rate_limit counts by sub", () =>
    withQueue(async (queue) => {
      const id = uniqueRouteId("atjwt");
      const send = gatewayFor(
        `routes:\n${route(id, "/in", queue, 'auth: { bearer_jwt: { secret: "${JWT_SECRET}" } }, rate_limit: { requests: 5, period_s: 60, key: jwt_sub }')}`,
        { JWT_SECRET: SECRET },
      );
      const atJwt = await hs256({ typ: "at+jwt" }, { sub: "u1", exp: now() + 60 }, SECRET);
      expect((await send("POST", "/in", { body: "x", headers: { authorization: `Bearer ${atJwt}` } })).status).toBe(202);
      const odd = await hs256({ typ: "JOSE+weird" }, { sub: "u1", exp: now() + 60 }, SECRET);
      expect((await send("POST", "/in", { body: "x", headers: { authorization: `Bearer ${odd}` } })).status).toBe(401);
      const subless = await sign({ exp: now() + 60 }, SECRET, "HS256");
      const refused = await send("POST", "/in", { body: "x", headers: { authorization: `Bearer ${subless}` } });
      expect(refused.status).toBe(403);
      expect(((await refused.json()) as ErrorBody).error).toMatch(/no sub claim/);
      expect(await messageCount(queue)).toBe(1);
    }));

  describe("with a jwks_url", () => {
    const JWKS = "https://id.example.test/.well-known/jwks.json";
    let privateJwk: JsonWebKey & { kid: string; alg: string };
    let publicJwk: JsonWebKey;
    beforeAll(async () => {
      const pair = (await crypto.subtle.generateKey(
        { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
        true,
        ["sign", "verify"],
      )) as CryptoKeyPair;
      privateJwk = { ...((await crypto.subtle.exportKey("jwk", pair.privateKey)) as JsonWebKey), kid: "k1", alg: "RS256" };
      publicJwk = { ...((await crypto.subtle.exportKey("jwk", pair.publicKey)) as JsonWebKey), kid: "k1", alg: "RS256" } as JsonWebKey;
      realFetch = globalThis.fetch;
      globalThis.fetch = fetchOnlyIntercepted;
    });
    afterAll(() => {
      globalThis.fetch = realFetch;
    });

    it("verifies a token against the issuer's keys (fetched once, then cached), and answers 401 for one naming no key", () =>
      withQueue(async (queue) => {
        interceptOnce(JWKS, () => Response.json({ keys: [publicJwk] }));
        const id = uniqueRouteId("jwks");
        const send = gatewayFor(`routes:\n${route(id, "/in", queue, `auth: { bearer_jwt: { jwks_url: "${JWKS}", audience: jobs } }`)}`);
        const token = await sign({ sub: "u1", aud: "jobs", exp: now() + 60 }, privateJwk, "RS256");
        expect((await send("POST", "/in", { body: "1", headers: { authorization: `Bearer ${token}` } })).status).toBe(202);
        // Cached: the interceptor above answers once, and a second fetch would fail.
        expect((await send("POST", "/in", { body: "2", headers: { authorization: `Bearer ${token}` } })).status).toBe(202);
        const wrongAudience = await sign({ sub: "u1", aud: "billing", exp: now() + 60 }, privateJwk, "RS256");
        expect((await send("POST", "/in", { body: "3", headers: { authorization: `Bearer ${wrongAudience}` } })).status).toBe(403);
        const { kid: _kid, ...unnamed } = privateJwk;
        const noKid = await sign({ sub: "u1", aud: "jobs", exp: now() + 60 }, unnamed as JsonWebKey, "RS256");
        const refused = await send("POST", "/in", { body: "4", headers: { authorization: `Bearer ${noKid}` } });
        expect(refused.status).toBe(401);
        expect(((await refused.json()) as ErrorBody).error).toMatch(/names no signing key/);
        // An HS256 token signed with the public key as a secret (algorithm confusion) is refused.
        const confused = await hs256({ kid: "k1" }, { sub: "u1", aud: "jobs" }, JSON.stringify(publicJwk));
        expect((await send("POST", "/in", { body: "5", headers: { authorization: `Bearer ${confused}` } })).status).toBe(401);
        expect(await messageCount(queue)).toBe(2);
      }));

    it("answers 503 with Retry-After while the key set cannot be fetched", async () => {
      interceptOnce("https://down.example.test/jwks", () => new Response("down", { status: 500 }));
      const send = gatewayFor(
        `routes:\n${route(uniqueRouteId("down"), "/in", "unused", 'auth: { bearer_jwt: { jwks_url: "https://down.example.test/jwks" } }')}`,
      );
      const token = await sign({ sub: "u1", exp: now() + 60 }, privateJwk, "RS256");
      const answer = await send("POST", "/in", { body: "x", headers: { authorization: `Bearer ${token}` } });
      expect(answer.status).toBe(503);
      expect(answer.headers.get("retry-after")).toBe("1");
    });
  });
});

/**
 * The key-set server: each intercepted URL answers once, and any other fetch fails as a network
 * error would (no request leaves the test).
 */
const intercepted = new Map<string, Array<() => Response>>();
let realFetch: typeof fetch;
const interceptOnce = (url: string, answer: () => Response): void => {
  intercepted.set(url, [...(intercepted.get(url) ?? []), answer]);
};
const fetchOnlyIntercepted: typeof fetch = (input, init) => {
  const url = new Request(input, init).url;
  const answer = intercepted.get(url)?.shift();
  return answer ? Promise.resolve(answer()) : Promise.reject(new TypeError(`fetch to ${url}: no network in this test`));
};

/** An HS256 token with extra header fields (hono's sign sets only alg and typ). */
const hs256 = async (header: Record<string, string>, payload: Record<string, unknown>, secret: string): Promise<string> => {
  const encode = (value: unknown) => btoa(JSON.stringify(value)).replaceAll("=", "").replaceAll("+", "-").replaceAll("/", "_");
  const input = `${encode({ alg: "HS256", typ: "JWT", ...header })}.${encode(payload)}`;
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const signature = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(input)));
  return `${input}.${btoa(String.fromCharCode(...signature))
    .replaceAll("=", "")
    .replaceAll("+", "-")
    .replaceAll("/", "_")}`;
};
