// Debian's Chromium with fake camera and microphone, driven by playwright-core.

import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const PHONE = { width: 360, height: 740 };

/**
 * A fresh browser. `harness: true` is for the clinician stand-in only, never for patient pages. `fakeUi: false` leaves permission prompts to the test (Chromium then
 * refuses camera and microphone unless granted), for the permission-denied journeys.
 * `secureOrigin` ("http://10.0.0.1:8080") treats that plain-http origin as secure.
 */
export async function launch({ fakeUi = true, harness = false, secureOrigin } = {}) {
  const args = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ];
  if (fakeUi) args.push("--use-fake-ui-for-media-stream");
  // Camera and microphone need a secure context: https, or localhost. A server reached over
  // plain http on another address (a test network) is declared secure by name.
  if (secureOrigin) args.push(`--unsafely-treat-insecure-origin-as-secure=${secureOrigin}`);
  // The clinician stand-in is served by Playwright itself (no server address), which
  // Chromium's local-network rules treat as a public page reaching into 127.0.0.1.
  if (harness) args.push("--disable-features=LocalNetworkAccessChecks");
  // Playwright gives every launch a fresh, temporary --user-data-dir of its own.
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args });
}

/** Records every RTCPeerConnection a page makes, so a test can read their stats. */
export const TRACK_PEER_CONNECTIONS = () => {
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      window.__pcs.push(this);
    }
  };
};

/** A phone-sized page, English unless told otherwise, recording its peer connections. */
export async function phonePage(browser, { locale = "en-US", viewport = PHONE, permissions } = {}) {
  const context = await browser.newContext({ viewport, locale, deviceScaleFactor: 1, hasTouch: true, isMobile: false, permissions });
  await context.addInitScript(TRACK_PEER_CONNECTIONS);
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`[page error] ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") console.error(`[page ${m.type()}] ${m.text()}`);
  });
  return page;
}

/** Inbound RTP of every peer connection on the page: packets and decoded frames by kind. */
export async function inboundStats(page) {
  return page.evaluate(async () => {
    const out = { audioPackets: 0, videoPackets: 0, framesDecoded: 0, inboundReports: 0, peerConnections: window.__pcs.length };
    for (const pc of window.__pcs) {
      if (pc.connectionState === "closed") continue;
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type !== "inbound-rtp") return;
        out.inboundReports += 1;
        if (s.kind === "audio") out.audioPackets += s.packetsReceived ?? 0;
        if (s.kind === "video") {
          out.videoPackets += s.packetsReceived ?? 0;
          out.framesDecoded += s.framesDecoded ?? 0;
        }
      });
    }
    return out;
  });
}

/** The transport ("udp" or "tcp") of the selected candidate pair of each connected peer connection. */
export async function selectedTransports(page) {
  return page.evaluate(async () => {
    const out = [];
    for (const pc of window.__pcs) {
      if (pc.connectionState !== "connected") continue;
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
          out.push(report.get(s.localCandidateId)?.protocol);
        }
      });
    }
    return out;
  });
}

/** Polls `inboundStats` until `predicate` holds, or throws with the last stats. */
export async function waitForStats(page, predicate, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await inboundStats(page);
    if (predicate(last)) return last;
    await page.waitForTimeout(250);
  }
  throw new Error(`stats never matched: ${JSON.stringify(last)}`);
}

/**
 * Every video stream a page receives: who sends it (the SFU's stream id, the msid of its
 * m-section, is the participant id), its SSRC, frames decoded, the last frame's width, and
 * how many m-sections its connection has.
 */
export async function receivedVideo(page) {
  return page.evaluate(async () => {
    const out = [];
    for (const pc of window.__pcs) {
      if (pc.connectionState === "closed" || !pc.remoteDescription) continue;
      const mids = {};
      let mid = null;
      let sections = 0;
      for (const line of pc.remoteDescription.sdp.split(/\r?\n/)) {
        if (line.startsWith("m=")) sections += 1;
        if (line.startsWith("a=mid:")) mid = line.slice(6);
        if (line.startsWith("a=msid:") && mid !== null) mids[mid] = line.slice(7).split(" ")[0];
      }
      const stats = await pc.getStats();
      const transceivers = pc.getTransceivers();
      stats.forEach((s) => {
        if (s.type !== "inbound-rtp" || s.kind !== "video") return;
        const t = transceivers.find((x) => x.receiver.track?.id === s.trackIdentifier);
        const who = (t && mids[t.mid]) || (s.mid && mids[s.mid]) || "unknown";
        out.push({ who, ssrc: s.ssrc, frames: s.framesDecoded ?? 0, width: s.frameWidth ?? 0, sections });
      });
    }
    return out;
  });
}

/** Decoded video frames per remote participant, on one page. */
export async function framesBySender(page) {
  const out = {};
  for (const v of await receivedVideo(page)) out[v.who] = (out[v.who] ?? 0) + v.frames;
  return out;
}

/** The width of the last decoded video frame per remote participant, on one page. */
export async function frameWidthBySender(page) {
  const out = {};
  for (const v of await receivedVideo(page)) if (v.width) out[v.who] = Math.max(out[v.who] ?? 0, v.width);
  return out;
}

/** Polls `framesBySender` until every one of `count` senders (or of the ids given) has more than `min` frames decoded. */
export async function waitForSenders(page, { ids, count, min = 0, timeoutMs = 40000 }) {
  const deadline = Date.now() + timeoutMs;
  let last = {};
  while (Date.now() < deadline) {
    last = await framesBySender(page);
    const decoding = Object.entries(last).filter(([id, n]) => id !== "unknown" && n > min).map(([id]) => id);
    if (ids ? ids.every((id) => decoding.includes(id)) : decoding.length >= count) return last;
    await page.waitForTimeout(500);
  }
  throw new Error(`video not decoded from ${ids ? ids.join(", ") : `${count} senders`}: ${JSON.stringify(last)}`);
}
