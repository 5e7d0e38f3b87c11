/**
 * The OpenAPI document of routes of every shape, each checked with `@readme/openapi-parser` (a
 * validator we did not write): requests/reply, push, prefix and wildcard paths, templated query
 * and header parameters, each kind of `auth`, leases on a templated path, dead letters.
 */
import { validate } from "@readme/openapi-parser";
import { describe, expect, it } from "vitest";
import { parseRoutes } from "../../src/config/parse-routes";
import { openApiDocument } from "../../src/http/openapi";

const url = `url: "amqp://h"`;
const YAML = `routes:
  - { id: rpc, path: /rpc, amqp: { enabled: true, ${url}, producer: { routing_key: svc, reply: true } } }
  - { id: hook, path: /hook, amqp: { enabled: true, ${url}, consumer: { queue: q, push: { url: "https://h/x", secret: "whsec_${Buffer.from("0123456789abcdef").toString("base64")}" } } } }
  - { id: prefix, path: /files, path_prefix: true, amqp: { enabled: true, ${url}, producer: { routing_key: "files.{query.kind}.{header.x-tenant}" } } }
  - { id: wild, path: "/any/*", amqp: { enabled: true, ${url}, consumer: { queue: q } } }
  - { id: basic, path: /b, auth: { basic: { users: { ann: "\${P}" } } }, amqp: { enabled: true, ${url}, producer: {} } }
  - { id: jwt, path: /j, auth: { bearer_jwt: { secret: "\${S}" } }, amqp: { enabled: true, ${url}, producer: {} } }
  - { id: q-key, path: /k, auth: { api_key: { query: key, keys: ["\${K}"] } }, amqp: { enabled: true, ${url}, consumer: { queue: q, stream: true } } }
  - { id: leased, path: "/inbox/:user{[a-z]+}", amqp: { enabled: true, ${url}, consumer: { queue: "inbox.{user}", ack: lease } } }
  - { id: store, path: /store, path_prefix: true, amqp: { enabled: true, ${url}, producer: { routing_key: f, schema: { type: object, properties: { item: { $ref: "#/$defs/item" } }, $defs: { item: { type: string } } } }, consumer: { queue: f, ack: lease } } }
  - { id: orders-v1, path: /o1, amqp: { enabled: true, ${url}, producer: {} } }
  - { id: orders.v1, path: /o2, amqp: { enabled: true, ${url}, producer: {} } }
  - { id: by-query, path: "/a/:id{[0-9]{3}}/b", amqp: { enabled: true, ${url}, consumer: { queue: "q.{query.max}.{id}" } } }
  - { id: dead, path: /jobs, amqp: { enabled: true, ${url}, producer: { routing_key: jobs, batch: true }, consumer: { queue: jobs, ack: lease, max_deliveries: 3, dead_letter_queue: jobs.dead } } }
management_api: { ${url}, auth: { basic: { users: { ops: "\${O}" } } }, exchanges: [amq.default, events], queues: [jobs] }
`;

describe("the OpenAPI document", () => {
  it("is valid OpenAPI 3.1 for routes of every shape", async () => {
    const parsed = parseRoutes(YAML);
    if (!parsed.ok) throw new Error(parsed.problems.join("\n"));
    const document = openApiDocument(parsed.config, "https://gateway.example.com");
    const result = await validate(structuredClone(document) as never);
    expect(result, JSON.stringify(result)).toMatchObject({ valid: true });
    const paths = document["paths"] as Record<string, Record<string, { parameters?: Array<{ name: string; in: string }> }>>;
    expect(Object.keys(paths)).toEqual(
      expect.arrayContaining([
        "/rpc",
        "/rpc/replies/{reply_id}",
        "/hook",
        "/hook/pause",
        "/files/{rest}",
        "/any/{rest}",
        "/inbox/{user}",
        "/inbox/{user}/ack",
        "/jobs/redrive",
        "/api/exchanges/{vhost}/{exchange}/publish",
        "/api/queues/{vhost}/{queue}/get",
      ]),
    );
    // The management API's listed exchanges and queues, and its basic auth.
    const publish = paths["/api/exchanges/{vhost}/{exchange}/publish"]?.["post"] as unknown as {
      parameters: Array<{ name: string; schema: { enum?: string[] } }>;
      security: unknown;
    };
    expect(publish.parameters.find(({ name }) => name === "exchange")?.schema.enum).toEqual(["amq.default", "events"]);
    expect(publish.security).toEqual([{ management_api_basic: [] }]);
    // A prefix route's leases are settled at its own path, as the gateway serves them.
    expect(Object.keys(paths)).toEqual(expect.arrayContaining(["/store/ack", "/a/{id}/b"]));
    expect(Object.keys(paths)).not.toContain("/store/{rest}/ack");
    const ids = Object.values(paths).flatMap((operations) =>
      Object.values(operations).map((operation) => (operation as { operationId: string }).operationId),
    );
    expect(new Set(ids).size).toBe(ids.length);
    expect(paths["/files/{rest}"]?.["post"]?.parameters?.map(({ name, in: where }) => `${where}:${name}`)).toEqual(
      expect.arrayContaining(["path:rest", "query:kind", "header:x-tenant"]),
    );
    const schemes = (document["components"] as { securitySchemes: Record<string, unknown> }).securitySchemes;
    expect(schemes).toMatchObject({
      basic_basic: { type: "http", scheme: "basic" },
      jwt_bearer_jwt: { type: "http", scheme: "bearer" },
      q_key_api_key: { type: "apiKey", in: "query", name: "key" },
    });
  });
});
