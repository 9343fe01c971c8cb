// How an endpoint reaches its receiver: static headers, basic credentials, TLS (client certificate,
// key and CA) and its own retry schedule. Secret values come back masked (********); a masked value
// sent back keeps the stored one, so the card never needs to know a secret to keep it.

import { api } from "./api.js";
import { fieldErrors, h } from "./ui.js";

const MASK = "********";

/** `Name: value` lines as a map; the errors of lines without a colon. */
function parseHeaders(text) {
  const headers = {};
  const errors = [];
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (!line) continue;
    const at = line.indexOf(":");
    if (at < 1) {
      errors.push(`headers: line ${i + 1} is not "Name: value"`);
      continue;
    }
    headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return { headers, errors };
}

function pem(id, label, value, placeholder, disabled) {
  return [h("label", { for: id, text: label }), h("textarea.mono", { id, rows: 3, placeholder, disabled, text: value || "" })];
}

/** The delivery card of endpoint `e`; `saved` runs after a change is stored. */
export function receiverArea(e, saved) {
  const ro = e.read_only;
  const headers = h("textarea.mono", {
    id: "receiver-headers",
    rows: 3,
    placeholder: "X-Api-Key: value (one per line)",
    disabled: ro,
    text: Object.keys(e.headers || {}).map((n) => `${n}: ${MASK}`).join("\n"),
  });
  const user = h("input", { type: "text", id: "basic-username", value: e.basic_auth?.username || "", placeholder: "none", autocomplete: "off", disabled: ro });
  const password = h("input", {
    type: "password",
    id: "basic-password",
    placeholder: e.basic_auth ? "stored · type to replace" : "",
    autocomplete: "new-password",
    disabled: ro,
  });
  const [certLabel, cert] = pem("tls-client-cert", "Client certificate (PEM)", e.tls?.client_cert, "-----BEGIN CERTIFICATE-----", ro);
  const [keyLabel, key] = pem("tls-client-key", "Client key (PEM)", "", e.tls?.client_key ? "stored · paste a new key to replace" : "-----BEGIN PRIVATE KEY-----", ro);
  const [caLabel, ca] = pem("tls-ca-cert", "CA to trust (PEM)", e.tls?.ca_cert, "the system's roots only", ro);
  const schedule = h("input", {
    type: "text",
    id: "retry-schedule",
    value: (e.retry_schedule || []).join(", "),
    placeholder: "the server's schedule · seconds, e.g. 0, 5, 300, 1800",
    disabled: ro,
  });
  const errors = h("div");
  const status = h("p.muted", { role: "status", id: "receiver-status" });

  const body = () => {
    const parsed = parseHeaders(headers.value);
    const problems = [...parsed.errors];
    const basic = user.value.trim()
      ? { username: user.value.trim(), password: password.value || (e.basic_auth ? MASK : "") }
      : null;
    const keyText = key.value.trim() || (e.tls?.client_key && cert.value.trim() ? MASK : "");
    const tls = cert.value.trim() || keyText || ca.value.trim()
      ? { client_cert: cert.value.trim() || undefined, client_key: keyText || undefined, ca_cert: ca.value.trim() || undefined }
      : null;
    const steps = schedule.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (steps.some((s) => !/^\d+$/.test(s))) problems.push("retry_schedule: whole seconds, separated by commas");
    const retry_schedule = steps.length ? steps.map(Number) : null;
    return { problems, change: { headers: parsed.headers, basic_auth: basic, tls, retry_schedule } };
  };

  const save = async (ev) => {
    ev.preventDefault();
    errors.replaceChildren();
    status.textContent = "";
    const { problems, change } = body();
    if (problems.length) {
      errors.replaceChildren(fieldErrors(problems));
      return;
    }
    try {
      await api("PATCH", `/v1/webhooks/endpoints/${e.id}`, change);
      status.textContent = "Saved.";
      password.value = "";
      key.value = "";
      saved();
    } catch (err) {
      errors.replaceChildren(fieldErrors([err.field ? `${err.field}: ${err.message}` : err.message]));
    }
  };

  return h(
    "form.card",
    { id: "receiver-area", onsubmit: save },
    h("h2", { text: "Delivery" }),
    h("p.muted", { text: "Sent with every request besides the signatures. Header values, the password and the key are stored sealed and shown as ********; leave them so to keep them." }),
    h("label", { for: "receiver-headers", text: "Headers" }),
    headers,
    h("label", { for: "basic-username", text: "Basic auth username" }),
    user,
    h("label", { for: "basic-password", text: "Basic auth password" }),
    password,
    certLabel,
    cert,
    keyLabel,
    key,
    caLabel,
    ca,
    h("label", { for: "retry-schedule", text: "Retry schedule (seconds)" }),
    schedule,
    errors,
    h("div.row.spaced", {}, h("button.primary", { type: "submit", id: "save-receiver", text: "Apply delivery settings", disabled: ro }), status),
  );
}
