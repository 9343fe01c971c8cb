// Overview: users and connections online, messages and events per second, delivery success, read from
// GET /v1/overview every two seconds (rates are the change between two reads). In a cluster the figures
// are every node's summed, and a table lists each node's own.

import { api } from "./api.js";
import { h, percent } from "./ui.js";

const EVERY_MS = 2000;

export async function render(main, _params, signal) {
  const values = {};
  const stat = (key, label) => {
    values[key] = h("div.value", { text: "…" });
    return h("div.stat", { "data-stat": key }, values[key], h("div.label", { text: label }));
  };
  main.append(
    h("h1", { text: "Overview" }),
    h(
      "div.cards",
      {},
      stat("users_online", "users online"),
      stat("connections", "connections"),
      stat("messages_rate", "messages/s"),
      stat("events_rate", "events/s"),
      stat("success_rate", "delivery success (since start)"),
      stat("endpoints", "endpoints delivering / total"),
      stat("endpoints_trouble", "endpoints with the breaker open · disabled"),
    ),
  );
  const nodesBody = h("tbody");
  const nodes = h(
    "section.card",
    { id: "nodes", hidden: true },
    h("h2", { text: "Nodes" }),
    h("div.table-wrap", {}, h("table", {}, h("thead", {}, h("tr", {}, ["node", "connections", "messages sent", "attempts ok · failed", "breakers open", "figures from"].map((t) => h("th", { text: t })))), nodesBody)),
  );
  main.append(nodes);
  let last = null;
  const read = async () => {
    const o = await api("GET", "/v1/overview");
    const now = performance.now();
    values.users_online.textContent = o.users_online;
    values.connections.textContent = o.connections;
    if (last) {
      const secs = (now - last.at) / 1000;
      values.messages_rate.textContent = ((o.messages_sent - last.o.messages_sent) / secs).toFixed(1);
      values.events_rate.textContent = ((o.events - last.o.events) / secs).toFixed(1);
    } else {
      values.messages_rate.textContent = "…";
      values.events_rate.textContent = "…";
    }
    const attempts = o.attempts.succeeded + o.attempts.failed;
    values.success_rate.textContent = attempts ? percent(o.attempts.succeeded / attempts) : "no attempts yet";
    values.endpoints.textContent = `${o.endpoints.delivering} / ${o.endpoints.total}`;
    values.endpoints_trouble.textContent = `${o.endpoints.breaker_open} · ${o.endpoints.disabled}`;
    nodes.hidden = !o.nodes;
    nodesBody.replaceChildren(
      ...(o.nodes || []).map((n) =>
        h(
          "tr",
          { "data-node": n.node },
          h("td", { text: n.node }),
          h("td", { text: n.connections }),
          h("td", { text: n.messages_sent }),
          h("td", { text: `${n.attempts.succeeded} · ${n.attempts.failed}` }),
          h("td", { text: n.breaker_open.length }),
          h("td", { text: n.age_ms === 0 ? "this node, now" : `${(n.age_ms / 1000).toFixed(1)} s ago` }),
        ),
      ),
    );
    last = { o, at: now };
  };
  await read();
  const timer = setInterval(() => read().catch(() => {}), EVERY_MS);
  signal.addEventListener("abort", () => clearInterval(timer));
}
