// Where an endpoint reads the event log: the start position of a new endpoint (now, the oldest stored
// event, or a time), and a seek of an existing one (read again from a time or the oldest event, or
// skip to now), which the server answers with the new position and any gap retention left.

import { api } from "./api.js";
import { confirm, fieldErrors, h, time } from "./ui.js";

/** The choice of a start, as `{field, value()}`: `value()` is what `start_from` / `to` take. */
function startChoice(prefix, options) {
  const select = h("select", { id: `${prefix}-from` }, options.map(([v, t]) => h("option", { value: v, text: t })));
  const at = h("input", { type: "datetime-local", id: `${prefix}-at`, step: 1, hidden: true });
  select.addEventListener("change", () => (at.hidden = select.value !== "time"));
  const value = () => {
    if (select.value !== "time") return select.value;
    if (!at.value) return null;
    return new Date(at.value).toISOString();
  };
  return { select, at, value };
}

/** The "Start from" field of the New endpoint dialog; `value()` gives `start_from` (null: a time is missing). */
export function startFromField() {
  const c = startChoice("start", [
    ["now", "Now: events from now on"],
    ["oldest", "The oldest stored event (the log keeps about a week)"],
    ["time", "A time…"],
  ]);
  return {
    element: h("div", {}, h("label", { for: "start-from", text: "Start from" }), c.select, c.at),
    value: c.value,
  };
}

/** The Position card of endpoint `e`: a seek. */
export function positionArea(e) {
  const c = startChoice("seek", [
    ["time", "Read again from a time…"],
    ["oldest", "Read again from the oldest stored event"],
    ["now", "Skip to now"],
  ]);
  c.at.hidden = false;
  const result = h("div", { id: "seek-result", role: "status" });
  const go = async () => {
    result.replaceChildren();
    const to = c.value();
    if (!to) {
      result.replaceChildren(fieldErrors(["to: choose a time"]));
      return;
    }
    const what = to === "now" ? "Events not delivered yet are skipped." : "What was delivered after it is delivered again, with the same ids.";
    if (!(await confirm("Move the endpoint's cursor?", what, "Move"))) return;
    try {
      const r = await api("POST", `/v1/webhooks/endpoints/${e.id}/seek`, { to });
      const gap = r.gap ? ` The log starts later (at ${time(r.gap.oldest_at)}): older events are gone.` : "";
      const pending = r.applied ? "" : " It applies when the endpoint's dispatcher next starts.";
      result.replaceChildren(h("p", { text: `Reading after position ${r.position}.${gap}${pending}` }));
    } catch (err) {
      result.replaceChildren(fieldErrors([err.field ? `${err.field}: ${err.message}` : err.message]));
    }
  };
  return h(
    "section.card",
    { id: "position-area" },
    h("h2", { text: "Position" }),
    h("p.muted", { text: "Move where the endpoint reads the event log: to rebuild a downstream database, or to skip a backlog." }),
    h("label", { for: "seek-from", text: "Move to" }),
    c.select,
    c.at,
    h("div.row.spaced", {}, h("button", { type: "button", id: "seek", text: "Move cursor", disabled: e.read_only, onclick: go })),
    result,
  );
}
