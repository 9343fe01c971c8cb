// An endpoint's filters: which channels, senders, users, payload types and sources it takes among the
// events it selects (each an empty list for all). What a filter leaves out is counted, never failed.

import { api } from "./api.js";
import { fieldErrors, h } from "./ui.js";

/** [key, label, hint, numbers]: one text box each, a comma-separated list. */
const FIELDS = [
  ["channel_types", "Channel types", "e.g. 2 (groups), or 11, 12 (agent channels)", true],
  ["channel_ids", "Channels", "ids, or a prefix ending in * (team-*)", false],
  ["from_uids", "Senders", "uids of message senders", false],
  ["uids", "Users", "uids, for online, offline and profile events", false],
  ["payload_types", "Payload types", "the payload's JSON type: 1 text, 2 image...", true],
];

function list(text, numbers) {
  const parts = text.split(",").map((p) => p.trim()).filter(Boolean);
  return numbers ? parts.map(Number) : parts;
}

/** The filters card of endpoint `e`; `saved` runs after a change is stored. */
export function filtersArea(e, saved) {
  const inputs = {};
  const rows = FIELDS.map(([key, label, hint]) => {
    const input = h("input", { type: "text", id: `filter-${key}`, value: (e.filters[key] || []).join(", "), placeholder: `all · ${hint}`, disabled: e.read_only });
    inputs[key] = input;
    return [h("label", { for: `filter-${key}`, text: label }), input];
  });
  const sources = h("input", { type: "text", id: "filter-sources", value: e.sources.join(", "), placeholder: "all · local, or relay source ids", disabled: e.read_only });
  const errors = h("div");
  const status = h("p.muted", { role: "status", id: "filters-status" });
  const save = async (ev) => {
    ev.preventDefault();
    errors.replaceChildren();
    const filters = {};
    for (const [key, , , numbers] of FIELDS) {
      const values = list(inputs[key].value, numbers);
      if (values.some((v) => typeof v === "number" && !Number.isInteger(v))) {
        errors.replaceChildren(fieldErrors([`${key}: whole numbers, separated by commas`]));
        return;
      }
      if (values.length) filters[key] = values;
    }
    try {
      await api("PATCH", `/v1/webhooks/endpoints/${e.id}`, { filters, sources: list(sources.value, false) });
      status.textContent = "Saved.";
      saved();
    } catch (err) {
      errors.replaceChildren(fieldErrors([err.field ? `${err.field}: ${err.message}` : err.message]));
    }
  };
  return h(
    "form.card",
    { id: "filters-area", onsubmit: save },
    h("h2", { text: "Filters" }),
    h("p.muted", { text: "Among the events above, only those that pass every filter are delivered; an empty box takes all. What is left out is counted on the deliveries page, never failed." }),
    ...rows.flat(),
    h("label", { for: "filter-sources", text: "Sources" }),
    sources,
    errors,
    h("div.row.spaced", {}, h("button.primary", { type: "submit", id: "save-filters", text: "Apply filters", disabled: e.read_only }), status),
  );
}
