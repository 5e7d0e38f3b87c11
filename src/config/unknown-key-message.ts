import type * as v from "valibot";

/**
 * Message for `v.strictObject`: names an unknown key and, when one is close, the key that was
 * probably meant (`auto_ak` → `auto_ack`). Wrong types of the whole object get a plain message.
 */
export const unknownKeyMessage =
  (knownKeys: readonly string[]) =>
  (issue: v.BaseIssue<unknown>): string => {
    if (issue.expected !== "never") {
      return issue.input === undefined && issue.path ? "is required" : `must be a mapping, got ${describe(issue.input)}`;
    }
    const last: unknown = issue.path?.at(-1)?.key;
    const key = typeof last === "string" || typeof last === "number" ? String(last) : "";
    const suggestion = closest(key, knownKeys);
    return `unknown key "${key}"${suggestion ? ` (did you mean "${suggestion}"?)` : ""}`;
  };

const describe = (input: unknown): string => (input === null ? "null" : Array.isArray(input) ? "a list" : typeof input);

/** The known key within two edits of `key`, if any. */
const closest = (key: string, candidates: readonly string[]): string | undefined => {
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = editDistance(key.toLowerCase(), candidate);
    if (distance <= 2 && (!best || distance < best.distance)) best = { candidate, distance };
  }
  return best?.candidate;
};

const editDistance = (a: string, b: string): number => {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
};
