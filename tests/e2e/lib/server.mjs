// Starts the real rounds-server (the debug binary cargo built) with its own data folder and
// configuration, and talks to its REST API the way the clinician's app would.

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync, existsSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const EMAIL = "amara.okafor@stmarys.example";
export const PASSWORD = "correct horse battery staple";
export const CLINIC = "St. Mary's Clinic";

function serverBinary() {
  // scripts/env.sh keeps build output outside the clone, in the same place.
  const target = process.env.CARGO_TARGET_DIR ?? join(homedir(), ".cache", "rounds", "target");
  const bin = process.env.ROUNDS_SERVER_BIN ?? join(target, "debug", "rounds-server");
  if (!existsSync(bin)) {
    throw new Error(`${bin} does not exist: run \`cargo build -p rounds-server\` first (or set ROUNDS_SERVER_BIN).`);
  }
  return bin;
}

async function freePort() {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolvePort(port));
    });
    s.on("error", reject);
  });
}

export class RoundsServer {
  /**
   * @param {{ extraConfig?: string, serverExtra?: string, uiDir?: string }} [opts]
   *   `serverExtra`: more lines for the [server] section; `extraConfig`: more sections.
   */
  static async start(opts = {}) {
    const s = new RoundsServer();
    await s.#start(opts);
    return s;
  }

  async #start({ extraConfig = "", serverExtra = "", uiDir = join(ROOT, "ui", "dist") }) {
    this.bin = serverBinary();
    this.dir = mkdtempSync(join(tmpdir(), "rounds-e2e-"));
    this.port = await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    this.config = join(this.dir, "rounds.toml");
    const has = (section) => extraConfig.includes(`[${section}]`);
    let text =
      `[server]\nlisten = "127.0.0.1:${this.port}"\npublic_url = "${this.url}"\nui_dir = "${uiDir}"\n${serverExtra}` +
      `\n[storage]\ndata_dir = "${join(this.dir, "data")}"\nsynchronous = "normal"\n\n`;
    if (!has("limits")) text += `[limits]\nlogin_per_minute = 1000\njoin_per_minute = 1000\ntoken_per_minute = 1000\n\n`;
    if (!has("media")) text += `[media]\nudp_listen = "127.0.0.1:0"\n\n`;
    text += extraConfig;
    writeFileSync(this.config, text);
    execFileSync(this.bin, ["--config", this.config, "clinician", "add", "--clinic", CLINIC, "--time-zone", "America/Chicago", "--email", EMAIL, "--name", "Dr. Amara Okafor"], {
      env: { ...process.env, ROUNDS_NEW_PASSWORD: PASSWORD, ROUNDS_LOG: "warn" },
      stdio: ["ignore", "ignore", "inherit"],
    });
    this.logPath = join(this.dir, "server.log");
    const { openSync } = await import("node:fs");
    const log = openSync(this.logPath, "a");
    this.child = spawn(this.bin, ["--config", this.config, "serve"], {
      env: { ...process.env, ROUNDS_LOG: process.env.ROUNDS_LOG ?? "info" },
      stdio: ["ignore", log, log],
    });
    // A test that dies halfway must not leave its server running.
    const child = this.child;
    process.once("exit", () => child.exitCode === null && child.kill("SIGKILL"));
    const deadline = Date.now() + 60000;
    for (;;) {
      try {
        const r = await fetch(`${this.url}/readyz`);
        if (r.ok) break;
      } catch {
        // not yet
      }
      if (this.child.exitCode !== null) throw new Error(`server exited:\n${this.logs()}`);
      if (Date.now() > deadline) throw new Error(`server did not start:\n${this.logs()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  logs() {
    try {
      return readFileSync(this.logPath, "utf8");
    } catch {
      return "";
    }
  }

  async stop() {
    if (this.child && this.child.exitCode === null) {
      this.child.kill("SIGTERM");
      await new Promise((r) => {
        const t = setTimeout(() => {
          this.child.kill("SIGKILL");
          r();
        }, 10000);
        this.child.once("exit", () => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  async call(method, path, { token, body, raw = false } = {}) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(`${this.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (raw) return r;
    const text = await r.text();
    const json = text ? JSON.parse(text) : null;
    if (!r.ok) {
      const e = new Error(`${method} ${path} -> ${r.status}: ${text}`);
      e.status = r.status;
      e.body = json;
      throw e;
    }
    return json;
  }

  async login() {
    const s = await this.call("POST", "/api/v1/auth/login", { body: { email: EMAIL, password: PASSWORD } });
    return s.access_token;
  }

  /** A visit starting in `minutes`; returns { visit, code, link }. */
  async createVisit(access, { minutes = 0, duration = 30, patientName = "Maria Lopez" } = {}) {
    const at = new Date(Date.now() + minutes * 60000).toISOString();
    const created = await this.call("POST", "/api/v1/visits", {
      token: access,
      body: { scheduled_at: at, duration_minutes: duration, patient_name: patientName },
    });
    const link = created.patient_link.url;
    return { visit: created.visit, link, code: link.split("/").pop() };
  }

  /** A guest link for `visitId` (copy invitation). */
  async guestLink(access, visitId, invitee = "guest") {
    const inv = await this.call("POST", `/api/v1/visits/${visitId}/invitations`, {
      token: access,
      body: { channel: "copy", invitee },
    });
    return inv.link;
  }

  /** Waits until someone is in the lobby of `room` (as staff see it) and returns them. */
  async waitForWaiting(access, visitId, { role, timeoutMs = 20000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const people = await this.call("GET", `/api/v1/rooms/${visitId}/participants`, { token: access });
      const found = people.find((p) => p.state === "lobby" && (!role || p.role === role));
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`nobody waiting in ${visitId}: ${JSON.stringify(people)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  admit(access, visitId, participantId) {
    return this.call("POST", `/api/v1/visits/${visitId}/admit/${participantId}`, { token: access });
  }

  end(access, visitId) {
    return this.call("POST", `/api/v1/visits/${visitId}/end`, { token: access });
  }

  /** Reads the database with the sqlite3 command line (the server keeps running). */
  sql(query) {
    const out = execFileSync("sqlite3", ["-json", join(this.dir, "data", "rounds.db"), query], { encoding: "utf8" });
    return out.trim() ? JSON.parse(out) : [];
  }
}

export function artifactsDir() {
  const dir = join(ROOT, "tests", "e2e", "artifacts");
  mkdirSync(dir, { recursive: true });
  return dir;
}
