// Benchmark: from the patient clicking "Join the visit" (after admission) to the first
// remote video frame painted, over N joins on loopback. Not a test: it prints p50/p90/p95 and
// writes a JSON file (artifacts/bench-join-<delay>.json unless --out says where).
//
//   node bench/join-to-first-frame.mjs [joins=20] [delay_ms=1000] [--janus ws://…] [--flows …]
//                                      [--media-ip 192.0.2.2] [--out file]
//
// `delay_ms` is how long after "Your clinician is ready" appears the click comes: a person
// needs at least that long to read it and reach the button, and the page uses the time to
// connect and start the clinician's video out of sight. 0 clicks the instant it appears.
//
// With --janus (a running Janus' WebSocket address; tests/bench's `join-time` starts one and
// passes it), the same joins run against Janus' VideoRoom too, alternating join by join so
// both see the same machine load. Flows (--flows, comma-separated; default all three):
//   rounds       the patient pages against rounds-server;
//   janus        bench/janus/visit.html, the same page flow on Janus: it subscribes at
//                admission and plays the video out of sight, the click moves it on screen;
//   janus-click  the same page subscribing only at the click, as Janus' VideoRoom demo does.
// Every flow: one participant already in the room sending 1280x720 VP8 and Opus from a
// Chromium with fake devices; the joiner in another Chromium with the same flags, its camera
// and microphone open before admission; the same click and the same first-frame detection.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

import { launch, phonePage } from "../lib/browser.mjs";
import { toWaitingRoom } from "../lib/flow.mjs";
import { openClinician } from "../lib/harness.mjs";
import { openJanusJoiner, openJanusPublisher, serveJanusPage } from "../lib/janus.mjs";
import { artifactsDir, RoundsServer } from "../lib/server.mjs";

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: { janus: { type: "string" }, flows: { type: "string" }, out: { type: "string" }, "media-ip": { type: "string" } },
});
const joins = Number(positionals[0] ?? 20);
const delayMs = Number(positionals[1] ?? 1000);
const flows = (opts.flows ?? (opts.janus ? "rounds,janus,janus-click" : "rounds")).split(",");
for (const f of flows) {
  if (!["rounds", "janus", "janus-click"].includes(f)) throw new Error(`unknown flow ${f}: rounds, janus or janus-click`);
  if (f !== "rounds" && !opts.janus) throw new Error(`the ${f} flow needs --janus ws://host:port (a running Janus)`);
}

/**
 * Installed on the joiner's page before it loads. When "Join" appears, the page itself clicks
 * it `delay` ms later (no round trip to the benchmark, whose latency on a loaded machine would
 * otherwise add a random head start) and times the click to the first remote frame: the
 * remote tile's video has a size and a current frame, then the next frame is presented. The
 * one measurement every flow shares. For where the time goes it also stamps when "Join"
 * appeared, when each peer connection reached "connected", and when the remote video was in
 * its tile with a frame (what is left after that is the wait for the next frame).
 */
const CLICK_WHEN_READY = (delay) => {
  const stamps = { ready: null, clicked: null, shown: null, connected: [] };
  window.__stamps = stamps;
  let settle;
  window.__joined = new Promise((resolve, reject) => (settle = { resolve, reject }));
  const clickAndTime = () => {
    const t0 = performance.now();
    stamps.clicked = t0;
    document.querySelector("[data-action=join]").click();
    const deadline = t0 + 20000;
    const check = () => {
      const v = document.querySelector(".stage .tile:not(.self) video");
      if (v && v.srcObject && v.videoWidth > 0 && v.readyState >= 2) {
        stamps.shown = performance.now();
        v.requestVideoFrameCallback(() => settle.resolve(performance.now() - t0));
        return;
      }
      if (performance.now() > deadline) settle.reject(new Error("no remote frame within 20 s"));
      else setTimeout(check, 2);
    };
    check();
  };
  const observer = new MutationObserver(() => {
    if (stamps.ready !== null || !document.querySelector("[data-action=join]")) return;
    stamps.ready = performance.now();
    observer.disconnect();
    setTimeout(clickAndTime, delay);
  });
  observer.observe(document, { childList: true, subtree: true });
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("connectionstatechange", () => {
        if (this.connectionState === "connected") stamps.connected.push({ pc: this, at: performance.now() });
      });
    }
  };
};

/** Waits for the page's own click and its first remote frame; returns the times, from "Join" appearing. */
async function joined(page) {
  let timer;
  const ms = await Promise.race([
    page.evaluate(() => window.__joined),
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('no "Join" and first frame within 40 s')), 40000))),
  ]).finally(() => clearTimeout(timer));
  return page.evaluate(async (ms) => {
    const { ready, clicked, shown, connected } = window.__stamps;
    let media = null;
    let fps = null;
    let video = null;
    for (const { pc, at } of connected) {
      const stats = await pc.getStats();
      for (const s of stats.values()) {
        if (s.type !== "inbound-rtp" || s.kind !== "video" || !(s.framesDecoded > 0)) continue;
        media = at;
        fps = s.framesPerSecond ?? null;
        // The receiver's own account of the start, for where an outlier's time went.
        video = {
          frames_received: s.framesReceived,
          frames_decoded: s.framesDecoded,
          key_frames_decoded: s.keyFramesDecoded,
          frames_dropped: s.framesDropped,
          packets_lost: s.packetsLost,
          nacks_sent: s.nackCount,
          plis_sent: s.pliCount,
          firs_sent: s.firCount,
          freezes: s.freezeCount,
          jitter_buffer_ms: s.jitterBufferEmittedCount
            ? (1000 * s.jitterBufferDelay) / s.jitterBufferEmittedCount
            : null,
        };
      }
    }
    return {
      ms,
      ready_to_click_ms: clicked - ready,
      ready_to_connected_ms: media === null ? null : media - ready,
      click_to_shown_ms: shown - clicked,
      received_fps: fps,
      video,
    };
  }, ms);
}

/**
 * Waits until the publisher's page is sending video to the SFU (so every flow joins a room
 * already live): its connection is up and video packets have gone out. Frames "sent" alone
 * are counted before the connection is: a publisher whose connection came up seconds late
 * would otherwise be charged to the joiner.
 */
async function sendingVideo(page) {
  await page.waitForFunction(
    async () => {
      for (const pc of window.__pcs) {
        if (pc.connectionState !== "connected") continue;
        const stats = await pc.getStats();
        for (const s of stats.values()) if (s.type === "outbound-rtp" && s.kind === "video" && s.packetsSent > 0) return true;
      }
      return false;
    },
    null,
    { timeout: 30000, polling: 100 },
  );
}

// --media-ip: rounds-server's media on the address Janus uses (it gathers nothing on loopback).
const media = opts["media-ip"] ? `[media]\nudp_listen = "${opts["media-ip"]}:0"\n` : "";
const server = flows.includes("rounds") ? await RoundsServer.start({ extraConfig: media }) : null;
const janusPage = opts.janus ? await serveJanusPage() : null;
const browser = await launch();
const harnessBrowser = await launch({ harness: true });
const pages = [];
const newPage = async (b, o) => {
  const p = await phonePage(b, o);
  pages.push(p);
  return p;
};
let janusRoom = 7000;

const run = {
  /** The patient pages: check in, wait, get admitted by the clinician, click. */
  async rounds(access) {
    const { visit, link } = await server.createVisit(access);
    const provider = await server.call("POST", `/api/v1/visits/${visit.id}/token`, { token: access });
    const clinician = await newPage(harnessBrowser, { viewport: { width: 800, height: 600 } });
    await openClinician(clinician, server.url, provider.token);
    const page = await newPage(browser);
    await page.context().addInitScript(CLICK_WHEN_READY, delayMs);
    await toWaitingRoom(page, link);
    const waiting = await server.waitForWaiting(access, visit.id, { role: "patient" });
    await sendingVideo(clinician);
    await server.admit(access, visit.id, waiting.id);
    try {
      return await joined(page);
    } finally {
      await server.end(access, visit.id).catch(() => undefined);
    }
  },
  /** Janus: the publisher's page makes a room and sends; the joiner waits, is "admitted", clicks. */
  async janus(_access, subscribeAtClick = false) {
    const room = janusRoom++;
    const publisher = await newPage(harnessBrowser, { viewport: { width: 800, height: 600 } });
    const feed = await openJanusPublisher(publisher, janusPage.url, opts.janus, room);
    const page = await newPage(browser);
    await page.context().addInitScript(CLICK_WHEN_READY, delayMs);
    await openJanusJoiner(page, janusPage.url, opts.janus, { room, feed, subscribeAtClick });
    await sendingVideo(publisher);
    await page.evaluate(() => void window.bench.admit());
    try {
      return await joined(page);
    } finally {
      await publisher.evaluate(() => window.bench.destroy?.()).catch(() => undefined);
    }
  },
  "janus-click": (access) => run.janus(access, true),
};

const samples = Object.fromEntries(flows.map((f) => [f, []]));
const failures = Object.fromEntries(flows.map((f) => [f, []]));
const stages = Object.fromEntries(flows.map((f) => [f, []]));
try {
  const access = server ? await server.login() : null;
  for (let i = 0; i < joins; i++) {
    // Rotate which flow goes first, so none always runs right after another's teardown.
    for (let k = 0; k < flows.length; k++) {
      const flow = flows[(i + k) % flows.length];
      try {
        const { ms, ...stamps } = await run[flow](access);
        samples[flow].push(ms);
        stages[flow].push(stamps);
        console.log(`join ${i + 1}/${joins} ${flow}: ${ms.toFixed(1)} ms`);
      } catch (e) {
        failures[flow].push(String(e.message ?? e).split("\n")[0]);
        console.error(`join ${i + 1}/${joins} ${flow} FAILED: ${e.message ?? e}`);
      } finally {
        while (pages.length) await pages.pop().context().close().catch(() => undefined);
      }
    }
  }
} finally {
  await browser.close();
  await harnessBrowser.close();
  await server?.stop();
  await janusPage?.close();
}

const summary = (list) => {
  const sorted = [...list].sort((a, b) => a - b);
  const pct = (p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
  return { joins: list.length, p50_ms: pct(50), p90_ms: pct(90), p95_ms: pct(95), max_ms: sorted.at(-1) };
};
const result = { delay_ms: delayMs, flows: {} };
for (const f of flows) {
  result.flows[f] = { ...summary(samples[f]), failed: failures[f].length, failures: failures[f], samples_ms: samples[f], stages: stages[f] };
  console.log(JSON.stringify({ flow: f, delay_ms: delayMs, ...summary(samples[f]), failed: failures[f].length }));
}
writeFileSync(opts.out ?? join(artifactsDir(), `bench-join-${delayMs}.json`), JSON.stringify(result, null, 2));
