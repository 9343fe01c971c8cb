// The console in a real browser against the real server and a real webhook receiver: the whole suite,
// once per engine (chromium.test.mjs, firefox.test.mjs; the driver is driver.mjs). One server and one
// page for the whole run, in the order an operator would go: log in, add an endpoint, choose events,
// watch deliveries, stop the server.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { launch, newPage } from "./driver.mjs";
import { ADMIN, SCREENSHOTS, startReceiver, startServer } from "./harness.mjs";

const WIDTHS = { wide: { width: 1280, height: 900 }, narrow: { width: 390, height: 844 } };
/** The README's pictures: regenerated from the Chromium run when CONSOLE_DOC_SCREENSHOTS=1. */
const DOCS = join(dirname(fileURLToPath(import.meta.url)), "..", "docs", "console");
const DOC_SIZE = { width: 1100, height: 720 };

/** The server of the running suite, whose recent log a timeout reports. */
let current = null;

/** Waits until `fn` (run in the test) returns a truthy value. */
async function eventually(what, fn, timeoutMs = 10_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) {
      // what the server says of its endpoints, for a failure that is the server's
      const endpoints = await current?.call("GET", "/v1/webhooks/endpoints").catch((e) => ({ body: String(e) }));
      const overview = await current?.call("GET", "/v1/overview").catch((e) => ({ body: String(e) }));
      throw new Error(
        `timed out waiting for ${what}; endpoints: ${JSON.stringify(endpoints?.body)}; overview: ${JSON.stringify(overview?.body)}; the server's last lines:\n${current?.recentLog() ?? ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every console test, run in `engine` ("chromium" or "firefox"). */
export function consoleSuite(engine) {
  let server, receiver, browser, page;
  /** Every URL the page fetched. */
  const requested = [];
  let endpointId, firstSecret;

  /** Opens a console page afresh (a page already at that address is loaded again). */
  async function visit(hash) {
    await page.goto(`${server.base}/console/${hash}`);
    await page.reload();
  }

  /** Screenshots of the current page at both widths (and, from Chromium when asked, the README's copy). */
  async function shots(name) {
    mkdirSync(SCREENSHOTS, { recursive: true });
    for (const [label, size] of Object.entries(WIDTHS)) {
      await page.setViewportSize(size);
      await page.waitForTimeout(100);
      await page.screenshot({ path: join(SCREENSHOTS, `${engine}-${name}-${label}.png`), fullPage: true });
    }
    if (engine === "chromium" && process.env.CONSOLE_DOC_SCREENSHOTS && ["overview", "endpoint", "deliveries", "events-dialog"].includes(name)) {
      mkdirSync(DOCS, { recursive: true });
      await page.setViewportSize(DOC_SIZE);
      // an open dialog from its top, the page from its top
      await page.evaluate(() => {
        document.querySelector("dialog[open]")?.scrollTo(0, 0);
        window.scrollTo(0, 0);
      });
      await page.waitForTimeout(100);
      await page.screenshot({ path: join(DOCS, `${name}.png`) });
    }
    await page.setViewportSize(WIDTHS.wide);
  }

  /** What the delivery charts show, per chart: sizes, labels, dots and bars (in the chart's pixels). */
  function chartGeometry() {
    return page.evaluate(() =>
      [...document.querySelectorAll("#charts svg.chart")].map((svg) => {
        const box = (t) => t.getBBox();
        const xTicks = [...svg.querySelectorAll("text.x-tick")];
        return {
          width: Number(svg.getAttribute("width")),
          height: Number(svg.getAttribute("height")),
          box: Math.floor(svg.parentElement.clientWidth),
          viewBoxWidth: Number(svg.getAttribute("viewBox").split(" ")[2]),
          stretch: svg.getAttribute("preserveAspectRatio"),
          xLabels: xTicks.map((t) => t.textContent),
          xBoxes: xTicks.map((t) => ({ left: box(t).x, right: box(t).x + box(t).width })),
          yLabels: [...svg.querySelectorAll("text.y-tick")].map((t) => t.textContent),
          fontPx: parseFloat(getComputedStyle(xTicks[0]).fontSize),
          dots: [...svg.querySelectorAll("circle")].map((c) => ({ cx: +c.getAttribute("cx"), cy: +c.getAttribute("cy"), r: +c.getAttribute("r") })),
          barXs: [...svg.querySelectorAll("rect.bar")].map((r) => +r.getAttribute("x")),
        };
      }),
    );
  }

  /** The body's background colour with the system set to dark. Chromium emulates it on the page;
   * Firefox (whose BiDi driver cannot) opens a second browser launched dark and logs in there. */
  async function darkBackground(hash) {
    const background = (p) => p.evaluate(() => getComputedStyle(document.body).backgroundColor);
    if (engine === "chromium") {
      await page.emulateMedia({ colorScheme: "dark" });
      const dark = await background(page);
      await shots("webhooks-dark");
      await page.emulateMedia({ colorScheme: "light" });
      return dark;
    }
    const darkBrowser = await launch(engine, { colorScheme: "dark" });
    try {
      const p = await newPage(darkBrowser, engine, WIDTHS.narrow);
      await p.goto(`${server.base}/console/`);
      await p.locator("#admin-key").fill(ADMIN);
      await p.keyboard.press("Enter");
      await p.getByRole("heading", { name: "Overview" }).waitFor();
      await p.goto(`${server.base}/console/${hash}`);
      await p.locator("main h1").waitFor();
      await p.screenshot({ path: join(SCREENSHOTS, `${engine}-webhooks-dark-narrow.png`), fullPage: true });
      return await background(p);
    } finally {
      await darkBrowser.close();
    }
  }

  before(async () => {
    server = await startServer(join(SCREENSHOTS, `${engine}-server.log`));
    current = server;
    receiver = await startReceiver();
    browser = await launch(engine);
    page = await newPage(browser, engine, WIDTHS.wide);
    page.on("request", (r) => requested.push(r.url()));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    server?.cleanup();
    await receiver?.close();
  });

  test(`${engine}: a wrong key is refused, the right one opens the overview (by keyboard)`, async () => {
    await visit("");
    await page.locator("#admin-key").waitFor();
    assert.equal(await page.locator("#nav").isVisible(), false, "the login page shows no navigation");
    await shots("login");
    await page.keyboard.type("not-the-key");
    await page.keyboard.press("Enter");
    await page.getByText("That admin key is wrong.").waitFor();
    await page.locator("#admin-key").fill(ADMIN);
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    await eventually("figures", async () => (await page.locator('[data-stat="endpoints"] .value').textContent()) === "0 / 0");
    // the key stays in this tab's session only
    assert.equal(await page.evaluate(() => localStorage.length), 0);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("chathook.adminKey")), ADMIN);
    await shots("overview");
  });

  test(`${engine}: in a cluster the overview lists each node beside the sums`, async () => {
    // The sums themselves are the server's (tested against two real nodes in tests/it/cluster.rs);
    // here the page shows a two-node answer of that shape.
    const figures = (node, connections, messages_sent, age_ms) => ({ node, age_ms, connections, messages_sent, attempts: { succeeded: 5, failed: 1 }, breaker_open: node === 2 ? ["ep_x"] : [] });
    await page.route("/v1/overview", (route) =>
      route.fulfill({
        json: {
          users_online: 3, connections: 3, messages_sent: 3, events: 9, attempts: { succeeded: 10, failed: 2 },
          endpoints: { total: 1, enabled: 1, delivering: 0, breaker_open: 1, disabled: 0 },
          nodes: [figures(1, 1, 2, 0), figures(2, 2, 1, 300)],
        },
      }),
    );
    try {
      await visit("#/overview");
      const rows = page.locator("#nodes tbody tr");
      await eventually("two nodes", async () => (await rows.count()) === 2);
      assert.deepEqual(
        (await rows.allTextContents()).map((t) => t.replace(/\s+/g, " ").trim()),
        ["1125 · 10this node, now", "2215 · 110.3 s ago"],
      );
      assert.equal(await page.locator('[data-stat="connections"] .value').textContent(), "3");
      await shots("overview-cluster");
    } finally {
      await page.unroute();
    }
    await visit("#/overview");
    await eventually("a single server's overview", async () => (await page.locator('[data-stat="endpoints"] .value').textContent()) === "0 / 0");
    assert.equal(await page.locator("#nodes").isVisible(), false, "a single server lists no nodes");
  });

  test(`${engine}: every broken URL rule shows the server's message as you type; a good URL saves`, async () => {
    await visit(`#/webhooks/new`);
    const url = page.locator("#url");
    await url.waitFor();
    const long = `http://${"a".repeat(54)}.localhost/cb`;
    const cases = [
      ["ftp://127.0.0.1/cb", ["the URL must start with http:// or https://"]],
      ["http://127.0.0.1/c b", ["the URL must not contain spaces"]],
      ["http://127.0.0.1/cb?x=1", ["the URL must not contain '?' (none of ! $ & ? are allowed; chathook appends the query string)"]],
      ["http://127.0.0.1/cb#top", ["the URL must not contain a fragment (#)"]],
      ["http://user:pw@a.localhost/cb", ["the URL must not carry user:password@"]],
      ["http://a_b.localhost/cb", ["the domain label 'a_b' may hold only letters, digits and hyphens"]],
      ["http://---.localhost/cb", ["the domain label '---' is only hyphens"]],
      ["http://-ab.localhost/cb", ["the domain label '-ab' must not start or end with a hyphen"]],
      ["http://a--b.localhost/cb", ["the domain label 'a--b' must not contain two hyphens in a row"]],
      ["http://a..b/cb", ["the domain has an empty label (two dots in a row, or a dot at an end)"]],
      [long, ["the domain is 64 characters; at most 63 are allowed"]],
      // several rules at once: one message each
      ["ftp://a_b.-c.localhost/x!", [
        "the URL must start with http:// or https://",
        "the URL must not contain '!' (none of ! $ & ? are allowed; chathook appends the query string)",
        "the domain label 'a_b' may hold only letters, digits and hyphens",
        "the domain label '-c' must not start or end with a hyphen",
      ]],
    ];
    for (const [bad, messages] of cases) {
      await url.fill(bad);
      await eventually(`the messages for ${bad}`, async () => {
        const shown = await page.locator("#url-errors li").allTextContents();
        return JSON.stringify(shown) === JSON.stringify(messages);
      });
    }
    // Save with a broken URL keeps the dialog open
    await page.getByRole("button", { name: "Save" }).click();
    await page.locator("#url-errors li").first().waitFor();
    assert.equal((await server.call("GET", "/v1/webhooks/endpoints")).body.data.length, 0);
    await url.fill(receiver.url);
    await eventually("no message", async () => (await page.locator("#url-errors li").count()) === 0);
    await page.locator("#description").fill("the business backend");
    await shots("endpoint-url-dialog");
    await page.getByRole("button", { name: "Save" }).click();
    // the secret is shown once, masked until revealed
    await page.locator("#secret-value").waitFor();
    assert.equal(await page.locator("#secret-value").textContent(), "whsec_••••••••••••");
    await page.locator("#reveal-secret").click();
    firstSecret = await page.locator("#secret-value").textContent();
    assert.match(firstSecret, /^whsec_[A-Za-z0-9+/=]{40,}$/);
    await page.getByRole("button", { name: "Done" }).click();
    // then its events, in the grouped dialog of the configuration page
    await page.getByRole("group", { name: "Messages" }).waitFor();
    await page.locator("#event-message-sent").check();
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("heading", { name: "Webhook configuration" }).waitFor();
    const list = (await server.call("GET", "/v1/webhooks/endpoints")).body.data;
    assert.equal(list.length, 1);
    assert.equal(list[0].url, receiver.url);
    assert.equal(list[0].description, "the business backend");
    assert.deepEqual(list[0].events, ["message.sent"]);
    endpointId = list[0].id;
    assert.equal(await page.locator("#endpoint-url").textContent(), receiver.url);
  });

  test(`${engine}: a port change that is a prefix of the old port asks for confirmation`, async () => {
    const other = (await server.call("POST", "/v1/webhooks/endpoints", { url: "http://127.0.0.1/other", enabled: false })).body;
    await visit(`#/webhooks/${other.id}`);
    await page.locator("#edit-url").click();
    await page.locator("#url").fill("http://127.0.0.1:8080/other");
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByText("The port changes from 80 to 8080").waitFor();
    await page.getByRole("button", { name: "Yes, change it" }).click();
    await eventually("the new URL", async () => (await page.locator("#endpoint-url").textContent()) === "http://127.0.0.1:8080/other");
    await server.call("DELETE", `/v1/webhooks/endpoints/${other.id}`);
  });

  test(`${engine}: a tencent endpoint takes its sign token in the URL dialog and lists Tencent's commands`, async () => {
    await visit("#/webhooks/new");
    await page.locator("#url").fill("http://127.0.0.1:9/tencent");
    assert.equal(await page.locator("#sign-token").isVisible(), false);
    await page.locator("#flavour").selectOption("tencent");
    await page.locator("#sign-token").fill("callback-token-1");
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("button", { name: "Done" }).click();
    // its events can wait: the dialog is left with Cancel
    await page.getByRole("group", { name: "Messages" }).waitFor();
    await page.getByRole("button", { name: "Cancel" }).click();
    await page.getByRole("heading", { name: "Webhook configuration" }).waitFor();
    await page.getByText("sign token set").waitFor();
    const tencent = (await server.call("GET", "/v1/webhooks/endpoints")).body.data.find((e) => e.flavour === "tencent");
    assert.equal(tencent.sign_token_set, true);
    await page.locator("#edit-events").click();
    await page.locator("#event-C2C-CallbackAfterSendMsg").check();
    await page.locator("#event-C2C-CallbackBeforeSendMsg").check();
    await page.getByRole("button", { name: "Save" }).click();
    await eventually("the saved commands", async () => (await page.locator("#events-area li").count()) === 2);
    const saved = (await server.call("GET", `/v1/webhooks/endpoints/${tencent.id}`)).body;
    assert.deepEqual(saved.events, ["message.sent"]);
    assert.deepEqual(saved.message_channel_types, [1]);
    assert.deepEqual(saved.before_send, ["message.before_send.person"]);
    await server.call("DELETE", `/v1/webhooks/endpoints/${tencent.id}`);
  });

  test(`${engine}: events are chosen by feature group; one behind a switched-off feature links to event activation`, async () => {
    await visit(`#/webhooks/${endpointId}`);
    await page.locator("#edit-events").click();
    await page.getByRole("group", { name: "Messages" }).waitFor();
    for (const group of ["Online status", "Messages", "Groups", "Profiles", "Before-send hooks", "Operations"]) {
      assert.equal(await page.getByRole("group", { name: group }).count(), 1, group);
    }
    await page.locator("#event-message-sent").check();
    await page.locator("#event-user-profile_changed").check();
    // the profile event's feature is off by default: the dialog says so
    const profile = page.locator("label[for=event-user-profile_changed]");
    assert.match(await profile.textContent(), /needs Profile changes, which is off/);
    await shots("events-dialog");
    await page.getByRole("button", { name: "Save" }).click();
    await eventually("the saved events", async () => (await page.locator("#events-area li").count()) === 2);
    const saved = (await server.call("GET", `/v1/webhooks/endpoints/${endpointId}`)).body;
    assert.deepEqual(saved.events.sort(), ["message.sent", "user.profile_changed"]);
    await shots("endpoint");
    // follow the link to event activation and switch the feature on
    await page.locator("#events-area .inactive a").click();
    await page.getByRole("heading", { name: "Event activation" }).waitFor();
    await shots("features");
    await page.locator("#feature-profile_change_subscription").check();
    await page.getByText("Profile changes is on.").waitFor();
    assert.equal((await server.call("GET", "/v1/features")).body.profile_change_subscription, true);
    await visit(`#/webhooks/${endpointId}`);
    await page.locator("#events-area li").first().waitFor();
    assert.equal(await page.locator("#events-area .inactive").count(), 0);
  });

  test(`${engine}: the events dialog is reachable and usable by keyboard alone`, async () => {
    await visit(`#/webhooks/${endpointId}`);
    await page.locator("#edit-events").waitFor();
    // Tab from the top of the page until the events area's Edit button has the focus
    await page.evaluate(() => document.activeElement?.blur());
    let reached = false;
    for (let i = 0; i < 40 && !reached; i++) {
      await page.keyboard.press("Tab");
      reached = await page.evaluate(() => document.activeElement?.id === "edit-events");
    }
    assert.ok(reached, "Tab reaches the events' Edit button");
    await page.keyboard.press("Enter");
    await page.getByRole("group", { name: "Groups" }).waitFor();
    // the dialog holds the focus; Tab to the group.created box and tick it with Space
    let onBox = false;
    for (let i = 0; i < 60 && !onBox; i++) {
      await page.keyboard.press("Tab");
      onBox = await page.evaluate(() => document.activeElement?.id === "event-group-created");
    }
    assert.ok(onBox, "Tab reaches a checkbox inside the dialog");
    await page.keyboard.press(" ");
    assert.equal(await page.locator("#event-group-created").isChecked(), true);
    // Escape closes without saving
    await page.keyboard.press("Escape");
    await eventually("the dialog closed", async () => (await page.locator("dialog[open]").count()) === 0);
    const saved = (await server.call("GET", `/v1/webhooks/endpoints/${endpointId}`)).body;
    assert.equal(saved.events.includes("group.created"), false);
  });

  test(`${engine}: a test event shows the attempt's status, latency and response`, async () => {
    await visit(`#/webhooks/${endpointId}`);
    await page.locator("#test-event").selectOption("message.sent");
    await page.locator("#send-test").click();
    await page.locator("#test-result").getByText("Delivered").waitFor();
    const text = await page.locator("#test-result").textContent();
    assert.match(text, /status 200 · \d+ ms/);
    assert.match(text, /"received": true/);
  });

  test(`${engine}: deliveries appear live: a 200, then a 500 shown failed and opened`, async () => {
    await visit(`#/webhooks/${endpointId}/deliveries`);
    await eventually("the live stream", async () => (await page.locator("#live-state").textContent()) === "live");
    const rows = page.locator("#attempts tbody tr");
    const before = await rows.count();
    await server.sendText("alice", "bob", "hello console");
    // (seen taking over 10 s once in about fifteen runs on a loaded machine; the timeout names the
    // server's state if it ever runs out)
    await eventually("a live succeeded row", async () => (await rows.count()) > before, 30_000);
    const first = rows.first();
    assert.match(await first.textContent(), /message\.sent.*succeeded.*200/);
    receiver.status = 500;
    await server.sendText("alice", "bob", "this one fails");
    await eventually("a live failed row", async () => /failed500/.test((await rows.first().textContent()).replace(/\s/g, "")));
    await shots("deliveries");
    // the charts: a bar per minute with attempts, a line per percentile, redrawn for another window
    await visit(`#/webhooks/${endpointId}/deliveries`);
    const summary = page.locator("#charts p").first();
    await eventually("the charts' summary", async () => /\d+ attempts?, [1-9]\d* failed/.test(await summary.textContent()));
    assert.ok((await page.locator("#charts svg rect.bar").count()) >= 2, "succeeded and failed bars");
    assert.equal(await page.locator("#charts svg polyline").count(), 2, "p50 and p99 lines");
    for (const size of [WIDTHS.wide, WIDTHS.narrow]) {
      await page.setViewportSize(size);
      await eventually(`charts drawn at ${size.width} px`, async () => (await chartGeometry()).every((c) => c.width === c.box));
      const charts = await chartGeometry();
      for (const c of charts) {
        assert.equal(c.stretch, null, "no preserveAspectRatio");
        assert.equal(c.viewBoxWidth, c.width, "drawn at its pixel width");
        assert.ok(c.xLabels.length >= (size === WIDTHS.wide ? 6 : 3), `time labels at ${size.width} px: ${c.xLabels}`);
        for (const l of c.xLabels) assert.match(l, /^\d{1,2}:\d\d/);
        for (let i = 1; i < c.xBoxes.length; i++) assert.ok(c.xBoxes[i].left > c.xBoxes[i - 1].right, `labels overlap at ${size.width} px`);
        assert.ok(c.fontPx >= 10 && c.fontPx <= 12, `labels of 11 px: ${c.fontPx}`);
        for (const d of c.dots) assert.ok(d.cx - d.r >= 0 && d.cx + d.r <= c.width && d.cy - d.r >= 0 && d.cy + d.r <= c.height, `a dot inside the plot: ${JSON.stringify(d)}`);
        // two minutes of attempts sit at the right end of the hour, not across it
        for (const x of c.barXs) assert.ok(x > c.width * 0.85, `a bar at x ${x} of ${c.width}`);
      }
      assert.ok(charts[0].yLabels.every((l) => l.endsWith("/min")), charts[0].yLabels.join(","));
      assert.ok(charts[1].yLabels.every((l) => l.endsWith(" ms")), charts[1].yLabels.join(","));
      // a minute's figures, by pointing at (or tapping) its column
      await page.locator("#chart-outcome rect.minute").last().click();
      assert.match(await page.locator("#chart-tip").textContent(), /\d+ succeeded, [1-9]\d* failed · p50 \d+ ms · p99 \d+ ms/);
    }
    await page.setViewportSize(WIDTHS.wide);
    await page.locator("#chart-window").selectOption("24h");
    await eventually("the charts redrawn", async () => (await page.locator("#charts svg polyline").count()) === 2);
    await eventually("the live stream again", async () => (await page.locator("#live-state").textContent()) === "live");
    await rows.first().click();
    await page.locator("#attempt-detail").getByText("HTTP 500").first().waitFor();
    const detail = await page.locator("#attempt-detail").textContent();
    assert.match(detail, /"status": 500/);
    // the request as sent: the standard envelope of the message
    assert.match(detail, /Request.*"type": "message\.sent"/s);
    await page.getByRole("button", { name: "Close" }).click();
    // the status filter keeps only failures
    await page.locator("#filter-status").selectOption("failure");
    await eventually("only failures", async () => {
      const texts = await rows.allTextContents();
      return texts.length > 0 && texts.every((t) => t.includes("failed"));
    });
  });

  test(`${engine}: the warnings page names the failing endpoint and links to its deliveries`, async () => {
    await visit("#/warnings");
    const item = page.locator(`ul.warnings li[data-endpoint="${endpointId}"]`);
    await item.waitFor();
    assert.match(await item.textContent(), /(Failing since|Breaker open).*failed attempts? in the last hour/s);
    assert.equal(await item.locator("a").getAttribute("href"), `#/webhooks/${endpointId}/deliveries`);
    await shots("warnings");
  });

  test(`${engine}: a dead letter is replayed from the console and then delivered`, async () => {
    // the failing delivery runs out of retries (0s, 100ms, 100ms) and becomes a dead letter
    await eventually("a dead letter", async () => (await server.call("GET", `/v1/webhooks/endpoints/${endpointId}/dead-letters`)).body.data.length === 1);
    receiver.status = 200;
    await visit(`#/webhooks/${endpointId}/deliveries`);
    const dead = page.locator("#dead-letters tbody tr");
    await dead.first().waitFor();
    assert.match(await dead.first().textContent(), /HTTP 500/);
    const delivered = receiver.requests.length;
    await dead.first().getByRole("button", { name: "Replay" }).click();
    await page.getByText("Queued for delivery.").waitFor();
    await eventually("the replayed delivery", async () => receiver.requests.slice(delivered).some((r) => r.body.includes(Buffer.from(JSON.stringify({ type: 1, content: "this one fails" })).toString("base64"))));
    await eventually("no dead letter left", async () => (await server.call("GET", `/v1/webhooks/endpoints/${endpointId}/dead-letters`)).body.data.length === 0);
    // two more fail and die; "replay all failed since" takes both
    receiver.status = 500;
    const since = new Date(Date.now() - 60_000);
    await server.sendText("alice", "bob", "fails again 1");
    await server.sendText("alice", "bob", "fails again 2");
    await eventually("two dead letters", async () => (await server.call("GET", `/v1/webhooks/endpoints/${endpointId}/dead-letters`)).body.data.length === 2);
    receiver.status = 200;
    await visit(`#/webhooks/${endpointId}/deliveries`);
    await page.getByText("Dead letters (2)").waitFor();
    const local = new Date(since.getTime() - since.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
    await page.locator("#replay-since").fill(local);
    await page.locator("#replay-all").click();
    await page.getByRole("button", { name: "Replay", exact: true }).last().click();
    await page.getByText("2 queued for delivery.").waitFor();
    await eventually("both delivered", async () => (await server.call("GET", `/v1/webhooks/endpoints/${endpointId}/dead-letters`)).body.data.length === 0);
    await page.locator("#filter-status").selectOption("success");
    await eventually("the replay's success in the log", async () => (await page.locator("#attempts tbody tr").count()) >= 2);
  });

  test(`${engine}: the secret is rotated on confirmation and shown once`, async () => {
    await visit(`#/webhooks/${endpointId}`);
    await page.locator("#rotate-secret").click();
    await page.getByRole("button", { name: "Cancel" }).click();
    await page.locator("#rotate-secret").click();
    await page.getByRole("button", { name: "Rotate", exact: true }).click();
    await page.locator("#reveal-secret").click();
    const secret = await page.locator("#secret-value").textContent();
    assert.match(secret, /^whsec_/);
    assert.notEqual(secret, firstSecret);
    await page.getByRole("button", { name: "Done" }).click();
    // deliveries are now signed with the new secret (and the old one, for 24 hours)
    const before = receiver.requests.length;
    await server.sendText("alice", "bob", "signed anew");
    const req = await eventually("a signed delivery", async () => receiver.requests[before]);
    assert.equal(req.headers["webhook-signature"].split(" ").length, 2);
  });

  test(`${engine}: a relay source is created with its ingest URL, counts what it takes and refuses, names itself on deliveries, rotates and goes`, async () => {
    await visit("#/sources");
    await page.locator("#source-kind").selectOption("tencent");
    assert.equal(await page.locator("#tencent-settings").isVisible(), true, "Tencent's settings for a Tencent source");
    await page.locator("#source-kind").selectOption("wukongim");
    await page.locator("#source-description").fill(`${engine} WuKongIM`);
    await page.locator("#create-source").click();
    const shown = page.locator("#created-ingest-url");
    await shown.waitFor();
    const url = await page.evaluate(() => document.querySelector("#created-ingest-url").value);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/relay\/src_[0-9a-f]+\/[A-Za-z0-9_-]{43}$/);
    await page.getByRole("button", { name: "Done" }).click();
    const id = url.split("/")[4];
    const card = page.locator(`section.source[data-source="${id}"]`);
    await card.waitFor();
    // WuKongIM sends a message through it; a sender with an old URL is refused
    const message = { header: { no_persist: 0, red_dot: 1, sync_once: 0 }, setting: 0, message_id: 7_000_001, message_idstr: "7000001",
      client_msg_no: "relayed-1", message_seq: 1, from_uid: "wk-alice", channel_id: "wk-bob", channel_type: 1, expire: 0,
      timestamp: 1_700_000_000, payload: Buffer.from('{"type":1,"content":"via relay"}').toString("base64") };
    const sent = await fetch(`${url}?event=msg.notify`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify([message]) });
    assert.equal(sent.status, 200);
    assert.equal(await sent.text(), "");
    const wrong = await fetch(`${url.slice(0, -4)}AAAA?event=msg.notify`, { method: "POST", body: "[]" });
    assert.equal(wrong.status, 404);
    await visit("#/sources");
    await eventually("the counters", async () => /2 requests · 1 events stored/.test(await card.textContent()));
    assert.match(await card.locator('tr[data-reason="secret_wrong"]').textContent(), /wrong path secret.*1/);
    await shots("sources");
    // the endpoint's deliveries name the source of the relayed message
    await visit(`#/webhooks/${endpointId}/deliveries`);
    await eventually("a delivery from the source", async () => (await page.locator("#attempts tbody").textContent()).includes(id));
    // the warnings page lists the refusal
    await visit("#/warnings");
    const warned = page.locator(`ul.warnings li[data-source="${id}"]`);
    await warned.waitFor();
    assert.match(await warned.textContent(), /1 × wrong path secret/);
    // rotated: a new URL, the old one still noted; then deleted
    await visit("#/sources");
    await card.locator("button.rotate").click();
    await page.getByRole("button", { name: "Rotate", exact: true }).click();
    await eventually("the rotated URL", async () => {
      const now = await page.evaluate((i) => document.querySelector(`#ingest-${i}`)?.value, id);
      return now && now !== url && /previous URL works until/.test(await card.textContent());
    });
    await card.locator("button.delete").click();
    await page.getByRole("button", { name: "Delete", exact: true }).click();
    await eventually("the card gone", async () => (await page.locator(`section.source[data-source="${id}"]`).count()) === 0);
  });

  test(`${engine}: an endpoint's filters are edited, refused with the field named, and cleared`, async () => {
    await visit(`#/webhooks/${endpointId}`);
    await page.locator("#filter-channel_ids").fill("team-*, g1");
    await page.locator("#filter-payload_types").fill("1, 2");
    await page.locator("#filter-sources").fill("local");
    await page.locator("#save-filters").click();
    await eventually("saved", async () => (await page.locator("#filters-status").textContent()) === "Saved.");
    const stored = (await server.call("GET", `/v1/webhooks/endpoints/${endpointId}`)).body;
    assert.deepEqual(stored.filters, { channel_ids: ["team-*", "g1"], payload_types: [1, 2] });
    assert.deepEqual(stored.sources, ["local"]);
    // shown again from the server
    await visit(`#/webhooks/${endpointId}`);
    await page.locator("#filter-channel_ids").waitFor();
    assert.equal(await page.evaluate(() => document.querySelector("#filter-channel_ids").value), "team-*, g1");
    // a channel type of 0 is refused, naming the filter
    await page.locator("#filter-channel_types").fill("0");
    await page.locator("#save-filters").click();
    await eventually("the refusal", async () => /filters\.channel_types/.test(await page.locator("#filters-area .field-errors").textContent().catch(() => "")));
    await shots("filters");
    // cleared: every event again
    for (const key of ["channel_types", "channel_ids", "payload_types", "sources"]) await page.locator(`#filter-${key}`).fill("");
    await page.locator("#save-filters").click();
    await eventually("cleared", async () => (await page.locator("#filters-status").textContent()) === "Saved.");
    const cleared = (await server.call("GET", `/v1/webhooks/endpoints/${endpointId}`)).body;
    assert.deepEqual([cleared.filters, cleared.sources], [{}, []]);
  });

  test(`${engine}: an endpoint's delivery settings are edited, shown masked, kept when left masked, refused with the field named, and cleared`, async () => {
    await visit(`#/webhooks/${endpointId}`);
    await page.locator("#receiver-headers").fill("X-Api-Key: console-key-1");
    await page.locator("#basic-username").fill("hook");
    await page.locator("#basic-password").fill("console-pw-1");
    await page.locator("#retry-schedule").fill("0, 5, 60");
    await page.locator("#save-receiver").click();
    await eventually("saved", async () => (await page.locator("#receiver-status").textContent()) === "Saved.");
    let stored = (await server.call("GET", `/v1/webhooks/endpoints/${endpointId}`)).body;
    assert.deepEqual([stored.headers, stored.basic_auth, stored.retry_schedule], [{ "X-Api-Key": "********" }, { username: "hook", password: "********" }, [0, 5, 60]]);
    // shown again masked; saved unchanged, the stored values are kept and still sent
    await visit(`#/webhooks/${endpointId}`);
    await page.locator("#receiver-headers").waitFor();
    assert.equal(await page.evaluate(() => document.querySelector("#receiver-headers").value), "X-Api-Key: ********");
    assert.equal(await page.evaluate(() => document.querySelector("#basic-password").value), "");
    await page.locator("#retry-schedule").fill("0, 5");
    await page.locator("#save-receiver").click();
    await eventually("saved again", async () => (await page.locator("#receiver-status").textContent()) === "Saved.");
    const before = receiver.requests.length;
    await server.sendText("alice", "bob", "with headers");
    const req = await eventually("a delivery with the headers", async () => receiver.requests.slice(before).find((r) => r.headers["x-api-key"]));
    assert.equal(req.headers["x-api-key"], "console-key-1");
    assert.equal(req.headers.authorization, `Basic ${Buffer.from("hook:console-pw-1").toString("base64")}`);
    // a reserved header is refused, naming it
    await page.locator("#receiver-headers").fill("webhook-id: mine");
    await page.locator("#save-receiver").click();
    await eventually("the refusal", async () => /headers\.webhook-id/.test(await page.locator("#receiver-area .field-errors").textContent().catch(() => "")));
    await shots("receiver");
    // TLS needs https: named on an http:// endpoint
    await page.locator("#receiver-headers").fill("");
    await page.locator("#tls-ca-cert").fill("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----");
    await page.locator("#save-receiver").click();
    await eventually("the TLS refusal", async () => /tls: TLS settings need an https/.test(await page.locator("#receiver-area .field-errors").textContent().catch(() => "")));
    // cleared
    for (const id of ["receiver-headers", "basic-username", "tls-ca-cert", "retry-schedule"]) await page.locator(`#${id}`).fill("");
    await page.locator("#save-receiver").click();
    await eventually("cleared", async () => (await page.locator("#receiver-status").textContent()) === "Saved.");
    stored = (await server.call("GET", `/v1/webhooks/endpoints/${endpointId}`)).body;
    assert.deepEqual([stored.headers, stored.basic_auth, stored.tls, stored.retry_schedule], [{}, null, null, null]);
  });

  test(`${engine}: the warnings page lists the server's notices: the dead letters, linking to the endpoint's deliveries`, async () => {
    await visit("#/warnings");
    const notice = page.locator(`ul.notices li[data-type="delivery.exhausted"][data-endpoint="${endpointId}"]`).first();
    await notice.waitFor();
    assert.match(await notice.textContent(), /Dead-lettered.*\d+ deliver(y|ies).*message\.sent \(HTTP 500\)/s);
    assert.equal(await notice.locator("a").getAttribute("href"), `#/webhooks/${endpointId}/deliveries`);
    const listed = (await server.call("GET", "/v1/webhooks/notices")).body.data;
    assert.ok(listed.some((n) => n.type === "delivery.exhausted" && n.data.endpoint_id === endpointId));
    await shots("notices");
  });

  test(`${engine}: a new endpoint starts from the oldest stored event; a seek reads again from a time`, async () => {
    const base = receiver.url.replace(/\/hook$/, "");
    const mine = () => receiver.requests.filter((r) => r.url === "/from-oldest");
    await server.sendText("alice", "bob", "before it existed");
    await visit("#/webhooks/new");
    await page.locator("#url").fill(`${base}/from-oldest`);
    await eventually("no message", async () => (await page.locator("#url-errors li").count()) === 0);
    await page.locator("#start-from").selectOption("oldest");
    await page.getByRole("button", { name: "Save" }).click();
    await page.locator("#reveal-secret").waitFor();
    await page.getByRole("button", { name: "Done" }).click();
    await page.getByRole("group", { name: "Messages" }).waitFor();
    await page.locator("#event-message-sent").check();
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("heading", { name: "Webhook configuration" }).waitFor();
    // what was sent before it existed arrives
    const b64 = (text) => Buffer.from(JSON.stringify({ type: 1, content: text })).toString("base64");
    await eventually("the message sent before it existed", async () => mine().some((r) => r.body.includes(b64("before it existed"))));
    const created = (await server.call("GET", "/v1/webhooks/endpoints")).body.data.find((e) => e.url === `${base}/from-oldest`);
    assert.equal(created.enabled, true);
    // a seek back to a minute ago delivers it again, with the same id
    const firstCount = mine().length;
    const id = mine()[0].headers["webhook-id"];
    const ago = new Date(Date.now() - 60_000 - new Date().getTimezoneOffset() * 60_000).toISOString().slice(0, 19);
    await page.locator("#seek-from").selectOption("time");
    await page.locator("#seek-at").fill(ago);
    await page.locator("#seek").click();
    await page.getByRole("button", { name: "Move", exact: true }).click();
    await eventually("the seek's answer", async () => /Reading after position \d+/.test(await page.locator("#seek-result").textContent()));
    await eventually("delivered again", async () => mine().length > firstCount);
    assert.ok(mine().slice(firstCount).some((r) => r.headers["webhook-id"] === id));
    await shots("position");
    await server.call("DELETE", `/v1/webhooks/endpoints/${created.id}`);
  });

  test(`${engine}: the webhook list shows each endpoint's state and last hour`, async () => {
    await visit(`#/webhooks`);
    const row = page.locator(`tr[data-endpoint="${endpointId}"]`);
    await row.waitFor();
    let text = "";
    await eventually("the figures", async () => /Delivering.*%.*ms/.test((text = await row.textContent()))).catch((e) => {
      throw new Error(`${e.message}: ${text}`);
    });
    await shots("webhooks");
  });

  test(`${engine}: long URLs wrap after their separators, never inside a part; the page follows a dark system theme`, async () => {
    // An endpoint whose URL is longer than a narrow screen is wide.
    const long = `http://127.0.0.1:45678/${"callbacks/chathook-events/".repeat(4)}end`;
    const created = await fetch(`${server.base}/v1/webhooks/endpoints`, {
      method: "POST",
      headers: { token: ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ url: long, events: ["message.sent"], enabled: false }),
    }).then((r) => r.json());
    await visit(`#/webhooks`);
    const link = page.locator(`tr[data-endpoint="${created.id}"] a.mono`);
    await link.waitFor();
    await page.setViewportSize({ width: 390, height: 844 });
    const height = await link.evaluate((a) => a.getClientRects().length);
    assert.ok(height > 1, "the long URL wraps at 390 px");
    const parts = await link.evaluate((a) =>
      [...a.childNodes]
        .filter((n) => n.nodeType === Node.TEXT_NODE)
        .map((n) => {
          const r = document.createRange();
          r.selectNodeContents(n);
          const lines = new Set([...r.getClientRects()].map((rect) => Math.round(rect.top)));
          return { text: n.textContent, lines: lines.size };
        }),
    );
    await page.setViewportSize(WIDTHS.wide);
    assert.ok(parts.length > 3, JSON.stringify(parts));
    for (const p of parts) assert.equal(p.lines, 1, `"${p.text}" is broken inside`);
    await fetch(`${server.base}/v1/webhooks/endpoints/${created.id}`, { method: "DELETE", headers: { token: ADMIN } });
    const light = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const dark = await darkBackground("#/webhooks");
    assert.notEqual(dark, light);
    const [r, g, b] = dark.match(/\d+/g).map(Number);
    assert.ok(r + g + b < 150, `a dark background: ${dark}`);
  });

  test(`${engine}: pages asked for quickly one after another never show together (a slow server)`, async () => {
    await visit("#/overview");
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    // Every API answer 300 ms late; the operator clicks Webhooks, then Event activation 100 ms later.
    const slow = async (route) => {
      await new Promise((r) => setTimeout(r, 300));
      await route.continue().catch(() => {});
    };
    await page.route("/v1/", slow);
    try {
      for (let round = 0; round < 3; round++) {
        await page.locator('nav a[href="#/webhooks"]').click();
        await page.waitForTimeout(100);
        await page.locator('nav a[href="#/features"]').click();
        await page.getByRole("heading", { name: "Event activation" }).waitFor();
        await page.waitForTimeout(800);
        const headings = await page.locator("main h1").allTextContents();
        assert.deepEqual(headings, ["Event activation"], `round ${round}`);
        await page.locator('nav a[href="#/overview"]').click();
        await page.getByRole("heading", { name: "Overview" }).waitFor();
      }
    } finally {
      await page.unroute();
    }
    assert.equal(await page.locator("#banner").isVisible(), false, "a left page's cancelled calls are no error");
  });

  test(`${engine}: a route parameter cannot reach another API path, and no page broke the content security policy`, async () => {
    requested.length = 0;
    for (const hash of ["#/webhooks/..%2F..%2Fuser%2Fsystemuids", "#/webhooks/..%2F..%2Fuser%2Fsystemuids/deliveries", "#/webhooks/%2e%2e"]) {
      await visit(hash);
      await page.getByText("There is no such page.").waitFor();
    }
    const strays = requested.filter((u) => !/\/console\/|\/favicon\.ico$/.test(u));
    assert.deepEqual(strays, [], "the page called the API for a forged route");
    assert.deepEqual(page.violations, []);
  });

  test(`${engine}: a stopped server is said so on the open page`, async () => {
    await visit(`#/overview`);
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    await server.stop();
    await page.getByText("The server cannot be reached").first().waitFor({ timeout: 10_000 });
    assert.equal(await page.locator("#banner").isVisible(), true);
    await shots("server-stopped");
  });
}
