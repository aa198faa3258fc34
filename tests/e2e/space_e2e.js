// Drive the alpha-viz Space in headless Chromium (Debian's /usr/bin/chromium) with playwright-core.
//
//   node tests/e2e/space_e2e.js URL OUT_DIR SCENARIO
//
// SCENARIO "happy": type a sentence, submit, wait for the probabilities and the heatmap, drop a stream, check
//                  that the second prediction appears, save screenshots; then bad inputs (empty, 50,000
//                  characters, non-Latin text and emoji), each answered with a visible message.
// SCENARIO "broken": the app was started on a broken checkpoint: the page states why, submitting answers with the
//                   same message, and nothing looks like a stack trace.
// Prints one JSON line with what it saw; exits non-zero (with the reason) on any failed check.
"use strict";

const path = require("path");
const { chromium } = require("playwright-core");

const [url, outDir, scenario = "happy"] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const TIMEOUT = Number(process.env.E2E_TIMEOUT_MS || 90000);
const STACK_TRACE = /Traceback \(most recent call last\)|File ".*", line \d+/;

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function pageText(page) {
  return page.evaluate(() => document.body.innerText);
}

async function submit(page, text, { fill = true } = {}) {
  const box = page.locator("#sentence textarea");
  if (fill) await box.fill(text);
  else {
    await box.fill("");
    await box.pressSequentially(text, { delay: 15 }); // typed like a person
  }
  await page.locator("#analyse").click();
}

async function waitForNotice(page, pattern) {
  await page.waitForFunction(
    (source) => new RegExp(source).test(document.querySelector("#notice")?.innerText || ""),
    pattern.source,
    { timeout: TIMEOUT },
  );
  return page.locator("#notice").innerText();
}

async function happy(page, seen) {
  await submit(page, "The actor loved the wonderful music.", { fill: false });
  // probabilities: gr.Label renders one row per class with a percentage
  await page.waitForFunction(
    () => /\d+%/.test(document.querySelector("#probs")?.innerText || ""),
    null,
    { timeout: TIMEOUT },
  );
  // heatmap: gr.Plot renders the matplotlib figure as an image
  await page.locator("#heatmap img").first().waitFor({ state: "visible", timeout: TIMEOUT });
  await page.waitForFunction(
    () => (document.querySelector("#tokens")?.innerText || "").includes("wonderful"),
    null,
    { timeout: TIMEOUT },
  );
  seen.probs = await page.locator("#probs").innerText();
  seen.tokens_table = (await page.locator("#tokens").innerText()).slice(0, 400);
  await page.screenshot({ path: path.join(outDir, "space.png"), fullPage: true });

  // drop the phonetic stream: a second prediction appears and the notice says how the prediction moved
  await page.locator("#drop label", { hasText: "phonetic" }).click();
  await page.locator("#analyse").click();
  seen.drop_notice = await waitForNotice(page, /Without phonetic/);
  await page.waitForFunction(
    () => /\d+%/.test(document.querySelector("#probs-dropped")?.innerText || ""),
    null,
    { timeout: TIMEOUT },
  );
  seen.probs_dropped = await page.locator("#probs-dropped").innerText();
  await page.screenshot({ path: path.join(outDir, "space-dropped.png"), fullPage: true });
  await page.locator("#drop label", { hasText: "phonetic" }).click(); // un-drop

  // bad inputs
  await submit(page, "");
  seen.empty = await waitForNotice(page, /Type a sentence/);
  await submit(page, "a".repeat(50000));
  seen.long = await waitForNotice(page, /50,000 characters; only the first 512/);
  await submit(page, "Привет мир 😀🎬 東京タワー");
  await page.waitForFunction(
    () => (document.querySelector("#tokens")?.innerText || "").includes("[UNK]"),
    null,
    { timeout: TIMEOUT },
  );
  seen.non_latin_probs = await page.locator("#probs").innerText();
  await page.screenshot({ path: path.join(outDir, "space-bad-input.png"), fullPage: true });
}

async function broken(page, seen) {
  seen.load_error = await page.locator("#load-error").innerText({ timeout: TIMEOUT });
  check(/could not be loaded/.test(seen.load_error), "the page says the model could not be loaded");
  await submit(page, "Any sentence.");
  seen.notice = await waitForNotice(page, /⚠️/);
  await page.screenshot({ path: path.join(outDir, "space-broken.png"), fullPage: true });
}

(async () => {
  const userDataDir = require("fs").mkdtempSync(path.join(require("os").tmpdir(), "chromium-profile-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const seen = { scenario, console_errors: [] };
  let failure = null;
  try {
    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT);
    page.on("pageerror", (err) => seen.console_errors.push(String(err)));
    await page.goto(url, { waitUntil: "domcontentloaded", timeout: TIMEOUT });
    await page.locator("#sentence textarea").waitFor({ state: "visible", timeout: TIMEOUT });
    if (scenario === "broken") await broken(page, seen);
    else await happy(page, seen);
    seen.page_text = (await pageText(page)).slice(0, 4000);
    check(!STACK_TRACE.test(seen.page_text), "no stack trace in the page");
  } catch (err) {
    failure = err;
  } finally {
    await context.close();
  }
  console.log(JSON.stringify(seen));
  if (failure) {
    console.error(String(failure.stack || failure));
    process.exit(1);
  }
})();
