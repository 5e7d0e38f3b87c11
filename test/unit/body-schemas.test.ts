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

  it("must be a mapping", () => {
    const result = parseRoutes(
      `routes:\n  - id: r1\n    path: /r1\n    amqp: { enabled: true, url: "amqp://h", producer: { schema: "object" } }\n`,
    );
    expect(result.ok ? "" : result.problems.join("\n")).toMatch(/schema must be a JSON Schema written as a mapping/);
  });
});
