// The managed-domains card: the domains switchyard obtains certificates for
// over ACME, with their status, expiry, next renewal and last error; add a
// domain, stop managing one. Rows are rebuilt only when the API's answer
// changed (keyboard focus stays put between polls).

import { addCell, noteRow } from "./rows.js";
import { daysLeft } from "./certificates.js";

const STATUS_BADGE = { valid: "up", pending: "unknown", failed: "down" };

export class DomainsCard {
  /// `api()`: the signed-in Api; `confirm(title, question, label, button, yes)`;
  /// `status(text)`: the page's status line.
  constructor({ table, empty, form, input, error, api, confirm, status }) {
    this.body = table.tBodies[0];
    this.columns = table.tHead.rows[0].cells.length;
    Object.assign(this, { empty, form, input, error, api, confirm, status });
    this.shown = null;
    this.note = null; // { name, message } under a row
    form.addEventListener("submit", (event) => this.add(event));
  }

  /// Show `list` (GET /api/v1/domains).
  update(list, now = Date.now()) {
    // The hour too: "N days" left is counted from now.
    const json = JSON.stringify([list.domains, this.note, Math.floor(now / 3_600_000)]);
    if (json === this.shown) return;
    this.shown = json;
    const rows = [];
    for (const domain of list.domains) {
      rows.push(this.row(domain, now));
      if (this.note && this.note.name === domain.name) rows.push(noteRow(this.columns, this.note.message));
    }
    this.body.replaceChildren(...rows);
    this.empty.hidden = list.domains.length > 0;
  }

  clear() {
    this.note = null;
    this.shown = null;
    this.say("");
  }

  say(message, input = null) {
    this.error.textContent = message;
    this.input.setAttribute("aria-invalid", input ? "true" : "false");
  }

  async reload() {
    try {
      this.update(await this.api().domains());
    } catch {
      // The next poll says it.
    }
  }

  async add(event) {
    event.preventDefault();
    const name = this.input.value.trim();
    this.say("");
    if (!name) {
      this.say("Type a domain name, e.g. www.foo.com.", this.input);
      this.input.focus();
      return;
    }
    const button = event.submitter || this.form.querySelector("button");
    button.disabled = true;
    try {
      const created = await this.api().addDomain(name);
      this.input.value = "";
      this.status(`Managing ${created.name}: ordering its certificate`);
    } catch (err) {
      const fieldAtFault = err.code === "invalid_domain" || err.code === "domain_exists";
      this.say(err.message, fieldAtFault ? this.input : null);
    } finally {
      button.disabled = false;
    }
    await this.reload();
  }

  remove(domain, button) {
    this.confirm(
      "Stop managing this domain?",
      `Stop managing ${domain.name}? Its certificate is deleted: new HTTPS connections for it fail unless another certificate covers it.`,
      "Stop managing",
      button,
      async () => {
        this.note = null;
        try {
          await this.api().deleteDomain(domain.name);
        } catch (err) {
          this.note = { name: domain.name, message: `Not removed: ${err.message}` };
          this.shown = null;
        }
        await this.reload();
        // The row and its button are gone (or rebuilt): keep focus in the card.
        this.input.focus();
      },
    );
  }

  row(domain, now) {
    const tr = document.createElement("tr");
    tr.dataset.name = domain.name;
    const cell = (label, className) => addCell(tr, label, className);
    const name = document.createElement("code");
    name.textContent = domain.name;
    cell("Domain", "name").append(name);
    const badge = document.createElement("span");
    badge.className = `badge ${STATUS_BADGE[domain.status] || ""}`;
    badge.textContent = domain.status;
    cell("Status", "status").append(badge);
    cell("Expires", "expiry").textContent = domain.not_after
      ? `${daysLeft(Math.floor((Date.parse(domain.not_after) - now) / 86_400_000))} · ${new Date(domain.not_after).toLocaleDateString()}`
      : "–";
    cell("Renews", "renews").textContent = domain.renews_at
      ? new Date(domain.renews_at).toLocaleString()
      : "–";
    const problem = cell("Last error", "error");
    if (domain.error) {
      const text = document.createElement("p");
      text.className = "cert-note bad";
      text.textContent = domain.error;
      problem.append(text);
      if (domain.retry_at) {
        const next = document.createElement("p");
        next.className = "since";
        next.textContent = `next try ${new Date(domain.retry_at).toLocaleString()}`;
        problem.append(next);
      }
    } else {
      problem.textContent = "none";
    }
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "quiet danger small";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Stop managing ${domain.name}`);
    remove.addEventListener("click", () => this.remove(domain, remove));
    cell("", "actions").append(remove);
    return tr;
  }

}
