/**
 * Broker URLs as the gateway may show them: in `/amqp`, logs, error messages and a failure's text,
 * which the contract promises never carries a password.
 */

/**
 * The URL with its password shown as `***`, for `/amqp`, logs and error messages. A URL that does
 * not parse (a password with an unencoded `/`, `#` or `@` is the usual reason, and exactly when an
 * error quotes it) cannot be split safely into its parts, so all of it after the scheme is hidden.
 */
export const redactUrl = (url: string): string => {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    const scheme = /^\s*([A-Za-z][A-Za-z0-9+.-]*:\/\/)/.exec(url)?.[1];
    return scheme ? `${scheme}***` : "***";
  }
  if (!parsed.password) return url;
  parsed.password = "***";
  return parsed.toString().replace("%2A%2A%2A", "***");
};

/** The password of a broker URL as written and percent-decoded, or none. */
const passwordsOf = (url: string): string[] => {
  let raw: string;
  try {
    raw = new URL(url).password;
  } catch {
    // Unparsable: guess as a reader would, between the first ":" after the scheme and the last "@".
    const rest = url.replace(/^\s*[A-Za-z][A-Za-z0-9+.-]*:\/\//, "");
    const at = rest.lastIndexOf("@");
    const colon = rest.indexOf(":");
    raw = at > 0 && colon >= 0 && colon < at ? rest.slice(colon + 1, at) : "";
  }
  let decoded = raw;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    // not percent-encoded text: the raw form is the only one
  }
  return [...new Set([raw, decoded])].filter((password) => password.length > 0);
};

/** `text` with `url` and its password nowhere in it: for messages that quote a library's error. */
export const redactSecrets = (text: string, url: string): string => {
  let out = text.split(url).join(redactUrl(url));
  for (const password of passwordsOf(url)) out = out.split(password).join("***");
  return out;
};
