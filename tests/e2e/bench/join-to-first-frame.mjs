// Benchmark: from the patient clicking "Join the visit" (after admission) to the first
// remote video frame painted, over N joins on loopback. Not a test: it prints p50/p90 and
// writes artifacts/bench-join-<delay>.json.
//
//   node bench/join-to-first-frame.mjs [joins=20] [delay_ms=1000]
//
// `delay_ms` is how long after "Your clinician is ready" appears the click comes: a person
// needs at least that long to read it and reach the button, and the page uses the time to
// connect and start the clinician's video out of sight. 0 clicks the instant it appears.

import { writeFileSync } from "node:fs";
import { join } from "node:path";

import { launch, phonePage } from "../lib/browser.mjs";
import { toWaitingRoom } from "../lib/flow.mjs";
import { openClinician } from "../lib/harness.mjs";
import { artifactsDir, RoundsServer } from "../lib/server.mjs";

const joins = Number(process.argv[2] ?? 20);
const delayMs = Number(process.argv[3] ?? 1000);
const server = await RoundsServer.start({ extraConfig: "" });
const browser = await launch();
const harnessBrowser = await launch({ harness: true });
const samples = [];
try {
  const access = await server.login();
  for (let i = 0; i < joins; i++) {
    const { visit, link } = await server.createVisit(access);
    const provider = await server.call("POST", `/api/v1/visits/${visit.id}/token`, { token: access });
    const clinician = await phonePage(harnessBrowser, { viewport: { width: 800, height: 600 } });
    await openClinician(clinician, server.url, provider.token);
    const page = await phonePage(browser);
    await toWaitingRoom(page, link);
    const waiting = await server.waitForWaiting(access, visit.id, { role: "patient" });
    await server.admit(access, visit.id, waiting.id);
    await page.waitForSelector("[data-action=join]");
    if (delayMs > 0) await page.waitForTimeout(delayMs);
    const ms = await page.evaluate(
      () =>
        new Promise((resolve, reject) => {
          const t0 = performance.now();
          document.querySelector("[data-action=join]").click();
          const deadline = t0 + 20000;
          const check = () => {
            const v = document.querySelector(".stage .tile:not(.self) video");
            if (v && v.srcObject && v.videoWidth > 0 && v.readyState >= 2) {
              v.requestVideoFrameCallback(() => resolve(performance.now() - t0));
              return;
            }
            if (performance.now() > deadline) reject(new Error("no remote frame within 20 s"));
            else setTimeout(check, 2);
          };
          check();
        }),
    );
    samples.push(ms);
    console.log(`join ${i + 1}/${joins}: ${ms.toFixed(1)} ms`);
    await page.context().close();
    await clinician.context().close();
    await server.end(access, visit.id);
  }
} finally {
  await browser.close();
  await harnessBrowser.close();
  await server.stop();
}
const sorted = [...samples].sort((a, b) => a - b);
const pct = (p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const result = { joins: samples.length, delay_ms: delayMs, p50_ms: pct(50), p90_ms: pct(90), max_ms: sorted.at(-1), samples_ms: samples };
console.log(JSON.stringify({ ...result, samples_ms: undefined }));
writeFileSync(join(artifactsDir(), `bench-join-${delayMs}.json`), JSON.stringify(result, null, 2));
