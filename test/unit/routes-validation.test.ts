import { describe, expect, it } from "vitest";
import { parseRoutes } from "../../src/config/parse-routes";

const problemsOf = (yaml: string): string[] => {
  const result = parseRoutes(yaml);
  if (result.ok) throw new Error("expected the routes to be refused");
  return result.problems;
};

const route = (body: string) => `routes:\n  - id: r1\n    path: /r1\n${body}`;
const amqp = (body: string) => route(`    amqp:\n      enabled: true\n${body}`);

describe("a valid routes file", () => {
  it("gets runway's defaults filled in", () => {
    const result = parseRoutes(amqp(`      url: "amqp://guest:guest@127.0.0.1:5672/"\n      producer: {}\n      consumer: { queue: q }\n`));
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const { amqp: config, path_prefix } = result.config.routes[0]!;
    expect(path_prefix).toBe(false);
    expect(config?.producer).toEqual({
      exchange: "",
      routing_key: "",
      persistent: true,
      mandatory: false,
      confirm_timeout_ms: 5000,
      max_body_bytes: 1048576,
      batch: false,
      max_batch: 1000,
      dedupe_window_s: 0,
      dedupe_max_entries: 10000,
      reply: false,
      reply_timeout_ms: 10000,
      allow_delay: false,
    });
    expect(config).toMatchObject({ topology: [], heartbeat_s: 30, connect_timeout_ms: 5000, operation_timeout_ms: 5000, shards: 1 });
    expect(config?.location_hint).toBeUndefined();
    expect(config?.consumer).toEqual({ queue: "q", auto_ack: false, lease_timeout_ms: 30000, max_messages: 100, wait_s: 0, stream: false });
  });

  it("has its methods normalised to upper case", () => {
    const result = parseRoutes(route(`    methods: [post]\n    amqp: { enabled: true, url: "amqp://h", producer: {} }\n`));
    expect(result.ok && result.config.routes[0]?.methods).toEqual(["POST"]);
  });

  it("comes out with every method it serves, each once, and its backend without `enabled`", () => {
    const both = parseRoutes(amqp(`      url: "amqp://h"\n      producer: {}\n      consumer: { queue: q }\n`));
    expect(both.ok && both.config.routes[0]?.methods).toEqual(["GET", "POST", "PUT", "DELETE", "PATCH"]);
    const producerOnly = parseRoutes(route(`    methods: [post, POST, put]\n    amqp: { enabled: true, url: "amqp://h", producer: {} }\n`));
    expect(producerOnly.ok && producerOnly.config.routes[0]?.methods).toEqual(["POST", "PUT"]);
    const consumerOnly = parseRoutes(amqp(`      url: "amqp://h"\n      consumer: { queue: q }\n`));
    expect(consumerOnly.ok && consumerOnly.config.routes[0]?.methods).toEqual(["GET", "DELETE", "PATCH"]);
    expect(consumerOnly.ok && consumerOnly.config.routes[0]?.amqp).not.toHaveProperty("enabled");
    expect(consumerOnly.ok && consumerOnly.config.routes[0]?.amqp).not.toHaveProperty("producer");
  });

  it("may take its url from the environment", () => {
    expect(parseRoutes(amqp(`      url: "\${AMQP_URL}"\n      producer: {}\n`)).ok).toBe(true);
  });

  it("may share a path between routes with disjoint methods", () => {
    const yaml = `routes:
  - { id: a, path: /jobs, methods: [POST], amqp: { enabled: true, url: "amqp://h", producer: {} } }
  - { id: b, path: /jobs, methods: [GET], amqp: { enabled: true, url: "amqp://h", consumer: { queue: q } } }
`;
    expect(parseRoutes(yaml).ok).toBe(true);
  });
});

describe("a routes file is refused, naming the route and the field, when", () => {
  it("amqp is enabled without a url", () => {
    expect(problemsOf(amqp(`      producer: {}\n`))).toEqual([
      'routes.yaml:4: route "r1": amqp: url is required when amqp.enabled is true',
    ]);
  });

  it("a route has no handler at all", () => {
    expect(problemsOf(route(`    amqp: { enabled: false, url: "amqp://h" }\n`))).toEqual([
      'routes.yaml:2: route "r1": the route has no handler: set amqp.enabled: true with a url',
    ]);
  });

  it("the url has a scheme other than amqp, amqps, ws and wss", () => {
    expect(problemsOf(amqp(`      url: "http://broker:5672/"\n      producer: {}\n`))).toEqual([
      'routes.yaml:6: route "r1": amqp.url: scheme "http" is not supported (use amqp, amqps, ws or wss)',
    ]);
  });

  it("two routes have the same id", () => {
    const yaml = `routes:
  - { id: same, path: /a, amqp: { enabled: true, url: "amqp://h", producer: {} } }
  - { id: same, path: /b, amqp: { enabled: true, url: "amqp://h", producer: {} } }
`;
    expect(problemsOf(yaml)).toEqual(['routes.yaml:3: route "same": id: duplicate id "same"']);
  });

  it("an enabled amqp has neither producer nor consumer", () => {
    expect(problemsOf(amqp(`      url: "amqp://h"\n`))).toEqual([
      'routes.yaml:4: route "r1": amqp: an enabled amqp route needs a producer, a consumer or both',
    ]);
  });

  it("several rules between fields at once, each reported", () => {
    expect(problemsOf(route(`    methods: [GET, POST]\n    upstream: http://backend\n    amqp: { enabled: true }\n`))).toEqual([
      'routes.yaml:4: route "r1": methods: GET consumes, but the route has no consumer',
      'routes.yaml:4: route "r1": methods: POST publishes, but the route has no producer',
      'routes.yaml:5: route "r1": upstream: upstream cannot be combined with amqp: both are innermost handlers',
      'routes.yaml:6: route "r1": amqp: url is required when amqp.enabled is true',
      'routes.yaml:6: route "r1": amqp: an enabled amqp route needs a producer, a consumer or both',
    ]);
  });

  it("a path does not start with /", () => {
    expect(problemsOf(`routes:\n  - { id: r1, path: jobs, amqp: { enabled: true, url: "amqp://h", producer: {} } }\n`)).toEqual([
      'routes.yaml:2: route "r1": path: path must start with /',
    ]);
  });

  it("a method is unknown, or is HEAD", () => {
    const problems = problemsOf(
      route(`    methods: [GET, FETCH, HEAD]\n    amqp: { enabled: true, url: "amqp://h", consumer: { queue: q } }\n`),
    );
    expect(problems).toEqual([
      'routes.yaml:4: route "r1": methods[1]: unknown method FETCH (use GET, POST, PUT, DELETE, PATCH)',
      'routes.yaml:4: route "r1": methods[2]: HEAD cannot be routed: HEAD would discard a message and OPTIONS is answered by the gateway',
    ]);
  });

  it("a method cannot be served by the route", () => {
    expect(problemsOf(route(`    methods: [GET]\n    amqp: { enabled: true, url: "amqp://h", producer: {} }\n`))).toEqual([
      'routes.yaml:4: route "r1": methods: GET consumes, but the route has no consumer',
    ]);
  });

  it("a key is unknown, suggesting the one that was meant", () => {
    expect(problemsOf(amqp(`      url: "amqp://h"\n      consumer: { queue: q, auto_ak: true }\n`))).toEqual([
      'routes.yaml:7: route "r1": amqp.consumer.auto_ak: unknown key "auto_ak" (did you mean "auto_ack"?)',
    ]);
  });

  it("amqp is combined with another innermost handler", () => {
    expect(problemsOf(route(`    upstream: http://backend\n    amqp: { enabled: true, url: "amqp://h", producer: {} }\n`))).toEqual([
      'routes.yaml:4: route "r1": upstream: upstream cannot be combined with amqp: both are innermost handlers',
    ]);
  });

  it("another innermost handler is used without amqp", () => {
    expect(problemsOf(route(`    static: /var/www\n`))).toEqual([
      'routes.yaml:4: route "r1": static: static is not supported by this gateway (only amqp routes are)',
    ]);
  });

  it("two routes on one path serve the same method", () => {
    const yaml = `routes:
  - { id: a, path: /jobs, amqp: { enabled: true, url: "amqp://h", producer: {} } }
  - { id: b, path: /jobs, methods: [PUT], amqp: { enabled: true, url: "amqp://h", producer: {} } }
`;
    expect(problemsOf(yaml)).toEqual(['routes.yaml:3: route "b": methods PUT on /jobs are already served by route "a"']);
  });

  it("a route claims the stats endpoint /amqp", () => {
    expect(problemsOf(`routes:\n  - { id: r1, path: /amqp, amqp: { enabled: true, url: "amqp://h", consumer: { queue: q } } }\n`)).toEqual([
      'routes.yaml:2: route "r1": path: /amqp is reserved for the gateway\'s stats',
    ]);
  });

  it("the YAML is broken, giving its line", () => {
    expect(problemsOf("routes:\n  - id: a\n   path: /x\n")).toEqual(["routes.yaml:3: invalid YAML: Sequence item without - indicator"]);
  });

  it("max_body_bytes is over the broker's default max_message_size", () => {
    expect(problemsOf(amqp(`      url: "amqp://h"\n      producer: { max_body_bytes: 20000000 }\n`))).toEqual([
      'routes.yaml:7: route "r1": amqp.producer.max_body_bytes: max_body_bytes must be at most 16777216 (the broker\'s default max_message_size)',
    ]);
  });

  it("a producer header is CC or BCC, which RabbitMQ takes only as a list (a string closes the channel)", () => {
    expect(problemsOf(amqp(`      url: "amqp://h"\n      producer: { headers: { CC: "{query.to}", BCC: x, cc: fine } }\n`))).toEqual([
      "routes.yaml:7: route \"r1\": amqp.producer.headers.CC: headers: CC is RabbitMQ's sender-selected distribution header, which takes only a list of routing keys (a string closes the route's channel)",
      "routes.yaml:7: route \"r1\": amqp.producer.headers.BCC: headers: BCC is RabbitMQ's sender-selected distribution header, which takes only a list of routing keys (a string closes the route's channel)",
    ]);
  });

  it("a location hint or a shard count is out of range", () => {
    expect(problemsOf(amqp(`      url: "amqp://h"\n      shards: 0\n      location_hint: mars\n      producer: {}\n`))).toEqual([
      'routes.yaml:7: route "r1": amqp.shards: shards must be at least 1',
      'routes.yaml:8: route "r1": amqp.location_hint: location_hint mars is not one of wnam, enam, sam, weur, eeur, apac, oc, afr, me',
    ]);
  });

  it("there are no routes", () => {
    expect(problemsOf("routes: []\n")).toEqual(["routes.yaml:1: routes: routes must list at least one route"]);
  });
});

describe("how problems are reported", () => {
  it("a misspelt required key once, as the unknown key with its suggestion, not also as missing", () => {
    const problems = problemsOf(`routes:\n  - id: a\n    paht: /x\n    amqp: { enabled: true, url: "amqp://h/", producer: {} }\n`);
    expect(problems).toEqual(['routes.yaml:3: route "a": paht: unknown key "paht" (did you mean "path"?)']);
  });

  it("in the order of their lines", () => {
    const problems = problemsOf(
      `routes:\n  - id: a\n    path: /a\n    amqp: { enabled: true, url: "http://h/", producer: {} }\n  - id: a\n    path: b\n    amqp: { enabled: true, url: "amqp://h/", producer: {} }\n`,
    );
    const lines = problems.map((problem) => Number(/^routes\.yaml:(\d+):/.exec(problem)?.[1]));
    expect(lines).toEqual([...lines].sort((x, y) => x - y));
    expect(problems).toHaveLength(3);
  });

  it("a YAML syntax error as one plain line at its place", () => {
    expect(problemsOf(`routes:\n  - id: a\n    path: /x\n    bad: [\n`)[0]).toMatch(/^routes\.yaml:\d: invalid YAML: [^\n]+[^:]$/);
  });
});

describe("a ${...} that is not a reference to the environment", () => {
  it.each(["${AMQP-URL}", "amqp://u:${}@h/", "amqp://u:${PASS@h/", "${1ST}"])("%s is refused, with what a reference is", (url) => {
    expect(problemsOf(amqp(`      url: "${url}"\n      producer: {}\n`)).join("\n")).toMatch(
      /amqp\.url: \$\{[^ ]* is not a reference to the environment: write \$\{NAME\}/,
    );
  });

  it("is refused in any string, not only in url", () => {
    expect(problemsOf(amqp(`      url: "amqp://h/"\n      producer: { routing_key: "\${ROUTING-KEY}" }\n`))).toEqual([
      'routes.yaml:7: route "r1": amqp.producer.routing_key: ${ROUTING-KEY} is not a reference to the environment: write ${NAME}, where NAME is letters, digits and _ and does not start with a digit',
    ]);
  });
});

describe("cors, auth and rate_limit", () => {
  const withAccess = (access: string) => route(`${access}    amqp: { enabled: true, url: "amqp://h", producer: {} }\n`);

  it("refuse an API key header that is published with the message", () => {
    expect(problemsOf(withAccess(`    auth: { api_key: { header: X-AMQP-Header-Token, keys: ["\${K}"] } }\n`))).toEqual([
      'routes.yaml:4: route "r1": auth.api_key.header: X-AMQP-Header-Token is published with the message (a property or X-AMQP-Header-*), so the key would reach every consumer; use another header',
    ]);
    expect(problemsOf(withAccess(`    auth: { api_key: { header: Idempotency-Key, keys: ["\${K}"] } }\n`))).toHaveLength(1);
  });

  it("refuse origins that are not origins, wildcards included, and * with credentials", () => {
    expect(problemsOf(withAccess(`    cors: { allow_origins: ["https://*.example.com", "https://a.com/"] }\n`))).toEqual([
      'routes.yaml:4: route "r1": cors: allow_origins: https://*.example.com, https://a.com/ is not an origin (scheme://host[:port]: no path, no trailing /, no wildcard)',
    ]);
    expect(problemsOf(withAccess(`    cors: { allow_origins: ["*"], allow_credentials: true }\n`))[0]).toMatch(
      /cannot be used with allow_credentials/,
    );
  });

  it("refuse a bearer_jwt whose claims could never match, or with two keys or none", () => {
    expect(problemsOf(withAccess(`    auth: { bearer_jwt: { secret: "\${S}", audience: [] } }\n`))[0]).toMatch(
      /audience must list at least one name/,
    );
    expect(problemsOf(withAccess(`    auth: { bearer_jwt: { secret: "\${S}", issuer: "" } }\n`))[0]).toMatch(/issuer must not be empty/);
    expect(problemsOf(withAccess(`    auth: { bearer_jwt: { secret: "\${S}", jwks_url: "https://x/" } }\n`))[0]).toMatch(
      /give secret \(HS256\) or jwks_url/,
    );
  });

  it("refuse a rate_limit key that the route's auth cannot give", () => {
    expect(problemsOf(withAccess(`    rate_limit: { requests: 1, period_s: 1, key: jwt_sub }\n`))).toEqual([
      'routes.yaml:4: route "r1": rate_limit: rate_limit.key jwt_sub needs auth bearer_jwt on the route (it has none)',
    ]);
  });

  it("take none on a route for cors and rate_limit, and apply the top-level defaults otherwise", () => {
    const result = parseRoutes(`cors: { allow_origins: ["https://app.example.com"] }
auth: { api_key: { keys: ["\${K}"] } }
routes:
  - { id: a, path: /a, cors: none, auth: none, amqp: { enabled: true, url: "amqp://h", producer: {} } }
  - { id: b, path: /b, amqp: { enabled: true, url: "amqp://h", producer: {} } }
`);
    if (!result.ok) throw new Error(result.problems.join("\n"));
    const [a, b] = result.config.routes;
    expect(a?.cors).toBeUndefined();
    expect(a?.auth).toEqual({ kind: "none" });
    expect(b?.cors?.allow_origins).toEqual(["https://app.example.com"]);
    expect(b?.auth).toEqual({ kind: "api_key", header: "X-API-Key", keys: ["${K}"] });
  });
});

describe("consumer modes", () => {
  const consumer = (fields: string) => amqp(`      url: "amqp://h"\n      consumer: { queue: q, ${fields} }\n`);

  it("refuse auto_ack with ack: lease, and bounds of the lease and the batch", () => {
    expect(problemsOf(consumer("auto_ack: true, ack: lease"))).toEqual([
      'routes.yaml:7: route "r1": amqp.consumer: auto_ack: true and ack: lease exclude each other; choose one',
    ]);
    expect(problemsOf(consumer("ack: lease, lease_timeout_ms: 43200001"))[0]).toMatch(/lease_timeout_ms must be at most 43200000 \(12 h\)/);
    expect(problemsOf(consumer("max_messages: 101"))[0]).toMatch(/max_messages must be at most 100/);
    expect(problemsOf(consumer("ack: manual"))[0]).toMatch(/ack manual is not supported \(use lease, or leave it out\)/);
  });

  it("bound max_deliveries, and give dead letters a fixed queue on a fixed path", () => {
    expect(problemsOf(consumer("ack: lease, max_deliveries: 1001"))[0]).toMatch(/max_deliveries must be at most 1000/);
    expect(problemsOf(consumer("ack: lease, max_deliveries: 0"))[0]).toMatch(/max_deliveries/);
    expect(parseRoutes(consumer("ack: lease, max_deliveries: 5, dead_letter_queue: q.dead")).ok).toBe(true);
    expect(problemsOf(consumer("dead_letter_queue: q"))[0]).toMatch(/dead_letter_queue must not be the route's own queue/);
    const templated = parseRoutes(
      `routes:\n  - id: r1\n    path: /inbox/:user\n    amqp: { enabled: true, url: "amqp://h", consumer: { queue: "inbox.{user}", dead_letter_queue: dead } }\n`,
    );
    expect(templated.ok).toBe(false);
    const prefixed = parseRoutes(
      `routes:\n  - id: r1\n    path: /jobs\n    path_prefix: true\n    amqp: { enabled: true, url: "amqp://h", consumer: { queue: jobs, dead_letter_queue: dead } }\n`,
    );
    expect(prefixed.ok).toBe(false);
  });

  it("keep /amqp and /amqp/metrics for the gateway", () => {
    for (const path of ["/amqp", "/amqp/metrics/"]) {
      const result = parseRoutes(`routes:\n  - id: r1\n    path: ${path}\n    amqp: { enabled: true, url: "amqp://h", producer: {} }\n`);
      expect(result.ok ? "" : result.problems.join("\n")).toMatch(/is reserved for the gateway's/);
    }
  });

  it("take allow_delay as a boolean, not with reply", () => {
    const producer = (fields: string) => amqp(`      url: "amqp://h"\n      producer: { ${fields} }\n`);
    expect(parseRoutes(producer("allow_delay: true")).ok).toBe(true);
    expect(problemsOf(producer("allow_delay: yes"))[0]).toMatch(/allow_delay must be true or false/);
    expect(problemsOf(producer("allow_delay: true, reply: true"))[0]).toMatch(/allow_delay and reply exclude each other/);
    const templated = parseRoutes(
      `routes:\n  - id: r1\n    path: /x/:ex\n    amqp: { enabled: true, url: "amqp://h", producer: { exchange: "{ex}", allow_delay: true } }\n`,
    );
    expect(templated.ok ? "" : templated.problems.join("\n")).toMatch(
      /allow_delay needs a producer.exchange that takes no values from the request/,
    );
    expect(problemsOf(producer("exchange: runway.delay.1s"))[0]).toMatch(/runway.delay.\* are the gateway's delay exchanges/);
    expect(problemsOf(producer("headers: { runway-delivery-count: '1' }"))[0]).toMatch(/set by the gateway/);
  });

  it("default to 30 s leases and batches of up to 100", () => {
    const result = parseRoutes(consumer("ack: lease"));
    expect(result.ok && result.config.routes[0]?.amqp.consumer).toEqual({
      queue: "q",
      auto_ack: false,
      ack: "lease",
      lease_timeout_ms: 30000,
      max_messages: 100,
      wait_s: 0,
      stream: false,
    });
  });
});

describe("values from the request", () => {
  it("refuse a template naming a path parameter the path lacks, or an unknown form", () => {
    expect(
      problemsOf(
        `routes:\n  - { id: r1, path: "/users/:id", amqp: { enabled: true, url: "amqp://h", producer: { routing_key: "u.{user}", type: "{cookie.x}" } } }\n`,
      ),
    ).toEqual([
      'routes.yaml:2: route "r1": amqp: producer.routing_key: {user} names no path parameter of /users/:id (it has :id)',
      'routes.yaml:2: route "r1": amqp: producer.type: {cookie.x} is not a template: use {name} for a path parameter, {query.name} or {header.name}',
    ]);
    expect(
      problemsOf(`routes:\n  - { id: r1, path: /in, amqp: { enabled: true, url: "amqp://h", consumer: { queue: "q.{who}" } } }\n`),
    ).toEqual(['routes.yaml:2: route "r1": amqp: consumer.queue: {who} names no path parameter of /in']);
  });

  it("accept path, query and header values, and leave ${NAME} to the environment", () => {
    const result = parseRoutes(
      `routes:\n  - { id: r1, path: "/users/:id", amqp: { enabled: true, url: "\${URL}", producer: { routing_key: "u.{id}.{query.r}.{header.x-t}", exchange: "\${EXCHANGE}" } } }\n`,
    );
    expect(result.ok).toBe(true);
  });
});

describe("issue 12's fields, refused where they cannot work", () => {
  it("refuses topology argument values the broker could not hold exactly, and argument names over 255 bytes", () => {
    const withArgument = (argument: string) =>
      problemsOf(
        amqp(`      url: "amqp://h/"\n      producer: {}\n      topology: { queues: [{ name: q, arguments: { ${argument} } }] }\n`),
      );
    expect(withArgument("x-max-length: 99999999999999999999")).toEqual([expect.stringMatching(/not a number the broker can hold exactly/)]);
    expect(withArgument("x-message-ttl: .inf")).toEqual([expect.stringMatching(/not a number the broker can hold exactly/)]);
    expect(withArgument(`${"x".repeat(256)}: 1`)).toEqual([expect.stringMatching(/argument names must be at most 255 bytes/)]);
    expect(
      parseRoutes(
        amqp(
          `      url: "amqp://h/"\n      producer: {}\n      topology: { queues: [{ name: q, arguments: { x-max-length-bytes: 3000000000 } }] }\n`,
        ),
      ).ok,
    ).toBe(true);
  });

  it("refuses a reply route whose exchange comes from the request, or whose path has a wildcard, an optional part or path_prefix", () => {
    expect(problemsOf(amqp(`      url: "amqp://h/"\n      producer: { exchange: "ex.{query.x}", reply: true }\n`))).toEqual([
      expect.stringMatching(/producer.exchange cannot take values from the request on a reply route/),
    ]);
    const reply = `    amqp: { enabled: true, url: "amqp://h/", producer: { reply: true } }\n`;
    for (const path of ["/rpc/*", "/rpc/:name?"]) {
      expect(problemsOf(`routes:\n  - id: r1\n    path: "${path}"\n${reply}`)).toEqual([
        expect.stringMatching(/producer.reply needs a path without \*/),
      ]);
    }
    expect(problemsOf(`routes:\n  - id: r1\n    path: /rpc\n    path_prefix: true\n${reply}`)).toEqual([
      expect.stringMatching(/producer.reply needs a path without \*/),
    ]);
    expect(problemsOf(amqp(`      url: "amqp://h/"\n      producer: { reply: true, batch: true }\n`))).toEqual([
      expect.stringMatching(/reply: true and batch: true exclude each other/),
    ]);
    expect(problemsOf(amqp(`      url: "amqp://h/"\n      producer: { reply: true, dedupe_window_s: 60 }\n`))).toEqual([
      expect.stringMatching(/reply: true and dedupe_window_s exclude each other/),
    ]);
  });

  it("refuses dedupe_window_s with a rate_limit on a sharded route, and a window over 24 h", () => {
    const sharded = `routes:\n  - id: r1\n    path: /r1\n    rate_limit: { requests: 10, period_s: 60 }\n    amqp: { enabled: true, url: "amqp://h/", shards: 2, producer: { dedupe_window_s: 60 } }\n`;
    expect(problemsOf(sharded)).toEqual([expect.stringMatching(/dedupe_window_s with rate_limit needs shards: 1/)]);
    expect(problemsOf(amqp(`      url: "amqp://h/"\n      producer: { dedupe_window_s: 86401 }\n`))).toEqual([
      expect.stringMatching(/dedupe_window_s must be at most 86400/),
    ]);
  });
});
