/**
 * The OpenAPI document through `npm start` (and the Node and Deno servers): `GET /openapi.json`
 * and `npm run openapi` give one OpenAPI 3.1 document, which `@readme/openapi-parser` validates,
 * and from which a schema-driven client (`openapi-client-axios`, which makes its methods from the
 * document's operations at run time) publishes, consumes and settles through the gateway.
 */
import { validate } from "@readme/openapi-parser";
import { OpenAPIClientAxios, type OpenAPIV3_1 } from "openapi-client-axios";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, drain, messageCount, uniqueName } from "../helpers/broker";
import { npmRun, npmStart, routesFile, type RunningGateway } from "./npm-start";

const orders = uniqueName("api-orders");
const ann = uniqueName("api-inbox");
const ROUTES = `routes:
  - id: orders
    path: /orders
    amqp:
      enabled: true
      url: "${BROKER_URL}"
      producer:
        routing_key: ${orders}
        allow_delay: true
        schema: { type: object, required: [id, amount], properties: { id: { type: string }, amount: { type: number, minimum: 0 } } }
      consumer: { queue: ${orders}, ack: lease, stream: true, dead_letter_queue: ${orders}.dead }
  - id: inbox
    path: /inbox/:user
    methods: [POST, GET]
    auth: { api_key: { keys: ["\${INBOX_KEY}"] } }
    amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: "{user}", batch: true }, consumer: { queue: "{user}" } }
`;
let gateway: RunningGateway;

beforeAll(async () => {
  await declareQueue(orders);
  await declareQueue(ann);
  gateway = await npmStart(ROUTES, { INBOX_KEY: "inbox-key-1", ADMIN_TOKEN: "openapi-admin" });
}, 180_000);

afterAll(async () => {
  await gateway?.stop();
  await deleteQueue(orders);
  await deleteQueue(ann);
});

const served = async () => (await (await fetch(`${gateway.url}/openapi.json`)).json()) as OpenAPIV3_1.Document;

describe("the OpenAPI document", () => {
  it("is served publicly, passes @readme/openapi-parser's validation, and is what npm run openapi prints", async () => {
    const document = await served();
    expect(document.openapi).toBe("3.1.0");
    const result = await validate(structuredClone(document) as never);
    expect(result).toMatchObject({ valid: true });
    expect(Object.keys(document.paths ?? {})).toEqual(
      expect.arrayContaining([
        "/orders",
        "/orders/ack",
        "/orders/nack",
        "/orders/extend",
        "/orders/dead",
        "/orders/redrive",
        "/inbox/{user}",
        "/amqp/metrics",
      ]),
    );
    // Secrets stay out of it: the key's header is named, never the key.
    expect(JSON.stringify(document)).not.toContain("inbox-key-1");
    const printed = npmRun("openapi", { ROUTES: routesFile(ROUTES) });
    expect(printed.status, printed.stderr).toBe(0);
    const { servers: _servers, ...withoutServers } = document;
    expect(JSON.parse(printed.stdout)).toEqual(withoutServers);
  });

  it("drives a schema-driven client that publishes, consumes and settles through the gateway", async () => {
    const api = new OpenAPIClientAxios({
      definition: await served(),
      axiosConfigDefaults: { baseURL: gateway.url, validateStatus: () => true },
    });
    const client = await api.init();
    const published = await client["post_orders"]?.(undefined, { id: "ord_1", amount: 3 });
    expect(published?.status).toBe(202);
    expect(published?.data).toMatchObject({ status: "published", routing_key: orders });
    const refused = await client["post_orders"]?.(undefined, { id: "ord_2", amount: -1 });
    expect(refused?.status).toBe(400);
    const consumed = await client["get_orders"]?.({ max: 5 });
    expect(consumed?.status).toBe(200);
    const batch = consumed?.data as { messages: Array<{ body: string; lease_id: string; delivery_count: number }> };
    expect(batch.messages.map((message) => JSON.parse(message.body) as unknown)).toEqual([{ id: "ord_1", amount: 3 }]);
    const acked = await client["ack_orders"]?.(undefined, { lease_ids: batch.messages.map((message) => message.lease_id) });
    expect(acked?.status).toBe(200);
    expect(await messageCount(orders)).toBe(0);
    // A path parameter and an API key, as the document describes them.
    const inbox = await client["post_inbox"]?.({ user: ann }, [{ hello: 1 }, { hello: 2 }], { headers: { "X-API-Key": "inbox-key-1" } });
    expect(inbox?.status).toBe(202);
    expect((await drain(ann)).map((message) => message.bodyToString())).toEqual(['{"hello":1}', '{"hello":2}']);
    expect((await client["post_inbox"]?.({ user: ann }, [{ hello: 3 }]))?.status).toBe(401);
  });
});
