// Relay sources: other IM servers (WuKongIM, a Tencent Cloud Chat app) whose webhooks chathook takes in
// and delivers to every endpoint. Create one, copy its ingest URL into the other server's settings,
// rotate or delete it, and see what its ingest took and refused.

import { api } from "./api.js";
import { banner, confirm, dialog, fieldErrors, h, time } from "./ui.js";

/** What each refusal reason means, for the operator. */
export const REFUSALS = {
  secret_wrong: "wrong path secret (an old or mistyped ingest URL)",
  network_refused: "from outside the allowed networks",
  app_refused: "another Tencent app (SdkAppid)",
  sign_missing: "no Sign (the source has a token)",
  sign_wrong: "a Sign made with another token",
  sign_stale: "a RequestTime too far from now (clock skew or a replay)",
  body_invalid: "a body that does not parse",
  event_missing: "no ?event= in the query",
  store_failed: "the store could not take it (the sender retries)",
};

export async function render(main) {
  const sources = (await api("GET", "/v1/relay/sources")).data;
  // After each change the page is drawn again from the server's answer.
  const redraw = () => render(main).catch((e) => banner.show(e.message));
  main.replaceChildren(
    h("h1", { text: "Relay sources" }),
    h("p.muted", { text: "Point WuKongIM's webhook.httpAddr, or a Tencent app's callback URL, at a source's ingest URL: every endpoint then gets that server's events, signed, retried and observable. Counters are this node's since it started." }),
    createForm(redraw),
  );
  if (!sources.length) {
    main.append(h("p.card", { id: "no-sources", text: "No relay sources yet." }));
    return;
  }
  main.append(...sources.map((s) => sourceCard(s, redraw)));
}

/** The form that creates a source; Tencent's own settings show for the tencent kind. */
function createForm(redraw) {
  const kind = h("select", { id: "source-kind" }, [["wukongim", "WuKongIM"], ["tencent", "Tencent Cloud Chat"]].map(([v, t]) => h("option", { value: v, text: t })));
  const description = h("input", { type: "text", id: "source-description", placeholder: "e.g. production WuKongIM" });
  const networks = h("input", { type: "text", id: "source-networks", placeholder: "any; or e.g. 10.0.0.0/8, 192.0.2.7" });
  const token = h("input", { type: "password", id: "source-sign-token", autocomplete: "off" });
  const app = h("input", { type: "text", id: "source-app", inputmode: "numeric", placeholder: "any" });
  const tencent = h(
    "fieldset",
    { id: "tencent-settings", hidden: true },
    h("legend", { text: "Tencent" }),
    h("label", { for: "source-sign-token", text: "Callback token (Sign)" }),
    token,
    h("label", { for: "source-app", text: "Only this SdkAppid" }),
    app,
  );
  kind.addEventListener("change", () => {
    tencent.hidden = kind.value !== "tencent";
  });
  const errors = h("div");
  const submit = async (ev) => {
    ev.preventDefault();
    errors.replaceChildren();
    const body = { kind: kind.value, description: description.value.trim() };
    const nets = networks.value.split(",").map((n) => n.trim()).filter(Boolean);
    if (nets.length) body.allowed_networks = nets;
    if (kind.value === "tencent") {
      if (token.value) body.sign_token = token.value;
      if (app.value.trim()) body.sdk_app_id = Number(app.value.trim());
    }
    try {
      const created = await api("POST", "/v1/relay/sources", body);
      await dialog("Source created", h(
        "div",
        { id: "created-source" },
        h("p", { text: "Give the other server this URL. It holds the source's credential: keep it as secret as a key." }),
        copyable(created.ingest_url, "created-ingest-url"),
        created.sign_token ? h("p.muted", { text: "The callback token is not shown again." }) : null,
      ), [{ label: "Done", primary: true }]);
      redraw();
    } catch (e) {
      errors.replaceChildren(fieldErrors([e.message]));
    }
  };
  return h(
    "form.card",
    { id: "new-source", onsubmit: submit },
    h("h2", { text: "New source" }),
    h("label", { for: "source-kind", text: "Server" }),
    kind,
    h("label", { for: "source-description", text: "Description" }),
    description,
    h("label", { for: "source-networks", text: "Allowed networks" }),
    networks,
    tencent,
    errors,
    h("div.row.spaced", {}, h("button.primary", { type: "submit", id: "create-source", text: "Create source" })),
  );
}

/** A read-only URL with a button that copies it (or selects it where the browser will not copy). */
function copyable(url, id) {
  const input = h("input.mono", { type: "text", id, value: url, readonly: true, "aria-label": "Ingest URL" });
  const said = h("span.muted", { role: "status" });
  const copy = async () => {
    input.select();
    try {
      await navigator.clipboard.writeText(url);
      said.textContent = "Copied.";
    } catch {
      said.textContent = "Selected: copy it with the keyboard.";
    }
  };
  return h("div.row.url-copy", {}, input, h("button", { type: "button", text: "Copy", onclick: copy }), said);
}

function sourceCard(s, redraw) {
  const c = s.counters;
  const refused = Object.entries(c.refused);
  const rotate = async () => {
    if (!(await confirm("Rotate the ingest URL?", "The source gets a new URL; the current one keeps working for the grace period (relay.rotation_grace), so that the other server can be changed in time.", "Rotate"))) return;
    try {
      await api("POST", `/v1/relay/sources/${s.id}/rotate`);
      redraw();
    } catch (e) {
      banner.show(e.message);
    }
  };
  const remove = async () => {
    if (!(await confirm("Delete this source?", "Its ingest URL stops working at once. Events it already sent are still delivered.", "Delete"))) return;
    try {
      await api("DELETE", `/v1/relay/sources/${s.id}`);
      redraw();
    } catch (e) {
      banner.show(e.message);
    }
  };
  const kind = s.kind === "tencent" ? "Tencent Cloud Chat" : "WuKongIM";
  return h(
    "section.card.source",
    { "data-source": s.id },
    h("div.row.spread", {}, h("h2", {}, kind, s.description ? ` · ${s.description}` : ""), h("span.mono.muted", { text: s.id })),
    copyable(s.ingest_url, `ingest-${s.id}`),
    s.previous_ingest_url_valid_until ? h("p.muted", { text: `The previous URL works until ${time(s.previous_ingest_url_valid_until)}.` }) : null,
    h(
      "p.counters",
      {},
      `${c.received} requests · ${c.stored} events stored · ${c.duplicates} re-sent left out`,
      s.kind === "tencent" ? ` · ${c.judged} before-send answered` : "",
      ` · last request ${c.last_request_at ? time(c.last_request_at) : "never"}`,
    ),
    refused.length
      ? h(
          "div.table-wrap",
          {},
          h("table.refused", {}, h("thead", {}, h("tr", {}, h("th", { text: "Refused" }), h("th", { text: "Requests" }))),
            h("tbody", {}, refused.map(([reason, n]) => h("tr", { "data-reason": reason }, h("td", { text: REFUSALS[reason] || reason }), h("td", { text: n }))))),
        )
      : null,
    s.kind === "tencent"
      ? h("p.muted", { text: `Callback token ${s.sign_token_set ? "set" : "not set: requests are not signed"} · SdkAppid ${s.sdk_app_id ?? "any"} · RequestTime within ${s.max_skew_s} s · before-send answered within ${s.hook_deadline_ms} ms` })
      : null,
    s.allowed_networks.length ? h("p.muted", { text: `Only from ${s.allowed_networks.join(", ")}` }) : null,
    h("div.row.spaced", {}, h("button", { type: "button", class: "rotate", text: "Rotate URL", onclick: rotate }), h("button.danger", { type: "button", class: "delete danger", text: "Delete source", onclick: remove })),
  );
}
