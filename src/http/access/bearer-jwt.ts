import { Jwt } from "hono/utils/jwt";
import type { JWTPayload } from "hono/utils/jwt/types";
import type { AuthConfig } from "../../config/access-schema";

type BearerJwtAuth = Extract<AuthConfig, { kind: "bearer_jwt" }>;

/** Why a token was not accepted: `unauthenticated` (401: no valid token) or `forbidden` (403: valid, not allowed here). */
export class TokenRefused extends Error {
  constructor(
    readonly status: 401 | 403 | 503,
    message: string,
  ) {
    super(message);
  }
}

/** How long fetched signing keys are used before the JWKS is fetched again. */
const JWKS_TTL_MS = 10 * 60 * 1000;
const jwksCache = new Map<string, { keys: JsonWebKey[]; until: number }>();

/**
 * The claims of `token` once hono's JWT utilities have checked its signature (with the secret, or
 * a key of the JWKS); then, here, the times with `clock_skew_s` of tolerance (401 when expired or
 * not yet valid), and the issuer, audience and required claims (403: a genuine token, for
 * somewhere else). Signature first: a forged token is 401 whatever it claims.
 */
export const verifyBearerJwt = async (token: string, auth: BearerJwtAuth): Promise<JWTPayload> => {
  let header: { alg?: unknown; typ?: unknown; kid?: unknown };
  try {
    header = Jwt.decode(token).header;
  } catch {
    throw new TokenRefused(401, "the bearer token is not a JWT");
  }
  const alg = String(header.alg);
  if (!(auth.algorithms as string[]).includes(alg)) {
    throw new TokenRefused(401, `the token is signed with ${alg}; this route accepts ${auth.algorithms.join(", ")}`);
  }
  // Access tokens of RFC 9068 say `typ: at+jwt`; hono's check accepts one given type, so name the token's own.
  const typ = header.typ;
  if (typ !== undefined && !(typeof typ === "string" && ACCEPTED_TYPES.has(typ.toLowerCase().replace(/^application\//, "")))) {
    throw new TokenRefused(401, "the token's typ is not JWT or at+jwt");
  }
  const checks = { exp: false, nbf: false, iat: false, ...(typeof typ === "string" ? { typ } : {}) } as const;
  let payload: JWTPayload;
  try {
    if ("secret" in auth) {
      payload = await Jwt.verify(token, auth.secret, { alg: alg as "HS256", ...checks });
    } else {
      if (typeof header.kid !== "string") throw new TokenRefused(401, "the token names no signing key (kid)");
      const keys = await signingKeys(auth.jwks_url, header.kid);
      payload = await Jwt.verifyWithJwks(token, { keys, allowedAlgorithms: auth.algorithms as "RS256"[], verification: checks });
    }
  } catch (error) {
    if (error instanceof TokenRefused) throw error;
    throw new TokenRefused(401, "the token's signature is not valid");
  }
  checkTimes(payload, auth.clock_skew_s);
  checkClaims(payload, auth);
  return payload;
};

const ACCEPTED_TYPES = new Set(["jwt", "at+jwt"]);

const checkTimes = (payload: JWTPayload, skewS: number): void => {
  const now = Date.now() / 1000;
  if (payload.exp !== undefined && !(typeof payload.exp === "number" && payload.exp + skewS > now)) {
    throw new TokenRefused(401, "the token has expired");
  }
  if (payload.nbf !== undefined && !(typeof payload.nbf === "number" && payload.nbf - skewS <= now)) {
    throw new TokenRefused(401, "the token is not valid yet");
  }
};

const checkClaims = (payload: JWTPayload, auth: BearerJwtAuth): void => {
  if (auth.issuer !== undefined && payload.iss !== auth.issuer)
    throw new TokenRefused(403, "the token was not issued by this route's issuer");
  if (auth.audience !== undefined) {
    const wanted = Array.isArray(auth.audience) ? auth.audience : [auth.audience];
    const audiences: unknown[] = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (!audiences.some((aud) => typeof aud === "string" && wanted.includes(aud))) {
      throw new TokenRefused(403, "the token is not for this route's audience");
    }
  }
  const missing = auth.required_claims.filter((claim) => payload[claim] === undefined);
  if (missing.length > 0) throw new TokenRefused(403, `the token lacks the claim ${missing.join(", ")}`);
};

/** After a failed fetch (or one for an unknown key), the JWKS is not fetched again for this long. */
const REFETCH_AFTER_MS = 30 * 1000;
const lastFetch = new Map<string, number>();

/**
 * The JWKS's keys, cached per isolate for {@link JWKS_TTL_MS}. A token naming a key the cache
 * does not hold (the issuer rotated its keys) fetches the set again, at most every 30 s, as does
 * a failed fetch; 503 when no keys can be had.
 */
const signingKeys = async (url: string, kid: string): Promise<JsonWebKey[]> => {
  const cached = jwksCache.get(url);
  const known = cached?.keys.some((key) => (key as { kid?: unknown }).kid === kid) ?? false;
  const fresh = cached !== undefined && cached.until > Date.now();
  const mayFetch = Date.now() - (lastFetch.get(url) ?? 0) >= REFETCH_AFTER_MS;
  if (cached && ((fresh && known) || !mayFetch)) return cached.keys;
  if (!cached && !mayFetch) throw new TokenRefused(503, "the issuer's signing keys (jwks_url) could not be fetched; try again");
  lastFetch.set(url, Date.now());
  try {
    const response = await fetch(url, { headers: { accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const { keys } = await response.json<{ keys?: unknown }>();
    if (!Array.isArray(keys)) throw new Error("no keys");
    jwksCache.set(url, { keys: keys as JsonWebKey[], until: Date.now() + JWKS_TTL_MS });
    return keys as JsonWebKey[];
  } catch {
    if (cached) return cached.keys;
    throw new TokenRefused(503, "the issuer's signing keys (jwks_url) could not be fetched; try again");
  }
};
