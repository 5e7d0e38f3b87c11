import type { Context, MiddlewareHandler } from "hono";
import { timingSafeEqual } from "hono/utils/buffer";
import type { AuthConfig } from "../../config/access-schema";
import type { GatewayEnv } from "../../env";
import { GatewayError, RETRY_AFTER_SECONDS } from "../gateway-error";
import { chargeRefusal, type AccessTarget } from "./admission";
import { verifyBearerJwt, TokenRefused } from "./bearer-jwt";
import { basicCredentials, bearerToken } from "./credentials";

/** Who the credentials of a request belong to (`key:<digest>`, `user:<name>`, `sub:<sub>`), or a thrown 401/403/503. */
type Check = (c: Context<GatewayEnv>) => Promise<string>;

/**
 * The route's `auth` as middleware: 401 with `WWW-Authenticate` when credentials are missing or
 * wrong, 403 when a valid token is not allowed here. On success it records who called
 * (`c.var.caller`), which is what `rate_limit` may count by. No answer and no log line ever holds
 * the credential itself.
 *
 * On a route with `rate_limit`, each refused attempt also takes a request from the caller's IP
 * bucket, and once that is empty the answer is 429: without it, guessing keys or passwords
 * would cost nothing.
 */
export const authenticate = (route: AccessTarget): MiddlewareHandler<GatewayEnv> | undefined => {
  const check = checkFor(route.id, route.auth, route.rate_limit?.key === "jwt_sub");
  if (!check) return undefined;
  return async (c, next) => {
    let caller: string;
    try {
      caller = await check(c);
    } catch (error) {
      if (error instanceof GatewayError && error.status === 401 && route.rate_limit) await chargeRefusal(c, route);
      throw error;
    }
    c.set("caller", caller);
    await next();
  };
};

const checkFor = (routeId: string, auth: AuthConfig, needsSub: boolean): Check | undefined => {
  switch (auth.kind) {
    case "none":
      return undefined;
    case "api_key": {
      const [where, name] = "query" in auth ? ["query", auth.query] : ["header", auth.header];
      const place = `${where === "query" ? "query parameter" : "header"} ${name}`;
      const challenge = { "WWW-Authenticate": `ApiKey realm="${routeId}", ${where}="${name}"` };
      return async (c) => {
        const sent = where === "query" ? c.req.query(name) : c.req.header(name);
        if (!sent) throw new GatewayError(401, `this route requires an API key in the ${place}`, routeId, challenge);
        const index = await matchingIndex(auth.keys, sent);
        if (index < 0) throw new GatewayError(401, `the API key in the ${place} is not valid`, routeId, challenge);
        return keyCaller(sent);
      };
    }
    case "basic": {
      const challenge = { "WWW-Authenticate": `Basic realm="${routeId}", charset="UTF-8"` };
      return async (c) => {
        const header = c.req.header("authorization");
        if (!header) throw new GatewayError(401, "this route requires HTTP basic authentication", routeId, challenge);
        const credentials = basicCredentials(header);
        if (!credentials) throw new GatewayError(401, "malformed Authorization header; expected Basic credentials", routeId, challenge);
        const password = Object.hasOwn(auth.users, credentials.user) ? auth.users[credentials.user] : undefined;
        // Compared even for an unknown user, so that the time taken does not tell users apart.
        const valid = await timingSafeEqual(password ?? "\u0000unknown user", credentials.password);
        if (!valid || password === undefined) throw new GatewayError(401, "wrong user name or password", routeId, challenge);
        return `user:${credentials.user}`;
      };
    }
    case "bearer_jwt": {
      const challenge = (error?: string) => ({ "WWW-Authenticate": `Bearer realm="${routeId}"${error ? `, error="${error}"` : ""}` });
      return async (c) => {
        const header = c.req.header("authorization");
        const token = bearerToken(header);
        if (!token) {
          const reason = header
            ? "malformed Authorization header; expected Bearer <token>"
            : "this route requires Authorization: Bearer <token>";
          throw new GatewayError(401, reason, routeId, challenge());
        }
        try {
          const claims = await verifyBearerJwt(token.trim(), auth);
          // Without one, every such token would share one rate-limit bucket.
          if (needsSub && typeof claims.sub !== "string") {
            throw new TokenRefused(403, "the token has no sub claim, which this route's rate_limit counts by");
          }
          // The issuer too: two issuers may give out the same sub. Each quoted, so that no sub
          // and issuer read as another pair ("a@b" of "c", "a" of "b@c"), and a token without a
          // sub is not the one whose sub is "undefined".
          return jwtCaller(claims.sub, claims.iss);
        } catch (error) {
          if (!(error instanceof TokenRefused)) throw error;
          if (error.status === 503) throw new GatewayError(503, error.message, routeId, { "Retry-After": String(RETRY_AFTER_SECONDS) });
          throw new GatewayError(
            error.status,
            error.message,
            routeId,
            challenge(error.status === 401 ? "invalid_token" : "insufficient_scope"),
          );
        }
      };
    }
  }
};

/** Digests of the API keys seen, by key (valid keys only: as many as the routes list). */
const keyDigests = new Map<string, Promise<string>>();

/**
 * The caller an API key names: a digest of the key itself, not its place in `keys`, so that a
 * caller stays itself when the list changes (a key revoked, added or moved): its idempotency
 * keys, rate-limit bucket and shares never pass to the key that takes its place. Never the key.
 */
const keyCaller = (key: string): Promise<string> => {
  let digest = keyDigests.get(key);
  if (!digest) {
    digest = crypto.subtle.digest("SHA-256", new TextEncoder().encode(key)).then((hash) => {
      const hex = [...new Uint8Array(hash).slice(0, 16)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
      return `key:${hex}`;
    });
    keyDigests.set(key, digest);
  }
  return digest;
};

/** The caller a JWT names: its `sub` with its `iss` when it has one, each as JSON (see above). */
const jwtCaller = (sub: unknown, iss: unknown): string =>
  typeof iss === "string" ? `sub:${JSON.stringify(sub) ?? "none"}@${JSON.stringify(iss)}` : `sub:${JSON.stringify(sub) ?? "none"}`;

/** The index of the key that `sent` is, or -1; every key is compared, in constant time. */
const matchingIndex = async (keys: string[], sent: string): Promise<number> => {
  let found = -1;
  for (const [index, key] of keys.entries()) if ((await timingSafeEqual(key, sent)) && found < 0) found = index;
  return found;
};
