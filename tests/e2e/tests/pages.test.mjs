// Every page at a phone's size (360x740): axe-core finds no WCAG 2.1 A/AA violations, and a
// screenshot of each is saved under tests/e2e/artifacts/ for people to look at. Also walks
// the keyboard-only path and the language switch.

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";

import AxeBuilder from "@axe-core/playwright";

import { launch, phonePage } from "../lib/browser.mjs";
import { checkIn, joinWhenReady, throughDeviceCheck } from "../lib/flow.mjs";
import { openClinician } from "../lib/harness.mjs";
import { artifactsDir, RoundsServer } from "../lib/server.mjs";

let server;
let browser;
let blockedBrowser;
let harnessBrowser;
let access;
const checked = [];

before(async () => {
  server = await RoundsServer.start({ extraConfig: "[visits]\nlink_grace_minutes = 0\n\n" });
  browser = await launch();
  blockedBrowser = await launch({ fakeUi: false });
  harnessBrowser = await launch({ harness: true });
  access = await server.login();
});

after(async () => {
  await browser?.close();
  await blockedBrowser?.close();
  await harnessBrowser?.close();
  await server?.stop();
  console.log(`checked with axe-core and saved: ${checked.join(", ")}`);
});

/** axe-core on the page as it is now, then a screenshot named `name`. */
async function audit(page, name) {
  // Let transitions and live regions settle.
  await page.waitForTimeout(300);
  const results = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
  const violations = results.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(" | ")}`);
  await page.screenshot({ path: join(artifactsDir(), `${name}.png`) });
  checked.push(name);
  assert.deepEqual(violations, [], `axe-core found problems on "${name}"`);
}

test("welcome, device check, check-in, waiting, ready, visit, survey (English)", async () => {
  const { visit, link } = await server.createVisit(access);
  const providerToken = (await server.call("POST", `/api/v1/visits/${visit.id}/token`, { token: access })).token;
  const clinician = await phonePage(harnessBrowser, { viewport: { width: 900, height: 600 } });
  await openClinician(clinician, server.url, providerToken);
  const page = await phonePage(browser);

  await page.goto(link);
  await page.waitForSelector("[data-screen=welcome]");
  await audit(page, "01-welcome");

  await throughDeviceCheck(page, link);
  await audit(page, "02-device-check");

  await page.getByRole("button", { name: "Continue" }).click();
  await page.waitForSelector("[data-screen=checkin]");
  await audit(page, "03-check-in");
  await page.locator("form button[type=submit]").click();
  await page.waitForSelector(".error-summary:not([hidden])");
  assert.equal(await page.evaluate(() => document.activeElement?.classList.contains("error-summary")), true, "errors take the focus");
  await audit(page, "04-check-in-errors");

  await page.fill("#name", "Maria Lopez");
  await page.fill("#q-reason", "A cough for a week");
  await page.check("#consent");
  await page.locator("form button[type=submit]").click();
  await page.waitForSelector("[data-screen=waiting]");
  await server.call("POST", `/api/v1/visits/${visit.id}/running-late`, { token: access, body: { minutes: 10 } });
  await page.getByText("Your clinician is running about 10 minutes late.").waitFor();
  const waiting = await server.waitForWaiting(access, visit.id, { role: "patient" });
  // A message from the clinic to the waiting patient, and one back.
  await server.call("POST", `/api/v1/rooms/${visit.id}/chat`, { token: access, body: { text: "We will be with you shortly.", to: waiting.id } });
  await page.getByText("We will be with you shortly.").waitFor();
  await page.fill(".chat textarea", "Thank you, I am here.");
  await page.getByRole("button", { name: "Send" }).click();
  await page.getByText("Thank you, I am here.").waitFor();
  await audit(page, "05-waiting");
  await server.admit(access, visit.id, waiting.id);
  await page.waitForSelector("[data-screen=ready]");
  await audit(page, "06-ready");

  await joinWhenReady(page);
  await page.locator(".stage .tile video").waitFor({ timeout: 20000 });
  await audit(page, "07-visit");
  await page.locator("[data-control=chat]").click();
  await audit(page, "08-visit-chat");
  await page.getByRole("button", { name: "Close chat" }).click();
  await clinician.evaluate((id) => window.harness.call.host(id, "mute_audio"), waiting.id);
  await page.getByText("The clinician turned off your microphone.").waitFor();
  await audit(page, "09-visit-muted-by-host");
  await page.locator("[data-control=leave]").click();
  await page.locator("dialog[open]").waitFor();
  await audit(page, "10-leave-dialog");
  await page.locator("[data-action=confirm-leave]").click();
  await page.waitForSelector("[data-screen=ended]");
  await audit(page, "11-left-survey");
  await page.locator("[data-action=rejoin]").click();
  await page.waitForSelector("[data-screen=waiting]");

  await server.end(access, visit.id);
  await page.waitForSelector("[data-screen=ended]");
  await page.getByText("Your visit has ended").waitFor();
  await audit(page, "12-ended-survey");
  await page.locator("label[for=rate-4]").click();
  await page.getByRole("button", { name: "Send" }).click();
  await page.getByText("Thank you for your answers.").waitFor();
  await audit(page, "13-survey-thanks");
});

test("Spanish from the browser, switchable to English and back", async () => {
  const { link } = await server.createVisit(access);
  const page = await phonePage(browser, { locale: "es-MX" });
  await page.goto(link);
  await page.waitForSelector("[data-screen=welcome]");
  assert.equal(await page.evaluate(() => document.documentElement.lang), "es");
  await page.getByRole("button", { name: "Empezar" }).waitFor();
  await audit(page, "14-welcome-es");
  await throughDeviceCheck(page, link);
  await page.getByRole("button", { name: "Continuar" }).click();
  await page.waitForSelector("[data-screen=checkin]");
  await page.fill("#name", "María López");
  await page.getByText("¿De qué le gustaría hablar hoy?").waitFor();
  await audit(page, "15-check-in-es");
  await page.locator(".lang-switch").click();
  await page.getByText("What would you like to talk about today?").waitFor();
  assert.equal(await page.inputValue("#name"), "María López", "answers survive a language switch");
  assert.equal(await page.evaluate(() => document.documentElement.lang), "en");
  await page.locator(".lang-switch").click();
  await page.getByText("Registrarse").first().waitFor();
  await page.fill("#q-reason", "Tos desde hace una semana");
  await page.check("#consent");
  await page.locator("form button[type=submit]").click();
  await page.waitForSelector("[data-screen=waiting]");
  await audit(page, "16-waiting-es");
});

test("camera and microphone blocked", async () => {
  const { link } = await server.createVisit(access);
  const page = await phonePage(blockedBrowser);
  await page.goto(link);
  await page.getByRole("button", { name: "Start" }).click();
  await page.getByText("Your camera and microphone are blocked for this page.").waitFor({ timeout: 20000 });
  await page.waitForSelector(".net-result", { timeout: 30000 });
  await audit(page, "17-permission-blocked");
});

test("pages for links that cannot be used, and for unsupported browsers", async () => {
  const expired = await server.createVisit(access, { minutes: -45, duration: 30 });
  const page = await phonePage(browser);
  await page.goto(expired.link);
  await page.waitForSelector("[data-screen=problem]");
  await audit(page, "18-link-expired");

  const old = await phonePage(browser);
  await old.addInitScript(() => {
    delete window.RTCPeerConnection;
  });
  await old.goto(expired.link);
  await old.waitForSelector("[data-screen=unsupported]");
  await audit(old, "19-unsupported-browser");
});

test("removed by the clinician", async () => {
  const { visit, link } = await server.createVisit(access);
  const page = await phonePage(browser);
  await throughDeviceCheck(page, link);
  await checkIn(page);
  const waiting = await server.waitForWaiting(access, visit.id, { role: "patient" });
  await server.call("POST", `/api/v1/visits/${visit.id}/remove/${waiting.id}`, { token: access });
  await page.waitForSelector("[data-screen=closed]");
  await audit(page, "20-removed");
});

test("not let in by the clinician", async () => {
  const { visit, link } = await server.createVisit(access);
  const page = await phonePage(browser);
  await throughDeviceCheck(page, link);
  await checkIn(page);
  const waiting = await server.waitForWaiting(access, visit.id, { role: "patient" });
  await server.call("POST", `/api/v1/visits/${visit.id}/deny/${waiting.id}`, { token: access });
  await page.waitForSelector("[data-screen=closed]");
  await page.getByText("You were not let into this visit").waitFor();
  await audit(page, "21-denied");
});

test("everything works from the keyboard alone", async () => {
  const { visit, link } = await server.createVisit(access);
  const page = await phonePage(browser);
  await page.goto(link);
  await page.waitForSelector("[data-screen=welcome]");
  // Tab to Start and press Enter.
  for (let i = 0; i < 6; i++) {
    await page.keyboard.press("Tab");
    if ((await page.evaluate(() => document.activeElement?.textContent)) === "Start") break;
  }
  await page.keyboard.press("Enter");
  await page.waitForSelector(".net-result", { timeout: 30000 });
  await page.getByRole("button", { name: "Continue" }).focus();
  await page.keyboard.press("Enter");
  await page.waitForSelector("[data-screen=checkin]");
  await page.locator("#name").focus();
  await page.keyboard.type("Keyboard User");
  await page.keyboard.press("Tab");
  await page.keyboard.type("Typed with keys only");
  await page.locator("#consent").focus();
  await page.keyboard.press("Space");
  await page.locator("form button[type=submit]").focus();
  await page.keyboard.press("Enter");
  await page.waitForSelector("[data-screen=waiting]");
  const record = await server.call("GET", `/api/v1/visits/${visit.id}/check-in`, { token: access });
  assert.equal(record.intake[0].answer, "Typed with keys only");
  // Every focusable thing shows where the focus is.
  const unstyled = await page.evaluate(() =>
    [...document.querySelectorAll("button, a[href], input, textarea, select, summary")]
      .filter((el) => {
        el.focus();
        const s = getComputedStyle(el);
        return document.activeElement === el && s.outlineStyle === "none" && s.boxShadow === "none";
      })
      .map((el) => el.outerHTML.slice(0, 60)),
  );
  assert.deepEqual(unstyled, []);
});
