// Small helpers every page uses: building elements, the error banner, dialogs, formatting.

/** h("tag.class", {attr: value, onclick: fn}, ...children): an element. */
export function h(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** The banner at the top of the page: errors and the server's reachability. */
export const banner = {
  show(message, kind = "error") {
    const b = document.getElementById("banner");
    b.textContent = message;
    b.className = `banner ${kind}`;
    b.hidden = false;
  },
  clear() {
    const b = document.getElementById("banner");
    b.hidden = true;
    b.textContent = "";
  },
};

/**
 * A modal dialog (the browser's <dialog>: focus stays inside, Escape closes). `buttons` are
 * [{label, primary, onclick}]; an onclick returning false (or a promise of false) keeps it open.
 * Resolves with the label of the button that closed it, or null.
 */
export function dialog(title, body, buttons) {
  return new Promise((resolve) => {
    const d = h("dialog.dialog", { "aria-labelledby": "dialog-title" });
    const actions = h("div.actions");
    for (const b of buttons) {
      const btn = h(b.primary ? "button.primary" : "button", { type: "button", text: b.label });
      btn.addEventListener("click", async () => {
        btn.disabled = true;
        try {
          const keep = b.onclick ? await b.onclick() : true;
          if (keep !== false) {
            d.close();
            resolve(b.label);
          }
        } finally {
          btn.disabled = false;
        }
      });
      actions.append(btn);
    }
    d.append(h("h2", { id: "dialog-title", text: title }), body, actions);
    d.addEventListener("close", () => {
      d.remove();
      resolve(null);
    });
    document.body.append(d);
    d.showModal();
  });
}

/** Asks a yes/no question; resolves true on yes. */
export async function confirm(title, message, yes = "Confirm") {
  const answer = await dialog(title, h("p", { text: message }), [
    { label: "Cancel" },
    { label: yes, primary: true },
  ]);
  return answer === yes;
}

/** An inline message under a form field. */
export function fieldErrors(list) {
  return h("ul.field-errors", { role: "alert" }, list.map((m) => h("li", { text: m })));
}

export function time(rfc3339) {
  if (!rfc3339) return "";
  const d = new Date(rfc3339);
  return d.toLocaleString();
}

export function percent(x) {
  return x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)} %`;
}

export function ms(x) {
  return x === null || x === undefined ? "–" : `${x} ms`;
}

/** A read-only code block: JSON pretty-printed (a string holding JSON too), other text as it is. */
export function jsonBlock(value) {
  let text = value;
  if (typeof value === "string") {
    try {
      text = JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      text = value;
    }
  } else {
    text = JSON.stringify(value, null, 2);
  }
  return h("pre.json", { text });
}

/** A URL as text that wraps after its separators (`/`, `.`, `?`, `&`, `=`, `-`), never inside a port or
 * a word unless a part is longer than the line. */
export function breakableUrl(url) {
  const out = [];
  for (const part of String(url).split(/(?<=[/.?&=-])/)) {
    if (out.length) out.push(document.createElement("wbr"));
    out.push(part);
  }
  return out;
}
