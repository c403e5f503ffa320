// The patient's side of a visit in Debian's Chromium, for `desktop-call-cpu` (the Chromium
// half of its comparison): a desktop-sized window (1280x800, as the clinician app's) opens
// the patient link, goes through the device check and check-in, waits to be admitted, joins,
// and prints {"ready": true} once it decodes video. Then, for each line "stats" read on
// standard input, it prints one line of totals:
// {"framesDecoded": n, "framesEncoded": n, "width": w, "height": h} (what it sends).
// It leaves when standard input closes. ROUNDS_CHROMIUM_WINDOW=1: in a window on $DISPLAY.
//
//   node tests/desktop/tools/chromium-patient.mjs LINK
//
// The fake camera runs at 24 fps, the rate the page asks for in a two-person visit, so the
// call is the same one the desktop app is measured in. With ROUNDS_FAKE_CAMERA_Y4M set, the
// camera plays that Y4M file instead of Chromium's own 640x480 picture (desktop-call-cpu
// gives it the app's 1280x720 test pattern, so both sides encode the same picture size, and
// the page is then told of 4 cores so it sends that size rather than its small-machine one).
// The flow itself is the patient pages' own end-to-end steps (tests/e2e/lib).

import { createInterface } from "node:readline";

import { TRACK_PEER_CONNECTIONS, inboundStats, waitForStats } from "../../e2e/lib/browser.mjs";
import { joinWhenReady, toWaitingRoom } from "../../e2e/lib/flow.mjs";
import { createRequire } from "node:module";

// playwright-core is installed for the end-to-end tests; use that copy.
const require = createRequire(new URL("../../e2e/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const [link] = process.argv.slice(2);
if (!link) {
  console.error("usage: chromium-patient.mjs LINK");
  process.exit(2);
}

// With ROUNDS_CHROMIUM_WINDOW=1 the browser opens a real window on $DISPLAY and paints the
// call into it, as on a patient's screen; otherwise it runs headless and paints nothing.
const windowed = process.env.ROUNDS_CHROMIUM_WINDOW === "1";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  headless: !windowed,
  args: [
    ...(windowed ? ["--window-size=1280,800", "--window-position=0,0"] : ["--headless=new"]),
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream=fps=24",
    "--use-fake-ui-for-media-stream",
    ...(process.env.ROUNDS_FAKE_CAMERA_Y4M
      ? [`--use-file-for-fake-video-capture=${process.env.ROUNDS_FAKE_CAMERA_Y4M}`]
      : []),
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    `--unsafely-treat-insecure-origin-as-secure=${new URL(link).origin}`,
  ],
});

async function outbound(page) {
  return page.evaluate(async () => {
    const out = { framesEncoded: 0, width: 0, height: 0 };
    for (const pc of window.__pcs) {
      if (pc.connectionState === "closed") continue;
      const stats = await pc.getStats();
      stats.forEach((s) => {
        if (s.type !== "outbound-rtp" || s.kind !== "video") return;
        out.framesEncoded += s.framesEncoded ?? 0;
        if ((s.frameWidth ?? 0) > out.width) {
          out.width = s.frameWidth;
          out.height = s.frameHeight ?? 0;
        }
      });
    }
    return out;
  });
}

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: "en-US", deviceScaleFactor: 1 });
  await context.addInitScript(TRACK_PEER_CONNECTIONS);
  if (process.env.ROUNDS_FAKE_CAMERA_Y4M) {
    // The patient pages send 640x480 from a machine of 2 cores or fewer, as from a phone.
    // The comparison is of the same 720p call, so the page is told of 4 cores and takes its
    // desktop path, as it would on a common laptop.
    await context.addInitScript(() => {
      Object.defineProperty(Navigator.prototype, "hardwareConcurrency", { get: () => 4 });
    });
  }
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`[page error] ${e.message}`));
  await toWaitingRoom(page, link, { name: "Bench Patient" });
  console.error("chromium-patient: in the waiting room");
  await joinWhenReady(page);
  await waitForStats(page, (s) => s.framesDecoded > 24, 60000);
  console.log(JSON.stringify({ ready: true }));
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line.trim() !== "stats") continue;
    const [inbound, sent] = await Promise.all([inboundStats(page), outbound(page)]);
    console.log(JSON.stringify({ framesDecoded: inbound.framesDecoded, ...sent }));
  }
} finally {
  await browser.close();
}
