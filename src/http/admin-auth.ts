import type { MiddlewareHandler } from "hono";
import { timingSafeEqual } from "hono/utils/buffer";
import type { GatewayEnv } from "../env";
import { basicCredentials, bearerToken } from "./access/credentials";

/**
 * What guards the admin endpoints (`GET /amqp`, a push route's state and control): when
 * `ADMIN_TOKEN` is set, `Authorization: Bearer <ADMIN_TOKEN>`, or HTTP basic auth with the token
 * as the password (any user name): a browser cannot add a bearer header when it navigates, but
 * it asks for basic credentials when told to. 401 otherwise.
 */
export const adminAuth: MiddlewareHandler<GatewayEnv> = async (c, next) => {
  const token = c.env.ADMIN_TOKEN;
  if (token === undefined || token === "") return next();
  // A token of spaces would match an empty password (HTTP drops outer spaces): keep /amqp closed.
  if (token.trim() === "") return c.json({ error: "ADMIN_TOKEN is set but blank; set a real token", route: null }, 500);
  const header = c.req.header("authorization");
  const failure = /^Basic /i.test(header ?? "") ? await basicFailure(header ?? "", token) : await bearerFailure(header, token);
  if (!failure) return next();
  const challenge = wantsPage(c.req.header("accept")) ? 'Basic realm="amqp", charset="UTF-8"' : 'Bearer realm="amqp"';
  return c.json({ error: failure, route: null }, 401, { "WWW-Authenticate": challenge });
};

/**
 * Why `header` does not carry `Bearer <token>`, or undefined when it does. The token after the
 * scheme is compared as it was sent (in constant time), not parsed as RFC 6750's token68, which
 * hono's bearerAuth requires: an ADMIN_TOKEN such as `Adm!n:T0ken` would otherwise lock `/amqp`.
 */
const bearerFailure = async (header: string | undefined, token: string): Promise<string | undefined> => {
  if (header === undefined) return "this endpoint requires Authorization: Bearer <ADMIN_TOKEN>";
  const sent = bearerToken(header);
  if (sent === undefined) return "malformed Authorization header; expected Bearer <ADMIN_TOKEN>";
  // HTTP drops a header value's outer spaces, so a token's own could never arrive: compare without them.
  return (await timingSafeEqual(token.trim(), sent)) ? undefined : "invalid token";
};

/** A browser navigating (it asks for HTML); JSON clients, curl's `*\/*` included, keep getting JSON. */
export const wantsPage = (accept: string | undefined): boolean => accept?.includes("text/html") ?? false;

/** Why a basic `header` does not carry the token as its password (any user name), or undefined when it does. */
const basicFailure = async (header: string, token: string): Promise<string | undefined> => {
  const credentials = basicCredentials(header);
  if (!credentials) return "malformed Authorization header; expected Basic credentials with ADMIN_TOKEN as the password";
  return (await timingSafeEqual(token.trim(), credentials.password)) ? undefined : "invalid token";
};
