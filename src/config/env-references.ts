/**
 * `${NAME}` in any string of routes.yaml is read from the environment: the Worker's vars and
 * secrets when deployed, the process environment under `npm start`. This keeps credentials out of
 * the file and out of the bundle.
 */
const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** True when `text` refers to the environment (`${NAME}`) and can only be checked once resolved. */
export const hasEnvReference = (text: string): boolean => new RegExp(REFERENCE.source).test(text);

/**
 * What is wrong with the `${...}` in `text` that are not references (`${AMQP-URL}`, `${}`, an
 * unclosed `${`), or undefined. The one definition of a reference is {@link REFERENCE}: anything
 * else would pass validation and reach the broker unresolved.
 */
export const badReferenceProblem = (text: string): string | undefined => {
  const bad = text.replace(REFERENCE, "").match(/\$\{[^}]*\}?/);
  if (!bad) return undefined;
  return `${bad[0]} is not a reference to the environment: write \${NAME}, where NAME is letters, digits and _ and does not start with a digit`;
};

/** Every `${NAME}` in `value` (any depth), each name once. */
export const envReferences = (value: unknown): string[] => {
  const names = new Set<string>();
  visitStrings(value, (text) => {
    for (const match of text.matchAll(REFERENCE)) names.add(match[1] ?? "");
    return text;
  });
  return [...names];
};

/**
 * A copy of `value` with each `${NAME}` replaced by `env[NAME]`, and the names that had no string
 * value (those are left as written, so nothing half-resolved reaches the broker).
 */
export const resolveEnvReferences = <T>(value: T, env: Record<string, unknown>): { value: T; missing: string[] } => {
  const missing = new Set<string>();
  const resolved = visitStrings(value, (text) =>
    text.replace(REFERENCE, (whole, name: string) => {
      const replacement = env[name];
      if (typeof replacement === "string") return replacement;
      missing.add(name);
      return whole;
    }),
  );
  return { value: resolved as T, missing: [...missing] };
};

const visitStrings = (value: unknown, visit: (text: string) => string): unknown => {
  if (typeof value === "string") return visit(value);
  if (Array.isArray(value)) return value.map((item) => visitStrings(item, visit));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, visitStrings(item, visit)]));
  }
  return value;
};
