// When UDP is off (a network that blocks it), media falls back to ICE-TCP on the web port:
// the network test says so, and the visit still has video both ways.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { launch, phonePage, selectedTransports, waitForStats } from "../lib/browser.mjs";
import { joinWhenReady, toWaitingRoom } from "../lib/flow.mjs";
import { openClinician } from "../lib/harness.mjs";
import { RoundsServer } from "../lib/server.mjs";

let server;
let browser;
let harnessBrowser;

before(async () => {
  server = await RoundsServer.start({ extraConfig: '[media]\nudp_listen = "127.0.0.1:0"\nudp_enabled = false\nice_tcp = true\n\n' });
  browser = await launch();
  harnessBrowser = await launch({ harness: true });
});

after(async () => {
  await browser?.close();
  await harnessBrowser?.close();
  await server?.stop();
});

test("media over ICE-TCP when UDP is off", async () => {
  const access = await server.login();
  const { visit, link } = await server.createVisit(access);
  const provider = await server.call("POST", `/api/v1/visits/${visit.id}/token`, { token: access });
  const clinician = await phonePage(harnessBrowser, { viewport: { width: 900, height: 600 } });
  await openClinician(clinician, server.url, provider.token);
  const page = await phonePage(browser);
  await toWaitingRoom(page, link);
  const waiting = await server.waitForWaiting(access, visit.id, { role: "patient" });
  await server.admit(access, visit.id, waiting.id);
  await joinWhenReady(page);
  await waitForStats(page, (s) => s.framesDecoded > 0, 30000);
  await waitForStats(clinician, (s) => s.framesDecoded > 0, 30000);
  const used = await selectedTransports(page);
  assert.ok(used.length > 0 && used.every((p) => p === "tcp"), `transports: ${used}`);
});

test("the network test names the backup path", async () => {
  const access = await server.login();
  const { link } = await server.createVisit(access);
  const page = await phonePage(browser);
  await page.goto(link);
  await page.getByRole("button", { name: "Start" }).click();
  await page.locator(".net-result details summary").click();
  await page.getByText("Backup path through the web connection").waitFor({ timeout: 30000 });
});
