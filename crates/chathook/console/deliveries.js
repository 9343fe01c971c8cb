// Deliveries of one endpoint: charts of attempts per minute by outcome and of latency, the attempt log
// (filtered, newest first, live through the server's event stream), and the dead letters with replay.

import { api, stream } from "./api.js";
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
      h("h3.legend", { text: "Attempts per minute: succeeded (green), failed (red)" }),
      outcomeChart(s.per_minute),
      h("h3.legend", { text: "Latency per minute: p50 (blue), p99 (orange), in ms" }),
      latencyChart(s.per_minute),
    );
  };
  select.addEventListener("change", () => draw().catch((err) => banner.show(err.message)));
  card.append(h("div.row.spread", {}, h("h2", { text: "Charts" }), h("label.row", {}, "Window ", select)), body);
  await draw();
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

const W = 600;
const H = 160;

function frame(label, max) {
  return svg(
    "svg",
    { viewBox: `0 0 ${W} ${H + 20}`, class: "chart", role: "img", "aria-label": label, preserveAspectRatio: "none" },
    svg("line", { x1: 0, y1: H, x2: W, y2: H, stroke: "#d9dde5" }),
    svg("text", { x: 2, y: 12, "font-size": 11, fill: "#5c6475" }, String(max)),
  );
}

function outcomeChart(minutes) {
  const max = Math.max(1, ...minutes.map((m) => m.success + m.failure));
  const chart = frame("attempts per minute by outcome", max);
  const step = W / Math.max(minutes.length, 1);
  minutes.forEach((m, i) => {
    const ok = (m.success / max) * H;
    const bad = (m.failure / max) * H;
    const x = i * step + step * 0.1;
    const w = Math.max(step * 0.8, 1);
    const tip = `${time(m.minute)}: ${m.success} succeeded, ${m.failure} failed`;
    chart.append(
      svg("rect", { x, y: H - ok, width: w, height: ok, fill: "#1b7f3b" }, svg("title", {}, tip)),
      svg("rect", { x, y: H - ok - bad, width: w, height: bad, fill: "#b3261e" }, svg("title", {}, tip)),
    );
  });
  return chart;
}

function latencyChart(minutes) {
  const max = Math.max(1, ...minutes.map((m) => m.latency_ms.p99 || 0));
  const chart = frame("latency per minute, p50 and p99", max);
  const step = W / Math.max(minutes.length, 1);
  for (const [key, colour] of [["p50", "#0b63ce"], ["p99", "#d97706"]]) {
    const points = minutes.map((m, i) => [i * step + step / 2, H - ((m.latency_ms[key] || 0) / max) * H]);
    if (points.length) chart.append(svg("polyline", { points: points.map((p) => p.join(",")).join(" "), fill: "none", stroke: colour, "stroke-width": 2 }));
    for (const [i, [x, y]] of points.entries()) {
      chart.append(svg("circle", { cx: x, cy: y, r: 3, fill: colour }, svg("title", {}, `${time(minutes[i].minute)}: ${key} ${minutes[i].latency_ms[key]} ms`)));
    }
  }
  return chart;
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
    h("div.table-wrap", {}, h("table", {}, h("thead", {}, h("tr", {}, ["Time", "Event", "Outcome", "HTTP", "Latency", "Delivery id"].map((t, i) => h(i === 5 ? "th.hide-narrow" : "th", { text: t })))), tbody)),
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
      h("p.mono", { text: `delivery ${a.delivery_id}` }),
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
        h("thead", {}, h("tr", {}, ["Event", "Attempts", "Last error", "Dead since", ""].map((t) => h("th", { text: t })))),
        h(
          "tbody",
          {},
          list.map((d) =>
            h(
              "tr",
              { "data-dead-letter": d.delivery_id },
              h("td", {}, h("span.mono", { text: d.event }), h("details", {}, h("summary", { text: "Body" }), jsonBlock(d.body))),
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
