// The backends table: one row per backend, updated in place every poll
// (so keyboard focus stays on its buttons). Request rate and error share
// come from the stats counters this page saw; latency, in flight,
// failovers and bytes from the latest stats; the sparkline from the
// server's five-minute history (so a reload keeps it).

import { addCell, noteRow } from "./rows.js";
import { ago, formatBytes, formatMs, formatRate } from "./format.js";
import { drawSparkline, sparkline } from "./sparkline.js";

const RATE_WINDOW_MS = 5_000;
const ERROR_WINDOW_MS = 60_000;

export class BackendsView {
  constructor({ table, empty, onDrain, onActivate, onRemove }) {
    this.body = table.tBodies[0];
    this.columns = table.tHead.rows[0].cells.length;
    this.empty = empty;
    this.actions = { onDrain, onActivate, onRemove };
    this.rows = new Map(); // id -> { tr, note, cells, samples: [{t, requests, errors}], ... }
    this.history = { byId: new Map(), interval: 5, newest: 0 };
  }

  /// Keep the latest GET /stats/history for the sparklines.
  setHistory(history) {
    const byId = new Map(history.backends.map((b) => [b.id, b.samples]));
    const times = history.backends.flatMap((b) => b.samples.map((s) => Date.parse(s.at)));
    this.history = { byId, interval: history.interval_seconds, newest: Math.max(0, ...times) };
  }

  /// Show `list` (GET /backends) with the counters of `stats` (GET /stats).
  update(list, stats, now = Date.now()) {
    const counters = new Map(stats.backends.map((s) => [s.id, s]));
    const seen = new Set();
    let at = 0; // where the next row belongs among the tbody's children
    const place = (tr) => {
      if (this.body.children[at] !== tr) this.body.insertBefore(tr, this.body.children[at] || null);
      at += 1;
    };
    for (const backend of list.backends) {
      seen.add(backend.id);
      let row = this.rows.get(backend.id);
      if (!row) {
        row = this.createRow(backend);
        this.rows.set(backend.id, row);
      }
      place(row.tr);
      if (row.note.textContent) place(row.note);
      else row.note.remove();
      this.fill(row, backend, counters.get(backend.id), now);
    }
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        row.note.remove();
        this.rows.delete(id);
      }
    }
    this.empty.hidden = list.backends.length > 0;
  }

  /// Show why an action on this backend failed, in a line right under its
  /// row (next to the buttons that were used); "" clears it.
  say(id, message) {
    const row = this.rows.get(id);
    if (!row) return;
    row.note.firstElementChild.textContent = message;
    if (message) row.tr.after(row.note);
    else row.note.remove();
  }

  clearNotes() {
    for (const id of this.rows.keys()) this.say(id, "");
  }

  createRow(backend) {
    const tr = document.createElement("tr");
    tr.dataset.id = backend.id;
    const cell = (label, className) => addCell(tr, label, className);
    const cells = {
      address: cell("Address", "mono"),
      weight: cell("Weight", "num"),
      state: cell("State"),
      health: cell("Health", "health"),
      rate: cell("Req/s", "num"),
      errors: cell("Errors (1 min)", "num"),
      latency: cell("Latency p50 / p99", "num latency"),
      inFlight: cell("In flight", "num in-flight"),
      failovers: cell("Failovers", "num failovers"),
      bytes: cell("Bytes in / out", "num bytes"),
      trend: cell("Last 5 min"),
      actions: cell("", "actions"),
    };
    // Health: the badge and how long, then why (visible text, not a tooltip).
    const stack = document.createElement("div");
    stack.className = "stack";
    const line = document.createElement("span");
    const badge = document.createElement("span");
    const since = document.createElement("time");
    since.className = "since";
    line.append(badge, " ", since);
    const reason = document.createElement("span");
    reason.className = "reason";
    stack.append(line, reason);
    cells.health.append(stack);

    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "quiet small";
    toggle.addEventListener("click", () => {
      const row = this.rows.get(backend.id);
      if (row.state === "active") this.actions.onDrain(row.backend, toggle);
      else this.actions.onActivate(row.backend, toggle);
    });
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "quiet danger small";
    remove.textContent = "Remove";
    remove.addEventListener("click", () => this.actions.onRemove(this.rows.get(backend.id).backend, remove));
    cells.actions.append(toggle, remove);
    const spark = sparkline();
    cells.trend.append(spark);

    const note = noteRow(this.columns);
    return { tr, note, cells, badge, since, reason, toggle, remove, spark, samples: [], state: null, backend };
  }

  fill(row, backend, counters, now) {
    row.backend = backend;
    row.state = backend.state;
    const c = row.cells;
    c.address.textContent = backend.address;
    c.weight.textContent = backend.weight;
    setBadge(c.state, backend.state);
    row.badge.className = `badge ${backend.health}`;
    row.badge.textContent = backend.health;
    const since = new Date(backend.health_since);
    row.since.dateTime = backend.health_since;
    row.since.textContent = `for ${ago(since, now)}`;
    row.since.title = `since ${since.toLocaleString()}`;
    row.reason.textContent = backend.health_reason;
    row.toggle.textContent = backend.state === "active" ? "Drain" : "Activate";
    row.toggle.setAttribute("aria-label", `${row.toggle.textContent} ${backend.address}`);
    row.remove.setAttribute("aria-label", `Remove ${backend.address}`);

    if (counters) {
      row.samples.push({ t: now, requests: counters.requests, errors: counters.errors });
      row.samples = row.samples.filter((s) => now - s.t <= ERROR_WINDOW_MS + 1_000);
      const { p50, p99 } = counters.latency_ms;
      c.latency.textContent = p50 === null && p99 === null ? "–" : latency(p50, p99);
      c.inFlight.textContent = counters.in_flight;
      c.failovers.textContent = counters.failovers;
      c.failovers.title =
        `Since start: ${counters.failovers} requests sent to another backend instead, ` +
        `${counters.connect_errors} failed connections, ${counters.retries} resends`;
      c.bytes.textContent = `${formatBytes(counters.bytes_in)} / ${formatBytes(counters.bytes_out)}`;
    }
    const rate = rateOver(row.samples, RATE_WINDOW_MS, "requests");
    c.rate.textContent = rate === null ? "–" : formatRate(rate);
    c.errors.textContent = errorShare(row.samples);
    const { byId, interval, newest } = this.history;
    drawSparkline(row.spark, backend.address, { samples: byId.get(backend.id) || [], interval, newest });
  }
}

function setBadge(td, value) {
  let badge = td.firstElementChild;
  if (!badge) {
    badge = document.createElement("span");
    td.append(badge);
  }
  badge.className = `badge ${value}`;
  badge.textContent = value;
}

/// "0.4 / 2.1 ms" (one unit when both are in ms), else each with its unit.
function latency(p50, p99) {
  const a = formatMs(p50);
  const b = formatMs(p99);
  return a.endsWith(" ms") && b.endsWith(" ms") ? `${a.slice(0, -3)} / ${b}` : `${a} / ${b}`;
}

/// Per-second change of `field` over the newest `windowMs` of samples.
function rateOver(samples, windowMs, field) {
  if (samples.length < 2) return null;
  const last = samples[samples.length - 1];
  const first = samples.find((s) => last.t - s.t <= windowMs) || samples[0];
  const seconds = (last.t - first.t) / 1000;
  if (seconds <= 0) return null;
  return Math.max(0, last[field] - first[field]) / seconds;
}

/// Share of 5xx among the requests of the last minute.
function errorShare(samples) {
  if (samples.length < 2) return "–";
  const first = samples[0];
  const last = samples[samples.length - 1];
  const requests = last.requests - first.requests;
  if (requests <= 0) return "–";
  const share = (100 * (last.errors - first.errors)) / requests;
  return `${share.toFixed(share > 0 && share < 1 ? 1 : 0)}%`;
}
