// Three parties: the patient and a guest (family member) in Chromium from their own links,
// and the clinician as the UI's own call code in a third page. The same visit with the Rust
// client as the clinician is `crates/client/tests/e2e/browsers.rs`.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { frameWidthBySender, launch, phonePage, receivedVideo, waitForSenders } from "../lib/browser.mjs";
import { joinWhenReady, toWaitingRoom } from "../lib/flow.mjs";
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

test("patient, guest and clinician each see the two others", async () => {
  const access = await server.login();
  const { visit, link } = await server.createVisit(access);
  const guestLink = await server.guestLink(access, visit.id, "guest");
  const provider = await server.call("POST", `/api/v1/visits/${visit.id}/token`, { token: access });
  const clinician = await phonePage(harnessBrowser, { viewport: { width: 1000, height: 700 } });
  await openClinician(clinician, server.url, provider.token);

  const patient = await phonePage(browser);
  await toWaitingRoom(patient, link, { name: "Maria Lopez" });
  const guest = await phonePage(browser);
  await guest.goto(guestLink);
  await guest.getByText(/You are invited to a video visit/).waitFor();
  await toWaitingRoom(guest, guestLink, { name: "Rosa Lopez", guest: true });
  // Guests answer no intake questions; their consent is stored too.
  const record = await server.call("GET", `/api/v1/visits/${visit.id}/check-in`, { token: access });
  assert.deepEqual(record.consents.map((c) => c.role).sort(), ["guest", "patient"]);

  const p = await server.waitForWaiting(access, visit.id, { role: "patient" });
  const g = await server.waitForWaiting(access, visit.id, { role: "guest" });
  await server.admit(access, visit.id, p.id);
  await joinWhenReady(patient);
  await server.admit(access, visit.id, g.id);
  await joinWhenReady(guest);

  const seenByPatient = await waitForSenders(patient, { ids: [provider.participant_id, g.id] });
  const seenByGuest = await waitForSenders(guest, { ids: [provider.participant_id, p.id] });
  const seenByClinician = await waitForSenders(clinician, { ids: [p.id, g.id] });
  console.log(JSON.stringify({ seenByPatient, seenByGuest, seenByClinician }));

  // With three people the room asks for simulcast, and a computer sends its layers.
  const video = await clinician.evaluate(() => window.harness.call.video);
  assert.equal(video.simulcast, true);
  const rids = await clinician.evaluate(async () => {
    const out = new Set();
    for (const pc of window.__pcs) {
      (await pc.getStats()).forEach((s) => {
        if (s.type === "outbound-rtp" && s.kind === "video" && s.rid) out.add(s.rid);
      });
    }
    return [...out].sort();
  });
  assert.ok(rids.length >= 2, `simulcast layers sent: ${JSON.stringify(rids)}`);
  // The grid: one large tile, the others as thumbnails.
  await patient.locator(".stage .tile").waitFor();
  assert.equal(await patient.locator(".strip .tile").count(), 2);

  // The page tells the server how large it draws each of them, and the SFU forwards the
  // simulcast layer that fills each tile: the large one decodes wider than a thumbnail.
  const main = await patient.locator(".stage .tile").getAttribute("data-participant");
  const thumb = [provider.participant_id, g.id].find((id) => id !== main);
  const deadline = Date.now() + 45000;
  let widths = {};
  while (Date.now() < deadline) {
    widths = await frameWidthBySender(patient);
    if ((widths[main] ?? 0) > (widths[thumb] ?? 0) && (widths[thumb] ?? 0) > 0) break;
    await patient.waitForTimeout(500);
  }
  console.log(JSON.stringify({ main, thumb, widths }));
  assert.ok((widths[main] ?? 0) > (widths[thumb] ?? 0) && (widths[thumb] ?? 0) > 0, `layers by tile size: ${JSON.stringify(widths)}`);
});

test("a guest who arrives after another left is seen on the stream the first one used", async () => {
  const access = await server.login();
  const { visit } = await server.createVisit(access);
  const provider = await server.call("POST", `/api/v1/visits/${visit.id}/token`, { token: access });
  const clinician = await phonePage(harnessBrowser, { viewport: { width: 1000, height: 700 } });
  await openClinician(clinician, server.url, provider.token);

  const arrive = async (name) => {
    const link = await server.guestLink(access, visit.id, "guest");
    const page = await phonePage(browser);
    await toWaitingRoom(page, link, { name, guest: true });
    const waiting = await server.waitForWaiting(access, visit.id, { role: "guest" });
    await server.admit(access, visit.id, waiting.id);
    await joinWhenReady(page);
    return { page, id: waiting.id };
  };

  const first = await arrive("Rosa Lopez");
  await waitForSenders(clinician, { ids: [first.id], min: 24 });
  const before = (await receivedVideo(clinician)).find((v) => v.who === first.id);
  assert.ok(before, "the clinician receives the first guest's video");

  await first.page.locator("[data-control=leave]").click();
  await first.page.locator("[data-action=confirm-leave]").click();
  await clinician.waitForFunction((id) => !window.harness.call.participants.has(id), first.id, { timeout: 15000 });
  await first.page.close();

  // The second guest's video is decoded: 24 frames more than when it first showed up.
  const second = await arrive("Ana Lopez");
  const deadline = Date.now() + 40000;
  let start = null;
  let now = null;
  while (Date.now() < deadline) {
    now = (await receivedVideo(clinician)).find((v) => v.who === second.id) ?? null;
    if (now && start === null) start = now;
    if (now && start && now.frames > start.frames + 24) break;
    await clinician.waitForTimeout(500);
  }
  console.log(JSON.stringify({ before, start, now }));
  assert.ok(now && start && now.frames > start.frames + 24, `the second guest's video is decoded: ${JSON.stringify({ start, now })}`);
  assert.equal(now.ssrc, before.ssrc, "the second guest's video arrives on the SSRC the first guest's used");
  assert.equal(now.sections, before.sections, "the clinician's connection gained no m-section");
  // The clinician's call shows the second guest with video, and only them.
  await clinician.waitForFunction((id) => Boolean(window.harness.call.remote.get(id)?.video), second.id, { timeout: 10000 });
  assert.equal(await clinician.evaluate((id) => window.harness.call.remote.has(id), first.id), false);
  await second.page.close();
});
