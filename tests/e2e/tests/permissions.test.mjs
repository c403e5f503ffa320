// A patient who blocks the camera gets instructions for their browser and a way to join
// with sound only, and that visit works: the clinician hears them.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { launch, phonePage, waitForStats } from "../lib/browser.mjs";
import { checkIn, joinWhenReady } from "../lib/flow.mjs";
import { openClinician } from "../lib/harness.mjs";
import { RoundsServer } from "../lib/server.mjs";

let server;
let browser;
let harnessBrowser;

before(async () => {
  server = await RoundsServer.start();
  // No automatic "Allow": Chromium refuses whatever the context was not granted.
  browser = await launch({ fakeUi: false });
  harnessBrowser = await launch({ harness: true });
});

after(async () => {
  await browser?.close();
  await harnessBrowser?.close();
  await server?.stop();
});

test("camera blocked: instructions, then the visit with sound only", async () => {
  const access = await server.login();
  const { visit, link } = await server.createVisit(access);
  const providerToken = (await server.call("POST", `/api/v1/visits/${visit.id}/token`, { token: access })).token;
  const clinician = await phonePage(harnessBrowser, { viewport: { width: 900, height: 600 } });
  await openClinician(clinician, server.url, providerToken);

  const page = await phonePage(browser, { permissions: ["microphone"] });
  await page.goto(link);
  await page.getByRole("button", { name: "Start" }).click();
  await page.getByText("Your camera is blocked for this page.").waitFor({ timeout: 20000 });
  // Instructions for this browser, step by step.
  assert.ok((await page.locator(".perm-help ol li").count()) >= 3);
  await page.getByText("We can hear you.").or(page.getByText("Say something.")).first().waitFor();

  await page.locator("[data-action=audio-only]").click();
  await page.getByText("You chose to join with sound only.").waitFor();
  await page.waitForSelector(".net-result", { timeout: 30000 });
  await checkIn(page);
  const queue = await server.call("GET", "/api/v1/visits", { token: access });
  const check = queue.visits.find((v) => v.id === visit.id).device_check;
  assert.equal(check.camera_ok, false);
  assert.equal(check.microphone_ok, true);

  const waiting = await server.waitForWaiting(access, visit.id, { role: "patient" });
  await server.admit(access, visit.id, waiting.id);
  await page.getByText("You will join with sound only.").waitFor({ timeout: 20000 });
  await joinWhenReady(page);

  const heard = await waitForStats(clinician, (s) => s.audioPackets > 20, 30000);
  assert.equal(heard.videoPackets, 0, "no video is sent after choosing sound only");
  const seen = await waitForStats(page, (s) => s.framesDecoded > 0, 30000);
  assert.ok(seen.framesDecoded > 0, "the patient still sees the clinician");
  assert.ok(await page.locator("[data-control=camera]").isDisabled());
});
