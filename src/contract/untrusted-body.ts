/**
 * What every answer carrying a message's bytes is served with. A message's body and its content
 * type are a producer's: anyone who may publish on a route can put `text/html` with a script in
 * the queue, and a browser that opens the consuming URL would run it in the gateway's own origin,
 * where it may call every route (and `/amqp`) with the credentials that browser holds.
 *
 * - `Content-Security-Policy: sandbox; default-src 'none'`: whatever the browser renders runs no
 *   script, in an opaque origin of its own, and loads nothing.
 * - `X-Content-Type-Options: nosniff`: the type is taken as sent, never guessed from the bytes.
 * - `Content-Disposition: attachment` unless the type is one browsers show without a document
 *   that could hold script (below): HTML, XHTML, SVG, every XML type, `multipart/*` (Chromium
 *   renders each part of `x-mixed-replace` by its own type), and any type this list does not
 *   know, malformed or empty ones included, are downloaded rather than opened. A list of what is
 *   safe rather than of what is not: a type missing from it costs a download, not an origin.
 *
 * Clients that read the body with `fetch` are not affected by any of them.
 */
export const untrustedBodyHeaders = (contentType: string): Array<[string, string]> => [
  ["Content-Security-Policy", "sandbox; default-src 'none'"],
  ["X-Content-Type-Options", "nosniff"],
  ...(shownInline(contentType) ? [] : [["Content-Disposition", "attachment"] as [string, string]]),
];

/** Types a browser shows as text, an image or a media player: no markup, no script. */
const INLINE_TYPES = new Set([
  "application/json",
  "application/octet-stream",
  "text/plain",
  "text/csv",
  "text/event-stream",
  "image/png",
  "image/jpeg",
  "image/gif",
  "image/webp",
  "image/avif",
  "image/bmp",
  "image/x-icon",
  "image/vnd.microsoft.icon",
]);

/** Whether `contentType` (as the answer sends it) may be shown in the browser rather than downloaded. */
const shownInline = (contentType: string): boolean => {
  const essence = (contentType.split(";")[0] ?? "").trim().toLowerCase();
  if (INLINE_TYPES.has(essence)) return true;
  // `application/problem+json` and the like; audio and video open in the browser's own player.
  return /^application\/[a-z0-9.!#$&^_-]+\+json$/.test(essence) || /^(audio|video)\/[a-z0-9.!#$&^_+-]+$/.test(essence);
};
