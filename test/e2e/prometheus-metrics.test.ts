/**
 * `GET /amqp/metrics` through `npm start` (and the Node and Deno servers): after a known load, the
 * scrape passes `promtool check metrics` (Debian's `prometheus` package) and, read with the
 * Prometheus project's own Python client parser (Debian's `python3-prometheus-client`), its
 * counters and histograms say what happened.
 */
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BROKER_URL, declareQueue, deleteQueue, messageCount, uniqueName } from "../helpers/broker";
import { npmStart, type RunningGateway } from "./npm-start";

const ADMIN_TOKEN = "metrics-admin-token";
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
const queue = uniqueName("metrics");
let gateway: RunningGateway;

beforeAll(async () => {
  await declareQueue(queue);
  gateway = await npmStart(
    `routes:
  - id: metered
    path: /metered
    amqp: { enabled: true, url: "${BROKER_URL}", shards: 2, producer: { routing_key: ${queue} }, consumer: { queue: ${queue}, ack: lease } }
  - id: odd.name~2
    path: /odd
    amqp: { enabled: true, url: "${BROKER_URL}", producer: { routing_key: ${queue} } }
`,
    { ADMIN_TOKEN },
  );
}, 180_000);

afterAll(async () => {
  await gateway?.stop();
  await deleteQueue(queue);
});

interface Family {
  name: string;
  type: string;
  samples: Array<{ name: string; labels: Record<string, string>; value: number }>;
}

/** The scrape as `prometheus_client.parser` reads it: each family, its type and its samples. */
const parse = (text: string): Family[] => {
  const script = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = text_string_to_metric_families(sys.stdin.read())
print(json.dumps([{"name": f.name, "type": f.type, "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]} for f in families]))
`;
  // Debian's Python, where python3-prometheus-client is installed (not a pyenv one first on PATH).
  const parsed = spawnSync("/usr/bin/python3", ["-c", script], { input: text, encoding: "utf8" });
  if (parsed.status !== 0) throw new Error(parsed.stderr);
  return JSON.parse(parsed.stdout) as Family[];
};

const scrape = async () => {
  const response = await fetch(`${gateway.url}/amqp/metrics`, { headers: admin });
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return response.text();
};

describe("GET /amqp/metrics", () => {
  it("needs the admin token", async () => {
    expect((await fetch(`${gateway.url}/amqp/metrics`)).status).toBe(401);
  });

  it("after a load, passes promtool and counts what happened", async () => {
    const send = (method: string, path: string, body?: string) =>
      fetch(`${gateway.url}${path}`, body === undefined ? { method } : { method, body });
    await Promise.all(Array.from({ length: 30 }, (_, i) => send("POST", "/metered", `post ${i}`)));
    await Promise.all(Array.from({ length: 5 }, (_, i) => send("PUT", "/metered", `put ${i}`)));
    await Promise.all(Array.from({ length: 4 }, (_, i) => send("POST", "/odd", `odd ${i}`)));
    expect(await messageCount(queue)).toBe(39);
    // 10 leases taken and acknowledged, 2 left held; a nack of an unknown id is a 404.
    const leased: string[] = [];
    for (let i = 0; i < 12; i++) {
      const answer = await send("GET", "/metered");
      expect(answer.status).toBe(200);
      leased.push(answer.headers.get("x-lease-id") ?? "");
      await answer.arrayBuffer();
    }
    const settle = (verb: string, ids: string[]) =>
      fetch(`${gateway.url}/metered/${verb}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ lease_ids: ids }),
      });
    for (const id of leased.slice(0, 10)) expect((await settle("ack", [id])).status).toBe(200);
    const unknownShard0 = `0.${crypto.randomUUID()}`;
    expect((await settle("nack", [unknownShard0])).status).toBe(404);

    const text = await scrape();
    const promtool = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    expect(`${promtool.stdout}${promtool.stderr}`.trim()).toBe("");
    expect(promtool.status).toBe(0);

    const families = parse(text);
    const family = (name: string) => families.find((one) => one.name === name);
    const sample = (name: string, labels: Record<string, string>) =>
      families
        .flatMap((one) => one.samples)
        .find((one) => one.name === name && Object.entries(labels).every(([key, value]) => one.labels[key] === value))?.value;
    expect(family("runway_published")?.type).toBe("counter");
    expect(sample("runway_published_total", { route: "metered" })).toBe(35);
    expect(sample("runway_published_total", { route: "odd.name~2" })).toBe(4);
    expect(sample("runway_leased_total", { route: "metered" })).toBe(12);
    expect(sample("runway_acked_total", { route: "metered" })).toBe(10);
    expect(sample("runway_leases_held", { route: "metered" })).toBe(2);
    expect(sample("runway_publishes_in_flight", { route: "metered" })).toBe(0);
    expect(family("runway_connected")?.samples.filter((one) => one.labels.route === "metered")).toHaveLength(2);

    expect(family("runway_request_duration_seconds")?.type).toBe("histogram");
    const requests = (method: string, status_class: string) =>
      sample("runway_request_duration_seconds_count", { route: "metered", method, status_class });
    expect(requests("POST", "2xx")).toBe(30 + 10);
    expect(requests("PUT", "2xx")).toBe(5);
    expect(requests("GET", "2xx")).toBe(12);
    expect(requests("POST", "4xx")).toBe(1);
    expect(sample("runway_request_duration_seconds_bucket", { route: "metered", method: "PUT", status_class: "2xx", le: "+Inf" })).toBe(5);
    expect(sample("runway_confirm_latency_seconds_count", { route: "metered" })).toBe(35);
    expect(sample("runway_confirm_latency_seconds_bucket", { route: "metered", le: "+Inf" })).toBe(35);
    expect(sample("runway_confirm_latency_seconds_sum", { route: "metered" })).toBeGreaterThan(0);
  });
});
