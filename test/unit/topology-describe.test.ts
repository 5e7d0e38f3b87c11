/**
 * `topology` in routes.yaml, without a broker: RabbitMQ's refusals (its real reply texts, as
 * amqp-client reports them) turned into one readable line each, and the schema's rules for the
 * exchanges, queues and bindings a route may declare.
 */
import { describe, expect, it } from "vitest";
import { describe as describeRefusal, problemLine } from "../../src/amqp/topology";
import { parseRoutes } from "../../src/config/parse-routes";

/** An error as amqp-client rejects a declare the broker refused: `channel N closed: <reply text> (<code>)`. */
const refusal = (text: string) => new Error(`channel 1 closed: ${text}`);

describe("describe() of a broker's refusal", () => {
  it("names the argument and both values when an argument differs", () => {
    const text =
      "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'jobs' in vhost '/': received 'quorum' but current is 'classic'";
    expect(describeRefusal(refusal(`${text} (406)`))).toEqual({
      problem: "x-queue-type is classic on the broker, quorum in routes.yaml",
      reason: text,
    });
    // RabbitMQ 3.10's own words for two different TTLs.
    expect(
      describeRefusal(
        refusal(
          "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'jobs' in vhost '/': received '2000' but current is '1000' (406)",
        ),
      ).problem,
    ).toBe("x-message-ttl is 1000 on the broker, 2000 in routes.yaml");
  });

  it("says 'not set' for an argument one side does not have, and reads typed values", () => {
    expect(
      describeRefusal(
        refusal(
          "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'jobs' in vhost '/': received the value '1000' of type 'signedint' but current is none (406)",
        ),
      ).problem,
    ).toBe("x-message-ttl is not set on the broker, 1000 in routes.yaml");
    expect(
      describeRefusal(
        refusal(
          "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'jobs' in vhost '/': received none but current is the value '1000' of type 'signedint' (406)",
        ),
      ).problem,
    ).toBe("x-message-ttl is 1000 on the broker, not set in routes.yaml");
    // A classic queue declared without x-queue-type, which routes.yaml says is quorum: called classic.
    expect(
      describeRefusal(
        refusal(
          "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'jobs' in vhost '/': received the value 'quorum' of type 'longstr' but current is none (406)",
        ),
      ).problem,
    ).toBe("x-queue-type is classic on the broker, quorum in routes.yaml");
  });

  it("describes a differing flag or exchange type the same way", () => {
    expect(
      describeRefusal(
        refusal(
          "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'jobs' in vhost '/': received 'false' but current is 'true' (406)",
        ),
      ).problem,
    ).toBe("durable is true on the broker, false in routes.yaml");
    expect(
      describeRefusal(
        refusal(
          "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'events' in vhost '/': received 'topic' but current is 'direct' (406)",
        ),
      ).problem,
    ).toBe("type is direct on the broker, topic in routes.yaml");
  });

  it("says a missing queue or exchange does not exist", () => {
    for (const text of ["NOT_FOUND - no queue 'jobs' in vhost '/'", "NOT_FOUND - no exchange 'events' in vhost '/'"]) {
      expect(describeRefusal(refusal(`${text} (404)`))).toEqual({ problem: "does not exist on the broker", reason: text });
    }
  });

  it("passes on any other refusal in the broker's words, without the reply code", () => {
    const denied = "ACCESS_REFUSED - access to queue 'jobs' in vhost '/' refused for user 'app'";
    expect(describeRefusal(refusal(`${denied} (403)`)).problem).toBe(
      `the broker refused the route's user (declaring needs the configure permission): ${denied}`,
    );
    const locked = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'jobs' in vhost '/'";
    expect(describeRefusal(refusal(`${locked} (405)`))).toEqual({ problem: `the broker refused it: ${locked}`, reason: locked });
  });

  it("makes one line of the object and its problem", () => {
    expect(
      problemLine({
        object: "queue jobs",
        problem: "x-queue-type is classic on the broker, quorum in routes.yaml",
        reason: "PRECONDITION_FAILED - ...",
        code: 406,
      }),
    ).toBe("queue jobs: x-queue-type is classic on the broker, quorum in routes.yaml");
  });
});

const problemsOf = (yaml: string): string[] => {
  const result = parseRoutes(yaml);
  if (result.ok) throw new Error("expected the routes to be refused");
  return result.problems;
};

/** One producer route whose amqp has `topology` (indented YAML lines under it). */
const withTopology = (topology: string) => `routes:
  - id: r1
    path: /r1
    amqp:
      enabled: true
      url: "amqp://h"
      producer: {}
      topology:
${topology}`;

describe("topology in routes.yaml", () => {
  it("refuses an exclusive queue, naming exclusive", () => {
    const problems = problemsOf(withTopology(`        queues:\n          - { name: jobs, exclusive: true }\n`));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^routes\.yaml:10: route "r1": amqp\.topology\.queues\[0\]\.exclusive: exclusive queues cannot be shared/);
  });

  it("refuses an exchange type that is neither AMQP's nor a plugin's", () => {
    expect(problemsOf(withTopology(`        exchanges:\n          - { name: events, type: fanciful }\n`))).toEqual([
      'routes.yaml:10: route "r1": amqp.topology.exchanges[0].type: type fanciful is not one of direct, fanout, topic, headers (or a plugin\'s x-... type)',
    ]);
    // A plugin's type is allowed.
    expect(parseRoutes(withTopology(`        exchanges:\n          - { name: later, type: x-delayed-message }\n`)).ok).toBe(true);
  });

  it("names an unknown key of a queue and the key that was probably meant", () => {
    expect(problemsOf(withTopology(`        queues:\n          - name: jobs\n            duarble: true\n`))).toEqual([
      'routes.yaml:11: route "r1": amqp.topology.queues[0].duarble: unknown key "duarble" (did you mean "durable"?)',
    ]);
  });

  it("fills in the defaults: declare, durable, not auto-deleted, a queue binding with an empty key", () => {
    const result = parseRoutes(
      withTopology(
        `        exchanges: [{ name: events }]\n        queues: [{ name: jobs }]\n        bindings: [{ source: events, destination: jobs }]\n`,
      ),
    );
    expect(result.ok && result.config.routes[0]?.amqp.topology).toEqual([
      {
        mode: "declare",
        exchanges: [{ name: "events", type: "direct", durable: true, auto_delete: false, internal: false, arguments: {} }],
        queues: [{ name: "jobs", durable: true, exclusive: false, auto_delete: false, arguments: {} }],
        bindings: [{ source: "events", destination: "jobs", destination_type: "queue", routing_key: "", arguments: {} }],
      },
    ]);
  });

  it("puts the top-level topology first in every route's, before the route's own", () => {
    const result = parseRoutes(`topology:
  mode: verify
  queues: [{ name: shared }]
routes:
  - id: own
    path: /own
    amqp:
      enabled: true
      url: "amqp://h"
      producer: {}
      topology: { queues: [{ name: mine, arguments: { x-queue-type: quorum } }] }
  - id: plain
    path: /plain
    amqp: { enabled: true, url: "amqp://h", consumer: { queue: shared } }
`);
    if (!result.ok) throw new Error(result.problems.join("\n"));
    const [own, plain] = result.config.routes;
    const shared = { mode: "verify", exchanges: [], bindings: [], queues: [expect.objectContaining({ name: "shared" })] };
    expect(own?.amqp.topology).toEqual([
      shared,
      {
        mode: "declare",
        exchanges: [],
        bindings: [],
        queues: [expect.objectContaining({ name: "mine", arguments: { "x-queue-type": "quorum" } })],
      },
    ]);
    expect(plain?.amqp.topology).toEqual([shared]);
  });

  it("leaves a route without any topology with none", () => {
    const result = parseRoutes(`routes:\n  - { id: r1, path: /r1, amqp: { enabled: true, url: "amqp://h", producer: {} } }\n`);
    expect(result.ok && result.config.routes[0]?.amqp.topology).toEqual([]);
  });
});
