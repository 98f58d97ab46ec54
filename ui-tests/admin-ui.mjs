// The admin UI in a real browser (Debian's chromium, driven by playwright-core).
// Run by tests/admin_ui.rs, which starts switchyard (temp database, --demo)
// and passes ADMIN_URL, ADMIN_TOKEN, PROXY_URL and SCREENSHOT_DIR.
// Exits non-zero with a message on the first failed expectation.

import assert from "node:assert/strict";
import http from "node:http";
import { mkdirSync, rmSync } from "node:fs";
import { chromium } from "playwright-core";

const ADMIN = process.env.ADMIN_URL;
const TOKEN = process.env.ADMIN_TOKEN;
const PROXY = new URL(process.env.PROXY_URL);
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

let shot = 0;
async function screenshot(name) {
  shot += 1;
  await page.screenshot({ path: `${SHOTS}/${String(shot).padStart(2, "0")}-${name}.png`, fullPage: true });
}

const row = (address) => page.locator("#backends tbody tr", { hasText: address });

function proxiedGet(host) {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: PROXY.hostname, port: PROXY.port, path: "/", headers: { Host: host } },
      (res) => { res.resume(); res.on("end", () => resolve(res.statusCode)); },
    );
    req.on("error", reject);
  });
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
    await screenshot("backends-live");
  });

  await step("adding a backend shows it in the table", async () => {
    await page.fill("#add-address", "127.0.0.1:9004");
    await page.fill("#add-weight", "2");
    await page.click("#add-form button[type=submit]");
    await row("127.0.0.1:9004").waitFor();
    assert.equal((await row("127.0.0.1:9004").locator("td").nth(1).textContent()).trim(), "2");
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

    await page.fill("#lookup-input", "https://www.pythonanywhere.com/user/fred/webapps/IronHand.Example/reload");
    await page.press("#lookup-input", "Enter");
    await page.locator("#lookup-rule", { hasText: "reload" }).waitFor();
    assert.equal(await page.textContent("#lookup-key"), "ironhand.example");
    assert.equal((await page.textContent("#lookup-backend")).trim(), siteBackend);
    await screenshot("route-lookup");
  });

  await step("the change log lists the changes, newest first", async () => {
    await page.locator("#changes li", { hasText: "Removed" }).first().waitFor();
    const items = await page.locator("#changes li").allTextContents();
    assert.ok(items.length >= 5, `only ${items.length} changes`);
    assert.match(items[0], /Removed.*127\.0\.0\.1:9004/);
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

  await step("a narrow window still reads", async () => {
    await page.setViewportSize({ width: 420, height: 900 });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    const wide = await page.evaluate(() =>
      [...document.querySelectorAll("body *")]
        .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !(e.parentElement && e.parentElement.closest(".table-wrap")))
        .slice(0, 5)
        .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`));
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the window: ${wide.join(", ")}`);
    await screenshot("narrow");
  });

  await step("the page logged no errors", async () => {
    // The one rejected token and the one rejected address are answered
    // 401/400 on purpose; Chromium reports such responses as "Failed to
    // load resource". Anything else is a failure.
    const expected = [/status of 401/, /status of 400/];
    const unexpected = consoleErrors.filter((e) => {
      const i = expected.findIndex((re) => re.test(e));
      if (i === -1) return true;
      expected.splice(i, 1);
      return false;
    });
    assert.deepEqual(unexpected, [], `console errors:\n${consoleErrors.join("\n")}`);
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
