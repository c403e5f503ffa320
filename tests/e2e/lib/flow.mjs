// The patient's steps through the pages, shared by the tests.

import assert from "node:assert/strict";

/** Opens `link` and goes through the welcome page and the device check. */
export async function throughDeviceCheck(page, link, { audioOnly = false } = {}) {
  await page.goto(link);
  await page.waitForSelector("[data-screen=welcome]");
  await page.getByRole("button", { name: /^(Start|Empezar)$/ }).click();
  await page.waitForSelector("[data-screen=check]");
  if (audioOnly) {
    await page.locator("[data-action=audio-only]").click();
  } else {
    await page.waitForSelector("video.preview");
  }
  await page.waitForSelector(".net-result", { timeout: 30000 });
}

/** The check-in form: name, the intake questions, the consent box. */
export async function checkIn(page, { name = "Maria Lopez", reason = "A cough for a week", guest = false } = {}) {
  await page.getByRole("button", { name: /^(Continue|Continuar)$/ }).click();
  await page.waitForSelector("[data-screen=checkin]");
  await page.fill("#name", name);
  if (!guest) {
    await page.fill("#q-reason", reason);
    await page.check("#q-medicines_changed-1");
  }
  await page.check("#consent");
  await page.locator("form button[type=submit]").click();
  await page.waitForSelector("[data-screen=waiting], [data-screen=ready]");
}

/** From a link to the waiting room. */
export async function toWaitingRoom(page, link, opts = {}) {
  await throughDeviceCheck(page, link, opts);
  await checkIn(page, opts);
}

/** Waits for "your clinician is ready" and presses Join. */
export async function joinWhenReady(page) {
  await page.waitForSelector("[data-screen=ready]", { timeout: 20000 });
  await page.locator("[data-action=join]").click();
  await page.waitForSelector("[data-screen=visit]");
}

/** Fails on any Content-Security-Policy report the page printed. */
export function watchCsp(page) {
  const violations = [];
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to (load|connect|execute|apply)/i.test(m.text())) violations.push(m.text());
  });
  return () => assert.deepEqual(violations, [], "the page broke its Content-Security-Policy");
}
