// Three parties: the patient and a guest (family member) in Chromium from their own links,
// and the clinician as the UI's own call code in a third page. The same visit with the Rust
// client as the clinician is `crates/client/tests/e2e/browsers.rs`.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { launch, phonePage, waitForSenders } from "../lib/browser.mjs";
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
});
