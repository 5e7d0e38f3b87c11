/**
 * A Standard Webhooks secret (standardwebhooks.com), as a push route's `push.secret` holds it:
 * `whsec_` and the base64 of the key. The configuration checks it (before and after `${NAME}` is
 * filled in); the route side signs with it (`src/push/webhook-signature.ts`).
 */
export const WEBHOOK_SECRET_PREFIX = "whsec_";

/** The secret's key bytes, or why it is not a Standard Webhooks secret (`whsec_` and base64 of at least 16 bytes). Never repeats the secret. */
export const webhookSecretKey = (secret: string): { key: Uint8Array } | { problem: string } => {
  if (secret === "") return { problem: "is empty" };
  if (!secret.startsWith(WEBHOOK_SECRET_PREFIX)) return { problem: `must start with ${WEBHOOK_SECRET_PREFIX}` };
  const encoded = secret.slice(WEBHOOK_SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || encoded.length % 4 !== 0) {
    return { problem: `must be base64 after ${WEBHOOK_SECRET_PREFIX} (no spaces or line breaks)` };
  }
  const key = Uint8Array.from(atob(encoded), (char) => char.charCodeAt(0));
  // The specification's secrets are 24 to 64 bytes; fewer than 16 is too weak a key to accept.
  if (key.length < 16) return { problem: `must hold a key of at least 16 bytes (it has ${key.length})` };
  return { key };
};
