// The admin page: sign in with the token, then poll the API once a second
// and let the operator add, drain, activate and remove backends, upload and
// delete certificates, manage ACME domains, look up routes and read the
// change log. It uses only the public admin API.
// When the polls stop succeeding, the page says so loudly (old numbers
// that look current are worse than none).

import { Api, ApiError } from "./api.js";
import { BackendsView } from "./backends.js";
import { CertificatesView, describeCertificate, fillFromFile } from "./certificates.js";
import { DomainsCard } from "./domains.js";
import { showChanges } from "./changes.js";
import { parseTarget, showRoute } from "./lookup.js";

const TOKEN_KEY = "switchyard.token";
const POLL_MS = 1_000;
// The change log and the server's history (it samples every 5 s): every
// fifth poll.
const SLOW_EVERY = 5;
// No successful poll for this long: stale, even while a request hangs.
const STALE_AFTER_MS = 4_000;

const $ = (id) => document.getElementById(id);

let api = null;
let pollTimer = null;
let polls = 0;
let lastUpdate = 0; // Date.now() of the last successful refresh
let watchdog = null;

const view = new BackendsView({
  table: $("backends"),
  empty: $("backends-empty"),
  onDrain: (backend, button) => act(backend, button, "Not drained", () => api.patch(backend.id, { state: "draining" })),
  onActivate: (backend, button) => act(backend, button, "Not activated", () => api.patch(backend.id, { state: "active" })),
  onRemove: (backend, button) => confirmRemove(backend, button),
});

const domains = new DomainsCard({
  table: $("domains"),
  empty: $("domains-empty"),
  form: $("domain-form"),
  input: $("domain-name"),
  error: $("domain-error"),
  api: () => api,
  confirm: (...args) => confirm(...args),
  status: (text) => status(text),
});

const certificates = new CertificatesView({
  table: $("certificates"),
  empty: $("certificates-empty"),
  onDelete: (cert, button) => confirmDelete(cert, button),
});

function status(text, bad = false) {
  $("status").textContent = text;
  $("status").classList.toggle("bad", bad);
}

function fieldError(id, input, message) {
  $(id).textContent = message || "";
  if (input) input.setAttribute("aria-invalid", message ? "true" : "false");
}

// ---- sign-in ----------------------------------------------------------

function tokenFromFragment() {
  const match = /^#token=([^&]+)/.exec(location.hash);
  if (!match) return null;
  // Keep the token out of the address bar, history and bookmarks.
  history.replaceState(null, "", location.pathname + location.search);
  return decodeURIComponent(match[1]);
}

async function signIn(token) {
  const candidate = new Api(token);
  try {
    const list = await candidate.backends();
    api = candidate;
    sessionStorage.setItem(TOKEN_KEY, token);
    // Fill the page before showing it, history included: a reloaded page
    // shows its sparklines at once, not after minutes of polling.
    view.clearNotes();
    certificates.clearNotes();
    domains.clear();
    fieldError("add-error", $("add-address"), "");
    fieldError("upload-error", null, "");
    await refresh(list, true);
    $("sign-in").hidden = true;
    $("console").hidden = false;
    $("sign-out").hidden = false;
    fieldError("token-error", $("token"), "");
    schedule();
    clearInterval(watchdog);
    watchdog = setInterval(() => {
      if (api && $("stale").hidden && Date.now() - lastUpdate > STALE_AFTER_MS) showStale(null);
    }, POLL_MS);
    return true;
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(signInMessage(err));
    return false;
  }
}

function signInMessage(err) {
  if (err instanceof ApiError && err.status === 401) {
    return "That token was not accepted. Use the token switchyard printed on its first start, or the one in the token file next to the database.";
  }
  return err.message;
}

function showSignIn(message) {
  stopPolling();
  clearInterval(watchdog);
  api = null;
  showFresh();
  $("console").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  fieldError("token-error", $("token"), message);
  status("");
  $("token").focus();
}

$("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) {
    fieldError("token-error", $("token"), "Enter the admin token.");
    return;
  }
  signIn(token);
});

$("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  $("token").value = "";
  showSignIn("");
});

// ---- live data --------------------------------------------------------

function schedule() {
  stopPolling();
  pollTimer = setTimeout(poll, POLL_MS);
}

function stopPolling() {
  if (pollTimer) clearTimeout(pollTimer);
  pollTimer = null;
}

async function poll() {
  pollTimer = null;
  if (!api) return;
  try {
    await refresh(await api.backends(), ++polls % SLOW_EVERY === 0);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      showSignIn("The token is no longer accepted; sign in again.");
      return;
    }
    if (api) showStale(err);
  }
  if (api) schedule();
}

async function refresh(list, slow) {
  const [stats, changes, history, certs, managed] = await Promise.all([
    api.stats(),
    slow ? api.changes(50) : null,
    slow ? api.history() : null,
    slow ? api.certificates() : null,
    slow ? api.domains() : null,
  ]);
  if (history) view.setHistory(history);
  if (certs) certificates.update(certs);
  if (managed) domains.update(managed);
  view.update(list, stats);
  $("generation").textContent = `generation ${list.generation}`;
  if (changes) showChanges($("changes"), $("changes-empty"), changes.changes);
  lastUpdate = Date.now();
  showFresh();
  status(`Live · updated ${new Date(lastUpdate).toLocaleTimeString()}`);
}

// ---- stale ------------------------------------------------------------

/// The data on the page stopped being current: say since when and why,
/// and dim it (polling goes on, and the next success clears this).
function showStale(err) {
  const since = new Date(lastUpdate).toLocaleTimeString();
  let why = "the server is not answering";
  if (err && err.status >= 500) why = `the server answered ${err.status}: ${err.message}`;
  else if (err && err.status > 0) why = err.message;
  else if (err) why += ` (${err.message})`;
  const text = `Not updated since ${since} — ${why}. The numbers below are from then; retrying every second.`;
  // Same words every second: leave the alert alone (no re-announcing).
  if ($("stale").textContent !== text) $("stale").textContent = text;
  $("stale").hidden = false;
  $("console").classList.add("stale");
  status(`Stale · not updated since ${since}`, true);
}

function showFresh() {
  $("stale").hidden = true;
  $("console").classList.remove("stale");
}

/// Run a change, then show its effect at once (not at the next poll). A
/// refusal (e.g. the read-only token's 403) is shown under the backend's
/// row, next to the button that was used.
async function act(backend, button, refused, change) {
  view.clearNotes();
  button.disabled = true;
  try {
    await change();
  } catch (err) {
    button.disabled = false;
    view.say(backend.id, `${refused}: ${err.message}`);
    return;
  }
  try {
    await refresh(await api.backends(), true);
  } catch (err) {
    // It was done; only showing it failed.
    if (api) showStale(err);
  } finally {
    button.disabled = false;
  }
}

// ---- add, remove -------------------------------------------------------

$("add-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const address = $("add-address");
  const weightInput = $("add-weight");
  const weight = weightInput.value === "" ? 1 : Number(weightInput.value);
  fieldError("add-error", address, "");
  weightInput.setAttribute("aria-invalid", "false");
  const button = event.submitter || $("add-form").querySelector("button");
  button.disabled = true;
  try {
    const created = await api.add(address.value.trim(), weight);
    address.value = "";
    weightInput.value = "1";
    status(`Added ${created.address}`);
    await refresh(await api.backends(), true);
    address.focus();
  } catch (err) {
    if (err.code === "read_only_token" || err.status === 0) {
      // Nothing wrong with what was typed.
      fieldError("add-error", null, err.message);
      return;
    }
    const input = err.code === "invalid_weight" ? weightInput : address;
    fieldError("add-error", input, err.message);
    input.focus();
  } finally {
    button.disabled = false;
  }
});

function confirmRemove(backend, button) {
  confirm(
    "Remove backend?",
    `Remove ${backend.address} from the pool? Its keys move to other backends; requests already on it finish.`,
    "Remove",
    button,
    () => act(backend, button, "Not removed", () => api.remove(backend.id)),
  );
}

/// Ask `question` in the dialog; `yes` runs only when `label` is chosen.
function confirm(title, question, label, button, yes) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = question;
  $("confirm-yes").textContent = label;
  dialog.returnValue = "";
  dialog.addEventListener(
    "close",
    () => {
      if (dialog.returnValue === "remove") yes();
      else button.focus();
    },
    { once: true },
  );
  dialog.showModal();
}

// ---- certificates ------------------------------------------------------

function confirmDelete(cert, button) {
  const names = cert.domains.join(", ") || `certificate #${cert.id}`;
  confirm(
    "Delete certificate?",
    `Delete the certificate for ${names}? New HTTPS connections for these names get another certificate or none; open connections keep it.`,
    "Delete",
    button,
    () => changeCertificates(button, async () => {
      try {
        await api.deleteCertificate(cert.id);
      } catch (err) {
        certificates.say(cert.id, `Not deleted: ${err.message}`);
        throw err;
      }
    }),
  );
}

/// Run a certificate change, then show the list as it is now.
async function changeCertificates(button, change) {
  certificates.clearNotes();
  button.disabled = true;
  try {
    await change();
  } catch {
    // Said where it happened.
  }
  try {
    certificates.update(await api.certificates());
  } catch (err) {
    if (api) showStale(err);
  } finally {
    button.disabled = false;
  }
}

fillFromFile($("upload-certificate-file"), $("upload-certificate"));
fillFromFile($("upload-key-file"), $("upload-key"));

$("upload-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const chain = $("upload-certificate");
  const key = $("upload-key");
  fieldError("upload-error", chain, "");
  key.setAttribute("aria-invalid", "false");
  $("upload-notice").textContent = "";
  if (!chain.value.trim() || !key.value.trim()) {
    const empty = chain.value.trim() ? key : chain;
    fieldError("upload-error", empty, "Paste or choose both the certificate chain and its private key.");
    empty.focus();
    return;
  }
  const button = event.submitter || $("upload-form").querySelector("button[type=submit]");
  changeCertificates(button, async () => {
    try {
      const created = await api.addCertificate(chain.value, key.value);
      chain.value = "";
      key.value = "";
      $("upload-certificate-file").value = "";
      $("upload-key-file").value = "";
      status(`Uploaded the certificate for ${created.domains.join(", ")}`);
      if (created.warnings.length > 0) {
        $("upload-notice").textContent = `Accepted, with warnings: ${created.warnings.join("; ")}.`;
      }
    } catch (err) {
      // A refused upload keeps what was pasted, to be fixed.
      const nothingWrong = err.code === "read_only_token" || err.status === 0;
      const keyAtFault = /^(the|no) private key/.test(err.message);
      fieldError("upload-error", nothingWrong ? null : keyAtFault ? key : chain, err.message);
      throw err;
    }
  });
});

// ---- route lookup -----------------------------------------------------

$("lookup-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("lookup-input");
  fieldError("lookup-error", input, "");
  try {
    const { host, path } = parseTarget(input.value);
    const route = await api.route(host, path);
    showRoute(
      {
        result: $("lookup-result"),
        key: $("lookup-key"),
        rule: $("lookup-rule"),
        backend: $("lookup-backend"),
        note: $("lookup-note"),
        candidates: $("lookup-candidates"),
      },
      route,
    );
    $("lookup-certificate").textContent = describeCertificate(route.certificate);
  } catch (err) {
    $("lookup-result").hidden = true;
    fieldError("lookup-error", input, err.message);
  }
});

// ---- start ------------------------------------------------------------

const initial = tokenFromFragment() || sessionStorage.getItem(TOKEN_KEY);
if (initial) signIn(initial);
else showSignIn("");

// The printed URL pasted into a tab that already shows this page.
window.addEventListener("hashchange", () => {
  const token = tokenFromFragment();
  if (token) signIn(token);
});
