/**
 * The README's routes.yaml reference is checked against the schema: every field the schema knows
 * is in its tables, and every bound it enforces is stated there.
 */
import { readFileSync } from "node:fs";
import type * as v from "valibot";
import { describe, expect, it } from "vitest";
import { FOREIGN_HANDLERS, GatewayConfigSchema } from "../../src/config/schema";

const README = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

type AnySchema = v.GenericSchema & {
  entries?: Record<string, AnySchema>;
  wrapped?: AnySchema;
  pipe?: readonly AnySchema[];
  item?: AnySchema;
  /** `v.lazy`: the schema for an input, here a mapping (how `cors: none | {...}` is written). */
  getter?: (input: unknown) => AnySchema;
};

/** The object schema inside optional and pipe wrappers, if there is one. */
const objectOf = (schema: AnySchema): Record<string, AnySchema> | undefined => {
  if (schema.entries) return schema.entries;
  if (schema.getter) return objectOf(schema.getter({}));
  if (schema.wrapped) return objectOf(schema.wrapped);
  if (schema.pipe?.[0] && schema.pipe[0] !== schema) return objectOf(schema.pipe[0]);
  return undefined;
};

/** Dotted names of every field below `schema`, as the README writes them (`producer.exchange`). */
const fieldsOf = (schema: AnySchema, prefix = ""): string[] =>
  Object.entries(objectOf(schema) ?? {}).flatMap(([key, entry]) => {
    const name = `${prefix}${key}`;
    const nested = objectOf(entry);
    return nested ? [name, ...fieldsOf(entry, `${name}.`)] : [name];
  });

const routeSchema = (objectOf(GatewayConfigSchema as unknown as AnySchema)?.["routes"] as AnySchema).pipe?.[0]?.item as AnySchema;

describe("the README's routes.yaml reference", () => {
  it("names every route field of the schema", () => {
    const fields = fieldsOf(routeSchema).filter((name) => !name.startsWith("amqp.") && name !== "amqp");
    expect(fields).toEqual(expect.arrayContaining(["id", "path", "path_prefix", "methods"]));
    for (const name of [...fields, "amqp"].filter((field) => !(FOREIGN_HANDLERS as readonly string[]).includes(field))) {
      expect(README, name).toContain(`| \`${name}\``);
    }
  });

  it("names every top-level field of the schema", () => {
    const fields = fieldsOf(GatewayConfigSchema as unknown as AnySchema).filter((name) => name !== "routes");
    expect(fields).toEqual(
      expect.arrayContaining(["admin.public", "cors.allow_origins", "auth", "rate_limit.key", "management_api.queues"]),
    );
    // The management API's auth and rate_limit are the routes' own schemas, documented once as those.
    const documentedAs = (name: string) => name.replace(/^management_api\.(?=(auth|rate_limit)\.)/, "");
    for (const name of fields) expect(README, name).toContain(`| \`${documentedAs(name)}\``);
  });

  it("names every amqp field of the schema", () => {
    const amqp = objectOf(routeSchema)?.["amqp"] as AnySchema;
    const fields = fieldsOf(amqp).filter((field) => field !== "producer" && field !== "consumer");
    expect(fields).toEqual(expect.arrayContaining(["url", "producer.exchange", "consumer.auto_ack", "shards"]));
    for (const name of fields) {
      expect(README, name).toContain(`| \`${name}\``);
    }
  });

  it("states the bounds the schema enforces", () => {
    for (const bound of [
      "at most 10000",
      "at most 16 MiB",
      /`shards`[^\n]*1 to 64/,
      /confirm_timeout_ms`[^\n]*at least 1/,
      /`connect_timeout_ms`[^\n]*at least 1/,
      /`operation_timeout_ms`[^\n]*at least 1/,
      /`methods`[^\n]*may not be empty/,
    ]) {
      expect(README).toMatch(bound);
    }
  });
});
