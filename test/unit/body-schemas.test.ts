/** What `npm run check` (and start, compile, deploy) says of a `producer.schema` that is not a JSON Schema. */
import { describe, expect, it } from "vitest";
import { parseRoutes } from "../../src/config/parse-routes";
import { bodySchemaProblems } from "../../scripts/lib/body-schemas";

const configWith = (schema: string) => {
  const result = parseRoutes(
    `routes:\n  - id: r1\n    path: /r1\n    amqp: { enabled: true, url: "amqp://h", producer: { schema: ${schema} } }\n`,
  );
  if (!result.ok) throw new Error(result.problems.join("\n"));
  return result.config;
};

describe("a route's producer.schema", () => {
  it("passes when it is a valid JSON Schema 2020-12", () => {
    expect(
      bodySchemaProblems(configWith("{ type: object, required: [a], properties: { a: { type: string, minLength: 1 } } }"), "routes.yaml"),
    ).toEqual([]);
  });

  it("is refused, saying where, when it is not", () => {
    for (const schema of ["{ type: objekt }", '{ properties: { a: { minimum: "x" } } }', "{ required: yes }"]) {
      const [problem] = bodySchemaProblems(configWith(schema), "routes.yaml");
      expect(problem, schema).toMatch(/^routes.yaml: route "r1": amqp.producer.schema is not a valid JSON Schema \(draft 2020-12\): /);
    }
  });

  it("is refused when it would fail or mislead at run time: a typo, a $ref to nothing, a bad pattern, another draft, uniqueItems", () => {
    for (const [schema, reason] of [
      ["{ type: object, properties: { a: { tpye: string } } }", /unknown keyword/],
      ['{ $ref: "#/$defs/nope" }', /cannot be used: .*resolve/],
      ['{ $ref: "https://example.com/schema.json" }', /cannot be used: .*resolve/],
      ["{ type: string, pattern: '^[A-Z]{3}\\-[0-9]{4}$' }", /cannot be used|not a valid/],
      ['{ $schema: "http://json-schema.org/draft-07/schema#", type: object }', /declares \$schema/],
      ["{ type: array, uniqueItems: true }", /uniqueItems/],
    ] as const) {
      const [problem] = bodySchemaProblems(configWith(schema), "routes.yaml");
      expect(problem, schema).toMatch(reason);
    }
    // A recursive schema (a tree) is fine.
    expect(
      bodySchemaProblems(configWith('{ type: object, properties: { children: { type: array, items: { $ref: "#" } } } }'), "f"),
    ).toEqual([]);
  });

  it("must be a mapping", () => {
    const result = parseRoutes(
      `routes:\n  - id: r1\n    path: /r1\n    amqp: { enabled: true, url: "amqp://h", producer: { schema: "object" } }\n`,
    );
    expect(result.ok ? "" : result.problems.join("\n")).toMatch(/schema must be a JSON Schema written as a mapping/);
  });
});
