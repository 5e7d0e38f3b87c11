import * as v from "valibot";
import { isMap, isNode, LineCounter, parseDocument, type Document } from "yaml";
import { GatewayConfigSchema, type GatewayConfig } from "./schema";

/** The outcome of reading a routes file: the configuration, or one readable line per problem. */
export type ParseResult = { ok: true; config: GatewayConfig } | { ok: false; problems: string[] };

/**
 * Parses and validates the text of a routes file. Never throws for a user's mistake: broken YAML
 * and every schema problem come back as lines such as
 * `routes.yaml:12: route "enqueue": amqp.url: url is required when amqp.enabled is true`.
 *
 * @param text - the YAML source
 * @param fileName - the name used at the start of each problem line (default `routes.yaml`)
 */
export const parseRoutes = (text: string, fileName = "routes.yaml"): ParseResult => {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const lineOf = (offset: number | undefined) => (offset === undefined ? undefined : lineCounter.linePos(offset).line);
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((error) => `${fileName}:${lineOf(error.pos[0]) ?? 1}: invalid YAML: ${plainYamlMessage(error.message)}`),
    };
  }
  const result = v.safeParse(GatewayConfigSchema, doc.toJS() ?? {});
  if (result.success) return { ok: true, config: result.output };

  const raw = doc.toJS() as { routes?: Array<{ id?: unknown }> } | null;
  const located = result.issues.map((issue) => ({
    keys: (issue.path ?? []).map((item) => item.key as string | number),
    message: issue.message,
  }));
  // A misspelt required key is one mistake: "unknown key paht (did you mean path?)" says it all,
  // so the "path is required" it causes in the same mapping is left out.
  const suggested = new Set(
    located.flatMap(({ keys, message }) => {
      const meant = /\(did you mean "([^"]+)"\?\)$/.exec(message)?.[1];
      return meant ? [JSON.stringify([...keys.slice(0, -1), meant])] : [];
    }),
  );
  const problems = located
    .filter(({ keys, message }) => !(message === "is required" && suggested.has(JSON.stringify(keys))))
    .map(({ keys, message }) => {
      const line = lineOf(offsetOf(doc, keys));
      return { line: line ?? 0, text: `${fileName}${line ? `:${line}` : ""}: ${describeLocation(keys, raw)}${message}` };
    })
    // In the order a reader meets them in the file.
    .sort((a, b) => a.line - b.line);
  return { ok: false, problems: [...new Set(problems.map((problem) => problem.text))] };
};

/** `route "enqueue": amqp.url: ` for a route field, `routes: ` for the list itself. */
const describeLocation = (keys: Array<string | number>, raw: { routes?: Array<{ id?: unknown }> } | null): string => {
  if (keys.length === 0) return "";
  if (keys[0] !== "routes" || typeof keys[1] !== "number") return `${formatField(keys)}: `;
  const id = raw?.routes?.[keys[1]]?.id;
  const route = typeof id === "string" && id !== "" ? `route "${id}"` : `route #${keys[1] + 1}`;
  const field = formatField(keys.slice(2));
  return field ? `${route}: ${field}: ` : `${route}: `;
};

const formatField = (keys: Array<string | number>): string =>
  keys.reduce<string>((out, key) => (typeof key === "number" ? `${out}[${key}]` : out ? `${out}.${key}` : key), "");

/** The parser's first line without its own " at line L, column C:" (the line leads the problem already). */
const plainYamlMessage = (message: string): string => (message.split("\n")[0] ?? message).replace(/ at line \d+, column \d+:?$/, "");

/** Where the field at `keys` starts: the line of its key for a mapping entry, of its item in a list. */
const offsetOf = (doc: Document, keys: Array<string | number>): number | undefined => {
  for (let depth = keys.length; depth > 0; depth--) {
    const parent = depth === 1 ? doc.contents : doc.getIn(keys.slice(0, depth - 1), true);
    const key = keys[depth - 1];
    if (isMap(parent)) {
      const pair = parent.items.find((item) => isNode(item.key) && (item.key as { value?: unknown }).value === key);
      if (pair && isNode(pair.key) && pair.key.range) return pair.key.range[0];
    } else {
      const node = doc.getIn(keys.slice(0, depth), true);
      if (isNode(node) && node.range) return node.range[0];
    }
  }
  return isNode(doc.contents) ? doc.contents.range?.[0] : undefined;
};
