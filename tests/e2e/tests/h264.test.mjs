// A server set to H.264 (media.video_codec = "h264"): both browsers are asked for H.264,
// both legs through the SFU negotiate it (packetization mode 1), and each decodes the other.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { launch, phonePage, waitForStats } from "../lib/browser.mjs";
import { joinWhenReady, toWaitingRoom } from "../lib/flow.mjs";
import { openClinician } from "../lib/harness.mjs";
import { RoundsServer } from "../lib/server.mjs";

let server;
let browser;
let harnessBrowser;

before(async () => {
  server = await RoundsServer.start({ extraConfig: `[media]\nudp_listen = "127.0.0.1:0"\nvideo_codec = "h264"\n` });
  browser = await launch();
  harnessBrowser = await launch({ harness: true });
});

after(async () => {
  await browser?.close();
  await harnessBrowser?.close();
  await server?.stop();
});

/** The codecs of the video this page receives and sends, as its stats name them. */
async function videoCodecs(page) {
  return page.evaluate(async () => {
    const out = { inbound: [], outbound: [], decoded: 0 };
    for (const pc of window.__pcs) {
      if (pc.connectionState === "closed") continue;
      const stats = await pc.getStats();
      const codecs = new Map();
      stats.forEach((s) => {
        if (s.type === "codec") codecs.set(s.id, `${s.mimeType} ${s.sdpFmtpLine ?? ""}`.trim());
      });
      stats.forEach((s) => {
        if (s.kind !== "video" || !s.codecId) return;
        if (s.type === "inbound-rtp" && (s.framesDecoded ?? 0) > 0) {
          out.inbound.push(codecs.get(s.codecId));
          out.decoded += s.framesDecoded;
        }
        if (s.type === "outbound-rtp" && (s.framesEncoded ?? 0) > 0) out.outbound.push(codecs.get(s.codecId));
      });
    }
    return out;
  });
}

test("a room set to H.264 sends and decodes H.264 both ways", async () => {
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
  await waitForStats(page, (s) => s.framesDecoded > 0, 30000);

  assert.equal(await clinician.evaluate(() => window.harness.call.video?.codec), "H264");
  for (const [who, p] of [["clinician", clinician], ["patient", page]]) {
    const codecs = await videoCodecs(p);
    console.log(who, JSON.stringify(codecs));
    assert.ok(codecs.decoded > 0, `${who} decodes video`);
    for (const codec of [...codecs.inbound, ...codecs.outbound]) {
      assert.match(codec, /^video\/H264 /, `${who}: ${codec}`);
      assert.match(codec, /packetization-mode=1/, `${who}: ${codec}`);
    }
    assert.ok(codecs.inbound.length > 0 && codecs.outbound.length > 0, `${who}: ${JSON.stringify(codecs)}`);
  }
});
