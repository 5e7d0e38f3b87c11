/**
 * Bad configuration is refused before anything is served or deployed: `npm run check`,
 * `npm start` and `npm run deploy` all answer with one line per problem and exit 1.
 */
import { spawnSync } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { npmRun, npmStart, routesFile } from "./npm-start";

const ROOT = new URL("../..", import.meta.url).pathname;

const INVALID = `routes:
  - id: enqueue
    path: api/jobs
    methods: [POST]
    amqp:
      enabled: true
      url: "http://127.0.0.1:5672/"
      producer: { exchange: "", routing_key: jobs }
  - id: enqueue
    path: /api/jobs
    amqp:
      enabled: true
      consumer: { queue: jobs, auto_ak: true }
`;
const EXPECTED_PROBLEMS = [
  /^.*routes\.yaml:3: route "enqueue": path: path must start with \/$/,
  /^.*routes\.yaml:7: route "enqueue": amqp\.url: scheme "http" is not supported \(use amqp, amqps, ws or wss\)$/,
  /^.*routes\.yaml:9: route "enqueue": id: duplicate id "enqueue"$/,
  /^.*routes\.yaml:13: route "enqueue": amqp\.consumer\.auto_ak: unknown key "auto_ak" \(did you mean "auto_ack"\?\)$/,
];

const expectRefusal = (status: number | null, stderr: string) => {
  expect(status).toBe(1);
  const lines = stderr.trim().split("\n");
  expect(lines).toHaveLength(EXPECTED_PROBLEMS.length);
  EXPECTED_PROBLEMS.forEach((pattern, i) => expect(lines[i]).toMatch(pattern));
  expect(stderr).not.toMatch(/\n\s+at /); // no stack trace
};

describe("an invalid routes file", () => {
  it("fails npm run check with one line per problem", () => {
    const { status, stderr } = npmRun("check", { ROUTES: routesFile(INVALID) });
    expectRefusal(status, stderr);
  });

  it("is refused by npm start before anything listens", async () => {
    await expect(npmStart(INVALID)).rejects.toThrow(/exited with 1/);
    const result = spawnSync("npm", ["start", "--silent"], {
      env: { ...process.env, ROUTES: routesFile(INVALID), PORT: "1" },
      encoding: "utf8",
    });
    expectRefusal(result.status, result.stderr.replace(/^npm warn.*\n/gm, ""));
  });

  it("is refused by npm run deploy before wrangler uploads anything", () => {
    const { status, stderr, stdout } = npmRun("deploy", { ROUTES: routesFile(INVALID) });
    expectRefusal(status, stderr);
    expect(stdout).not.toMatch(/wrangler/i);
  });

  it("stops a bare wrangler deploy in its build step", () => {
    const outdir = mkdtempSync(join(tmpdir(), "gw-deploy-"));
    const result = spawnSync("npx", ["wrangler", "deploy", "--dry-run", "--outdir", outdir], {
      cwd: new URL("../..", import.meta.url).pathname,
      env: { ...process.env, ROUTES: routesFile(INVALID), WRANGLER_SEND_METRICS: "false" },
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(result.status).not.toBe(0);
    expect(`${result.stdout}${result.stderr}`).toMatch(/route "enqueue": amqp\.url: scheme "http" is not supported/);
    expect(existsSync(join(outdir, "index.js"))).toBe(false);
  });
});

describe("a valid routes file", () => {
  it("passes npm run check, listing what it reads from the environment", () => {
    const { status, stdout } = npmRun("check", {
      ROUTES: routesFile(`routes:\n  - { id: a, path: /a, amqp: { enabled: true, url: "\${AMQP_URL}", producer: {} } }\n`),
    });
    expect(status).toBe(0);
    expect(stdout).toMatch(/1 route\(s\), valid/);
    expect(stdout).toMatch(/reads from the environment: AMQP_URL/);
  });

  it("is refused by npm start when a ${NAME} it uses is not set", () => {
    const yaml = `routes:\n  - { id: a, path: /a, amqp: { enabled: true, url: "\${GATEWAY_E2E_UNSET}", producer: {} } }\n`;
    const result = spawnSync("npm", ["start", "--silent"], {
      env: { ...process.env, ROUTES: routesFile(yaml), PORT: "1" },
      encoding: "utf8",
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/\$\{GATEWAY_E2E_UNSET\} is used in the routes but is not set in the environment/);
  });
});

describe("the routes file named on the command line", () => {
  it("is the one npm run check checks, as an argument or with --routes", () => {
    const invalid = routesFile(INVALID);
    for (const args of [[invalid], ["--routes", invalid]]) {
      const result = spawnSync("npm", ["run", "--silent", "check", "--", ...args], {
        cwd: ROOT,
        encoding: "utf8",
        env: { ...process.env, ROUTES: "" },
      });
      expectRefusal(result.status, result.stderr.replace(/^npm warn.*\n/gm, ""));
    }
  });
});

describe("npm start refuses, with one clear line", () => {
  const start = (env: Record<string, string>) =>
    spawnSync("npm", ["start", "--silent"], { cwd: ROOT, env: { ...process.env, ...env }, encoding: "utf8", timeout: 60_000 });

  it("a PORT that is not a port number", () => {
    const result = start({ PORT: "abc" });
    expect(result.status).toBe(1);
    expect(result.stderr.trim()).toBe('npm start: PORT must be a port number from 1 to 65535, not "abc"');
  });

  it("a port another process holds", async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const result = start({ PORT: String(port) });
      expect(result.status).toBe(1);
      expect(result.stderr.trim()).toBe(`npm start: 127.0.0.1:${port} is already in use by another process; set PORT to a free port`);
    } finally {
      server.close();
    }
  });
});

describe("npm run deploy, for a file that is valid but not safe to put on the internet", () => {
  const deploy = (args: string[], env: Record<string, string>) => {
    const result = spawnSync("npm", ["run", "--silent", "deploy", "--", ...args], {
      cwd: ROOT,
      env: { ...process.env, ADMIN_TOKEN: "", ...env },
      encoding: "utf8",
      timeout: 180_000,
    });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr.replace(/^npm warn.*\n/gm, "") };
  };

  it("refuses the shipped routes.yaml: public /amqp, a literal password, a loopback host", () => {
    const { status, stdout, stderr } = deploy([join(ROOT, "routes.yaml")], {});
    expect(status).toBe(1);
    expect(stderr).toMatch(/GET \/amqp would be public: set ADMIN_TOKEN/);
    expect(stderr).toMatch(/route "enqueue": amqp\.url has a literal password/);
    expect(stderr).toMatch(/route "enqueue": amqp\.url points at 127\.0\.0\.1/);
    expect(stdout).not.toMatch(/wrangler|deploying/i);
  });

  it("refuses a credential written into auth, and lets --allow-local through only the local checks", () => {
    const yaml = `admin: { public: true }
auth: { api_key: { keys: [literal-key-1234] } }
routes:
  - { id: a, path: /a, amqp: { enabled: true, url: "amqp://guest:guest@127.0.0.1:5672/", producer: {} } }
`;
    const refused = deploy([routesFile(yaml)], {});
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/route "a": auth api_key\.keys is written into the file; write it as \$\{NAME\}/);
    expect(refused.stderr).not.toMatch(/literal-key-1234/);
    expect(refused.stderr).not.toMatch(/ADMIN_TOKEN/);

    const outdir = mkdtempSync(join(tmpdir(), "gw-deploy-"));
    const local = deploy([routesFile(yaml), "--allow-local", "--dry-run", "--outdir", outdir], { WRANGLER_SEND_METRICS: "false" });
    expect(local.status, local.stderr).toBe(0);
    expect(existsSync(join(outdir, "index.js"))).toBe(true);
  });

  it("deploys a safe file (here a dry run), uploading ADMIN_TOKEN and the ${NAME}s it uses as secrets, never printing them", () => {
    const outdir = mkdtempSync(join(tmpdir(), "gw-deploy-"));
    const yaml = `auth: { api_key: { keys: ["\${APP_KEY}"] } }
routes:
  - { id: a, path: /a, amqp: { enabled: true, url: "\${AMQP_URL}", producer: {} } }
`;
    const { status, stdout, stderr } = deploy([routesFile(yaml), "--dry-run", "--outdir", outdir], {
      ADMIN_TOKEN: "admin-secret-5678",
      APP_KEY: "app-secret-9012",
      AMQP_URL: "amqps://user:broker-secret-3456@broker.example.com/",
      WRANGLER_SEND_METRICS: "false",
    });
    expect(status, stderr).toBe(0);
    expect(stdout).toMatch(
      /uploading as Worker secrets: AMQP_URL, APP_KEY, ADMIN_TOKEN|uploading as Worker secrets: APP_KEY, AMQP_URL, ADMIN_TOKEN/,
    );
    expect(existsSync(join(outdir, "index.js"))).toBe(true);
    for (const secret of ["admin-secret-5678", "app-secret-9012", "broker-secret-3456"]) expect(`${stdout}${stderr}`).not.toContain(secret);
  });
});
