// Webhooks: the list of endpoints with their state and recent figures, and one endpoint's
// configuration as Tencent's console lays it out: the URL area and its Edit dialog (every URL rule
// checked as you type, by the server), the events area and its dialog of checkboxes grouped by
// feature, the secret (shown once, rotated on confirmation), and a test event.

import { filtersArea } from "./filters.js";
import { receiverArea } from "./receiver.js";
import { positionArea, startFromField } from "./position.js";
import { api, ApiError } from "./api.js";
import { banner, breakableUrl, confirm, dialog, fieldErrors, h, jsonBlock, ms, percent, time } from "./ui.js";
import { FEATURES } from "./features.js";

const FLAVOURS = [
  ["standard", "Standard Webhooks"],
  ["wukongim", "WuKongIM"],
  ["tencent", "Tencent Cloud Chat"],
];

const featureTitle = (key) => (FEATURES.find((f) => f[0] === key) || [key, key])[1];

/** What an endpoint is doing, in words, and how it looks. */
export function stateOf(e) {
  if (!e.enabled && e.disabled_reason) return [`Disabled by the server: ${e.disabled_reason}`, "bad"];
  if (!e.enabled) return ["Disabled", "muted"];
  if (e.breaker_open) return [`Breaker open: paused but for probes (failing since ${time(e.failing_since)})`, "bad"];
  if (e.failing_since) return [`Failing since ${time(e.failing_since)}`, "warn"];
  return ["Delivering", "ok"];
}

export async function renderList(main, _params, signal) {
  const endpoints = (await api("GET", "/v1/webhooks/endpoints")).data;
  main.append(
    h("div.row.spread", {}, h("h1", { text: "Webhooks" }), h("a", { href: "#/webhooks/new" }, h("button.primary", { type: "button", text: "Add endpoint", tabindex: -1 }))),
  );
  if (!endpoints.length) {
    main.append(h("p.card", { text: "No endpoint yet. Add one to receive events." }));
    return;
  }
  const rows = endpoints.map((e) => {
    const [state, look] = stateOf(e);
    const cells = {
      rate: h("td", { text: "…" }),
      p99: h("td.hide-narrow", { text: "…" }),
      behind: h("td.hide-narrow", { text: "…" }),
    };
    Promise.all([
      api("GET", `/v1/webhooks/endpoints/${e.id}/stats?window=1h`),
      api("GET", `/v1/webhooks/endpoints/${e.id}`),
    ])
      .then(([stats, shown]) => {
        cells.rate.textContent = stats.attempts ? percent(stats.success_rate) : "no attempts";
        cells.p99.textContent = ms(stats.latency_ms.p99);
        cells.behind.textContent = shown.queue.events_behind;
      })
      .catch((err) => !signal.aborted && banner.show(err.message));
    return h(
      "tr",
      { "data-endpoint": e.id },
      h("td", {}, h("a.mono", { href: `#/webhooks/${e.id}` }, breakableUrl(e.url)), e.description ? h("div.muted", { text: e.description }) : null),
      h("td.hide-narrow", { text: e.flavour }),
      h("td", {}, h(`span.${look}`, { text: state })),
      cells.rate,
      cells.p99,
      cells.behind,
      h("td", {}, h("a", { href: `#/webhooks/${e.id}/deliveries`, text: "Deliveries" })),
    );
  });
  main.append(
    h(
      "div.table-wrap",
      {},
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, ["URL", "Flavour", "State", "Success (1 h)", "p99 (1 h)", "Events behind", ""].map((t, i) => h(i === 1 || i === 4 || i === 5 ? "th.hide-narrow" : "th", { text: t })))),
        h("tbody", {}, rows),
      ),
    ),
  );
}

export async function renderNew(main) {
  main.append(h("h1", { text: "Add endpoint" }));
  const created = await urlDialog(null);
  if (created) {
    // Its events, in the same grouped dialog as editing them.
    const [types, features] = await Promise.all([api("GET", "/v1/webhooks/event-types"), api("GET", "/v1/features")]);
    await eventsDialog(created, eventOptions(created.flavour, types), features);
    // One that starts in the past was created paused: it reads from its start once its events are chosen.
    if (!created.enabled) await patch(created.id, { enabled: true });
  }
  location.hash = created ? `#/webhooks/${created.id}` : "#/webhooks";
}

export async function renderOne(main, [id]) {
  const [e, types, features] = await Promise.all([
    api("GET", `/v1/webhooks/endpoints/${id}`),
    api("GET", "/v1/webhooks/event-types"),
    api("GET", "/v1/features"),
  ]);
  const reload = () => window.dispatchEvent(new HashChangeEvent("hashchange"));
  const [state, look] = stateOf(e);
  const flavourName = (FLAVOURS.find((f) => f[0] === e.flavour) || [])[1] || e.flavour;

  const urlArea = h(
    "section.card",
    { id: "url-area" },
    h("div.row.spread", {}, h("h2", { text: "Callback URL" }), h("button", { type: "button", id: "edit-url", text: "Edit", disabled: e.read_only, onclick: async () => (await urlDialog(e)) && reload() })),
    h("p.mono", { id: "endpoint-url" }, breakableUrl(e.url)),
    h("p", {}, `Flavour: ${flavourName}`, e.flavour === "tencent" ? ` · sign token ${e.sign_token_set ? "set" : "not set"}` : ""),
    e.description ? h("p.muted", { text: e.description }) : null,
    h(
      "div.row",
      {},
      h(`span.${look}`, { id: "endpoint-state", text: state }),
      h("button", {
        type: "button",
        text: e.enabled ? "Disable" : "Enable",
        disabled: e.read_only,
        onclick: async () => {
          await patch(e.id, { enabled: !e.enabled });
          reload();
        },
      }),
    ),
    e.read_only ? h("p.muted", { text: "This endpoint is defined in the configuration file; change it there." }) : null,
  );

  const options = eventOptions(e.flavour, types);
  const selected = options.filter((o) => o.isChecked(e));
  const eventsArea = h(
    "section.card",
    { id: "events-area" },
    h("div.row.spread", {}, h("h2", { text: "Events" }), h("button", { type: "button", id: "edit-events", text: "Edit", disabled: e.read_only, onclick: async () => (await eventsDialog(e, options, features)) && reload() })),
    selected.length
      ? h("ul", {}, selected.map((o) => h("li", {}, h("span.mono", { text: o.label }), " ", offNote(o, features))))
      : h("p.muted", { text: "No event selected: nothing is delivered." }),
  );

  const secretArea = h(
    "section.card",
    { id: "secret-area" },
    h("h2", { text: "Signing secret" }),
    h("p", {}, h("span.mono", { text: "whsec_••••••••••••" }), h("span.muted", { text: " (shown only when it is made)" })),
    h("button", {
      type: "button",
      id: "rotate-secret",
      text: "Rotate secret",
      disabled: e.read_only,
      onclick: async () => {
        const sure = await confirm("Rotate the secret?", "A new secret signs from now on; the old one still signs for 24 hours, so receivers can switch.", "Rotate");
        if (!sure) return;
        const rotated = await api("POST", `/v1/webhooks/endpoints/${e.id}/rotate-secret`).catch((err) => banner.show(err.message));
        if (rotated) await showSecret(rotated.secret, `The old secret signs until ${time(rotated.previous_secret_valid_until)}.`);
      },
    }),
  );

  const testResult = h("div", { id: "test-result", "aria-live": "polite" });
  const testEvent = h("select", { id: "test-event" }, types.data.map((t) => h("option", { value: t.name, text: t.name })));
  const testArea = h(
    "section.card",
    { id: "test-area" },
    h("h2", { text: "Send a test event" }),
    h("label", { for: "test-event", text: "Event" }),
    testEvent,
    h("div.row.spaced", {}, h("button.primary", { type: "button", id: "send-test", text: "Send test event", onclick: () => sendTest(e.id, testEvent.value, testResult) })),
    testResult,
  );

  main.append(
    h("div.row.spread", {}, h("h1", { text: "Webhook configuration" }), h("a", { href: `#/webhooks/${e.id}/deliveries`, text: "Deliveries →" })),
    urlArea,
    eventsArea,
    filtersArea(e, () => {}),
    receiverArea(e, () => {}),
    positionArea(e),
    secretArea,
    testArea,
    h("button.danger", {
      type: "button",
      text: "Delete endpoint",
      disabled: e.read_only,
      onclick: async () => {
        if (!(await confirm("Delete the endpoint?", `${e.url} stops receiving events; its retries and attempt log go too.`, "Delete"))) return;
        await api("DELETE", `/v1/webhooks/endpoints/${e.id}`).catch((err) => banner.show(err.message));
        location.hash = "#/webhooks";
      },
    }),
  );
}

async function patch(id, body) {
  try {
    return await api("PATCH", `/v1/webhooks/endpoints/${id}`, body);
  } catch (err) {
    banner.show(err.message);
    return null;
  }
}

async function sendTest(id, event, out) {
  out.replaceChildren(h("p.muted", { text: "Sending…" }));
  try {
    const r = await api("POST", `/v1/webhooks/endpoints/${id}/test`, { event });
    out.replaceChildren(
      h("p", {}, h(`strong.${r.success ? "ok" : "bad"}`, { text: r.success ? "Delivered" : "Failed" }), ` · status ${r.status ?? "none"} · ${r.latency_ms} ms`, r.error ? ` · ${r.error}` : ""),
      r.response ? jsonBlock(r.response) : h("p.muted", { text: "No response body." }),
    );
  } catch (err) {
    out.replaceChildren(h("p.bad", { text: err.message }));
  }
}

/** Shows a secret once, hidden until "Reveal". */
async function showSecret(secret, note) {
  const value = h("code.mono", { id: "secret-value", text: "whsec_••••••••••••" });
  const reveal = h("button", {
    type: "button",
    id: "reveal-secret",
    text: "Reveal",
    onclick: () => {
      value.textContent = secret;
      reveal.disabled = true;
    },
  });
  await dialog(
    "Signing secret",
    h("div", {}, h("p", { text: "Copy it now: it is not shown again." }), h("p", {}, value, " ", reveal), note ? h("p.muted", { text: note }) : null),
    [{ label: "Done", primary: true }],
  );
}

/** The Edit dialog of the URL area (a new endpoint when `e` is null); resolves to the saved endpoint. */
async function urlDialog(e) {
  const url = h("input", { type: "url", id: "url", value: e ? e.url : "", placeholder: "https://backend.example.com/im/callback", autocomplete: "off" });
  const urlErrors = h("div", { id: "url-errors" });
  const flavour = h("select", { id: "flavour" }, FLAVOURS.map(([v, t]) => h("option", { value: v, text: t, selected: e ? e.flavour === v : v === "standard" })));
  const token = h("input", { type: "text", id: "sign-token", autocomplete: "off", placeholder: e && e.sign_token_set ? "set; type to replace" : "optional" });
  const tokenField = h("div", {}, h("label", { for: "sign-token", text: "Sign token (Tencent's callback token)" }), token);
  const description = h("input", { type: "text", id: "description", value: e ? e.description : "" });
  const start = e ? null : startFromField();
  const formError = h("p.bad", { role: "alert" });
  let portChange = null;
  const showTokenField = () => (tokenField.hidden = flavour.value !== "tencent");
  flavour.addEventListener("change", showTokenField);
  showTokenField();

  let pending = 0;
  const check = async () => {
    const mine = ++pending;
    try {
      const r = await api("POST", "/v1/webhooks/url-check", e ? { url: url.value, endpoint_id: e.id } : { url: url.value });
      if (mine !== pending) return;
      urlErrors.replaceChildren(r.valid ? "" : fieldErrors(r.errors.map((x) => x.message)));
      portChange = r.confirm_port_change;
    } catch (err) {
      if (mine === pending) urlErrors.replaceChildren(fieldErrors([err.message]));
    }
  };
  let timer = null;
  url.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(check, 200);
  });

  let saved = null;
  const save = async () => {
    formError.textContent = "";
    await check();
    if (urlErrors.textContent) return false;
    const body = { url: url.value, flavour: flavour.value, description: description.value };
    if (flavour.value === "tencent" && token.value) body.sign_token = token.value;
    if (start) {
      body.start_from = start.value();
      if (!body.start_from) {
        formError.textContent = "start_from: choose a time";
        return false;
      }
      // Created paused, so that nothing is passed over before its events are chosen (renderNew).
      if (body.start_from !== "now") body.enabled = false;
    }
    try {
      if (!e) {
        saved = await api("POST", "/v1/webhooks/endpoints", body);
        await showSecret(saved.secret);
        return true;
      }
      if (portChange) {
        const sure = await confirm(
          "Change the port?",
          `The port changes from ${portChange.from} to ${portChange.to}, and one is a prefix of the other, a common typo. Is the new port right?`,
          "Yes, change it",
        );
        if (!sure) return false;
        body.confirm_port_change = true;
      }
      saved = await api("PATCH", `/v1/webhooks/endpoints/${e.id}`, body);
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.field === "url") urlErrors.replaceChildren(fieldErrors([err.message]));
      else formError.textContent = err.message;
      return false;
    }
  };
  const body = h(
    "form",
    { onsubmit: (ev) => ev.preventDefault() },
    h("label", { for: "url", text: "URL" }),
    url,
    urlErrors,
    h("label", { for: "flavour", text: "Flavour" }),
    flavour,
    tokenField,
    h("label", { for: "description", text: "Description" }),
    description,
    start ? start.element : null,
    formError,
  );
  setTimeout(() => url.focus());
  await dialog(e ? "Edit callback URL" : "New endpoint", body, [{ label: "Cancel" }, { label: "Save", primary: true, onclick: save }]);
  return saved;
}

/** The group an event's checkbox goes in. */
function groupOf(native) {
  if (native === "user.online" || native === "user.offline") return "Online status";
  if (native.startsWith("user.")) return "Profiles";
  if (native.startsWith("message.before_send")) return "Before-send hooks";
  if (native.startsWith("message.")) return "Messages";
  if (OPERATIONAL.some((p) => native.startsWith(p))) return "Operations";
  return "Groups";
}
/** Operational events (the server's reports on its endpoints and sources): standard flavour only. */
const OPERATIONAL = ["endpoint.", "delivery.", "relay."];
const GROUPS = ["Online status", "Messages", "Groups", "Profiles", "Before-send hooks", "Operations"];

/**
 * The events an endpoint of `flavour` can select, each {value (the name sent to the API), label,
 * natives, group, description, feature, example, hook, isChecked(endpoint)}.
 */
function eventOptions(flavour, types) {
  const options = [];
  for (const t of types.data) {
    if (flavour === "tencent") {
      for (const cmd of t.flavours.tencent || []) {
        const same = options.find((o) => o.value === cmd);
        if (same) {
          same.natives.push(t.name);
          continue;
        }
        const channelType = cmd.startsWith("C2C.") ? 1 : cmd.includes("AfterSendMsg") ? 2 : null;
        options.push({
          value: cmd, label: cmd, natives: [t.name], group: groupOf(t.name), description: t.description,
          feature: t.feature, example: t.examples.tencent,
          isChecked(e) {
            const all = this.natives.every((n) => e.events.includes(n));
            const types = e.message_channel_types || [];
            return all && (channelType === null || !types.length || types.includes(channelType));
          },
        });
      }
    } else {
      if (flavour !== "standard" && groupOf(t.name) === "Operations") continue;
      const label = flavour === "wukongim" ? `${t.name} (${t.flavours.wukongim})` : t.name;
      options.push({
        value: t.name, label, natives: [t.name], group: groupOf(t.name), description: t.description,
        feature: t.feature, example: t.examples[flavour],
        isChecked: (e) => e.events.includes(t.name),
      });
    }
  }
  if (flavour !== "wukongim") {
    for (const hook of types.before_send || []) {
      const value = flavour === "tencent" ? hook.flavours.tencent[0] : hook.name;
      options.push({
        value, label: value, natives: [], group: "Before-send hooks", description: hook.description,
        feature: null, example: hook.examples[flavour], hook: true,
        isChecked: (e) => (e.before_send || []).includes(hook.name),
      });
    }
  }
  return options;
}

/** "needs <feature>" for an event whose feature switch is off, linking to Event activation. */
function offNote(option, features) {
  if (!option.feature || features[option.feature]) return null;
  return h("span.warn.inactive", {}, `needs ${featureTitle(option.feature)}, which is off — `, h("a", { href: "#/features", text: "Event activation" }));
}

/** The events dialog; resolves true when saved. */
async function eventsDialog(e, options, features) {
  const formError = h("p.bad", { role: "alert" });
  const boxes = [];
  const sets = GROUPS.map((group) => {
    const mine = options.filter((o) => o.group === group);
    if (!mine.length) {
      return group === "Before-send hooks"
        ? h("fieldset", {}, h("legend", { text: group }), h("p.muted", { text: "WuKongIM has no before-send hook: use the tencent or standard flavour." }))
        : null;
    }
    return h(
      "fieldset",
      {},
      h("legend", { text: group }),
      mine.map((o) => {
        const id = `event-${o.value.replaceAll(".", "-")}`;
        const box = h("input", { type: "checkbox", id, value: o.value, checked: o.isChecked(e) });
        boxes.push(box);
        return h(
          "div",
          {},
          h(
            "label.check",
            { for: id },
            box,
            h("span", {}, h("span.name", { text: o.label }), h("br"), h("span.desc", { text: o.description }), o.feature ? h("br") : null, o.feature ? featureBadge(o, features) : null),
          ),
          o.example ? h("details", {}, h("summary", { text: "Example body" }), jsonBlock(o.example)) : null,
        );
      }),
    );
  });
  let saved = false;
  await dialog("Select events", h("div", {}, sets, formError), [
    { label: "Cancel" },
    {
      label: "Save",
      primary: true,
      onclick: async () => {
        const events = boxes.filter((b) => b.checked).map((b) => b.value);
        try {
          await api("PATCH", `/v1/webhooks/endpoints/${e.id}`, { events });
          saved = true;
          return true;
        } catch (err) {
          formError.textContent = err.message;
          return false;
        }
      },
    },
  ]);
  return saved;
}

function featureBadge(option, features) {
  const note = offNote(option, features);
  return note || h("span.muted", { text: `feature: ${featureTitle(option.feature)} (on)` });
}
