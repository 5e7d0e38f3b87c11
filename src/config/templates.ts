/**
 * Values taken from the request: `{name}` is the route's path parameter `:name`, `{query.name}`
 * a query parameter, `{header.name}` a request header. Used in a producer's exchange, routing key
 * and message properties, and in a consumer's queue. `${NAME}` (the environment) is not a
 * template: it is filled in before anything is served.
 */

/** One piece of a template: text as written, or a value from the request. */
export type TemplatePart =
  { kind: "text"; text: string } | { kind: "path"; name: string } | { kind: "query"; name: string } | { kind: "header"; name: string };

/** `{...}` not preceded by `$`. */
const PLACEHOLDER = /(?<!\$)\{([^{}]*)\}/g;

/** Whether `text` takes anything from the request. */
export const isTemplate = (text: string): boolean => new RegExp(PLACEHOLDER.source).test(text);

/** The parts of `text`, or a problem naming the first placeholder that is not one of the three forms. */
export const parseTemplate = (text: string): { parts: TemplatePart[] } | { problem: string } => {
  const parts: TemplatePart[] = [];
  let last = 0;
  for (const match of text.matchAll(PLACEHOLDER)) {
    const inner = match[1] ?? "";
    if (match.index > last) parts.push({ kind: "text", text: text.slice(last, match.index) });
    last = match.index + match[0].length;
    const [, form, formName, parameter] = /^(?:(query|header)\.([A-Za-z0-9_.~-]+)|([A-Za-z0-9_]+))$/.exec(inner) ?? [];
    const name = formName ?? parameter;
    if (name === undefined) {
      return { problem: `{${inner}} is not a template: use {name} for a path parameter, {query.name} or {header.name}` };
    }
    parts.push(
      form === "query"
        ? { kind: "query", name }
        : form === "header"
          ? { kind: "header", name: name.toLowerCase() }
          : { kind: "path", name },
    );
  }
  if (last < text.length) parts.push({ kind: "text", text: text.slice(last) });
  return { parts };
};

/** The path parameters of a Hono path (`/users/:id/events` → `id`; `:id{[0-9]+}` → `id`). */
export const pathParameters = (path: string): string[] => [...path.matchAll(/:([A-Za-z0-9_]+)/g)].map((match) => match[1] ?? "");

/** What is wrong with `text` as a template on a route with `path`, or undefined. */
export const templateProblem = (text: string, path: string): string | undefined => {
  const parsed = parseTemplate(text);
  if ("problem" in parsed) return parsed.problem;
  const parameters = pathParameters(path);
  const unknown = parsed.parts.find((part) => part.kind === "path" && !parameters.includes(part.name));
  if (unknown?.kind === "path") {
    return `{${unknown.name}} names no path parameter of ${path}${parameters.length > 0 ? ` (it has ${parameters.map((name) => `:${name}`).join(", ")})` : ""}`;
  }
  return undefined;
};

/** Where a template's values come from, for one request. */
export interface TemplateSource {
  param: (name: string) => string | undefined;
  query: (name: string) => string | undefined;
  header: (name: string) => string | undefined;
}

/** `text` with its placeholders filled, or the name of the first value the request lacks (`query parameter x`). */
export const renderTemplate = (parts: readonly TemplatePart[], source: TemplateSource): { value: string } | { missing: string } => {
  let value = "";
  for (const part of parts) {
    if (part.kind === "text") {
      value += part.text;
      continue;
    }
    const found =
      part.kind === "path" ? source.param(part.name) : part.kind === "query" ? source.query(part.name) : source.header(part.name);
    if (found === undefined || found === "") {
      return {
        missing:
          part.kind === "path" ? `path parameter ${part.name}` : `${part.kind === "query" ? "query parameter" : "header"} ${part.name}`,
      };
    }
    value += found;
  }
  return { value };
};
