// Drive the `python -m anywire demo` page in headless Chromium, in two tabs.
//
//   node demo_browser.js URL [SCREENSHOT.png]
//
// Ann (tab A) and Bob (tab B) join, each sends a line, each checks the other's line
// arrives; both wait until the page shows the websocket transport and a round-trip time.
// Prints one JSON object: {"ok": true, "pages": {"A": {...}, "B": {...}}} or
// {"ok": false, "error": "..."} (exit status 1). Needs playwright-core (NODE_PATH) and
// Debian's chromium; CHROMIUM names another executable.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const [url, screenshot] = process.argv.slice(2);
const factor = Number(process.env.ANYWIRE_TEST_TIMEOUT_FACTOR || "1");
const TIMEOUT = 15000 * factor;
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

async function join(context, name, errors) {
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (err) => errors.push(`${name}: ${err.message}`));
  await page.goto(url);
  await page.fill("#name", name);
  await page.click("#join");
  await page.waitForSelector("#say-form", { state: "visible" });
  return page;
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.click("#send");
}

async function expectLine(page, line) {
  await page.waitForFunction(
    (want) => [...document.querySelectorAll("#log li")].some((li) => li.textContent === want),
    line,
  );
}

// Wait for the websocket transport, then for the next round trip measured over it.
async function settled(page) {
  await page.waitForFunction(() => document.getElementById("transport").textContent === "websocket");
  await page.evaluate(() => {
    window.pongs = 0;
    const count = () => { window.pongs += 1; };
    new MutationObserver(count).observe(document.getElementById("rtt"), { childList: true });
  });
  await page.waitForFunction(() => window.pongs > 0);
  return page.evaluate(() => ({
    state: document.getElementById("state").textContent,
    transport: document.getElementById("transport").textContent,
    rtt: document.getElementById("rtt").textContent,
    online: document.getElementById("online").textContent,
    log: [...document.querySelectorAll("#log li")].map((li) => li.textContent),
  }));
}

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "anywire-demo-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ARGS,
    viewport: { width: 1000, height: 650 },
  });
  const errors = [];
  try {
    const a = await join(context, "Ann", errors);
    const b = await join(context, "Bob", errors);
    await expectLine(a, "Bob joined");
    await say(a, "hello from Ann");
    await expectLine(b, "Ann: hello from Ann");
    await say(b, "hi Ann, Bob here");
    await expectLine(a, "Bob: hi Ann, Bob here");
    const pages = { A: await settled(a), B: await settled(b) };
    if (screenshot) await a.screenshot({ path: screenshot });
    return { ok: errors.length === 0, errors, pages };
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().then(
  (result) => {
    console.log(JSON.stringify(result));
    process.exit(result.ok ? 0 : 1);
  },
  (err) => {
    console.log(JSON.stringify({ ok: false, error: String(err && err.stack || err) }));
    process.exit(1);
  },
);
