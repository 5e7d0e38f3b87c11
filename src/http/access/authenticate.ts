import type { MiddlewareHandler } from "hono";
import { timingSafeEqual } from "hono/utils/buffer";
import type { RouteConfig } from "../../config/schema";
import type { GatewayEnv } from "../../env";
import { GatewayError, RETRY_AFTER_SECONDS } from "../gateway-error";
import { verifyBearerJwt, TokenRefused } from "./bearer-jwt";
import { basicCredentials, bearerToken } from "./credentials";

/**
 * The route's `auth` as middleware: 401 with `WWW-Authenticate` when credentials are missing or
 * wrong, 403 when a valid token is not allowed here. On success it records who called
 * (`c.var.caller`: which key, or the token's `sub`), which is what `rate_limit` may count by.
 * No answer and no log line ever holds the credential itself.
 */
export const authenticate = (route: RouteConfig): MiddlewareHandler<GatewayEnv> | undefined => {
  const auth = route.auth;
  switch (auth.kind) {
    case "none":
      return undefined;
    case "api_key":
      return async (c, next) => {
        const where = "query" in auth ? `query parameter ${auth.query}` : `header ${auth.header}`;
        const sent = "query" in auth ? c.req.query(auth.query) : c.req.header(auth.header);
        const challenge = {
          "WWW-Authenticate": `ApiKey realm="${route.id}", ${"query" in auth ? "query" : "header"}="${"query" in auth ? auth.query : auth.header}"`,
        };
        if (!sent) throw new GatewayError(401, `this route requires an API key in the ${where}`, route.id, challenge);
        const index = await matchingIndex(auth.keys, sent);
        if (index < 0) throw new GatewayError(401, `the API key in the ${where} is not valid`, route.id, challenge);
        c.set("caller", `key#${index}`);
        return next();
      };
    case "basic":
      return async (c, next) => {
        const challenge = { "WWW-Authenticate": `Basic realm="${route.id}", charset="UTF-8"` };
        const header = c.req.header("authorization");
        if (!header) throw new GatewayError(401, "this route requires HTTP basic authentication", route.id, challenge);
        const credentials = basicCredentials(header);
        if (!credentials) throw new GatewayError(401, "malformed Authorization header; expected Basic credentials", route.id, challenge);
        const password = Object.hasOwn(auth.users, credentials.user) ? auth.users[credentials.user] : undefined;
        // Compared even for an unknown user, so that the time taken does not tell users apart.
        const valid = await timingSafeEqual(password ?? "\u0000unknown user", credentials.password);
        if (!valid || password === undefined) throw new GatewayError(401, "wrong user name or password", route.id, challenge);
        c.set("caller", `user:${credentials.user}`);
        return next();
      };
    case "bearer_jwt":
      return async (c, next) => {
        const header = c.req.header("authorization");
        const challenge = (error?: string) => ({
          "WWW-Authenticate": `Bearer realm="${route.id}"${error ? `, error="${error}"` : ""}`,
        });
        const token = bearerToken(header);
        if (!token) {
          const reason = header
            ? "malformed Authorization header; expected Bearer <token>"
            : "this route requires Authorization: Bearer <token>";
          throw new GatewayError(401, reason, route.id, challenge());
        }
        try {
          const claims = await verifyBearerJwt(token.trim(), auth);
          c.set("caller", typeof claims.sub === "string" ? `sub:${claims.sub}` : "sub:");
        } catch (error) {
          if (!(error instanceof TokenRefused)) throw error;
          if (error.status === 503) throw new GatewayError(503, error.message, route.id, { "Retry-After": String(RETRY_AFTER_SECONDS) });
          throw new GatewayError(
            error.status,
            error.message,
            route.id,
            challenge(error.status === 401 ? "invalid_token" : "insufficient_scope"),
          );
        }
        return next();
      };
  }
};

/** The index of the key that `sent` is, or -1; every key is compared, in constant time. */
const matchingIndex = async (keys: string[], sent: string): Promise<number> => {
  let found = -1;
  for (const [index, key] of keys.entries()) if ((await timingSafeEqual(key, sent)) && found < 0) found = index;
  return found;
};
