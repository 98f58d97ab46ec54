// The certificates card: every stored certificate (its domains, issuer,
// days left, warnings, and whether this node serves it), the upload form and
// delete. Rows are rebuilt only when what the API says changed, so keyboard
// focus stays on a row's button between polls.

import { addCell, noteRow } from "./rows.js";

const SOON_DAYS = 21; // days left shown as a warning
const URGENT_DAYS = 7; // ... and as a problem

export class CertificatesView {
  constructor({ table, empty, onDelete }) {
    this.body = table.tBodies[0];
    this.columns = table.tHead.rows[0].cells.length;
    this.empty = empty;
    this.onDelete = onDelete;
    this.shown = null; // the list last drawn, as JSON
    this.notes = new Map(); // id -> message under its row
  }

  /// Show `list` (GET /api/v1/certificates).
  update(list) {
    const json = JSON.stringify(list.certificates);
    if (json === this.shown) return;
    this.shown = json;
    const rows = [];
    for (const cert of list.certificates) {
      rows.push(this.row(cert));
      const note = this.notes.get(cert.id);
      if (note) rows.push(noteRow(this.columns, note));
    }
    this.body.replaceChildren(...rows);
    this.empty.hidden = list.certificates.length > 0;
  }

  /// Say why an action on certificate `id` failed, under its row ("" clears).
  say(id, message) {
    if (message) this.notes.set(id, message);
    else this.notes.delete(id);
    this.shown = null; // redraw at the next update
  }

  clearNotes() {
    this.notes.clear();
    this.shown = null;
  }

  row(cert) {
    const tr = document.createElement("tr");
    tr.dataset.id = cert.id;
    const cell = (label, className) => addCell(tr, label, className);
    const domains = cell("Domains", "domains");
    for (const name of cert.domains) {
      const code = document.createElement("code");
      code.textContent = name;
      domains.append(code, " ");
    }
    if (cert.domains.length === 0) domains.textContent = "–";
    cell("Issuer", "issuer").textContent = cert.issuer || "–";
    const expiry = cell("Expires", "expiry");
    if (cert.not_after) {
      const days = document.createElement("span");
      days.className = `badge ${daysClass(cert.days_left)}`;
      days.textContent = daysLeft(cert.days_left);
      const date = document.createElement("time");
      date.dateTime = cert.not_after;
      date.className = "since";
      date.textContent = new Date(cert.not_after).toLocaleDateString();
      expiry.append(days, " ", date);
    } else {
      expiry.textContent = "–";
    }
    cell("Source", "source").textContent = cert.source;
    const notes = cell("Warnings", "warnings");
    const lines = [];
    if (!cert.served) lines.push(["bad", `Not served by this node: ${cert.problem}`]);
    for (const warning of cert.warnings) lines.push(["warn", warning]);
    for (const [kind, text] of lines) {
      const p = document.createElement("p");
      p.className = `cert-note ${kind}`;
      p.textContent = text;
      notes.append(p);
    }
    if (lines.length === 0) notes.textContent = "none";
    const actions = cell("", "actions");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "quiet danger small";
    remove.textContent = "Delete";
    const name = cert.domains[0] || `#${cert.id}`;
    remove.setAttribute("aria-label", `Delete certificate ${cert.id} (${name})`);
    remove.addEventListener("click", () => this.onDelete(cert, remove));
    actions.append(remove);
    return tr;
  }

}

/// "88 days", "1 day", "< 1 day", "expired".
export function daysLeft(days) {
  if (days < 0) return "expired";
  if (days === 0) return "< 1 day";
  return days === 1 ? "1 day" : `${days} days`;
}

function daysClass(days) {
  if (days < URGENT_DAYS) return "down";
  if (days < SOON_DAYS) return "draining";
  return "up";
}

/// A file chosen in `picker` replaces the text of `area` (a PEM file is
/// text; the user can still read and edit it before uploading).
export function fillFromFile(picker, area) {
  picker.addEventListener("change", async () => {
    const file = picker.files && picker.files[0];
    if (!file) return;
    area.value = await file.text();
    area.dispatchEvent(new Event("input"));
  });
}

/// The certificate a route lookup's host gets, in words.
export function describeCertificate(cert) {
  if (!cert) return "none: no certificate covers this host and there is no default, so HTTPS handshakes for it fail";
  const names = cert.domains.join(", ");
  const until = new Date(cert.not_after).toLocaleDateString();
  if (cert.matched === "default") {
    return `#${cert.id} (${names}), the default certificate: it does not cover this host, so browsers refuse it`;
  }
  return `#${cert.id} (${names}), valid until ${until}`;
}
