import Ajv2020 from "ajv/dist/2020.js";
import type { GatewayConfig } from "../../src/config/schema";

/**
 * Why each route's `producer.schema` is not a valid JSON Schema (draft 2020-12), checked against
 * the draft's meta-schema by Ajv, here in Node: the Worker's validator (`@cfworker/json-schema`)
 * interprets a schema as it goes and would only fail on a publish. Run wherever the routes file
 * is loaded (check, start, compile, deploy), so a bad schema is refused before anything is served.
 */
export const bodySchemaProblems = (config: GatewayConfig, file: string): string[] => {
  const ajv = new Ajv2020({ strict: false, validateFormats: false });
  return config.routes.flatMap((route) => {
    const schema = route.amqp.producer?.schema;
    if (schema === undefined || ajv.validateSchema(schema)) return [];
    const reasons = (ajv.errors ?? [])
      .slice(0, 5)
      .map((error) => `${error.instancePath || "(the schema)"} ${error.message ?? "is invalid"}`);
    return [`${file}: route "${route.id}": amqp.producer.schema is not a valid JSON Schema (draft 2020-12): ${reasons.join("; ")}`];
  });
};
