// The admin UI in a real browser (Debian's chromium, driven by playwright-core).
// Run by tests/admin_ui.rs, which starts switchyard (temp database, --demo)
// and passes ADMIN_URL, ADMIN_TOKEN, READ_TOKEN, PROXY_URL, HTTPS_URL, CERT_DIR
// (PEM files made for the test: shop, leaf, expired, root) and SCREENSHOT_DIR.
// Exits non-zero with a message on the first failed expectation.

import assert from "node:assert/strict";
import http from "node:http";
import https from "node:https";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { chromium } from "playwright-core";

const ADMIN = process.env.ADMIN_URL;
const TOKEN = process.env.ADMIN_TOKEN;
const READ_TOKEN = process.env.READ_TOKEN;
const PROXY = new URL(process.env.PROXY_URL);
const HTTPS_URL = new URL(process.env.HTTPS_URL);
const CERTS = process.env.CERT_DIR;
// "1": switchyard orders certificates from a Pebble (root in CERT_DIR/pebble-root.pem).
const ACME = process.env.ACME === "1";
const SHOTS = process.env.SCREENSHOT_DIR;
rmSync(SHOTS, { recursive: true, force: true });
mkdirSync(SHOTS, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
page.setDefaultTimeout(10_000);

// Everything the page logs as an error, and every UI file's size.
const consoleErrors = [];
page.on("console", (msg) => {
  if (msg.type() === "error") consoleErrors.push(`${msg.text()} (${msg.location().url})`);
});
page.on("pageerror", (err) => consoleErrors.push(`uncaught: ${err.message}`));
const uiBytes = new Map();
page.on("response", async (response) => {
  const url = new URL(response.url());
  if (url.pathname.startsWith("/api/") || response.status() !== 200) return;
  const body = await response.body().catch(() => null);
  if (body) uiBytes.set(url.pathname, body.length);
});
// The API requests the stale step made fail on purpose (each logs an error).
const aborted = [];

let shot = 0;
async function screenshot(name) {
  shot += 1;
  await page.screenshot({ path: `${SHOTS}/${String(shot).padStart(2, "0")}-${name}.png`, fullPage: true });
}

const row = (address) => page.locator("#backends tbody tr", { hasText: address });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function proxiedGet(host) {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: PROXY.hostname, port: PROXY.port, path: "/", headers: { Host: host } },
      (res) => { res.resume(); res.on("end", () => resolve(res.statusCode)); },
    );
    req.on("error", reject);
  });
}

/// GET / over HTTPS for `host` (SNI and Host), trusting only the test's
/// root: the status and the names of the certificate served.
function httpsGet(host, root = "root.pem") {
  return new Promise((resolve, reject) => {
    const req = https.get({
      host: HTTPS_URL.hostname, port: HTTPS_URL.port, path: "/", servername: host,
      headers: { Host: host }, ca: readFileSync(`${CERTS}/${root}`), agent: false,
    }, (res) => {
      const names = res.socket.getPeerCertificate().subjectaltname;
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode, names }));
    });
    req.on("error", reject);
  });
}

const certRow = (name) => page.locator("#certificates tbody tr:not(.note)", { hasText: name });

/// Fill the upload form with `name`.pem and `name`.key (typed, as pasted).
async function fillUpload(name) {
  await page.fill("#upload-certificate", readFileSync(`${CERTS}/${name}.pem`, "utf8"));
  await page.fill("#upload-key", readFileSync(`${CERTS}/${name}.key`, "utf8"));
}

/// GET an admin API path with the admin token (from node, not the page).
function apiGet(path) {
  return new Promise((resolve, reject) => {
    const req = http.get(new URL(path, ADMIN), { headers: { Authorization: `Bearer ${TOKEN}` } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => { body += chunk; });
      res.on("end", () => (res.statusCode === 200
        ? resolve(JSON.parse(body))
        : reject(new Error(`GET ${path}: ${res.statusCode} ${body}`))));
    });
    req.on("error", reject);
  });
}

/// What a backend row's health and counter cells say.
function cellTexts(tr) {
  return tr.evaluate((el) => {
    const text = (selector) => el.querySelector(selector).textContent;
    return {
      health: text("td.health .badge"),
      since: text("td.health .since"),
      reason: text("td.health .reason"),
      latency: text("td.latency"),
      inFlight: text("td.in-flight"),
      failovers: text("td.failovers"),
      bytes: text("td.bytes"),
    };
  });
}

/// "1.5 KiB" -> 1536.
function parseBytes(text) {
  const m = /^(\d+(?:\.\d+)?) (B|KiB|MiB|GiB)$/.exec(text.trim());
  assert.ok(m, `not a byte count: ${text}`);
  return Number(m[1]) * 1024 ** ["B", "KiB", "MiB", "GiB"].indexOf(m[2]);
}

async function assertNoOverflow() {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  const wide = await page.evaluate(() =>
    [...document.querySelectorAll("body *")]
      .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !(e.parentElement && e.parentElement.closest(".table-wrap")))
      .slice(0, 5)
      .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`));
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the window: ${wide.join(", ")}`);
}

/// At 1280 px the backends table fits its card (no sideways scrolling).
async function assertTableFits() {
  const { need, have } = await page.$eval(".table-wrap", (wrap) => {
    const table = wrap.querySelector("table");
    table.style.width = "min-content";
    const need = table.getBoundingClientRect().width;
    table.style.width = "";
    return { need, have: wrap.clientWidth };
  });
  assert.ok(need <= have, `the backends table needs ${need}px, its card has ${have}px`);
}

async function step(name, body) {
  process.stdout.write(`ui: ${name} ... `);
  await body();
  console.log("ok");
}

try {
  await step("the page asks for the token", async () => {
    await page.goto(`${ADMIN}/`);
    await page.locator("#sign-in").waitFor();
    assert.equal(await page.locator("#console").isVisible(), false);
    await screenshot("sign-in");
  });

  await step("a wrong token gets a clear message", async () => {
    await page.fill("#token", "not-the-right-token-at-all");
    await page.press("#token", "Enter");
    await page.locator("#token-error", { hasText: "not accepted" }).waitFor();
    await screenshot("wrong-token");
  });

  await step("the token in the URL fragment signs in and leaves the address bar", async () => {
    await page.goto(`${ADMIN}/#token=${encodeURIComponent(TOKEN)}`);
    await page.locator("#console").waitFor();
    assert.ok(!page.url().includes("token"), `token still in ${page.url()}`);
    for (const port of [9001, 9002, 9003]) await row(`127.0.0.1:${port}`).waitFor();
  });

  await step("traffic shows up as a request rate, refreshed live", async () => {
    for (let i = 0; i < 60; i++) assert.equal(await proxiedGet(`site-${i}.example`), 200);
    await page.waitForFunction(() =>
      [...document.querySelectorAll("#backends tbody tr td:nth-child(5)")]
        .some((td) => Number.parseFloat(td.textContent) > 0));
  });

  await step("each demo backend shows up and why, latency, in flight, failovers and bytes", async () => {
    for (const port of [9001, 9002, 9003]) {
      const tr = row(`127.0.0.1:${port}`);
      await tr.locator("td.health .badge.up").waitFor();
      const c = await cellTexts(tr);
      const seen = `${port}: ${JSON.stringify(c)}`;
      assert.match(c.since, /^for \d+ (s|min)$/, seen);
      assert.match(c.reason, /request answered: status 200/, seen);
      assert.match(c.latency, /^\d+(\.\d)? \/ \d+(\.\d)? ms$/, seen);
      assert.match(c.inFlight, /^\d+$/, seen);
      assert.match(c.failovers, /^\d+$/, seen);
      const [bytesIn, bytesOut] = c.bytes.split(" / ").map(parseBytes);
      assert.ok(bytesIn >= 0 && bytesOut > 0, seen);
    }
    // The reason is visible text, not only a tooltip.
    assert.ok(await row("127.0.0.1:9001").locator("td.health .reason").isVisible());
    await assertTableFits();
    await screenshot("backends-live");
  });

  await step("adding a backend shows it in the table", async () => {
    await page.fill("#add-address", "127.0.0.1:9004");
    await page.fill("#add-weight", "2");
    await page.click("#add-form button[type=submit]");
    await row("127.0.0.1:9004").waitFor();
    assert.equal((await row("127.0.0.1:9004").locator("td").nth(1).textContent()).trim(), "2");
  });

  const downHosts = [];
  await step("a backend that refuses connections goes down after 5 failed requests, and says why", async () => {
    // Hosts whose key lands on 127.0.0.1:9004 first (nothing listens there).
    for (let i = 0; downHosts.length < 6 && i < 500; i++) {
      const host = `down-${i}.example`;
      const route = await apiGet(`/api/v1/route?${new URLSearchParams({ host, path: "/" })}`);
      if (route.candidates[0].address === "127.0.0.1:9004") downHosts.push(host);
    }
    assert.equal(downHosts.length, 6, "hosts that land on 127.0.0.1:9004");
    // Each fails over to the next candidate, so the client still gets 200;
    // the fifth connect failure takes 9004 down, the sixth skips it.
    for (const host of downHosts) assert.equal(await proxiedGet(host), 200);
    const tr = row("127.0.0.1:9004");
    await tr.locator("td.health .badge.down").waitFor();
    await tr.locator("td.health .reason", { hasText: "5 requests failed: connect refused" }).waitFor();
    await tr.locator("td.failovers").filter({ hasText: /^([5-9]|\d\d+)$/ }).waitFor();
    const c = await cellTexts(tr);
    assert.match(c.since, /^for \d+ s$/, JSON.stringify(c));
    assert.equal(c.latency, "–", "no response from 9004");
    assert.equal(c.inFlight, "0");
    assert.equal(c.bytes, "0 B / 0 B");
    await assertTableFits();
    await screenshot("backend-down");
    await page.setViewportSize({ width: 420, height: 900 });
    await page.waitForTimeout(300);
    await assertNoOverflow();
    await screenshot("backend-down-narrow");
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await step("route lookup marks the down candidate skipped and shows which one serves", async () => {
    const host = downHosts[0];
    await page.fill("#lookup-input", host);
    await page.click("#lookup-form button");
    await page.locator("#lookup-key", { hasText: host }).waitFor();
    const candidates = page.locator("#lookup-candidates li");
    assert.match(await candidates.nth(0).textContent(), /^127\.0\.0\.1:9004 .*down — skipped$/);
    assert.equal(await candidates.nth(0).getAttribute("class"), "down");
    assert.equal(
      await candidates.nth(0).locator("code").evaluate((e) => getComputedStyle(e).textDecorationLine),
      "line-through",
    );
    const serving = (await page.textContent("#lookup-backend")).trim();
    assert.match(serving, /^127\.0\.0\.1:900[123]$/);
    assert.equal(await page.locator("#lookup-candidates li.serves").count(), 1);
    assert.equal(await candidates.nth(1).getAttribute("class"), "serves", "the next candidate serves");
    assert.match(await candidates.nth(1).textContent(), new RegExp(`^${serving.replaceAll(".", "\\.")}\\b.*serves$`));
    assert.equal(await page.textContent("#lookup-note"), "127.0.0.1:9004 is down and skipped.");
    await screenshot("route-down");
  });

  await step("an invalid address gets the API's message next to the field", async () => {
    await page.fill("#add-address", "not-an-address");
    await page.press("#add-address", "Enter");
    await page.locator("#add-error", { hasText: "expected host:port" }).waitFor();
    assert.equal(await page.getAttribute("#add-address", "aria-invalid"), "true");
    assert.equal(await page.locator("#backends tbody tr").count(), 4, "nothing was added");
    await screenshot("validation-error");
  });

  await step("drain, then activate, a backend", async () => {
    await page.click('button[aria-label="Drain 127.0.0.1:9001"]');
    await row("127.0.0.1:9001").locator(".badge.draining").waitFor();
    await screenshot("drained");
    await page.click('button[aria-label="Activate 127.0.0.1:9001"]');
    await row("127.0.0.1:9001").locator(".badge.active").first().waitFor();
  });

  await step("remove asks first; cancel keeps it, confirm removes it", async () => {
    await page.click('button[aria-label="Remove 127.0.0.1:9004"]');
    await page.locator("#confirm[open]").waitFor();
    await screenshot("confirm-remove");
    await page.keyboard.press("Escape");
    await page.locator("#confirm:not([open])").waitFor({ state: "attached" });
    assert.equal(await row("127.0.0.1:9004").count(), 1, "cancel keeps the backend");
    await page.click('button[aria-label="Remove 127.0.0.1:9004"]');
    await page.click("#confirm button[value=remove]");
    await row("127.0.0.1:9004").waitFor({ state: "detached" });
  });

  let siteBackend;
  await step("route lookup: IronHand.Example and its reload URL reach the same backend", async () => {
    await page.fill("#lookup-input", "IronHand.Example");
    await page.click("#lookup-form button");
    await page.locator("#lookup-key", { hasText: "ironhand.example" }).waitFor();
    assert.match(await page.textContent("#lookup-rule"), /^host/);
    siteBackend = (await page.textContent("#lookup-backend")).trim();
    assert.match(siteBackend, /^127\.0\.0\.1:900[123]$/);
    assert.equal(await page.locator("#lookup-candidates li").count(), 3);
    assert.equal(await page.locator("#lookup-candidates li.down").count(), 0);
    assert.equal(await page.textContent("#lookup-note"), "");

    await page.fill("#lookup-input", "https://www.pythonanywhere.com/user/fred/webapps/IronHand.Example/reload");
    await page.press("#lookup-input", "Enter");
    await page.locator("#lookup-rule", { hasText: "reload" }).waitFor();
    assert.equal(await page.textContent("#lookup-key"), "ironhand.example");
    assert.equal((await page.textContent("#lookup-backend")).trim(), siteBackend);
    await screenshot("route-lookup");
  });

  await step("certificates: none at first; one uploaded from files shows its domains, issuer and days left", async () => {
    await page.locator("#certificates-empty").waitFor();
    await assert.rejects(httpsGet("www.shop.example"), "no certificate: the handshake fails");
    await page.setInputFiles("#upload-certificate-file", `${CERTS}/shop.pem`);
    await page.setInputFiles("#upload-key-file", `${CERTS}/shop.key`);
    await page.waitForFunction(() => document.getElementById("upload-key").value.includes("PRIVATE KEY"));
    assert.match(await page.inputValue("#upload-certificate"), /^-----BEGIN CERTIFICATE-----/);
    await page.click("#upload-form button[type=submit]");
    const shop = certRow("*.shop.example");
    await shop.waitFor();
    assert.deepEqual(await shop.locator("td.domains code").allTextContents(), ["shop.example", "*.shop.example"]);
    assert.match(await shop.locator("td.issuer").textContent(), /switchyard UI test root/);
    assert.match(await shop.locator("td.expiry .badge").textContent(), /^(88|89|90) days$/);
    assert.equal(await shop.locator("td.warnings").textContent(), "none");
    assert.equal(await page.inputValue("#upload-key"), "", "the key leaves the page once stored");
    assert.equal(await page.locator("#certificates-empty").isVisible(), false);
    assert.match(await page.textContent("#status"), /Uploaded the certificate for shop\.example, \*\.shop\.example/);
    // Served at once, to a client that checks the chain against the root.
    const served = await httpsGet("www.shop.example");
    assert.equal(served.status, 200);
    assert.match(served.names, /DNS:\*\.shop\.example/);
  });

  await step("a refused upload says why, next to the form, and keeps what was pasted", async () => {
    await fillUpload("expired");
    await page.click("#upload-form button[type=submit]");
    await page.locator("#upload-error", { hasText: "expired" }).waitFor();
    assert.equal(await page.getAttribute("#upload-certificate", "aria-invalid"), "true");
    assert.match(await page.inputValue("#upload-certificate"), /BEGIN CERTIFICATE/);
    assert.match(await page.inputValue("#upload-key"), /PRIVATE KEY/);
    assert.equal(await certRow("old.example").count(), 0, "nothing stored");
    await screenshot("certificate-refused");
  });

  await step("a certificate without its intermediate is accepted, with the warning in words", async () => {
    await fillUpload("leaf");
    await page.click("#upload-form button[type=submit]");
    const leaf = certRow("leaf.example");
    await leaf.waitFor();
    assert.equal(await page.textContent("#upload-error"), "", "the earlier refusal is gone");
    assert.match(await page.textContent("#upload-notice"), /^Accepted, with warnings: .*intermediate/);
    assert.match(await leaf.locator(".cert-note.warn").textContent(), /intermediate/);
    await screenshot("certificates");
  });

  await step("route lookup names the certificate a host would get", async () => {
    await page.fill("#lookup-input", "Www.Shop.Example");
    await page.click("#lookup-form button");
    await page.locator("#lookup-key", { hasText: "www.shop.example" }).waitFor();
    assert.match(await page.textContent("#lookup-certificate"), /^#\d+ \(shop\.example, \*\.shop\.example\), valid until /);
    // A wildcard covers one label only.
    await page.fill("#lookup-input", "a.b.shop.example");
    await page.click("#lookup-form button");
    await page.locator("#lookup-key", { hasText: "a.b.shop.example" }).waitFor();
    assert.match(await page.textContent("#lookup-certificate"), /^none: /);
    // A reload URL: routed by the domain in its path, the certificate by its host.
    await page.fill("#lookup-input", "https://www.shop.example/user/fred/webapps/IronHand.Example/reload");
    await page.click("#lookup-form button");
    await page.locator("#lookup-key", { hasText: "ironhand.example" }).waitFor();
    assert.match(await page.textContent("#lookup-certificate"), /\*\.shop\.example/);
  });

  await step("delete asks first; the certificate is then gone and no longer served", async () => {
    const button = 'button[aria-label^="Delete certificate"][aria-label$="(shop.example)"]';
    await page.click(button);
    await page.locator("#confirm[open]").waitFor();
    assert.equal(await page.textContent("#confirm-title"), "Delete certificate?");
    await page.keyboard.press("Escape");
    await page.locator("#confirm:not([open])").waitFor({ state: "attached" });
    assert.equal(await certRow("*.shop.example").count(), 1, "cancel keeps it");
    await page.click(button);
    await page.click("#confirm button[value=remove]");
    await certRow("*.shop.example").waitFor({ state: "detached" });
    await assert.rejects(httpsGet("www.shop.example"), "deleted: the handshake fails");
    assert.equal(await certRow("leaf.example").count(), 1, "the other one stays");
  });


  if (ACME) {
    await step("managed domains: one added becomes valid, its certificate listed and served", async () => {
      await page.locator("#domains-empty").waitFor();
      await page.fill("#domain-name", "UI.Example");
      await page.press("#domain-name", "Enter");
      const row = page.locator("#domains tbody tr", { hasText: "ui.example" });
      await row.waitFor();
      assert.equal(await page.inputValue("#domain-name"), "");
      await row.locator(".badge.up", { hasText: "valid" }).waitFor({ timeout: 30_000 });
      assert.match(await row.locator("td.expiry").textContent(), /^(\d+ days?|< 1 day) · /);
      assert.notEqual(await row.locator("td.renews").textContent(), "–");
      assert.equal(await row.locator("td.error").textContent(), "none");
      const cert = certRow("ui.example");
      await cert.waitFor();
      assert.equal(await cert.locator("td.source").textContent(), "acme");
      const served = await httpsGet("ui.example", "pebble-root.pem");
      assert.equal(served.status, 200);
      assert.match(served.names, /DNS:ui\.example/);
      await screenshot("managed-domains");
    });

    await step("a domain that cannot be managed gets the API's message next to the field", async () => {
      await page.fill("#domain-name", "*.wild.example");
      await page.click("#domain-form button[type=submit]");
      await page.locator("#domain-error", { hasText: "wildcard" }).waitFor();
      assert.equal(await page.getAttribute("#domain-name", "aria-invalid"), "true");
      await page.fill("#domain-name", "");
    });

    await step("stop managing asks first; then the domain and its certificate are gone", async () => {
      await page.click('button[aria-label="Stop managing ui.example"]');
      await page.locator("#confirm[open]").waitFor();
      assert.equal(await page.textContent("#confirm-title"), "Stop managing this domain?");
      await page.click("#confirm button[value=remove]");
      await page.locator("#domains tbody tr", { hasText: "ui.example" }).waitFor({ state: "detached" });
      await certRow("ui.example").waitFor({ state: "detached", timeout: 15_000 });
      await assert.rejects(httpsGet("ui.example", "pebble-root.pem"), "no certificate any more");
    });
  } else {
    await step("managed domains without ACME: adding one says how to turn it on", async () => {
      await page.fill("#domain-name", "www.foo.example");
      await page.click("#domain-form button[type=submit]");
      await page.locator("#domain-error", { hasText: "acme.directory" }).waitFor();
      assert.equal(await page.getAttribute("#domain-name", "aria-invalid"), "false", "the name was fine");
      await page.fill("#domain-name", "");
    });
  }

  await step("the change log lists the changes, newest first", async () => {
    await page.locator("#changes li", { hasText: "Removed" }).first().waitFor();
    const items = await page.locator("#changes li").allTextContents();
    assert.ok(items.length >= 5, `only ${items.length} changes`);
    assert.match(items[0], /Removed.*127\.0\.0\.1:9004/);
  });

  await step("the sparklines come from the server's history, so a reload keeps them", async () => {
    // Wait (at most 15 s) for two 5 s samples with requests, sending some.
    const deadline = Date.now() + 15_000;
    let target;
    for (;;) {
      const history = await apiGet("/api/v1/stats/history");
      assert.equal(history.interval_seconds, 5);
      target = history.backends.find((b) => b.samples.filter((s) => s.requests > 0).length >= 2);
      if (target) break;
      assert.ok(Date.now() < deadline, `no backend has 2 samples with requests: ${JSON.stringify(history)}`);
      for (let i = 0; i < 6; i++) assert.equal(await proxiedGet(`site-${i}.example`), 200);
      await sleep(1_000);
    }
    const historyRequests = [];
    const onRequest = (req) => {
      if (new URL(req.url()).pathname === "/api/v1/stats/history") historyRequests.push(req);
    };
    page.on("request", onRequest);
    await page.reload();
    await page.locator("#console").waitFor();
    const spark = await row(target.address).locator("svg.spark").evaluate((svg) => ({
      points: Number(svg.dataset.points),
      line: svg.querySelector(".requests").getAttribute("points"),
      height: Number(svg.getAttribute("height")),
    }));
    page.off("request", onRequest);
    // Drawn from the one history request of the sign-in (the next one is
    // five polls later), not from anything this fresh page measured.
    assert.equal(historyRequests.length, 1, "one history request so far");
    const served = await (await historyRequests[0].response()).json();
    const samples = served.backends.find((b) => b.id === target.id).samples;
    assert.ok(samples.filter((s) => s.requests > 0).length >= 2);
    assert.equal(spark.points, samples.length, "one point per server sample");
    const ys = spark.line.split(" ").map((xy) => Number(xy.split(",")[1]));
    assert.equal(ys.length, samples.length, spark.line);
    // Samples without requests on the baseline, the busiest at the top.
    const zeros = ys.filter((y) => y === spark.height - 2).length;
    assert.equal(zeros, samples.filter((s) => s.requests === 0).length, spark.line);
    assert.equal(Math.min(...ys), 2, spark.line);
    await screenshot("history-after-reload");
  });

  await step("keyboard: skip link first, and the add form submits with Enter", async () => {
    await page.reload();
    await page.locator("#console").waitFor();
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.className), "skip");
    await page.focus("#add-address");
    await page.keyboard.type("127.0.0.1:9005");
    await page.keyboard.press("Enter");
    await row("127.0.0.1:9005").waitFor();
  });

  await step("the read-only token: a refused write says why, next to the action", async () => {
    await page.click("#sign-out");
    await page.fill("#token", READ_TOKEN);
    await page.press("#token", "Enter");
    await row("127.0.0.1:9001").waitFor();
    await page.click('button[aria-label="Drain 127.0.0.1:9001"]');
    const note = page.locator("#backends tr.note");
    await note.waitFor();
    assert.equal(await note.textContent(),
      "Not drained: the read-only token cannot change anything; use the admin token");
    // Right under the row whose button was used.
    assert.equal(await note.evaluate((tr) => tr.previousElementSibling.cells[0].textContent), "127.0.0.1:9001");
    assert.equal(await row("127.0.0.1:9001").locator("td").nth(2).textContent(), "active");
    await assertTableFits();
    await screenshot("read-only-refused");
    await page.fill("#add-address", "127.0.0.1:9006");
    await page.click("#add-form button[type=submit]");
    await page.locator("#add-error", { hasText: "read-only token cannot change anything" }).waitFor();
    assert.equal(await page.getAttribute("#add-address", "aria-invalid"), "false", "the address was fine");
    // Back to the admin token (the printed URL pasted into this tab).
    await page.fill("#add-address", "");
    await page.goto(`${ADMIN}/#token=${encodeURIComponent(TOKEN)}`);
    await page.waitForFunction((token) => sessionStorage.getItem("switchyard.token") === token, TOKEN);
    await page.locator("#status", { hasText: "Live" }).waitFor();
    assert.equal(await page.locator("#backends tr.note").count(), 0, "signing in again clears the note");
    assert.equal(await row("127.0.0.1:9006").count(), 0, "nothing was added");
  });

  await step("when the server stops answering, the page says so and dims the data", async () => {
    const abort = (route) => {
      aborted.push(route.request().url());
      return route.abort();
    };
    await page.route("**/api/v1/**", abort);
    const banner = page.locator("#stale");
    await banner.waitFor();
    assert.match(await banner.textContent(),
      /^Not updated since \d{1,2}:\d{2}:\d{2}( [AP]M)? — the server is not answering/);
    assert.match(await page.textContent("#status"), /^Stale/);
    const opacity = () => page.$eval("#console .table-wrap", (e) => Number(getComputedStyle(e).opacity));
    assert.ok(await opacity() < 0.6, "the table is dimmed");
    await screenshot("stale");
    await page.unroute("**/api/v1/**", abort);
    await banner.waitFor({ state: "hidden" });
    assert.equal(await opacity(), 1, "no longer dimmed");
    assert.match(await page.textContent("#status"), /^Live/);
    assert.ok(aborted.length > 0);
  });

  await step("a narrow window still reads", async () => {
    await page.setViewportSize({ width: 420, height: 900 });
    await page.waitForTimeout(300);
    await assertNoOverflow();
    await screenshot("narrow");
  });

  await step("the page logged no errors", async () => {
    // The one rejected token, the one rejected address and the expired
    // certificate are answered 401/400/400 on purpose, the read-only
    // token's two writes 403; Chromium
    // reports such responses as "Failed to load resource". So it does each
    // API request the stale step aborted, naming it. Anything else fails.
    const expected = [
      (e) => /status of 401/.test(e),
      (e) => /status of 400/.test(e),
      (e) => /status of 400/.test(e),
      // The wildcard domain (400), or adding a domain with ACME off (409).
      (e) => (ACME ? /status of 400/ : /status of 409/).test(e),
      (e) => /status of 403/.test(e),
      (e) => /status of 403/.test(e),
      ...aborted.map((url) => (e) => e === `Failed to load resource: net::ERR_FAILED (${url})`),
    ];
    const unexpected = consoleErrors.filter((e) => {
      const i = expected.findIndex((matches) => matches(e));
      if (i === -1) return true;
      expected.splice(i, 1);
      return false;
    });
    assert.deepEqual(unexpected, [], `console errors:\n${consoleErrors.join("\n")}`);
    assert.equal(expected.length, 0, `${expected.length} expected errors were not logged`);
  });

  const total = [...uiBytes.values()].reduce((a, b) => a + b, 0);
  console.log(`ui: page weight ${total} bytes: ${[...uiBytes].map(([p, n]) => `${p} ${n}`).join(", ")}`);
  console.log(`ui: screenshots in ${SHOTS}`);
} catch (err) {
  await screenshot("failure").catch(() => {});
  console.log("FAILED");
  console.error(err.stack || err);
  console.error(`console errors so far:\n${consoleErrors.join("\n")}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
