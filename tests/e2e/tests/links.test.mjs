// Links that cannot be used get a friendly page that says what to do, never an error dump;
// a browser without WebRTC gets the list of browsers to use; the server's headers hold.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { launch, phonePage } from "../lib/browser.mjs";
import { watchCsp } from "../lib/flow.mjs";
import { RoundsServer } from "../lib/server.mjs";

let server;
let browser;
let access;

before(async () => {
  // No grace period: a visit that ended on schedule has an expired link.
  server = await RoundsServer.start({ extraConfig: "[visits]\nlink_grace_minutes = 0\n\n" });
  browser = await launch();
  access = await server.login();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function problemPage(link) {
  const page = await phonePage(browser);
  const cspClean = watchCsp(page);
  await page.goto(link);
  await page.waitForSelector("[data-screen=problem]");
  const text = await page.locator("main").innerText();
  assert.doesNotMatch(text, /problem\+json|https:\/\/rounds\.health\/problems|\{|stack/i, "raw error shown to the patient");
  assert.match(text, /call your clinic/i);
  cspClean();
  return { page, title: await page.locator("h1").innerText() };
}

test("an expired link shows the friendly page", async () => {
  const { link } = await server.createVisit(access, { minutes: -45, duration: 30 });
  const { page, title } = await problemPage(link);
  assert.equal(title, "This link has expired");
  await page.getByText("Your clinic can send you a new one.").waitFor();
});

test("an unknown link shows the friendly page", async () => {
  const { title } = await problemPage(`${server.url}/join/0123456789abcdef0123456789abcdef`);
  assert.equal(title, "This link does not work");
});

test("a cancelled link shows the friendly page", async () => {
  const { visit, link } = await server.createVisit(access);
  await server.call("DELETE", `/api/v1/visits/${visit.id}/patient-link`, { token: access });
  const { title } = await problemPage(link);
  assert.equal(title, "This link was cancelled");
});

test("the link of an ended visit says so, in Spanish too", async () => {
  const { visit, link } = await server.createVisit(access);
  await server.end(access, visit.id);
  const { title } = await problemPage(link);
  assert.equal(title, "This visit has ended");
  const page = await phonePage(browser, { locale: "es-MX" });
  await page.goto(link);
  await page.waitForSelector("[data-screen=problem]");
  assert.equal(await page.locator("h1").innerText(), "Esta consulta ha terminado");
  assert.equal(await page.evaluate(() => document.documentElement.lang), "es");
});

test("a browser without WebRTC is told which browsers work", async () => {
  const { link } = await server.createVisit(access);
  const page = await phonePage(browser);
  await page.addInitScript(() => {
    delete window.RTCPeerConnection;
  });
  await page.goto(link);
  await page.waitForSelector("[data-screen=unsupported]");
  const text = await page.locator("main").innerText();
  for (const name of ["Chrome", "Safari", "Edge", "Firefox"]) assert.match(text, new RegExp(name));
});

test("the page and its assets are served with the right headers", async () => {
  const { link } = await server.createVisit(access);
  const html = await fetch(link);
  assert.equal(html.status, 200);
  assert.match(html.headers.get("content-type"), /^text\/html/);
  assert.equal(html.headers.get("cache-control"), "no-store");
  assert.match(html.headers.get("content-security-policy"), /default-src 'self'/);
  const body = await html.text();
  const script = /src="(\/assets\/[^"]+\.js)"/.exec(body)?.[1];
  assert.ok(script, body);
  const js = await fetch(`${server.url}${script}`);
  assert.equal(js.status, 200);
  assert.match(js.headers.get("content-type"), /^text\/javascript/);
  assert.match(js.headers.get("cache-control"), /immutable/);
  const missing = await fetch(`${server.url}/assets/nope.js`);
  assert.equal(missing.status, 404);
  const traversal = await fetch(`${server.url}/assets/..%2F..%2FCargo.toml`);
  assert.equal(traversal.status, 404);
});

test("without a built UI the link says so in plain words", async () => {
  const bare = await RoundsServer.start({ uiDir: "/nonexistent/ui/dist" });
  try {
    const r = await fetch(`${bare.url}/join/abc`);
    assert.equal(r.status, 503);
    assert.match(r.headers.get("content-type"), /^text\/html/);
    assert.match(await r.text(), /call your clinic/i);
  } finally {
    await bare.stop();
  }
});
