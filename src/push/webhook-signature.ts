/**
 * Standard Webhooks (standardwebhooks.com) signing, for a push route's deliveries: each attempt
 * carries `webhook-id`, `webhook-timestamp` (seconds) and `webhook-signature`, `v1,` and the
 * base64 HMAC-SHA256 of `<id>.<timestamp>.<body>` over the body's raw bytes, keyed with the
 * secret after its `whsec_` prefix (base64). WebCrypto only, so the same in workerd, Node and Deno.
 */
import { base64 } from "../base64";
import { webhookSecretKey } from "../contract/webhook-secret";

/** Signs deliveries with one secret; the key is imported once. */
const encoder = new TextEncoder();

export class WebhookSigner {
  readonly #key: ReturnType<typeof crypto.subtle.importKey>;
  /** The key once imported: awaiting the import again on every attempt costs a turn. */
  #imported: Awaited<ReturnType<typeof crypto.subtle.importKey>> | undefined;

  /** Throws if `secret` is not a Standard Webhooks secret (the configuration refuses such a secret first). */
  constructor(secret: string) {
    const parsed = webhookSecretKey(secret);
    if ("problem" in parsed) throw new Error(`push.secret: ${parsed.problem}`);
    this.#key = crypto.subtle.importKey("raw", parsed.key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  }

  /** The three headers of one attempt of delivery `id` of `body`, signed at `timestampS` (Unix seconds). */
  async headers(id: string, timestampS: number, body: Uint8Array): Promise<Record<string, string>> {
    const prefix = encoder.encode(`${id}.${timestampS}.`);
    const signed = new Uint8Array(prefix.length + body.length);
    signed.set(prefix);
    signed.set(body, prefix.length);
    const key = (this.#imported ??= await this.#key);
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, signed));
    return { "webhook-id": id, "webhook-timestamp": String(timestampS), "webhook-signature": `v1,${base64(mac)}` };
  }
}
