// Operational notices: what the server reported about its own endpoints and relay sources (failing,
// recovered, breaker open, disabled, enabled, dead letters, refused relay requests), newest first. The
// same events go to any standard-flavour endpoint that selects them.

import { api } from "./api.js";
import { h, time } from "./ui.js";

const TITLES = {
  "endpoint.failing": "Failing",
  "endpoint.recovered": "Recovered",
  "endpoint.breaker_open": "Breaker opened",
  "endpoint.disabled": "Disabled by the server",
  "endpoint.enabled": "Enabled again",
  "delivery.exhausted": "Dead-lettered",
  "relay.refused": "Relay requests refused",
};

const LOOKS = { "endpoint.recovered": "ok", "endpoint.enabled": "ok" };

/** What a notice says beyond its title. */
function detail(type, d) {
  switch (type) {
    case "endpoint.failing":
    case "endpoint.breaker_open":
      return `${d.consecutive_failures} failures in a row · last: ${d.last_error}`;
    case "endpoint.disabled":
      return d.reason;
    case "delivery.exhausted":
      return `${d.count} deliver${d.count === 1 ? "y" : "ies"} · last: ${d.last_event} (${d.last_error})`;
    case "relay.refused":
      return `${d.count} refused: ${Object.entries(d.reasons).map(([r, n]) => `${n} × ${r}`).join(", ")}`;
    default:
      return "";
  }
}

/** The link a notice points to: the endpoint's deliveries or the relay sources. */
function subject(d) {
  if (d.source_id) return h("a", { href: "#/sources", text: d.description || d.source_id });
  return h("a.mono", { href: `#/webhooks/${d.endpoint_id}/deliveries`, text: d.url });
}

/** Appends the notices section to `main` (nothing when there are none). */
export async function renderNotices(main) {
  const notices = (await api("GET", "/v1/webhooks/notices?limit=50")).data;
  if (!notices.length) return;
  main.append(
    h("h2", { id: "notices", text: "Notices" }),
    h(
      "ul.card.warnings.notices",
      {},
      notices.map((n) =>
        h(
          "li",
          { "data-type": n.type, "data-endpoint": n.data.endpoint_id || null, "data-source": n.data.source_id || null },
          h(`strong.${LOOKS[n.type] || "bad"}`, { text: TITLES[n.type] || n.type }),
          " · ",
          subject(n.data),
          h("div.muted", { text: [detail(n.type, n.data), time(n.timestamp)].filter(Boolean).join(" · ") }),
        ),
      ),
    ),
  );
}
