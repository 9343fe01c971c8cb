// The server's API as the console calls it. Every call carries the admin key, kept in this tab's
// session only; a failure becomes an ApiError whose message a person can read.

const KEY = "chathook.adminKey";

export const adminKey = {
  get: () => sessionStorage.getItem(KEY),
  set: (k) => sessionStorage.setItem(KEY, k),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status; // 0 when the server could not be reached
    this.code = code;
    this.field = field;
  }
}

const UNREACHABLE = "The server cannot be reached. Is chathook running?";

/** The page being shown: its calls are cancelled when the operator goes to another page. */
export const navigation = {
  signal: undefined,
  begin(controller) {
    this.signal = controller.signal;
  },
};

function headers(body) {
  const h = { token: adminKey.get() || "" };
  if (body !== undefined) h["content-type"] = "application/json";
  return h;
}

/** Refuses a path that a browser would resolve to another route (dot segments built from input). */
function sameRoute(path) {
  const [route] = path.split("?");
  if (new URL(path, location.origin).pathname !== route) {
    throw new ApiError(0, "bad_path", `Refused to call ${route}: it leads to another path.`);
  }
}

/** Calls `method path` with an optional JSON body; resolves to the JSON answer (null when empty). */
export async function api(method, path, body) {
  sameRoute(path);
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: headers(body),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: navigation.signal,
    });
  } catch (e) {
    if (navigation.signal?.aborted) throw new ApiError(0, "cancelled", "The page was left.");
    throw new ApiError(0, "unreachable", UNREACHABLE);
  }
  const text = await res.text().catch(() => "");
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(
      res.status,
      e.code || (data && data.code) || `http_${res.status}`,
      e.message || (data && data.msg) || `The server answered HTTP ${res.status}.`,
      e.field,
    );
  }
  return data;
}

/**
 * Reads a Server-Sent Events stream (fetch, since EventSource cannot send the key): calls
 * `onEvent(name, data)` for each event until `signal` aborts; rejects with an ApiError when the
 * stream cannot be opened or breaks.
 */
export async function stream(path, onEvent, signal) {
  sameRoute(path);
  let res;
  try {
    res = await fetch(path, { headers: headers(), signal });
  } catch (e) {
    if (signal.aborted) return;
    throw new ApiError(0, "unreachable", UNREACHABLE);
  }
  if (!res.ok) {
    const data = await res.json().catch(() => null);
    const e = (data && data.error) || {};
    throw new ApiError(res.status, e.code || `http_${res.status}`, e.message || `The server answered HTTP ${res.status}.`, e.field);
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch {
      if (signal.aborted) return;
      throw new ApiError(0, "unreachable", "The live connection to the server was lost.");
    }
    if (chunk.done) {
      if (signal.aborted) return;
      throw new ApiError(0, "unreachable", "The live connection to the server was lost.");
    }
    buffer += chunk.value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}
