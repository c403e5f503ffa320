// A reload mid-visit, or a dropped connection, goes back into the visit from the same link:
// no check again, no waiting room, the same participant.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { inboundStats, launch, phonePage, waitForStats } from "../lib/browser.mjs";
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

async function inVisit() {
  const access = await server.login();
  const { visit, link } = await server.createVisit(access);
  const providerToken = (await server.call("POST", `/api/v1/visits/${visit.id}/token`, { token: access })).token;
  const clinician = await phonePage(harnessBrowser, { viewport: { width: 900, height: 600 } });
  await openClinician(clinician, server.url, providerToken);
  const page = await phonePage(browser);
  await toWaitingRoom(page, link);
  const waiting = await server.waitForWaiting(access, visit.id, { role: "patient" });
  await server.admit(access, visit.id, waiting.id);
  await joinWhenReady(page);
  await waitForStats(clinician, (s) => s.framesDecoded > 0, 30000);
  return { access, visit, page, clinician, patientId: waiting.id };
}

test("a reload mid-visit rejoins the visit as the same participant", async () => {
  const { page, clinician, patientId } = await inVisit();
  await page.reload();
  await page.waitForSelector("[data-screen=visit]", { timeout: 20000 });
  // The clinician sees the same participant, connected, never a second one.
  await clinician.waitForFunction((id) => window.harness.call.participants.get(id)?.connected === true, patientId, { timeout: 15000 });
  const people = await clinician.evaluate(() => [...window.harness.call.participants.values()].map((p) => p.role));
  assert.deepEqual(people.sort(), ["patient", "provider"]);
  // Media flows again from the new page, both ways.
  const before = (await inboundStats(clinician)).framesDecoded;
  await clinician.waitForFunction(
    async (n) => {
      let frames = 0;
      for (const pc of window.__pcs) {
        if (pc.connectionState === "closed") continue;
        (await pc.getStats()).forEach((s) => {
          if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded ?? 0;
        });
      }
      return frames > n + 24;
    },
    before,
    { timeout: 20000, polling: 500 },
  );
  const patientIn = await waitForStats(page, (s) => s.framesDecoded > 0, 60000);
  assert.ok(patientIn.framesDecoded > 0, "after a reload the patient receives the clinician's video again");
});

test("a dropped connection reconnects by itself", async () => {
  const { page, clinician, patientId } = await inVisit();
  await page.context().setOffline(true);
  await page.getByText(/Reconnecting/).first().waitFor({ timeout: 20000 });
  await page.context().setOffline(false);
  await page.waitForFunction(() => !document.querySelector(".banner.reconnect"), null, { timeout: 20000 });
  await clinician.waitForFunction((id) => window.harness.call.participants.get(id)?.connected === true, patientId, { timeout: 15000 });
  assert.equal(await page.locator("section[data-screen=visit]").count(), 1);
  const stats = await waitForStats(page, (s) => s.framesDecoded > 0, 15000);
  assert.ok(stats.framesDecoded > 0);
});
