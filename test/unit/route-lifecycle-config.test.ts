/**
 * The route settings for its objects' life on Cloudflare: `idle_disconnect_s` (when an idle
 * route lets go of its connections) and `expected_rps` (whether its shards are enough).
 */
import { describe, expect, it } from "vitest";
import { capacityWarnings } from "../../src/config/capacity";
import { parseRoutes } from "../../src/config/parse-routes";

const routes = (fields: string) =>
  `routes:\n  - { id: r1, path: /r1, amqp: { enabled: true, url: "amqp://guest:guest@127.0.0.1:5672/", producer: {}${fields ? `, ${fields}` : ""} } }\n`;

describe("idle_disconnect_s", () => {
  it("is 60 by default, a whole number of seconds up to a day, or never", () => {
    const parsed = parseRoutes(routes(""));
    expect(parsed.ok && parsed.config.routes[0]?.amqp?.idle_disconnect_s).toBe(60);
    for (const value of ["1", "86400", "never"]) expect(parseRoutes(routes(`idle_disconnect_s: ${value}`)).ok, value).toBe(true);
  });

  it("is refused otherwise, with a line naming it", () => {
    for (const value of ["0", "-1", "1.5", "86401", "always", "true"]) {
      const parsed = parseRoutes(routes(`idle_disconnect_s: ${value}`));
      expect(parsed.ok, value).toBe(false);
      if (!parsed.ok) expect(parsed.problems.join("\n"), value).toMatch(/idle_disconnect_s/);
    }
  });
});

describe("expected_rps", () => {
  const warnings = (fields: string) => {
    const parsed = parseRoutes(routes(fields));
    if (!parsed.ok) throw new Error(parsed.problems.join("\n"));
    return capacityWarnings(parsed.config);
  };

  it("warns, naming the shards that would serve it, when the route's shards serve less", () => {
    expect(warnings("expected_rps: 2500")).toEqual([
      'route "r1": expected_rps 2500 is more than 1 object(s) serve (about 1000 requests a second each); shards: 3 would serve it',
    ]);
    expect(warnings("expected_rps: 4001, shards: 4")).toHaveLength(1);
    // Never a shard count the route cannot have.
    expect(warnings("expected_rps: 64500")).toEqual([
      'route "r1": expected_rps 64500 is more than 1 object(s) serve (about 1000 requests a second each); more than the 64 shards a route can have serve it; split its traffic over several routes',
    ]);
  });

  it("says nothing when the shards are enough, or when no rate is given", () => {
    expect(warnings("expected_rps: 1000")).toEqual([]);
    expect(warnings("expected_rps: 4000, shards: 4")).toEqual([]);
    expect(warnings("")).toEqual([]);
  });

  it("is a whole number of requests a second", () => {
    expect(parseRoutes(routes("expected_rps: 0")).ok).toBe(false);
    expect(parseRoutes(routes("expected_rps: 10.5")).ok).toBe(false);
  });
});
