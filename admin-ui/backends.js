// The backends table: one row per backend, updated in place every poll
// (so keyboard focus stays on its buttons), with request rate, error rate
// and a five-minute sparkline computed from the stats counters.

import { drawSparkline, formatRate, sparkline } from "./sparkline.js";

const HISTORY_SECONDS = 300;
const RATE_WINDOW_MS = 5_000;
const ERROR_WINDOW_MS = 60_000;

export class BackendsView {
  constructor({ table, empty, onDrain, onActivate, onRemove }) {
    this.body = table.tBodies[0];
    this.empty = empty;
    this.actions = { onDrain, onActivate, onRemove };
    this.rows = new Map(); // id -> { tr, cells, samples: [{t, requests, errors}], rates: [] }
  }

  /// Show `list` (GET /backends) with the counters of `stats` (GET /stats).
  update(list, stats, now = Date.now()) {
    const counters = new Map(stats.backends.map((s) => [s.id, s]));
    const seen = new Set();
    list.backends.forEach((backend, index) => {
      seen.add(backend.id);
      let row = this.rows.get(backend.id);
      if (!row) {
        row = this.createRow(backend);
        this.rows.set(backend.id, row);
      }
      if (this.body.children[index] !== row.tr) {
        this.body.insertBefore(row.tr, this.body.children[index] || null);
      }
      this.fill(row, backend, counters.get(backend.id), now);
    });
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        this.rows.delete(id);
      }
    }
    this.empty.hidden = list.backends.length > 0;
  }

  createRow(backend) {
    const tr = document.createElement("tr");
    tr.dataset.id = backend.id;
    // `data-label` names the cell when a narrow window stacks the table.
    const cell = (label, className) => {
      const td = document.createElement("td");
      td.dataset.label = label;
      if (className) td.className = className;
      tr.append(td);
      return td;
    };
    const cells = {
      address: cell("Address", "mono"),
      weight: cell("Weight", "num"),
      state: cell("State"),
      health: cell("Health"),
      rate: cell("Req/s", "num"),
      errors: cell("Errors (1 min)", "num"),
      trend: cell("Last 5 min"),
      actions: cell("", "actions"),
    };
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
    const spark = sparkline([], { label: backend.address });
    cells.trend.append(spark);
    return { tr, cells, toggle, remove, spark, samples: [], rates: [], state: null, backend };
  }

  fill(row, backend, counters, now) {
    row.backend = backend;
    row.state = backend.state;
    const c = row.cells;
    c.address.textContent = backend.address;
    c.weight.textContent = backend.weight;
    setBadge(c.state, backend.state);
    setBadge(c.health, backend.health);
    row.toggle.textContent = backend.state === "active" ? "Drain" : "Activate";
    row.toggle.setAttribute("aria-label", `${row.toggle.textContent} ${backend.address}`);
    row.remove.setAttribute("aria-label", `Remove ${backend.address}`);

    if (counters) {
      row.samples.push({ t: now, requests: counters.requests, errors: counters.errors });
      row.samples = row.samples.filter((s) => now - s.t <= ERROR_WINDOW_MS + 1_000);
    }
    const rate = rateOver(row.samples, RATE_WINDOW_MS, "requests");
    c.rate.textContent = rate === null ? "–" : formatRate(rate);
    c.errors.textContent = errorShare(row.samples);
    row.rates.push(rate ?? 0);
    if (row.rates.length > HISTORY_SECONDS) row.rates.shift();
    drawSparkline(row.spark, row.rates, backend.address, HISTORY_SECONDS);
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
