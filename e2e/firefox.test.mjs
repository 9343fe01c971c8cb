// The console in Firefox (Debian's firefox-esr, headless), driven by Puppeteer over WebDriver BiDi:
// the operator's main path once, and screenshots at both widths. The full suite runs in Chromium
// (console.test.mjs); this file holds the console to working in the second engine as well.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import puppeteer from "puppeteer-core";
import { ADMIN, SCREENSHOTS, startReceiver, startServer } from "./harness.mjs";
import { mkdirSync } from "node:fs";

let server, receiver, browser, page;

const text = (s) => page.waitForFunction((s) => document.body.innerText.includes(s), { timeout: 15_000 }, s);

async function shots(name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  for (const [label, width, height] of [["wide", 1280, 900], ["narrow", 390, 844]]) {
    await page.setViewport({ width, height });
    await new Promise((r) => setTimeout(r, 100));
    await page.screenshot({ path: join(SCREENSHOTS, `firefox-${name}-${label}.png`), fullPage: true });
  }
  await page.setViewport({ width: 1280, height: 900 });
}

before(async () => {
  server = await startServer();
  receiver = await startReceiver();
  browser = await puppeteer.launch({
    browser: "firefox",
    executablePath: process.env.FIREFOX || "/usr/bin/firefox-esr",
    headless: true,
  });
  page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  server?.cleanup();
  await receiver?.close();
});

test("in Firefox: log in, add an endpoint (a broken URL named), choose an event, see a delivery live", async () => {
  await page.goto(`${server.base}/console/`);
  await page.waitForSelector("#admin-key");
  await page.keyboard.type(ADMIN);
  await page.keyboard.press("Enter");
  await text("users online");
  await shots("overview");

  await page.goto(`${server.base}/console/#/webhooks/new`);
  await page.waitForSelector("#url");
  await page.type("#url", "ftp://a_b.localhost/cb");
  await text("the URL must start with http:// or https://");
  await text("the domain label 'a_b' may hold only letters, digits and hyphens");
  await page.$eval("#url", (el) => (el.value = ""));
  await page.type("#url", receiver.url);
  await page.waitForFunction(() => document.querySelectorAll("#url-errors li").length === 0);
  await shots("endpoint-url-dialog");
  const [save] = await page.$$("xpath/.//button[text()='Save']");
  await save.click();
  await page.waitForSelector("#reveal-secret");
  await page.click("#reveal-secret");
  assert.match(await page.$eval("#secret-value", (el) => el.textContent), /^whsec_/);
  const [done] = await page.$$("xpath/.//button[text()='Done']");
  await done.click();
  // its events, chosen as it is created
  await page.waitForSelector("#event-message-sent");
  await page.click("#event-message-sent");
  const [saveEvents] = await page.$$("xpath/.//button[text()='Save']");
  await saveEvents.click();
  await text("Webhook configuration");
  const id = (await server.call("GET", "/v1/webhooks/endpoints")).body.data[0].id;
  await page.waitForFunction(() => document.querySelectorAll("#events-area li").length === 1);
  await shots("endpoint");

  await page.goto(`${server.base}/console/#/webhooks/${id}/deliveries`);
  await page.waitForFunction(() => document.querySelector("#live-state")?.textContent === "live");
  await server.sendText("alice", "bob", "hello firefox");
  await page.waitForFunction(() => /succeeded/.test(document.querySelector("#attempts tbody tr")?.textContent || ""), { timeout: 15_000 });
  await shots("deliveries");
});
