// A patient (or guest) in Chromium, for tests written in other languages (the reliability
// suite runs it inside a network namespace behind a firewall; crates/client's end-to-end tests
// run two of them beside a Rust clinician): opens the link, goes through the device check
// and check-in, waits to be admitted, joins, and once video is decoded prints one JSON line:
// {"framesDecoded": n, "transports": ["udp" | "tcp", ...], "bySender": {participant id: frames}}.
// It stays in the call for the given seconds, then leaves.
//
//   node tests/e2e/tools/patient-call.mjs LINK [SECONDS_IN_CALL] [--guest] [--name NAME] [--senders N]
//
// --guest: the link is a guest's (no intake questions). --senders N: wait until video from N
// different participants is decoded, not just from someone.

import { parseArgs } from "node:util";

import { framesBySender, launch, phonePage, selectedTransports, waitForSenders, waitForStats } from "../lib/browser.mjs";
import { joinWhenReady, toWaitingRoom } from "../lib/flow.mjs";

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: { guest: { type: "boolean", default: false }, name: { type: "string" }, senders: { type: "string" } },
});
const [link, hold = "10"] = positionals;
if (!link) {
  console.error("usage: patient-call.mjs LINK [SECONDS_IN_CALL] [--guest] [--name NAME] [--senders N]");
  process.exit(2);
}
const senders = opts.senders ? Number(opts.senders) : 0;

const started = Date.now();
/** Progress on stderr, so a slow run shows where the time went. */
const step = (what) => console.error(`patient-call: ${what} after ${Date.now() - started} ms`);

const browser = await launch({ secureOrigin: new URL(link).origin });
try {
  const page = await phonePage(browser);
  await toWaitingRoom(page, link, { guest: opts.guest, ...(opts.name ? { name: opts.name } : {}) });
  step("in the waiting room");
  await joinWhenReady(page);
  step("joined the visit");
  let stats;
  try {
    stats = await waitForStats(page, (s) => s.framesDecoded > 10, 60000);
    if (senders > 0) await waitForSenders(page, { count: senders, min: 10, timeoutMs: 60000 });
  } catch (e) {
    // What ICE tried, for whoever reads the failure.
    const ice = await page.evaluate(async () => {
      const out = [];
      for (const pc of window.__pcs) {
        const report = await pc.getStats();
        const entry = { state: pc.connectionState, ice: pc.iceConnectionState, local: [], remote: [], pairs: [] };
        report.forEach((s) => {
          if (s.type === "local-candidate") entry.local.push(`${s.protocol} ${s.address}:${s.port} ${s.candidateType} ${s.tcpType ?? ""}`);
          if (s.type === "remote-candidate") entry.remote.push(`${s.protocol} ${s.address}:${s.port} ${s.candidateType} ${s.tcpType ?? ""}`);
          if (s.type === "candidate-pair") entry.pairs.push(`${s.state} req=${s.requestsSent} resp=${s.responsesReceived}`);
        });
        entry.remoteSdpCandidates = (pc.remoteDescription?.sdp ?? "").split("\r\n").filter((l) => l.startsWith("a=candidate"));
        out.push(entry);
      }
      return out;
    });
    console.error(JSON.stringify(ice, null, 1));
    throw e;
  }
  const transports = await selectedTransports(page);
  step("decoding the clinic's video");
  const bySender = await framesBySender(page);
  console.log(JSON.stringify({ framesDecoded: stats.framesDecoded, transports, bySender }));
  await new Promise((r) => setTimeout(r, Number(hold) * 1000));
} finally {
  await browser.close();
}
