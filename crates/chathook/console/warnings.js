// Warnings: what needs the operator's eye without Grafana: endpoints failing, paused by their breaker or
// disabled by the server, and endpoints whose attempts failed in the last hour, each with a link to its
// deliveries; relay sources whose ingest refused requests (a rotated URL, a wrong token, a clock); and the
// server's recent operational notices (`notices`).

import { api } from "./api.js";
import { h, time } from "./ui.js";
import { stateOf } from "./webhooks.js";
import { REFUSALS } from "./sources.js";
import { renderNotices } from "./notices.js";

export async function render(main) {
  await renderEndpoints(main);
  await renderRelay(main);
  await renderNotices(main);
}

/** Relay sources that refused requests, with how many for each reason. */
async function renderRelay(main) {
  const refusing = (await api("GET", "/v1/relay/sources")).data.filter((s) => Object.keys(s.counters.refused).length);
  if (!refusing.length) return;
  main.append(
    h("h2", { id: "refused-relay", text: "Refused relay requests" }),
    h(
      "ul.card.warnings",
      {},
      refusing.map((s) =>
        h(
          "li",
          { "data-source": s.id },
          h("a", { href: "#/sources", text: s.description || s.id }),
          Object.entries(s.counters.refused).map(([reason, n]) => h("div.muted", { text: `${n} × ${REFUSALS[reason] || reason}` })),
        ),
      ),
    ),
  );
}

async function renderEndpoints(main) {
  const endpoints = (await api("GET", "/v1/webhooks/endpoints")).data;
  const stats = await Promise.all(
    endpoints.map((e) => api("GET", `/v1/webhooks/endpoints/${e.id}/stats?window=1h`).catch(() => null)),
  );
  const items = [];
  endpoints.forEach((e, i) => {
    const [state, look] = stateOf(e);
    const failed = stats[i] ? Math.round(stats[i].attempts * (1 - stats[i].success_rate)) : 0;
    const serverDisabled = !e.enabled && e.disabled_reason;
    if (look === "ok" && failed === 0) return;
    if (!e.enabled && !serverDisabled) return; // switched off on purpose
    const since = e.failing_since || e.disabled_at;
    items.push({ e, state, look, failed, since });
  });
  items.sort((a, b) => (b.since || "").localeCompare(a.since || ""));
  main.append(h("h1", { text: "Warnings" }));
  if (!items.length) {
    main.append(h("p.card", { id: "no-warnings", text: "No warnings: every endpoint is delivering." }));
    return;
  }
  main.append(
    h(
      "ul.card.warnings",
      {},
      items.map(({ e, state, look, failed, since }) =>
        h(
          "li",
          { "data-endpoint": e.id },
          h(`strong.${look}`, { text: state }),
          " · ",
          h("a.mono", { href: `#/webhooks/${e.id}/deliveries`, text: e.url }),
          failed ? h("div.muted", { text: `${failed} failed attempt${failed === 1 ? "" : "s"} in the last hour` }) : null,
          since ? h("div.muted", { text: `since ${time(since)}` }) : null,
        ),
      ),
    ),
  );
}
