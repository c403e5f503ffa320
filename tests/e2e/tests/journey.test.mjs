// The whole patient journey against the real server and SFU: link → device check →
// check-in → waiting (nothing of the room reaches the patient; the connection the visit will
// use is set up, empty) → admitted → video both ways
// → muting shows on the other side → leave → survey stored.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { inboundStats, launch, phonePage, waitForStats } from "../lib/browser.mjs";
import { checkIn, joinWhenReady, throughDeviceCheck, watchCsp } from "../lib/flow.mjs";
import { openClinician } from "../lib/harness.mjs";
import { RoundsServer } from "../lib/server.mjs";

let server;
let browser;
let harnessBrowser;

before(async () => {
  server = await RoundsServer.start();
  browser = await launch();
  harnessBrowser = await launch({ harness: true });
});

after(async () => {
  await browser?.close();
  await harnessBrowser?.close();
  await server?.stop();
});

test("full patient journey", async () => {
  const access = await server.login();
  const { visit, link } = await server.createVisit(access);
  const providerToken = (await server.call("POST", `/api/v1/visits/${visit.id}/token`, { token: access })).token;
  const clinician = await phonePage(harnessBrowser, { viewport: { width: 1000, height: 700 } });
  await openClinician(clinician, server.url, providerToken);

  const page = await phonePage(browser);
  const cspClean = watchCsp(page);
  await throughDeviceCheck(page, link);
  // The speaker test: a sound, then the question, answered.
  await page.locator("[data-action=test-sound]").click();
  await page.locator("[data-action=heard-yes]").click();
  await page.getByText("Your sound works.").waitFor();
  await checkIn(page, { name: "Maria Lopez", reason: "A cough for a week" });
  await page.waitForSelector("[data-screen=waiting]");
  await page.getByText(/You are next|About \d+ minute/).waitFor();

  // The clinician's queue shows the device check; the visit holds the intake and consent.
  const queue = await server.call("GET", "/api/v1/visits", { token: access });
  const queued = queue.visits.find((v) => v.id === visit.id);
  assert.equal(queued.state, "waiting");
  assert.equal(queued.device_check.camera_ok, true);
  assert.equal(queued.device_check.microphone_ok, true);
  assert.equal(queued.device_check.speaker_ok, true);
  assert.ok(["good", "fair", "poor"].includes(queued.device_check.network), queued.device_check.network);
  const record = await server.call("GET", `/api/v1/visits/${visit.id}/check-in`, { token: access });
  assert.deepEqual(
    record.intake.map((a) => [a.question_id, a.answer]),
    [["reason", "A cough for a week"], ["medicines_changed", "no"]],
  );
  assert.equal(record.consents.length, 1);
  assert.equal(record.consents[0].role, "patient");

  // While waiting: the clinician publishes, but nothing of the room reaches the patient.
  await page.waitForTimeout(2500);
  const remoteElements = await page.evaluate(() => ({
    audio: document.querySelectorAll("audio").length,
    tiles: document.querySelectorAll(".tile").length,
    videos: [...document.querySelectorAll("video")].filter((v) => !v.classList.contains("preview")).length,
  }));
  assert.deepEqual(remoteElements, { audio: 0, tiles: 0, videos: 0 }, "a remote media element exists in the waiting room");
  const waitingStats = await inboundStats(page);
  assert.equal(waitingStats.inboundReports, 0, `inbound RTP while waiting: ${JSON.stringify(waitingStats)}`);
  assert.equal(waitingStats.audioPackets + waitingStats.videoPackets, 0);
  assert.equal(await page.locator("text=Dr. Amara Okafor").count(), 0, "the clinician's name reached the lobby");
  // The connection that will carry the visit is already up, with nothing on it.
  const connections = () =>
    page.evaluate(() =>
      // (The device check's network test made one of its own, closed since.)
      window.__pcs.filter((pc) => pc.connectionState !== "closed").map((pc) => ({
        state: pc.connectionState,
        transceivers: pc.getTransceivers().length,
        tracks: pc.getReceivers().filter((r) => r.track).length,
      })),
    );
  await page.waitForFunction(() => window.__pcs.some((pc) => pc.connectionState === "connected"), null, { timeout: 15000 });
  assert.deepEqual(await connections(), [{ state: "connected", transceivers: 0, tracks: 0 }], "the waiting room's connection carries a track");
  await page.evaluate(() => {
    window.__lobbyPc = window.__pcs.find((pc) => pc.connectionState === "connected");
  });

  // The clinician admits through the API.
  const waiting = await server.waitForWaiting(access, visit.id, { role: "patient" });
  await server.admit(access, visit.id, waiting.id);
  await joinWhenReady(page);

  // Video decoded both ways.
  const patientIn = await waitForStats(page, (s) => s.framesDecoded > 0, 30000);
  const clinicianIn = await waitForStats(clinician, (s) => s.framesDecoded > 0, 30000);
  assert.ok(patientIn.framesDecoded > 0 && clinicianIn.framesDecoded > 0);
  // The clinician arrived over the connection prepared in the waiting room: the page made
  // one more (its own camera's), not a second one to receive on.
  const inVisit = await connections();
  assert.equal(inVisit.length, 2, JSON.stringify(inVisit));
  const prepared = await page.evaluate(() => ({
    state: window.__lobbyPc.connectionState,
    tracks: window.__lobbyPc.getReceivers().filter((r) => r.track).length,
  }));
  assert.equal(prepared.state, "connected", "the waiting room's connection was replaced");
  assert.ok(prepared.tracks >= 2, `the prepared connection carries the clinician: ${JSON.stringify({ prepared, inVisit })}`);
  await page.locator(".stage .tile video").first().waitFor();
  assert.equal(await page.locator(".stage .tile .name").textContent(), "Dr. Amara Okafor");

  // Muting shows on the other side: in the clinician's room state and on their screen.
  await page.locator("[data-control=mic]").click();
  await page.getByRole("button", { name: "Unmute" }).waitFor();
  await clinician.waitForFunction(
    (id) => window.harness.call.participants.get(id)?.audio_muted === true,
    waiting.id,
    { timeout: 10000 },
  );
  await clinician.locator(`.tile[data-participant="${waiting.id}"] .muted-icon`).waitFor();
  // The fake microphone keeps beeping: "you are speaking while muted".
  await page.locator(".muted-hint:not([hidden])").waitFor({ timeout: 10000 });
  await page.locator("[data-control=mic]").click();
  await clinician.waitForFunction((id) => window.harness.call.participants.get(id)?.audio_muted === false, waiting.id);

  // Chat in the visit reaches the clinician.
  await page.locator("[data-control=chat]").click();
  await page.fill(".chat-drawer textarea", "Can you hear me?");
  await page.keyboard.press("Enter");
  await clinician.waitForFunction(() => window.harness.call.chat.some((m) => m.text === "Can you hear me?"));
  await page.getByRole("button", { name: "Close chat" }).click();

  // Leave, then answer the survey.
  await page.locator("[data-control=leave]").click();
  await page.locator("[data-action=confirm-leave]").click();
  await page.waitForSelector("[data-screen=ended]");
  await page.getByText("You left the visit").waitFor();
  await page.locator("label[for=rate-5]").click();
  await page.fill("#survey-comment", "Very clear, thank you");
  await page.getByRole("button", { name: "Send" }).click();
  await page.getByText("Thank you for your answers.").waitFor();
  const stored = await server.call("GET", `/api/v1/visits/${visit.id}/check-in`, { token: access });
  assert.equal(stored.surveys.length, 1);
  assert.equal(stored.surveys[0].rating, 5);
  assert.equal(stored.surveys[0].comment, "Very clear, thank you");
  const row = server.sql(`SELECT rating, comment FROM surveys WHERE visit_id = '${visit.id}'`);
  assert.deepEqual(row, [{ rating: 5, comment: "Very clear, thank you" }]);
  cspClean();
});
