// What the patient journey does not look at closely: the landing page's clinic and time,
// the device choices (two cameras, three microphones and three speakers, from Chromium's fake
// devices) with the level meter, the waiting room's own content, and in the visit the video
// a computer and a phone send, the network bars, the camera toggle, screen sharing, the
// chosen speaker and the written word for the ready chime.

import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

import { CHROMIUM, launch, TRACK_PEER_CONNECTIONS } from "../lib/browser.mjs";
import { checkIn, joinWhenReady } from "../lib/flow.mjs";
import { openClinician } from "../lib/harness.mjs";
import { CLINIC, RoundsServer } from "../lib/server.mjs";

let server;
let browser;
let harnessBrowser;
let access;

/** A clinic content file with one waiting-room item of each kind, and the files it names. */
function contentFile() {
  const dir = mkdtempSync(join(tmpdir(), "rounds-content-"));
  // Not a playable video: the page only has to offer it, from this server.
  writeFileSync(join(dir, "breathing.webm"), Buffer.alloc(2048, 1));
  writeFileSync(join(dir, "breathing.vtt"), "WEBVTT\n\n00:00.000 --> 00:02.000\nBreathe in slowly.\n");
  const file = join(dir, "content.toml");
  writeFileSync(
    file,
    `[default.consent]
version = "e2e-1"
title = { en = "Agreeing to a video visit", es = "Aceptar una consulta por video" }
paragraphs = { en = ["We will see each other on video."], es = ["Nos veremos por video."] }
checkbox = { en = "I agree.", es = "Acepto." }

[[default.intake]]
id = "reason"
kind = "long_text"
required = true
label = { en = "What would you like to talk about today?", es = "¿De qué le gustaría hablar hoy?" }

[[default.intake]]
id = "medicines_changed"
kind = "yes_no"
label = { en = "Have your medicines changed?", es = "¿Han cambiado sus medicinas?" }

[[default.waiting]]
kind = "text"
title = { en = "While you wait", es = "Mientras espera" }
paragraphs = { en = ["Find a quiet, well-lit place."], es = ["Busque un lugar tranquilo e iluminado."] }

[[default.waiting]]
kind = "article"
title = { en = "Getting ready for your visit", es = "Prepararse para la consulta" }
paragraphs = { en = ["Have your medicines nearby."], es = ["Tenga sus medicinas cerca."] }

[[default.waiting]]
kind = "video"
title = { en = "A breathing exercise", es = "Un ejercicio de respiración" }
video = "breathing.webm"
captions = "breathing.vtt"
`,
  );
  return file;
}

before(async () => {
  server = await RoundsServer.start({ serverExtra: `clinic_content = "${contentFile()}"\n` });
  // Two fake cameras (and with them three microphones and speakers).
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless=new",
      "--no-sandbox",
      "--disable-gpu",
      "--use-fake-device-for-media-stream=device-count=2",
      "--use-fake-ui-for-media-stream",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  harnessBrowser = await launch({ harness: true });
  access = await server.login();
});

after(async () => {
  await browser?.close();
  await harnessBrowser?.close();
  await server?.stop();
});

/** A page as a computer (8 cores, wide screen) or a phone (Android Chrome, 360 px). */
async function devicePage(kind) {
  const phone = kind === "phone";
  const context = await browser.newContext({
    viewport: phone ? { width: 360, height: 740 } : { width: 1100, height: 800 },
    locale: "en-US",
    isMobile: phone,
    hasTouch: phone,
    userAgent: phone
      ? "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
      : undefined,
  });
  await context.addInitScript(TRACK_PEER_CONNECTIONS);
  if (!phone) {
    // This machine has two cores (and may report little memory), which the pages count as a
    // low-end device.
    await context.addInitScript(() => {
      Object.defineProperty(navigator, "hardwareConcurrency", { get: () => 8 });
      Object.defineProperty(navigator, "deviceMemory", { get: () => 8 });
    });
  }
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`[page error] ${e.message}`));
  return page;
}

async function previewSize(page) {
  return page.evaluate(() => {
    const s = document.querySelector("video.preview").srcObject.getVideoTracks()[0].getSettings();
    return { width: s.width, height: s.height };
  });
}

test("the landing page names the clinic and the visit time in the clinic's zone", async () => {
  const { link, visit } = await server.createVisit(access, { minutes: 90 });
  const page = await devicePage("phone");
  await page.goto(link);
  await page.waitForSelector("[data-screen=welcome]");
  await page.getByRole("heading", { name: new RegExp(CLINIC) }).waitFor();
  const time = new Intl.DateTimeFormat("en-US", { timeZone: "America/Chicago", hour: "numeric", minute: "2-digit" }).format(new Date(visit.scheduled_at));
  const when = await page.locator(".when").innerText();
  assert.ok(when.includes(time), `"${when}" does not say ${time}`);
  assert.match(when, /C[SD]T/, "the clinic's time zone is named");
  await page.context().close();
});

test("device choices, the level meter and a phone's 640x480", async () => {
  const { link } = await server.createVisit(access);
  const page = await devicePage("phone");
  await page.goto(link);
  await page.getByRole("button", { name: "Start" }).click();
  await page.waitForSelector("video.preview");
  assert.deepEqual(await previewSize(page), { width: 640, height: 480 }, "a phone sends 640x480");

  const camera = page.getByLabel("Choose a camera");
  assert.equal(await camera.locator("option").count(), 2);
  const before = await page.evaluate(() => document.querySelector("video.preview").srcObject.getVideoTracks()[0].label);
  const second = await camera.locator("option").nth(1).getAttribute("value");
  await camera.selectOption(second);
  await page.waitForFunction(
    (old) => document.querySelector("video.preview")?.srcObject?.getVideoTracks()[0]?.label !== old,
    before,
    { timeout: 15000 },
  );
  assert.equal(await page.getByLabel("Choose a camera").inputValue(), second, "the chosen camera stays chosen");

  const mic = page.getByLabel("Choose a microphone");
  assert.ok((await mic.locator("option").count()) >= 2);
  // Chromium's fake microphone beeps: the meter moves and says so.
  await page.waitForFunction(() => Number(document.querySelector("#mic-level")?.value) > 0, null, { timeout: 15000 });
  await page.getByText("We can hear you.").waitFor({ timeout: 15000 });
  assert.ok((await page.getByLabel("Choose a speaker").locator("option").count()) >= 2);
  // The test sound says in words what it plays.
  await page.locator("[data-action=test-sound]").click();
  await page.getByText("Playing three short tones").waitFor();
  await page.context().close();
});

test("the waiting room shows the clinic's text, article and captioned video", async () => {
  const { link } = await server.createVisit(access);
  const page = await devicePage("phone");
  await page.goto(link);
  await page.getByRole("button", { name: "Start" }).click();
  await page.waitForSelector(".net-result", { timeout: 30000 });
  await checkIn(page);
  await page.waitForSelector("[data-screen=waiting]");
  const content = page.locator(".waiting-content");
  await content.getByText("Find a quiet, well-lit place.").waitFor();
  await content.getByText("Getting ready for your visit").click();
  await content.getByText("Have your medicines nearby.").waitFor();
  const video = content.locator("video");
  assert.equal(await video.getAttribute("src"), "/content/breathing.webm");
  assert.equal(await video.getAttribute("aria-label"), "A breathing exercise");
  assert.equal(await video.locator("track[kind=captions]").getAttribute("src"), "/content/breathing.vtt");
  const served = await page.evaluate(async () => (await fetch("/content/breathing.webm")).status);
  assert.equal(served, 200, "the video comes from this server");
  await page.context().close();
});

test("a computer's visit: 1280x720 VP8 at 24 fps, bars, screen sharing, the chosen speaker", async () => {
  const { visit, link } = await server.createVisit(access);
  const provider = await server.call("POST", `/api/v1/visits/${visit.id}/token`, { token: access });
  const clinician = await harnessBrowser.newPage({ viewport: { width: 900, height: 600 } });
  await openClinician(clinician, server.url, provider.token);

  const page = await devicePage("computer");
  await page.goto(link);
  await page.getByRole("button", { name: "Start" }).click();
  await page.waitForSelector("video.preview");
  assert.deepEqual(await previewSize(page), { width: 1280, height: 720 });
  const speaker = page.getByLabel("Choose a speaker");
  const chosen = await speaker.locator("option").nth(1).getAttribute("value");
  await speaker.selectOption(chosen);
  await page.waitForSelector(".net-result", { timeout: 30000 });
  await checkIn(page);
  const waiting = await server.waitForWaiting(access, visit.id, { role: "patient" });
  await server.admit(access, visit.id, waiting.id);
  await page.waitForSelector("[data-screen=ready]");
  // The chime has a written equivalent.
  await page.getByText("A chime played").waitFor();
  await joinWhenReady(page);

  // What the page sends with two people in the visit. The encoder starts small while the
  // bandwidth estimate ramps up, so wait for the full size.
  const outbound = () =>
    page.evaluate(async () => {
      for (const pc of window.__pcs) {
        const stats = await pc.getStats();
        for (const s of stats.values()) {
          if (s.type !== "outbound-rtp" || s.kind !== "video" || !s.frameWidth) continue;
          const track = pc.getSenders().find((x) => x.track?.kind === "video")?.track;
          const codec = s.codecId ? stats.get(s.codecId)?.mimeType : undefined;
          return { width: s.frameWidth, height: s.frameHeight, codec, fps: track?.getConstraints().frameRate };
        }
      }
      return null;
    });
  let video = null;
  for (const deadline = Date.now() + 30000; Date.now() < deadline; await page.waitForTimeout(500)) {
    video = await outbound();
    if (video?.width === 1280 && video.codec) break;
  }
  assert.equal(video.codec, "video/VP8");
  assert.deepEqual([video.width, video.height], [1280, 720]);
  // What the camera is asked for: a number, or { ideal } before the room's answer.
  assert.equal(typeof video.fps === "object" ? video.fps.ideal : video.fps, 24, JSON.stringify(video));

  // Network bars for oneself and for the clinician, named for screen readers.
  await page.locator('[role=img][aria-label^="Connection for"]').nth(1).waitFor({ timeout: 20000 });
  const bars = await page.locator('[role=img][aria-label^="Connection for"]').evaluateAll((els) => els.map((e) => e.getAttribute("aria-label")));
  assert.ok(bars.some((b) => b.includes("Dr. Amara Okafor")), JSON.stringify(bars));
  assert.ok(bars.length >= 2, JSON.stringify(bars));

  // The clinician's voice plays on the speaker chosen in the device check.
  await page.waitForFunction((id) => [...document.querySelectorAll(".audio-sink audio")].some((a) => a.sinkId === id), chosen, { timeout: 20000 });

  // Camera off and on again shows on the clinician's side.
  await page.locator("[data-control=camera]").click();
  await clinician.waitForFunction((id) => window.harness.call.participants.get(id)?.video_muted === true, waiting.id, { timeout: 10000 });
  await page.locator("[data-control=camera]").click();
  await clinician.waitForFunction((id) => window.harness.call.participants.get(id)?.video_muted === false, waiting.id, { timeout: 10000 });

  // Screen sharing, on a computer: the clinician receives the shared screen.
  await page.locator("[data-control=share]").click();
  await clinician.waitForFunction((id) => !!window.harness.call.remote.get(id)?.screen, waiting.id, { timeout: 30000 });
  await page.locator("[data-control=share].active").waitFor();
  await page.locator("[data-control=share]").click();
  await clinician.waitForFunction((id) => !window.harness.call.remote.get(id)?.screen, waiting.id, { timeout: 30000 });
  await page.context().close();
  await clinician.close();
});
