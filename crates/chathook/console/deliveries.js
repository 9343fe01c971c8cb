// Deliveries of one endpoint: charts of its attempts over a window (charts.js), the attempt log
// (filtered, newest first, live through the server's event stream), and the dead letters with replay.

import { api, stream } from "./api.js";
import { deliveryCharts } from "./charts.js";
import { banner, confirm, dialog, h, jsonBlock, time } from "./ui.js";

const PAGE = 50;

export async function render(main, [id], signal) {
  const e = await api("GET", `/v1/webhooks/endpoints/${id}`);
  const charts = h("section.card", { id: "charts" });
  const attempts = h("section.card", { id: "attempts" });
  const dead = h("section.card", { id: "dead-letters" });
  main.append(
    h("div.row.spread", {}, h("h1", { text: "Deliveries" }), h("a", { href: `#/webhooks/${id}`, text: "← Configuration" })),
    h("p.mono", { text: e.url }),
    charts,
    attempts,
    dead,
  );
  await Promise.all([renderCharts(charts, id), renderAttempts(attempts, id, signal), renderDeadLetters(dead, id)]);
}

// ---- charts -------------------------------------------------------------------------------------

const WINDOWS = [["1h", "last hour"], ["6h", "last 6 hours"], ["24h", "last 24 hours"]];

async function renderCharts(card, id) {
  const select = h("select", { id: "chart-window" }, WINDOWS.map(([v, t]) => h("option", { value: v, text: t })));
  const body = h("div");
  const draw = async () => {
    const s = await api("GET", `/v1/webhooks/endpoints/${id}/stats?window=${select.value}`);
    body.replaceChildren(
      h("p", {}, `${s.attempts} attempt${s.attempts === 1 ? "" : "s"}, ${s.failures} failed · p50 ${s.latency_ms.p50 ?? "–"} ms · p99 ${s.latency_ms.p99 ?? "–"} ms`),
      s.filtered ? h("p.muted", { id: "filtered-count", text: `${s.filtered} event${s.filtered === 1 ? "" : "s"} left out by the endpoint's filters (since this node started)` }) : null,
      ...deliveryCharts(s),
    );
  };
  select.addEventListener("change", () => draw().catch((err) => banner.show(err.message)));
  card.append(h("div.row.spread", {}, h("h2", { text: "Charts" }), h("label.row", {}, "Window ", select)), body);
  await draw();
}

// ---- the attempt log ----------------------------------------------------------------------------

async function renderAttempts(card, id, pageSignal) {
  const status = h("select", { id: "filter-status" }, [["", "all"], ["success", "succeeded"], ["failure", "failed"]].map(([v, t]) => h("option", { value: v, text: t })));
  const event = h("input", { type: "text", id: "filter-event", placeholder: "any event", list: "known-events" });
  const known = h("datalist", { id: "known-events" });
  const tbody = h("tbody");
  const live = h("span.muted", { id: "live-state", role: "status" });
  let controller = null;
  const seenEvents = new Set();

  const row = (a) => {
    if (!seenEvents.has(a.event)) {
      seenEvents.add(a.event);
      known.append(h("option", { value: a.event }));
    }
    return h(
      "tr.selectable",
      { tabindex: 0, "data-attempt": a.id, onclick: () => showAttempt(id, a), onkeydown: (ev) => ev.key === "Enter" && showAttempt(id, a) },
      h("td", { text: time(a.at) }),
      h("td.mono", { text: a.event }),
      h("td", {}, h(`span.badge.${a.success ? "ok" : "bad"}`, { text: a.success ? "succeeded" : "failed" })),
      h("td", { text: a.status ?? "–" }),
      h("td", { text: `${a.latency_ms} ms` }),
      h("td.mono.hide-narrow", { text: a.delivery_id }),
      h("td.mono.hide-narrow", { text: a.source || "–" }),
    );
  };

  const load = async () => {
    if (controller) controller.abort();
    controller = new AbortController();
    pageSignal.addEventListener("abort", () => controller.abort());
    const q = new URLSearchParams({ limit: PAGE });
    if (status.value) q.set("status", status.value);
    if (event.value) q.set("event", event.value);
    const page = await api("GET", `/v1/webhooks/endpoints/${id}/attempts?${q}`);
    tbody.replaceChildren(...page.data.map(row));
    const after = page.data.length ? page.data[0].id : 0;
    q.delete("limit");
    q.set("after", after);
    const signal = controller.signal;
    live.textContent = "live";
    stream(`/v1/webhooks/endpoints/${id}/attempts/stream?${q}`, (name, a) => {
      if (name !== "attempt") return;
      tbody.prepend(row(a));
      while (tbody.children.length > 500) tbody.lastChild.remove();
    }, signal).catch((err) => {
      if (signal.aborted) return;
      live.textContent = "not live";
      banner.show(err.message);
    });
  };
  status.addEventListener("change", () => load().catch((err) => banner.show(err.message)));
  event.addEventListener("change", () => load().catch((err) => banner.show(err.message)));

  card.append(
    h("div.row.spread", {}, h("h2", { text: "Attempts" }), live),
    h("div.row", {}, h("label.row", { for: "filter-status" }, "Outcome ", status), h("label.row", { for: "filter-event" }, "Event ", event), known),
    h("div.table-wrap", {}, h("table", {}, h("thead", {}, h("tr", {}, ["Time", "Event", "Outcome", "HTTP", "Latency", "Delivery id", "Source"].map((t, i) => h(i >= 5 ? "th.hide-narrow" : "th", { text: t })))), tbody)),
  );
  await load();
}

/** One attempt: what was sent and what came back. */
async function showAttempt(id, listed) {
  let a;
  try {
    a = await api("GET", `/v1/webhooks/endpoints/${id}/attempts/${listed.id}`);
  } catch (err) {
    banner.show(err.message);
    return;
  }
  dialog(
    `Attempt ${a.id}`,
    h(
      "div",
      { id: "attempt-detail" },
      h("p", {}, `${a.event} · ${time(a.at)} · ${a.success ? "succeeded" : "failed"} · HTTP ${a.status ?? "none"} · ${a.latency_ms} ms`),
      h("p.mono", { text: `delivery ${a.delivery_id} · source ${a.source || "unknown"}` }),
      a.error ? h("p.bad", { text: a.error }) : null,
      h("h3", { text: "Request" }),
      a.request ? jsonBlock(a.request) : h("p.muted", { text: "No request body." }),
      h("h3", { text: "Response" }),
      a.response ? jsonBlock(a.response) : h("p.muted", { text: "No response body." }),
    ),
    [{ label: "Close", primary: true }],
  );
}

// ---- dead letters -------------------------------------------------------------------------------

/** The dead letters; `note` says what the last action did (the card is drawn again after each). */
async function renderDeadLetters(card, id, note = "") {
  const list = (await api("GET", `/v1/webhooks/endpoints/${id}/dead-letters`)).data;
  const since = h("input", { type: "datetime-local", id: "replay-since" });
  const result = h("p", { role: "status", id: "replay-result", text: note });
  const redraw = (message) => {
    card.replaceChildren();
    renderDeadLetters(card, id, message).catch((err) => banner.show(err.message));
  };
  const replayAll = async () => {
    if (!since.value) {
      result.textContent = "Choose the time to replay from.";
      return;
    }
    const from = new Date(since.value);
    if (!(await confirm("Replay failed deliveries?", `Every dead letter since ${from.toLocaleString()} is delivered again.`, "Replay"))) return;
    const r = await api("POST", `/v1/webhooks/endpoints/${id}/replay`, { since: from.toISOString().replace(/\.\d+Z$/, "Z") });
    redraw(`${r.replayed} queued for delivery.`);
  };
  card.append(
    h("h2", { text: `Dead letters (${list.length})` }),
    h("div.row", {}, h("label.row", { for: "replay-since" }, "Replay all failed since ", since), h("button", { type: "button", id: "replay-all", text: "Replay", onclick: () => replayAll().catch((err) => banner.show(err.message)) })),
    result,
  );
  if (!list.length) {
    card.append(h("p.muted", { text: "None: every delivery succeeded or is still being retried." }));
    return;
  }
  card.append(
    h(
      "div.table-wrap",
      {},
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, ["Event", "Source", "Attempts", "Last error", "Dead since", ""].map((t) => h("th", { text: t })))),
        h(
          "tbody",
          {},
          list.map((d) =>
            h(
              "tr",
              { "data-dead-letter": d.delivery_id },
              h("td", {}, h("span.mono", { text: d.event }), h("details", {}, h("summary", { text: "Body" }), jsonBlock(d.body))),
              h("td.mono", { text: d.source || "–" }),
              h("td", { text: d.attempts }),
              h("td.bad", { text: d.last_error }),
              h("td", { text: time(d.dead_lettered_at) }),
              h("td", {}, h("button", {
                type: "button",
                text: "Replay",
                onclick: async () => {
                  try {
                    await api("POST", `/v1/webhooks/endpoints/${id}/dead-letters/${encodeURIComponent(d.delivery_id)}/replay`);
                    redraw("Queued for delivery.");
                  } catch (err) {
                    banner.show(err.message);
                  }
                },
              })),
            ),
          ),
        ),
      ),
    ),
  );
}
