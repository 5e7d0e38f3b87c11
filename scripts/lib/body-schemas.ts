import Ajv2020 from "ajv/dist/2020.js";
import type { GatewayConfig } from "../../src/config/schema";

/**
 * Why each route's `producer.schema` cannot be used, checked here in Node (the Worker's validator,
 * `@cfworker/json-schema`, interprets a schema as it goes and would only fail on a publish). Ajv
 * compiles it as JSON Schema 2020-12 in strict mode, which refuses what would fail or mislead at
 * run time: a schema invalid against the draft's meta-schema, an unknown keyword (a typo such as
 * `tpye` would otherwise match anything), a `$ref` that resolves to nothing (the gateway fetches
 * no remote schema), a `pattern` that is not a valid Unicode regular expression. And
 * `uniqueItems`, which compares every pair of an array's items: a body of a few thousand items
 * would hold the Worker's CPU for seconds, every other request of the isolate waiting. Run wherever
 * the routes file is loaded (check, start, compile, deploy).
 */
export const bodySchemaProblems = (config: GatewayConfig, file: string): string[] =>
  config.routes.flatMap((route) => {
    const schema = route.amqp.producer?.schema;
    if (schema === undefined) return [];
    const problem = schemaProblem(schema);
    return problem === undefined ? [] : [`${file}: route "${route.id}": amqp.producer.schema ${problem}`];
  });

const schemaProblem = (schema: Record<string, unknown>): string | undefined => {
  const declared = schema["$schema"];
  if (declared !== undefined && declared !== "https://json-schema.org/draft/2020-12/schema") {
    return `declares $schema ${JSON.stringify(declared)}; the gateway checks bodies against JSON Schema 2020-12 (leave $schema out, or give https://json-schema.org/draft/2020-12/schema)`;
  }
  if (JSON.stringify(schema).includes('"uniqueItems":true')) {
    return "uses uniqueItems, which compares every pair of items: a large array would hold the Worker's CPU for every other request; check uniqueness in the consumer";
  }
  const ajv = new Ajv2020({ strictSchema: true, strictTypes: false, strictTuples: false, strictRequired: false, validateFormats: false });
  if (!ajv.validateSchema(schema)) {
    const reasons = (ajv.errors ?? [])
      .slice(0, 5)
      .map((error) => `${error.instancePath || "(the schema)"} ${error.message ?? "is invalid"}`);
    return `is not a valid JSON Schema (draft 2020-12): ${reasons.join("; ")}`;
  }
  try {
    ajv.compile(schema);
  } catch (error) {
    return `cannot be used: ${(error instanceof Error ? error.message : String(error)).split("\n")[0]}`;
  }
  return undefined;
};
