// Drive the alpha-viz Space in headless Chromium (Debian's /usr/bin/chromium) with playwright-core.
//
//   node tests/e2e/space_e2e.js URL OUT_DIR SCENARIO [IMAGE_DIR]
//
// SCENARIO "happy": type a sentence, submit, wait for the probabilities and the heatmap, drop a stream, check
//                  that the second prediction appears, save screenshots; then bad inputs (empty, 50,000
//                  characters, non-Latin text and emoji), each answered with a visible message.
// SCENARIO "broken": the app was started on a broken checkpoint: the page states why, submitting answers with the
//                   same message, and nothing looks like a stack trace.
// SCENARIO "image": the image tab (the app runs with --vision_model): upload IMAGE_DIR/photo.png, caption it (tokens
//                  coloured by α_vision, with the numbers), ask IMAGE_DIR's question, get an answer, save
//                  space_image.png; pick the first example when there are examples; then bad uploads (a text file
//                  named .jpg, a truncated JPEG), an RGBA image, an empty question and no image, each answered with
//                  a visible message. IMAGE_DIR holds photo.png, rgba.png, not_an_image.jpg, truncated.jpg and
//                  question.txt (written by tests/test_space.py).
// Prints one JSON line with what it saw; exits non-zero (with the reason) on any failed check.
"use strict";

const path = require("path");
const { chromium } = require("playwright-core");

const [url, outDir, scenario = "happy", imageDir = ""] = process.argv.slice(2);
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

async function waitForText(page, selector, pattern) {
  await page.waitForFunction(
    ([sel, source]) => new RegExp(source).test(document.querySelector(sel)?.innerText || ""),
    [selector, pattern.source],
    { timeout: TIMEOUT },
  );
  return page.locator(selector).innerText();
}

// the coloured tokens of #caption-tokens / #answer-tokens: text, α (data-alpha) and background colour
async function alphaTokens(page, selector) {
  await page.waitForFunction(
    (sel) => document.querySelectorAll(`${sel} .alpha-token`).length > 0,
    selector,
    { timeout: TIMEOUT },
  );
  return page.evaluate(
    (sel) =>
      [...document.querySelectorAll(`${sel} .alpha-token`)].map((el) => ({
        token: el.querySelector(".tok")?.innerText ?? el.innerText,
        alpha: el.dataset.alpha === undefined ? null : Number(el.dataset.alpha),
        mixing: el.dataset.mixing === undefined ? null : Number(el.dataset.mixing),
        shown: el.querySelector(".num")?.innerText ?? null,
        background: getComputedStyle(el).backgroundColor,
      })),
    selector,
  );
}

async function upload(page, file) {
  const remove = page.locator('#image-input button[aria-label="Remove Image"]');
  if (await remove.count()) await remove.first().click(); // the file input comes back once the image is removed
  await page.locator("#image-input input[type=file]").setInputFiles(file);
  await page.locator("#image-input img").first().waitFor({ state: "attached", timeout: TIMEOUT });
}

async function caption(page, file, noticePattern) {
  if (file) await upload(page, file);
  await page.locator("#caption-button").click();
  return waitForText(page, "#caption-notice", noticePattern);
}

async function image(page, seen) {
  const fs = require("fs");
  const question = fs.readFileSync(path.join(imageDir, "question.txt"), "utf8").trim();
  // with a text model too, the image tab is the second tab (Gradio names its button #image-tab-button)
  await page.locator("#image-tab-button, #image-input").first().waitFor({ state: "visible", timeout: TIMEOUT });
  const tab = page.locator("#image-tab-button");
  if (await tab.count()) await tab.click();
  await page.locator("#image-input").waitFor({ state: "visible", timeout: TIMEOUT });
  seen.model_info = await page.locator("#vision-model-info").innerText();

  // caption an uploaded photo: every token coloured, α shown under it
  seen.caption_notice = await caption(page, path.join(imageDir, "photo.png"), /photo\.png: PNG/);
  seen.caption_tokens = await alphaTokens(page, "#caption-tokens");
  seen.caption = await page.locator("#caption-text textarea, #caption-text input").first().inputValue();
  seen.caption_legend = await page.locator("#caption-tokens .alpha-legend").innerText();
  check(seen.caption_tokens.every((t) => t.alpha !== null && /^rgb/.test(t.background)), "coloured tokens");
  check(seen.caption_tokens.every((t) => t.background !== "rgba(0, 0, 0, 0)"), "tokens have a background");
  seen.caption_table = (await page.locator("#caption-table").innerText()).slice(0, 600);

  // ask a question: the answer's tokens, coloured likewise
  await page.locator("#question textarea, #question input").first().fill(question);
  await page.locator("#ask-button").click();
  seen.answer_notice = await waitForText(page, "#answer-notice", /Question: /);
  seen.answer_tokens = await alphaTokens(page, "#answer-tokens");
  seen.answer = await page.locator("#answer-text textarea, #answer-text input").first().inputValue();
  seen.answer_table = (await page.locator("#answer-table").innerText()).slice(0, 600);
  await page.screenshot({ path: path.join(outDir, "space_image.png"), fullPage: true });

  // an example, when the app has some (a shared data folder): its photo fills the image input
  const example = page.locator("#image-examples tbody tr");
  seen.examples = await example.count();
  if (seen.examples) {
    await example.first().click();
    await page.locator("#image-input img").first().waitFor({ state: "attached", timeout: TIMEOUT });
    seen.example_notice = await caption(page, null, /Image: .*JPEG/);
    seen.example_tokens = (await alphaTokens(page, "#caption-tokens")).length;
  }

  // bad uploads and inputs: a message each, no stack trace, the previous caption's tokens gone
  seen.not_an_image = await caption(page, path.join(imageDir, "not_an_image.jpg"), /is not an image file/);
  check((await page.locator("#caption-tokens .alpha-token").count()) === 0, "no tokens for a non-image");
  seen.truncated = await caption(page, path.join(imageDir, "truncated.jpg"), /could not be decoded/);
  seen.rgba = await caption(page, path.join(imageDir, "rgba.png"), /RGBA → RGB/);
  await page.locator("#question textarea, #question input").first().fill("");
  await page.locator("#ask-button").click();
  seen.empty_question = await waitForText(page, "#answer-notice", /Type a question/);
  await page.locator('#image-input button[aria-label="Remove Image"]').first().click();
  seen.no_image = await caption(page, null, /Upload an image/);
  await page.screenshot({ path: path.join(outDir, "space_image-bad-input.png"), fullPage: true });
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
    if (scenario === "image") await image(page, seen);
    else {
      await page.locator("#sentence textarea").waitFor({ state: "visible", timeout: TIMEOUT });
      if (scenario === "broken") await broken(page, seen);
      else await happy(page, seen);
    }
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
