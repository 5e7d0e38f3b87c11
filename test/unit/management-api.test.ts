/**
 * The management API dialect's pure parts: the `management_api` block's validation, the checks of
 * a publish's `properties`, their size as amqp-client (as patched) encodes them, and how a
 * delivery's properties are shown. Its behaviour against the broker, judged by rabbitmqadmin, is
 * test/e2e/management-api.test.ts.
 */
import { AMQPView } from "@cloudamqp/amqp-client/amqp-view";
import { describe, expect, it } from "vitest";
import { parseRoutes } from "../../src/config/parse-routes";
import { resolveConfig } from "../../src/config/resolve-config";
import { basicPropertiesBytes } from "../../src/contract/frame-limits";
import { managementProperties } from "../../src/http/management-properties";
import { shownProperties } from "../../src/amqp/management-messages";
import { GatewayError } from "../../src/http/gateway-error";

const URL = "amqp://guest:guest@127.0.0.1:5672/";
const ROUTES = `routes:\n  - { id: r1, path: /r1, amqp: { enabled: true, url: "${URL}", producer: {} } }\n`;

const parsed = (block: string, routes = ROUTES) => parseRoutes(`${routes}management_api:\n${block}`);
const problemsOf = (block: string, routes = ROUTES): string[] => {
  const result = parsed(block, routes);
  if (result.ok) throw new Error("expected the block to be refused");
  return result.problems;
};

describe("the management_api block", () => {
  it("is off without the block, and filled in with its defaults with it", () => {
    const without = parseRoutes(ROUTES);
    expect(without.ok && without.config.management_api).toBeUndefined();
    const result = parsed(`  url: "${URL}"\n  auth: { basic: { users: { ops: pw } } }\n  exchanges: [amq.default]\n`);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.config.management_api).toEqual({
      id: "management_api",
      auth: { kind: "basic", users: { ops: "pw" } },
      exchanges: ["amq.default"],
      queues: [],
      max_body_bytes: 2 * 1024 * 1024,
      amqp: {
        url: URL,
        topology: [],
        heartbeat_s: 30,
        connect_timeout_ms: 5000,
        shards: 1,
        operation_timeout_ms: 5000,
        idle_disconnect_s: 60,
      },
    });
  });

  it("needs auth, and auth that is not none", () => {
    expect(problemsOf(`  url: "${URL}"\n`).join("\n")).toMatch(/management_api\.auth: is required/);
    expect(problemsOf(`  url: "${URL}"\n  auth: none\n`).join("\n")).toMatch(/needs auth/);
  });

  it("refuses a bad url, an unknown key, an empty name and a rate_limit its auth cannot count by", () => {
    expect(problemsOf(`  url: "http://broker"\n  auth: { basic: { users: { ops: pw } } }\n`).join("\n")).toMatch(/scheme "http"/);
    expect(problemsOf(`  url: "${URL}"\n  auth: { basic: { users: { ops: pw } } }\n  queue: [jobs]\n`).join("\n")).toMatch(
      /unknown key "queue" \(did you mean "queues"\?\)/,
    );
    expect(problemsOf(`  url: "${URL}"\n  auth: { basic: { users: { ops: pw } } }\n  exchanges: [""]\n`).join("\n")).toMatch(
      /amq\.default/,
    );
    // 200 characters, 400 bytes: more than an AMQP short string.
    expect(problemsOf(`  url: "${URL}"\n  auth: { basic: { users: { ops: pw } } }\n  queues: ["${"é".repeat(200)}"]\n`).join("\n")).toMatch(
      /at most 255 bytes/,
    );
    expect(
      problemsOf(
        `  url: "${URL}"\n  auth: { basic: { users: { ops: pw } } }\n  rate_limit: { requests: 5, period_s: 1, key: api_key }\n`,
      ).join("\n"),
    ).toMatch(/needs auth api_key/);
  });

  it("refuses a route whose id is the management API's object", () => {
    const routes = `routes:\n  - { id: management_api, path: /r1, amqp: { enabled: true, url: "${URL}", producer: {} } }\n`;
    expect(problemsOf(`  url: "${URL}"\n  auth: { basic: { users: { ops: pw } } }\n`, routes).join("\n")).toMatch(/management API's own/);
  });

  it("is refused when a password from the environment is blank", () => {
    const result = parsed(`  url: "${URL}"\n  auth: { basic: { users: { ops: "\${OPS}" } } }\n`);
    if (!result.ok) throw new Error(result.problems.join("; "));
    const resolved = resolveConfig(result.config, { OPS: " " });
    expect(resolved.ok).toBe(false);
    expect(!resolved.ok && resolved.problems.join("\n")).toMatch(/management_api: auth\.basic\.users\.ops is empty/);
  });
});

const refusal = (properties: unknown): string => {
  try {
    managementProperties(properties, "guest", "management_api");
  } catch (error) {
    if (error instanceof GatewayError && error.status === 400) return error.message;
    throw error;
  }
  throw new Error(`expected ${JSON.stringify(properties)} to be refused`);
};

describe("a publish's properties", () => {
  it("become amqp-client's properties", () => {
    expect(
      managementProperties(
        {
          content_type: "text/plain",
          delivery_mode: 2,
          priority: 0,
          timestamp: 1_700_000_000,
          expiration: "0600",
          user_id: "guest",
          headers: { n: 1, s: "\ud800", nested: { list: [true, 2.5] } },
          ignored: "as the broker ignores it",
        },
        "guest",
        "management_api",
      ),
    ).toEqual({
      contentType: "text/plain",
      deliveryMode: 2,
      timestamp: new Date(1_700_000_000_000),
      expiration: "600",
      userId: "guest",
      // Whole numbers as longs, as the broker's API writes them.
      headers: { n: 1n, s: "\ufffd", nested: { list: [true, 2.5] } },
    });
    // The broker's own rendering of no properties, sent back.
    expect(managementProperties([], "guest", "management_api")).toEqual({});
  });

  it("are refused, naming the property, where the broker would refuse them or close the channel", () => {
    expect(refusal("text")).toMatch(/properties must be a JSON object/);
    expect(refusal({ delivery_mode: "2" })).toMatch(/delivery_mode/);
    expect(refusal({ priority: 256 })).toMatch(/priority/);
    expect(refusal({ timestamp: 1.5 })).toMatch(/timestamp/);
    expect(refusal({ expiration: 60000 })).toMatch(/expiration/);
    expect(refusal({ expiration: "4294967296" })).toMatch(/expiration/);
    expect(refusal({ user_id: "admin" })).toMatch(/user_id/);
    expect(refusal({ reply_to: "amq.rabbitmq.reply-to.g1h2" })).toMatch(/direct reply-to/);
    expect(refusal({ cluster_id: "c" })).toMatch(/cluster_id/);
    expect(refusal({ message_id: "m".repeat(256) })).toMatch(/message_id must be at most 255 bytes/);
    expect(refusal({ headers: [] })).toMatch(/headers must be a JSON object/);
    expect(refusal({ headers: { a: { b: null } } })).toMatch(/headers\.a\.b is null/);
    expect(refusal({ headers: { big: 2 ** 60 } })).toMatch(/finite number/);
    expect(refusal({ headers: { BCC: "k" } })).toMatch(/BCC must be a list/);
    expect(refusal({ headers: { CC: ["ok", "amq.rabbitmq.reply-to.g2dkAA1yYWJiaXQ=.x"] } })).toMatch(/CC names RabbitMQ's direct reply-to/);
    expect(refusal(JSON.parse('{"headers":{"nested":{"__proto__":1}}}'))).toMatch(/__proto__ cannot be a name/);
    expect(refusal({ headers: { "X-Delivery-Count": 1 } })).toMatch(/set by the gateway/);
    expect(refusal({ headers: { ["k".repeat(256)]: 1 } })).toMatch(/a name must be at most 255 bytes/);
    let deep: unknown = 1;
    for (let level = 0; level < 40; level++) deep = { deeper: deep };
    expect(refusal({ headers: { deep } })).toMatch(/nests more than 16 levels/);
    expect(refusal({ headers: { big: "v".repeat(131_050) } })).toMatch(/one AMQP frame/);
  });

  it("are measured as amqp-client encodes them", () => {
    const properties = managementProperties(
      {
        content_type: "application/json",
        content_encoding: "gzip",
        delivery_mode: 1,
        priority: 9,
        correlation_id: "c",
        reply_to: "r",
        expiration: "1000",
        message_id: "m",
        timestamp: 1,
        type: "t",
        user_id: "guest",
        app_id: "a",
        headers: { s: "é", t: true, i: -5, l: 3_000_000_000, d: 0.1, a: [1, "x", [false]], f: { g: { h: "" } } },
      },
      "guest",
      "management_api",
    );
    const view = new AMQPView(new ArrayBuffer(4096));
    expect(basicPropertiesBytes(properties)).toBe(view.setProperties(0, properties));
  });
});

describe("a delivery's properties, as the broker's API shows them", () => {
  it("in the reverse of their AMQP order, timestamps in seconds, tables sorted; [] when none", () => {
    const shown = shownProperties({
      contentType: "text/plain",
      headers: { z: 1, a: { y: new Date(2_000), b: new Uint8Array([0xff]) }, v: null, u: new Uint8Array([0x68, 0x69]) },
      deliveryMode: 2,
      timestamp: new Date(1_700_000_000_000),
      appId: "app",
    });
    expect(JSON.stringify(shown)).toBe(
      '{"app_id":"app","timestamp":1700000000,"delivery_mode":2,' +
        '"headers":{"a":{"b":"Not UTF-8, base64 is: /w==","y":2},"u":"hi","v":"undefined","z":1},"content_type":"text/plain"}',
    );
    expect(shownProperties({})).toEqual([]);
  });
});
