// The device check's network test against the real server: the UDP probe (a STUN binding
// request from an RTCPeerConnection to the media port) says "direct" only when the port
// really answers, and the TCP fallback when it does not. On loopback Chromium drops the
// server-reflexive candidate (it equals its host candidate), so these tests exercise the
// probe's other signal too. (`tcp.test.mjs` covers a server with UDP media off.)

import assert from "node:assert/strict";
import dgram from "node:dgram";
import { after, before, test } from "node:test";

import { launch, phonePage } from "../lib/browser.mjs";
import { checkIn, throughDeviceCheck } from "../lib/flow.mjs";
import { RoundsServer } from "../lib/server.mjs";

let server;
let browser;

before(async () => {
  server = await RoundsServer.start();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** The server's count of STUN probes it answered over UDP. */
async function udpProbesAnswered() {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("rounds_sfu_stun_probes_total") && l.includes('transport="udp"') && l.includes('outcome="answered"'));
  return line ? Number(line.trim().split(/\s+/).pop()) : 0;
}

async function networkResult(page) {
  const result = page.locator(".net-result");
  await result.waitFor({ timeout: 30000 });
  await result.locator("details summary").click();
  return { path: await result.getAttribute("data-path"), grade: await result.getAttribute("data-grade"), text: await result.innerText() };
}

test("a media port that answers is reported as the direct path, and the grade reaches the queue", async () => {
  const access = await server.login();
  const { visit, link } = await server.createVisit(access);
  const before = await udpProbesAnswered();
  const page = await phonePage(browser);
  await throughDeviceCheck(page, link);
  const net = await networkResult(page);
  assert.equal(net.path, "udp", net.text);
  assert.match(net.text, /Direct \(best\)/);
  // Round trip, download and upload, measured against this server.
  assert.match(net.text, /Response time\s+\d+ ms/);
  assert.match(net.text, /Download\s+[\d.]+ Mbps/);
  assert.match(net.text, /Upload\s+[\d.]+ Mbps/);
  assert.ok((await udpProbesAnswered()) > before, "the server answered the page's STUN request");
  await checkIn(page);

  const queue = await server.call("GET", "/api/v1/visits", { token: access });
  const queued = queue.visits.find((v) => v.id === visit.id);
  assert.equal(queued.device_check.network, net.grade);
  assert.notEqual(net.grade, "blocked");
  await page.context().close();
});

test("a media port that does not answer is reported as the backup path", async () => {
  // A real UDP port where nothing answers, as behind a firewall that drops UDP. The page is
  // told the media port is there, and must not take silence for an answer.
  const silent = dgram.createSocket("udp4");
  const received = [];
  silent.on("message", (m) => received.push(m));
  await new Promise((r) => silent.bind(0, "127.0.0.1", r));
  try {
    const access = await server.login();
    const { link } = await server.createVisit(access);
    const page = await phonePage(browser);
    await page.route("**/api/v1/join/*/network-test", async (route) => {
      const info = await (await route.fetch()).json();
      info.udp = `127.0.0.1:${silent.address().port}`;
      await route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(info) });
    });
    await page.goto(link);
    await page.getByRole("button", { name: "Start" }).click();
    const net = await networkResult(page);
    assert.equal(net.path, "tcp", net.text);
    assert.match(net.text, /Backup path through the web connection/);
    assert.notEqual(net.grade, "blocked", "the fallback works, so the visit can go ahead");
    // The probe did ask: a STUN binding request (type 0x0001) reached the silent port.
    assert.ok(received.some((m) => m.length >= 20 && m.readUInt16BE(0) === 0x0001), "no STUN request arrived");
    await page.context().close();
  } finally {
    silent.close();
  }
});
