// The console's shell: the login, the navigation between pages (the part of the URL after #), and a
// watch on the server that says so at the top of every page when it cannot be reached.

import { adminKey, api, ApiError, navigation } from "./api.js";
import { banner, h } from "./ui.js";
import * as overview from "./overview.js";
import * as webhooks from "./webhooks.js";
import * as deliveries from "./deliveries.js";
import * as features from "./features.js";
import * as warnings from "./warnings.js";
import * as sources from "./sources.js";

/** [pattern, page]: the first whose pattern matches the hash renders. */
const PAGES = [
  [/^#\/overview$/, overview.render],
  [/^#\/webhooks$/, webhooks.renderList],
  [/^#\/webhooks\/new$/, webhooks.renderNew],
  [/^#\/webhooks\/([^/]+)\/deliveries$/, deliveries.render],
  [/^#\/webhooks\/([^/]+)$/, webhooks.renderOne],
  [/^#\/features$/, features.render],
  [/^#\/warnings$/, warnings.render],
  [/^#\/sources$/, sources.render],
];

/** A route parameter names one thing, never another path: letters, digits and _ . : ~ - (not . or ..). */
const PARAM = /^(?!\.{1,2}$)[A-Za-z0-9_.:~-]{1,200}$/;

/** The decoded route parameters, or null when one is malformed or could reach another path. */
function routeParams(match) {
  try {
    const params = match.slice(1).map(decodeURIComponent);
    return params.every((p) => PARAM.test(p)) ? params : null;
  } catch {
    return null;
  }
}

/** Cleans up the page shown now (its timers and live streams). */
let leave = null;

async function show() {
  if (leave) {
    leave();
    leave = null;
  }
  for (const d of document.querySelectorAll("dialog[open]")) d.close();
  // Each navigation renders into a page of its own: one still loading when the next begins keeps
  // writing into a page no longer shown, and its requests are cancelled.
  const main = h("div.page");
  document.getElementById("main").replaceChildren(main);
  const controller = new AbortController();
  navigation.begin(controller);
  leave = () => controller.abort();
  banner.clear();
  if (!adminKey.get()) {
    document.getElementById("nav").hidden = true;
    main.append(loginForm());
    return;
  }
  document.getElementById("nav").hidden = false;
  const hash = location.hash || "#/overview";
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("current", hash.startsWith(a.getAttribute("href")));
  }
  for (const [pattern, render] of PAGES) {
    const m = hash.match(pattern);
    if (!m) continue;
    const params = routeParams(m);
    if (!params) break;
    try {
      await render(main, params, controller.signal);
    } catch (e) {
      if (!controller.signal.aborted) failed(e);
    }
    return;
  }
  main.append(h("p", { text: "There is no such page." }), h("a", { href: "#/overview", text: "Overview" }));
}

/** Shows an error in the banner; a refused key sends the operator back to the login. */
export function failed(e) {
  if (e instanceof ApiError && e.status === 401) {
    adminKey.clear();
    show().then(() => banner.show("The admin key was refused. Log in again."));
    return;
  }
  banner.show(e instanceof ApiError ? e.message : `Something went wrong: ${e.message}`);
}

function loginForm() {
  const input = h("input", { type: "password", id: "admin-key", autocomplete: "off", required: true });
  const error = h("p.bad", { role: "alert" });
  const form = h(
    "form.card.login",
    {
      onsubmit: async (ev) => {
        ev.preventDefault();
        error.textContent = "";
        adminKey.set(input.value.trim());
        try {
          await api("GET", "/v1/webhooks/endpoints");
        } catch (e) {
          adminKey.clear();
          error.textContent = e.status === 401 ? "That admin key is wrong." : e.message;
          return;
        }
        if (!location.hash || location.hash === "#/login") location.hash = "#/overview";
        show();
      },
    },
    h("h1", { text: "Log in" }),
    h("p.muted", { text: "The admin key is the server's admin_key setting, or the key it generated into admin.key in its data directory. It is kept in this tab only." }),
    h("label", { for: "admin-key", text: "Admin key" }),
    input,
    error,
    h("div.row", {}, h("button.primary", { type: "submit", text: "Log in" })),
  );
  setTimeout(() => input.focus());
  return form;
}

/** Every few seconds, whether the server answers: a banner when it does not, cleared when it does. */
let unreachable = false;
async function watchServer() {
  try {
    const res = await fetch("/health", { cache: "no-store" });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    if (unreachable) {
      unreachable = false;
      banner.clear();
    }
  } catch {
    unreachable = true;
    banner.show("The server cannot be reached. Is chathook running? This page retries every few seconds.");
  }
}

document.getElementById("logout").addEventListener("click", () => {
  adminKey.clear();
  location.hash = "";
  show();
});
window.addEventListener("hashchange", show);
setInterval(watchServer, 3000);
show();
