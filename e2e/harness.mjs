// What the console tests drive: the real chathook binary on free loopback ports with a throwaway data
// directory, and a webhook receiver whose answer the test sets. The browsers are driver.mjs's.

import { spawn } from "node:child_process";
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
export const ADMIN = "console-test-admin-key";
/** Screenshots and the server's log of each run (ignored by git). */
export const SCREENSHOTS = join(HERE, "screenshots");
mkdirSync(SCREENSHOTS, { recursive: true });

async function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Starts the server (CHATHOOK_BINARY, or the workspace's debug build); resolves once /health answers.
 * Its log (info and up) goes to `logFile` when given. */
export async function startServer(logFile) {
  const dir = mkdtempSync(join(tmpdir(), "chathook-console-"));
  const [apiPort, wsPort] = [await freePort(), await freePort()];
  const config = join(dir, "chathook.toml");
  writeFileSync(
    config,
    [
      `admin_key = "${ADMIN}"`,
      "[webhook]",
      // a failed delivery becomes a dead letter after two quick retries
      'retry_schedule = ["0s", "100ms", "100ms"]',
      "retry_jitter = 0.0",
    ].join("\n"),
  );
  const bin = process.env.CHATHOOK_BINARY || join(process.env.CARGO_TARGET_DIR || join(HERE, "..", "target"), "debug", "chathook");
  const proc = spawn(bin, ["--config", config, "--data-dir", join(dir, "data"), "--api-addr", `127.0.0.1:${apiPort}`, "--ws-addr", `127.0.0.1:${wsPort}`], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: "info" },
  });
  let stderr = "";
  const log = logFile ? createWriteStream(logFile) : null;
  /** The server's last lines of output, for a failing test's message. */
  let recent = [];
  const keep = (d) => {
    log?.write(d);
    recent = recent.concat(String(d).split("\n").filter(Boolean)).slice(-60);
  };
  proc.stderr.on("data", (d) => {
    if (stderr.length < 100_000) stderr += d;
    keep(d);
  });
  proc.stdout.on("data", keep);
  const base = `http://127.0.0.1:${apiPort}`;
  for (let i = 0; i < 300; i++) {
    if (proc.exitCode !== null) throw new Error(`chathook exited: ${stderr}`);
    try {
      if ((await fetch(`${base}/health`)).ok) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    recentLog: () => recent.join("\n"),
    async call(method, path, body) {
      const res = await fetch(base + path, {
        method,
        headers: { token: ADMIN, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    },
    async sendText(from, to, text) {
      const payload = Buffer.from(JSON.stringify({ type: 1, content: text })).toString("base64");
      const r = await this.call("POST", "/message/send", { from_uid: from, channel_id: to, channel_type: 1, payload });
      if (r.status !== 200) throw new Error(`send: ${r.status} ${JSON.stringify(r.body)}`);
    },
    async stop() {
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        await new Promise((r) => proc.once("exit", r));
      }
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A webhook receiver: answers `status` (200 by default), records each request. */
export async function startReceiver() {
  const receiver = { status: 200, requests: [] };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      receiver.requests.push({ url: req.url, headers: req.headers, body });
      res.writeHead(receiver.status, { "content-type": "application/json" });
      res.end(JSON.stringify({ received: true, status: receiver.status }));
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  receiver.url = `http://127.0.0.1:${server.address().port}/hook`;
  receiver.close = () => new Promise((r) => server.close(r));
  return receiver;
}
