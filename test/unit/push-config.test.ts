/**
 * `consumer.push` in routes.yaml: its defaults, what `npm run check` refuses (before and after
 * `${NAME}` is filled in), and what it warns about.
 */
import { describe, expect, it } from "vitest";
import { parseRoutes } from "../../src/config/parse-routes";
import { pushWarnings } from "../../src/config/push-warnings";
import { resolveConfig } from "../../src/config/resolve-config";

const SECRET = `whsec_${btoa("a key of at least sixteen bytes")}`;

const pushRoute = (push: string, consumer = "", extra = "", topology = "") =>
  `${topology}routes:
  - id: hooks
    path: /hooks/orders
${extra}    amqp:
      enabled: true
      url: "amqp://guest:guest@127.0.0.1:5672/"
      consumer: { queue: orders, ${consumer}push: { ${push} } }
`;

const problemsOf = (yaml: string): string[] => {
  const result = parseRoutes(yaml);
  if (result.ok) throw new Error("expected the routes to be refused");
  return result.problems;
};

describe("consumer.push", () => {
  it("gets its defaults, and its route serves GET (its state) only unless it also publishes", () => {
    const result = parseRoutes(pushRoute(`url: "https://hooks.example.com/orders", secret: "${SECRET}"`));
    if (!result.ok) throw new Error(result.problems.join("\n"));
    const route = result.config.routes[0];
    expect(route?.amqp.consumer?.push).toEqual({
      url: "https://hooks.example.com/orders",
      secret: SECRET,
      concurrency: 1,
      timeout_ms: 10_000,
      max_attempts: 5,
      backoff_ms: 1000,
      max_backoff_ms: 60_000,
      headers: {},
    });
    expect(route?.methods).toEqual(["GET"]);
  });

  it("is refused with auto_ack, ack: lease or stream, a path_prefix, a templated queue, or a consuming method other than GET", () => {
    const push = `url: "https://h/x", secret: "${SECRET}"`;
    for (const mode of ["auto_ack: true, ", "ack: lease, ", "stream: true, "]) {
      expect(problemsOf(pushRoute(push, mode)).join("\n")).toMatch(/push acknowledges each message after the endpoint's 2xx/);
    }
    expect(problemsOf(pushRoute(push, "", "    path_prefix: true\n")).join("\n")).toMatch(/consumer.push needs a path without/);
    expect(problemsOf(pushRoute(push, "", "    methods: [GET, DELETE]\n")).join("\n")).toMatch(
      /DELETE: a push route's consumer serves GET/,
    );
  });

  it("refuses an endpoint that is not http(s), a secret that is not whsec_ and base64, and out-of-range numbers, never showing the secret", () => {
    expect(problemsOf(pushRoute(`url: "ftp://h/x", secret: "${SECRET}"`)).join("\n")).toMatch(/push.url scheme "ftp" is not http or https/);
    const secretProblems = problemsOf(pushRoute(`url: "https://h/x", secret: "hunter2hunter2"`)).join("\n");
    expect(secretProblems).toMatch(/push.secret must start with whsec_/);
    expect(secretProblems).not.toContain("hunter2");
    expect(problemsOf(pushRoute(`url: "https://h/x", secret: "${SECRET}", concurrency: 257`)).join("\n")).toMatch(
      /push.concurrency must be at most 256/,
    );
    expect(problemsOf(pushRoute(`url: "https://h/x", secret: "${SECRET}", max_attempts: 0`)).join("\n")).toMatch(
      /push.max_attempts must be at least 1/,
    );
    expect(problemsOf(pushRoute(`url: "https://h/x", secret: "${SECRET}", backoff_ms: 5000, max_backoff_ms: 1000`)).join("\n")).toMatch(
      /push.max_backoff_ms must be at least push.backoff_ms/,
    );
    expect(problemsOf(pushRoute(`url: "https://h/x", secret: "${SECRET}", headers: { webhook-id: x }`)).join("\n")).toMatch(
      /webhook-id is set by the push itself/,
    );
  });

  it("checks a ${NAME} secret and URL once filled in, naming the field and never the value", () => {
    const result = parseRoutes(pushRoute(`url: "\${HOOK_URL}", secret: "\${HOOK_SECRET}"`));
    if (!result.ok) throw new Error(result.problems.join("\n"));
    const bad = resolveConfig(result.config, { HOOK_URL: "mailto:x@example.com", HOOK_SECRET: "whsec_short" });
    expect(bad.ok).toBe(false);
    const problems = bad.ok ? "" : bad.problems.join("\n");
    expect(problems).toMatch(/route "hooks": amqp.consumer.push.url scheme "mailto" is not http or https/);
    expect(problems).toMatch(/route "hooks": amqp.consumer.push.secret /);
    expect(problems).not.toContain("whsec_short");
    const empty = resolveConfig(result.config, { HOOK_URL: "https://h/x", HOOK_SECRET: "" });
    expect(empty.ok ? "" : empty.problems.join("\n")).toMatch(/amqp.consumer.push.secret (is empty|.*empty)/);
    expect(resolveConfig(result.config, { HOOK_URL: "https://h/x", HOOK_SECRET: SECRET }).ok).toBe(true);
  });

  it("warns when the queue has no dead-letter exchange in the file, and when retries outlast RabbitMQ's consumer timeout", () => {
    const plain = parseRoutes(pushRoute(`url: "https://h/x", secret: "${SECRET}"`));
    if (!plain.ok) throw new Error(plain.problems.join("\n"));
    expect(pushWarnings(plain.config)).toEqual([expect.stringMatching(/queue orders has no x-dead-letter-exchange/)]);
    const withDlx = parseRoutes(
      pushRoute(
        `url: "https://h/x", secret: "${SECRET}", max_attempts: 20, backoff_ms: 60000, max_backoff_ms: 3600000`,
        "",
        "",
        `topology:\n  queues:\n    - { name: orders, arguments: { x-dead-letter-exchange: dlx } }\n`,
      ),
    );
    if (!withDlx.ok) throw new Error(withDlx.problems.join("\n"));
    expect(pushWarnings(withDlx.config)).toEqual([expect.stringMatching(/longer than RabbitMQ's consumer_timeout/)]);
  });

  it("refuses credentials in the URL, a header value that is not an HTTP header value, and a route on its control paths", () => {
    expect(problemsOf(pushRoute(`url: "https://user:pa55@h/x", secret: "${SECRET}"`)).join("\n")).toMatch(/must not carry credentials/);
    expect(problemsOf(pushRoute(`url: "https://user:pa55@h/x", secret: "${SECRET}"`)).join("\n")).not.toContain("pa55");
    // Latin-1 too: Node sent it as Latin-1 and workerd as UTF-8.
    for (const value of ["中文", "café"]) {
      expect(problemsOf(pushRoute(`url: "https://h/x", secret: "${SECRET}", headers: { X-A: "${value}" } `)).join("\n")).toMatch(
        /push.headers: a value must be visible ASCII, spaces or tabs/,
      );
    }
    // Headers of the connection: Node's fetch refused every attempt with them, workerd's dropped them.
    for (const name of ["Keep-Alive", "Expect", "Upgrade", "TE", "Trailer", "Proxy-Authorization"]) {
      expect(problemsOf(pushRoute(`url: "https://h/x", secret: "${SECRET}", headers: { ${name}: "x" } `)).join("\n")).toMatch(
        new RegExp(`push.headers: ${name} is a header of the connection`),
      );
    }
    const shadowed = `${pushRoute(`url: "https://h/x", secret: "${SECRET}"`)}  - { id: other, path: /hooks/orders/pause, amqp: { enabled: true, url: "amqp://h", producer: {} } }\n`;
    expect(problemsOf(shadowed).join("\n")).toMatch(
      /route "other" is on \/hooks\/orders\/pause, which is the push control of route "hooks"/,
    );
    const result = parseRoutes(pushRoute(`url: "https://h/x", secret: "${SECRET}", headers: { Authorization: "Bearer \${TOKEN}" }`));
    if (!result.ok) throw new Error(result.problems.join("\n"));
    const resolved = resolveConfig(result.config, { TOKEN: "part1\npart2" });
    expect(resolved.ok ? "" : resolved.problems.join("\n")).toMatch(/push.headers.Authorization must not contain CR, LF or NUL/);
    expect(resolved.ok ? "" : resolved.problems.join("\n")).not.toContain("part1");
  });
});
