// The admin page: sign in with the token, then poll the API once a second
// and let the operator add, drain, activate and remove backends, look up
// routes and read the change log. It uses only the public admin API.

import { Api, ApiError } from "./api.js";
import { BackendsView } from "./backends.js";
import { showChanges } from "./changes.js";
import { parseTarget, showRoute } from "./lookup.js";

const TOKEN_KEY = "switchyard.token";
const POLL_MS = 1_000;
const CHANGES_EVERY = 5; // polls

const $ = (id) => document.getElementById(id);

let api = null;
let pollTimer = null;
let polls = 0;

const view = new BackendsView({
  table: $("backends"),
  empty: $("backends-empty"),
  onDrain: (backend, button) => act(button, () => api.patch(backend.id, { state: "draining" })),
  onActivate: (backend, button) => act(button, () => api.patch(backend.id, { state: "active" })),
  onRemove: (backend, button) => confirmRemove(backend, button),
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
    $("sign-in").hidden = true;
    $("console").hidden = false;
    $("sign-out").hidden = false;
    fieldError("token-error", $("token"), "");
    await refresh(list, true);
    schedule();
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
  api = null;
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
    await refresh(await api.backends(), ++polls % CHANGES_EVERY === 0);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      showSignIn("The token is no longer accepted; sign in again.");
      return;
    }
    status(`Not updated: ${err.message}`, true);
  }
  if (api) schedule();
}

async function refresh(list, withChanges) {
  const [stats, changes] = await Promise.all([
    api.stats(),
    withChanges ? api.changes(50) : Promise.resolve(null),
  ]);
  view.update(list, stats);
  $("generation").textContent = `generation ${list.generation}`;
  if (changes) showChanges($("changes"), $("changes-empty"), changes.changes);
  status(`Live · updated ${new Date().toLocaleTimeString()}`);
}

/// Run a change, then show its effect at once (not at the next poll).
async function act(button, change) {
  fieldError("action-error", null, "");
  button.disabled = true;
  try {
    await change();
    await refresh(await api.backends(), true);
  } catch (err) {
    fieldError("action-error", null, err.message);
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
    const input = err.code === "invalid_weight" ? weightInput : address;
    fieldError("add-error", input, err.message);
    input.focus();
  } finally {
    button.disabled = false;
  }
});

function confirmRemove(backend, button) {
  const dialog = $("confirm");
  $("confirm-text").textContent =
    `Remove ${backend.address} from the pool? Its keys move to other backends; requests already on it finish.`;
  dialog.returnValue = "";
  dialog.addEventListener(
    "close",
    () => {
      if (dialog.returnValue === "remove") act(button, () => api.remove(backend.id));
      else button.focus();
    },
    { once: true },
  );
  dialog.showModal();
}

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
        candidates: $("lookup-candidates"),
      },
      route,
    );
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
