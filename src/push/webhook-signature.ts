/**
 * Standard Webhooks (standardwebhooks.com) signing, for a push route's deliveries: each attempt
 * carries `webhook-id`, `webhook-timestamp` (seconds) and `webhook-signature`, `v1,` and the
 * base64 HMAC-SHA256 of `<id>.<timestamp>.<body>` over the body's raw bytes, keyed with the
 * secret after its `whsec_` prefix (base64). WebCrypto only, so the same in workerd, Node and Deno.
 */
import { base64 } from "../base64";

export const WEBHOOK_SECRET_PREFIX = "whsec_";

/** The secret's key bytes, or why it is not a Standard Webhooks secret (`whsec_` and base64 of at least 16 bytes). */
export const webhookSecretKey = (secret: string): { key: Uint8Array } | { problem: string } => {
  if (!secret.startsWith(WEBHOOK_SECRET_PREFIX)) return { problem: `it must start with ${WEBHOOK_SECRET_PREFIX}` };
  const encoded = secret.slice(WEBHOOK_SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || encoded.length % 4 !== 0) {
    return { problem: `what follows ${WEBHOOK_SECRET_PREFIX} must be base64` };
  }
  const key = Uint8Array.from(atob(encoded), (char) => char.charCodeAt(0));
  // The specification's secrets are 24 to 64 bytes; fewer than 16 is too weak a key to accept.
  if (key.length < 16) return { problem: `its key must be at least 16 bytes (it has ${key.length})` };
  return { key };
};

/** Signs deliveries with one secret; the key is imported once. */
export class WebhookSigner {
  readonly #key: ReturnType<typeof crypto.subtle.importKey>;

  /** Throws if `secret` is not a Standard Webhooks secret (the configuration refuses such a secret first). */
  constructor(secret: string) {
    const parsed = webhookSecretKey(secret);
    if ("problem" in parsed) throw new Error(`push.secret: ${parsed.problem}`);
    this.#key = crypto.subtle.importKey("raw", parsed.key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  }

  /** The three headers of one attempt of delivery `id` of `body`, signed at `timestampS` (Unix seconds). */
  async headers(id: string, timestampS: number, body: Uint8Array): Promise<Record<string, string>> {
    const prefix = new TextEncoder().encode(`${id}.${timestampS}.`);
    const signed = new Uint8Array(prefix.length + body.length);
    signed.set(prefix);
    signed.set(body, prefix.length);
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", await this.#key, signed));
    return { "webhook-id": id, "webhook-timestamp": String(timestampS), "webhook-signature": `v1,${base64(mac)}` };
  }
}
