// A patient in Chromium, for tests written in other languages (the reliability suite runs it
// inside a network namespace behind a firewall): opens the link, goes through the device check
// and check-in, waits to be admitted, joins, and once video from the clinic is decoded prints
// one JSON line: {"framesDecoded": n, "transports": ["udp" | "tcp", ...]}. It stays in the
// call for the given seconds, then leaves.
//
//   node tests/e2e/tools/patient-call.mjs LINK [SECONDS_IN_CALL]

import { launch, phonePage, selectedTransports, waitForStats } from "../lib/browser.mjs";
import { joinWhenReady, toWaitingRoom } from "../lib/flow.mjs";

const [link, hold = "10"] = process.argv.slice(2);
if (!link) {
  console.error("usage: patient-call.mjs LINK [SECONDS_IN_CALL]");
  process.exit(2);
}

const started = Date.now();
/** Progress on stderr, so a slow run shows where the time went. */
const step = (what) => console.error(`patient-call: ${what} after ${Date.now() - started} ms`);

const browser = await launch({ secureOrigin: new URL(link).origin });
try {
  const page = await phonePage(browser);
  await toWaitingRoom(page, link);
  step("in the waiting room");
  await joinWhenReady(page);
  step("joined the visit");
  let stats;
  try {
    stats = await waitForStats(page, (s) => s.framesDecoded > 10, 60000);
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
  console.log(JSON.stringify({ framesDecoded: stats.framesDecoded, transports }));
  await new Promise((r) => setTimeout(r, Number(hold) * 1000));
} finally {
  await browser.close();
}
