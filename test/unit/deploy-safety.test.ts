import { describe, expect, it } from "vitest";
import { deployProblems } from "../../scripts/lib/deploy-safety";
import { parseRoutes } from "../../src/config/parse-routes";

const problemsFor = (route: string, env: Record<string, string> = {}, top = "admin: { public: true }\n") => {
  const parsed = parseRoutes(`${top}routes:\n  - { id: a, path: /a, ${route} }\n`);
  if (!parsed.ok) throw new Error(parsed.problems.join("\n"));
  return deployProblems(parsed.config, env, false).join("\n");
};
const amqp = (url: string) => `amqp: { enabled: true, url: "${url}", producer: {} }`;

describe("npm run deploy's safety checks", () => {
  it.each(["127.1", "[::ffff:127.0.0.1]", "localhost.", "app.localhost", "[::]", "0.0.0.0", "127.0.0.2:5672"])(
    "refuse a loopback broker host however it is written: %s",
    (host) => expect(problemsFor(amqp(`amqp://u:\${P}@${host}/`))).toMatch(/amqp\.url points at .*Cloudflare machine itself/),
  );

  it("check a URL taken from ${NAME} with the value the environment gives it", () => {
    expect(problemsFor(amqp("${AMQP_URL}"), { AMQP_URL: "amqp://guest:guest@127.0.0.1:5672/" })).toMatch(/points at 127\.0\.0\.1/);
    expect(problemsFor(amqp("${AMQP_URL}"), { AMQP_URL: "amqps://app:secret@broker.example.com/" })).toBe("");
  });

  it("refuse credentials written into the file, even partly", () => {
    expect(problemsFor(amqp("amqps://app:pa%24s@broker.example.com/"))).toMatch(/literal password/);
    expect(problemsFor(`auth: { api_key: { keys: ["hunter2\${EMPTY}"] } }, ${amqp("${URL}")}`)).toMatch(
      /api_key\.keys is written into the file/,
    );
    expect(problemsFor(`auth: { basic: { users: { al: "\${PW}" } } }, ${amqp("${URL}")}`)).toBe("");
  });

  it("refuse a push's secret or Authorization written into the file, and a push to the loopback address", () => {
    const push = (fields: string) => `amqp: { enabled: true, url: "\${URL}", consumer: { queue: q, push: { ${fields} } } }`;
    const secret = `whsec_${btoa("sixteen bytes or more")}`;
    expect(problemsFor(push(`url: "https://hooks.example.com/", secret: "${secret}"`))).toMatch(
      /consumer\.push\.secret is written into the file/,
    );
    expect(problemsFor(push(`url: "https://hooks.example.com/", secret: "\${S}", headers: { Authorization: "Bearer hunter2" }`))).toMatch(
      /consumer\.push\.headers\.Authorization is written into the file/,
    );
    expect(problemsFor(push(`url: "http://127.0.0.1:8080/", secret: "\${S}"`))).toMatch(/consumer\.push\.url points at 127\.0\.0\.1/);
    expect(problemsFor(push(`url: "https://hooks.example.com/", secret: "\${S}", headers: { Authorization: "Bearer \${T}" }`))).toBe("");
  });

  it("refuse a JWKS over plain http", () => {
    expect(problemsFor(`auth: { bearer_jwt: { jwks_url: "http://id.example.com/jwks" } }, ${amqp("${URL}")}`)).toMatch(
      /jwks_url is plain http/,
    );
  });

  it("refuse a public /amqp unless the file says so, a blank ADMIN_TOKEN included", () => {
    expect(problemsFor(amqp("${URL}"), { ADMIN_TOKEN: "  " }, "")).toMatch(/GET \/amqp would be public/);
    expect(problemsFor(amqp("${URL}"), { ADMIN_TOKEN: "t0ken" }, "")).toBe("");
  });
});
