/**
 * Reading credentials from an `Authorization` header, for `auth` on routes and `ADMIN_TOKEN` on
 * `/amqp`. Values are compared as sent, in constant time, by the callers.
 */

/** The token of `Bearer <token>` (taken as sent, not parsed as RFC 6750's token68), or undefined. */
export const bearerToken = (header: string | undefined): string | undefined => /^Bearer +(.+)$/i.exec(header ?? "")?.[1];

/** The user and password of `Basic <base64>`, or undefined when the header is not basic or not decodable. */
export const basicCredentials = (header: string | undefined): { user: string; password: string } | undefined => {
  const encoded = /^Basic +(.*)$/i.exec(header ?? "")?.[1];
  if (encoded === undefined) return undefined;
  let decoded: string;
  try {
    decoded = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(
      Uint8Array.from(atob(encoded.trim()), (char) => char.charCodeAt(0)),
    );
  } catch {
    return undefined;
  }
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
};
