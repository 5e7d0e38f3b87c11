import { html, raw } from "hono/html";
import { redactUrl } from "../contract/redaction";
import type { RouteConfig } from "../config/schema";

/**
 * `GET /amqp` for a browser (`Accept: text/html`): one self-contained page, no external assets.
 * The table's fixed part (path, methods, role, URL) is rendered here from the routes; the page
 * then polls the JSON of `/amqp` every 2 s (the browser resends its credentials) and fills in the
 * live part: connected, the counters, requests and errors over the last minute (from the samples
 * it has seen), the last error with its time, and each shard of a sharded route.
 */
export const statusPage = (routes: RouteConfig[]) => {
  const rows = routes.map((route) => {
    const amqp = route.amqp;
    const consumer = amqp.consumer ? (amqp.consumer.push ? "consumer (push)" : "consumer") : "";
    const role = [amqp.producer ? "producer" : "", consumer].filter(Boolean).join(" + ");
    return html`<tr data-route="${route.id}" data-push="${amqp.consumer?.push ? "1" : "0"}">
      <td class="id">${route.id}</td>
      <td><code>${route.path}${route.path_prefix ? "/*" : ""}</code></td>
      <td>${route.methods.join(", ")}</td>
      <td>${role}</td>
      <td><code>${redactUrl(amqp.url)}</code></td>
      <td data-field="connected">…</td>
      <td data-field="total_requests" class="n">…</td>
      <td data-field="total_errors" class="n">…</td>
      <td data-field="published" class="n">…</td>
      <td data-field="consumed" class="n">…</td>
      <td data-field="rejected" class="n">…</td>
      <td data-field="rate" class="n">…</td>
      <td data-field="last_error">…</td>
    </tr>`;
  });
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <title>amqp-edge-gateway: routes</title>
        <style>
          body {
            font:
              14px system-ui,
              sans-serif;
            margin: 1.5rem;
            color: #1d1d1f;
          }
          h1 {
            font-size: 1.2rem;
          }
          table {
            border-collapse: collapse;
            width: 100%;
          }
          th,
          td {
            border-bottom: 1px solid #ddd;
            padding: 0.35rem 0.5rem;
            text-align: left;
            vertical-align: top;
          }
          th {
            background: #f4f4f6;
            font-weight: 600;
          }
          td.n {
            text-align: right;
            font-variant-numeric: tabular-nums;
          }
          .up {
            color: #16803c;
          }
          .down {
            color: #b42318;
          }
          .err {
            color: #b42318;
            font-size: 12px;
          }
          tr.shard td {
            color: #555;
            font-size: 12px;
          }
          #status {
            color: #555;
            font-size: 12px;
          }
        </style>
      </head>
      <body>
        <h1>amqp-edge-gateway: routes</h1>
        <p id="status">loading…</p>
        <table>
          <thead>
            <tr>
              <th>route</th>
              <th>path</th>
              <th>methods</th>
              <th>role</th>
              <th>broker</th>
              <th>connected</th>
              <th>requests</th>
              <th>errors</th>
              <th>published</th>
              <th>consumed</th>
              <th>rejected</th>
              <th>last minute (req / err)</th>
              <th>last error</th>
            </tr>
          </thead>
          <tbody>
            ${rows}
          </tbody>
        </table>
        <script>
          ${raw(PAGE_SCRIPT)};
        </script>
      </body>
    </html>`;
};

/** The page's script: polls `/amqp` as JSON and fills the table; rates come from the samples of the last minute. */
const PAGE_SCRIPT = `
const samples = new Map();
const text = (cell, value) => { if (cell) cell.textContent = value; };
const render = (id, stats, row) => {
  const now = Date.now();
  const seen = (samples.get(id) || []).filter((s) => now - s.at <= 60000);
  seen.push({ at: now, requests: stats.total_requests, errors: stats.total_errors });
  samples.set(id, seen);
  const first = seen[0];
  const field = (name) => row.querySelector('[data-field="' + name + '"]');
  const connected = field("connected");
  connected.textContent = stats.connected ? "yes" : "no";
  connected.className = stats.connected ? "up" : "down";
  for (const name of ["total_requests", "total_errors", "published", "consumed", "rejected"]) text(field(name), String(stats[name]));
  // A push route's consumed messages are its pushes.
  if (row.dataset.push === "1" || (row.dataset.of && document.querySelector('tr[data-route="' + CSS.escape(row.dataset.of) + '"]').dataset.push === "1")) {
    text(field("consumed"), stats.pushed + " pushed, " + stats.push_failures + " failed attempts, " + stats.dead_lettered + " dead-lettered");
  }
  text(field("rate"), (stats.total_requests - first.requests) + " / " + (stats.total_errors - first.errors));
  const error = field("last_error");
  error.className = stats.last_error ? "err" : "";
  error.textContent = stats.last_error ? stats.last_error.message + " (" + stats.last_error.at + ")" : "none";
};
const refresh = async () => {
  try {
    const response = await fetch(location.pathname, { headers: { accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const all = await response.json();
    for (const [id, stats] of Object.entries(all)) {
      const row = document.querySelector('tr[data-route="' + CSS.escape(id) + '"]');
      if (!row) continue;
      render(id, stats, row);
      for (const old of document.querySelectorAll('tr.shard[data-of="' + CSS.escape(id) + '"]')) old.remove();
      let after = row;
      for (const shard of stats.shards || []) {
        const line = document.createElement("tr");
        line.className = "shard";
        line.dataset.of = id;
        line.innerHTML = '<td colspan="5">shard ' + shard.shard + '</td><td data-field="connected"></td><td data-field="total_requests" class="n"></td><td data-field="total_errors" class="n"></td><td data-field="published" class="n"></td><td data-field="consumed" class="n"></td><td data-field="rejected" class="n"></td><td data-field="rate" class="n"></td><td data-field="last_error"></td>';
        after.after(line);
        after = line;
        render(id + "#" + shard.shard, shard, line);
      }
    }
    document.getElementById("status").textContent = "updated " + new Date().toLocaleTimeString() + "; refreshes every 2 s";
  } catch (error) {
    document.getElementById("status").textContent = "could not refresh: " + error.message;
  }
};
refresh();
setInterval(refresh, 2000);
`;
