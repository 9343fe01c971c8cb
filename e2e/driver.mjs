// One browser driver for both engines: Puppeteer drives the system's Chromium (over CDP) and Firefox
// ESR (over WebDriver BiDi), and this file gives the tests the small part of Playwright's page and
// locator API they use (locator, getByRole, getByText, waitFor, click, fill...), so the same suite runs
// in both. Locators are resolved in the page on every call, like Playwright's: nothing goes stale.

import puppeteer from "puppeteer-core";

export const ENGINES = {
  chromium: { browser: "chrome", executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] },
  firefox: { browser: "firefox", executablePath: process.env.FIREFOX || "/usr/bin/firefox-esr", args: [] },
};

const TIMEOUT = 15_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Launches `engine` headless; `colorScheme` ("dark") is fixed at launch in Firefox, whose BiDi
 * driver cannot emulate media features on a page. */
export async function launch(engine, { colorScheme } = {}) {
  const e = ENGINES[engine];
  const extraPrefsFirefox = colorScheme ? { "layout.css.prefers-color-scheme.content-override": colorScheme === "dark" ? 0 : 1 } : {};
  const browser = await puppeteer.launch({ browser: e.browser, executablePath: e.executablePath, args: e.args, headless: true, extraPrefsFirefox });
  return browser;
}

/** A page of `browser` with the Playwright-like API, and a record of content-security-policy
 * violations (`page.violations`, from the page's own `securitypolicyviolation` events). */
export async function newPage(browser, engine, viewport) {
  const raw = await browser.newPage();
  await raw.setViewport(viewport);
  const page = new Page(raw, engine);
  await raw.evaluateOnNewDocument(() => {
    document.addEventListener("securitypolicyviolation", (e) => console.error(`csp-violation ${e.violatedDirective} ${e.blockedURI}`));
  });
  raw.on("console", (m) => {
    if (m.text().startsWith("csp-violation")) page.violations.push(m.text());
  });
  return page;
}

/** The page: Playwright's names for what the tests call. */
export class Page {
  constructor(raw, engine) {
    this.raw = raw;
    this.engine = engine;
    this.keyboard = raw.keyboard;
    this.violations = [];
    this.routes = [];
  }
  goto(url) {
    return this.raw.goto(url);
  }
  reload() {
    return this.raw.reload();
  }
  evaluate(fn, ...args) {
    return this.raw.evaluate(fn, ...args);
  }
  on(event, fn) {
    if (event !== "request") throw new Error(`no '${event}' events in this driver`);
    this.raw.on("request", (r) => fn({ url: () => r.url() }));
  }
  setViewportSize(size) {
    return this.raw.setViewport(size);
  }
  waitForTimeout(ms) {
    return sleep(ms);
  }
  screenshot(opts) {
    return this.raw.screenshot(opts);
  }
  /** `{ colorScheme: "dark" | "light" }`; Chromium only (see `launch`). */
  async emulateMedia({ colorScheme }) {
    if (this.engine !== "chromium") throw new Error("media emulation needs CDP: launch Firefox with a colorScheme instead");
    await this.raw.emulateMediaFeatures([{ name: "prefers-color-scheme", value: colorScheme }]);
  }
  /** Hands requests whose URL contains `part` to `handler({ continue, fulfill })` (Playwright's
   * `route`): it lets them through, when it likes, or answers them itself. */
  async route(part, handler) {
    const listener = (req) => {
      if (req.isInterceptResolutionHandled()) return;
      // (a request let through after `unroute` turned interception off has nothing left to do)
      const settle = (p) => p.catch(() => {});
      if (!req.url().includes(part)) return settle(req.continue());
      handler({
        continue: () => settle(req.continue()),
        fulfill: ({ status = 200, json }) => settle(req.respond({ status, contentType: "application/json", body: JSON.stringify(json) })),
      });
    };
    this.routes.push(listener);
    this.raw.on("request", listener);
    await this.raw.setRequestInterception(true);
  }
  async unroute() {
    for (const l of this.routes) this.raw.off("request", l);
    this.routes = [];
    await this.raw.setRequestInterception(false);
  }
  locator(css) {
    return new Locator(this, [{ css }]);
  }
  getByRole(role, opts = {}) {
    return new Locator(this, [{ role, name: opts.name, exact: !!opts.exact }]);
  }
  getByText(text) {
    return new Locator(this, [{ text }]);
  }
}

/**
 * Runs in the page: the elements that `steps` select. A step is `{css}`, `{role, name, exact}`
 * (visible elements only, as in the accessibility tree), `{text}` (the innermost elements holding
 * it), or `{nth}` (-1 = last). Each step searches inside the previous step's elements.
 */
function select(steps) {
  const norm = (s) => (s || "").replace(/\s+/g, " ").trim();
  const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  const ROLES = {
    button: "button, input[type=button], input[type=submit], [role=button]",
    heading: "h1, h2, h3, h4, h5, h6, [role=heading]",
    group: "fieldset, [role=group]",
    link: "a[href], [role=link]",
    checkbox: "input[type=checkbox], [role=checkbox]",
  };
  const nameOf = (el) => {
    if (el.getAttribute("aria-label")) return el.getAttribute("aria-label");
    const by = el.getAttribute("aria-labelledby");
    if (by) return by.split(/\s+/).map((id) => document.getElementById(id)?.textContent || "").join(" ");
    if (el.tagName === "FIELDSET") return el.querySelector(":scope > legend")?.textContent || "";
    if (el.tagName === "INPUT") return el.value || "";
    return el.textContent;
  };
  const matches = (have, want, exact) => (exact ? norm(have) === want : norm(have).toLowerCase().includes(want.toLowerCase()));
  let found = [document];
  for (const step of steps) {
    if (step.nth !== undefined) {
      const el = step.nth < 0 ? found[found.length + step.nth] : found[step.nth];
      found = el ? [el] : [];
      continue;
    }
    const next = [];
    for (const root of found) {
      if (step.css) next.push(...root.querySelectorAll(step.css));
      else if (step.role) {
        for (const el of root.querySelectorAll(ROLES[step.role] || `[role=${step.role}]`)) {
          if (visible(el) && (step.name === undefined || matches(nameOf(el), step.name, step.exact))) next.push(el);
        }
      } else if (step.text) {
        for (const el of root.querySelectorAll("body *:not(script):not(style)")) {
          if (!matches(el.textContent, step.text, false)) continue;
          if ([...el.children].some((c) => matches(c.textContent, step.text, false))) continue;
          next.push(el);
        }
      }
    }
    found = [...new Set(next)];
  }
  return found;
}

/** Playwright's locator, as far as the tests use it. */
export class Locator {
  constructor(page, steps) {
    this.page = page;
    this.steps = steps;
  }
  locator(css) {
    return new Locator(this.page, [...this.steps, { css }]);
  }
  getByRole(role, opts = {}) {
    return new Locator(this.page, [...this.steps, { role, name: opts.name, exact: !!opts.exact }]);
  }
  getByText(text) {
    return new Locator(this.page, [...this.steps, { text }]);
  }
  first() {
    return new Locator(this.page, [...this.steps, { nth: 0 }]);
  }
  last() {
    return new Locator(this.page, [...this.steps, { nth: -1 }]);
  }
  /** Runs `fn(elements, ...args)` in the page (an expression, not a function call, so that the
   * page's content security policy, which forbids eval, does not apply). */
  all(fn, ...args) {
    return this.page.raw.evaluate(`(${fn})(${this.expression()}, ...${JSON.stringify(args)})`);
  }
  /** The page-side expression whose value is the matches. */
  expression() {
    return `(${select})(${JSON.stringify(this.steps)})`;
  }
  count() {
    return this.all((els) => els.length);
  }
  allTextContents() {
    return this.all((els) => els.map((e) => e.textContent));
  }
  async isVisible() {
    return this.all((els) => !!els[0] && els[0].getClientRects().length > 0 && getComputedStyle(els[0]).visibility !== "hidden");
  }
  /** Waits until the first match is visible (`state: "attached"`: until it exists). */
  async waitFor({ state = "visible", timeout = TIMEOUT } = {}) {
    const until = Date.now() + timeout;
    for (;;) {
      const ok = state === "attached" ? (await this.count()) > 0 : await this.isVisible();
      if (ok) return;
      if (Date.now() > until) throw new Error(`timed out after ${timeout} ms waiting for ${JSON.stringify(this.steps)} to be ${state}`);
      await sleep(50);
    }
  }
  /** The first match's handle, once it is `state` (looked up again when the page replaced it between
   * the wait and the lookup, as a re-rendering page does). */
  async handle(state = "visible") {
    const until = Date.now() + TIMEOUT;
    for (;;) {
      await this.waitFor({ state, timeout: Math.max(until - Date.now(), 1) });
      const h = await this.page.raw.evaluateHandle(`${this.expression()}[0]`);
      const el = h.asElement();
      if (el) return el;
      if (Date.now() > until) throw new Error(`${JSON.stringify(this.steps)} is gone`);
      await sleep(50);
    }
  }
  async textContent() {
    const el = await this.handle("attached");
    return el.evaluate((e) => e.textContent);
  }
  async getAttribute(name) {
    const el = await this.handle("attached");
    return el.evaluate((e, name) => e.getAttribute(name), name);
  }
  async isChecked() {
    const el = await this.handle("attached");
    return el.evaluate((e) => e.checked);
  }
  async evaluate(fn, ...args) {
    const el = await this.handle("attached");
    return el.evaluate(fn, ...args);
  }
  async click() {
    const el = await this.handle();
    await el.click();
  }
  async hover() {
    const el = await this.handle();
    await el.hover();
  }
  async check() {
    const el = await this.handle();
    if (!(await el.evaluate((e) => e.checked))) await el.click();
  }
  /** Sets the field's value as typing would end (an `input` and a `change` event). */
  async fill(value) {
    const el = await this.handle();
    await el.evaluate((e, value) => {
      e.focus();
      e.value = value;
      e.dispatchEvent(new Event("input", { bubbles: true }));
      e.dispatchEvent(new Event("change", { bubbles: true }));
    }, value);
  }
  async selectOption(value) {
    const el = await this.handle();
    await el.select(value);
  }
}
