// The Janus side of the join benchmark: serves its visit page (bench/janus/) on loopback with
// Janus' own JavaScript library from Debian (janus.min.js from libjs-janus-gateway and
// adapter.min.js from libjs-webrtc-adapter, both pulled in by `janus-demos`). Janus itself is
// started by the caller (tests/bench's `join-time`, with the capacity benchmark's
// configuration) and given here by its WebSocket address.

import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const PAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "bench", "janus");
const DEBIAN_JS = "/usr/share/javascript";
const FILES = {
  "/visit.html": [join(PAGE_DIR, "visit.html"), "text/html"],
  "/visit.js": [join(PAGE_DIR, "visit.js"), "text/javascript"],
  "/javascript/janus-gateway/janus.min.js": [join(DEBIAN_JS, "janus-gateway", "janus.min.js"), "text/javascript"],
  "/javascript/webrtc-adapter/adapter.min.js": [join(DEBIAN_JS, "webrtc-adapter", "adapter.min.js"), "text/javascript"],
};

/** Serves the page on 127.0.0.1 (a secure context for the camera); returns { url, close }. */
export async function serveJanusPage() {
  for (const [path] of Object.values(FILES)) {
    try {
      await readFile(path);
    } catch {
      throw new Error(`${path} is missing: install Debian's janus-demos (scripts/install-deps.sh does).`);
    }
  }
  const server = createServer(async (req, res) => {
    const file = FILES[new URL(req.url, "http://x").pathname];
    if (!file) {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("not part of the Janus benchmark page");
      return;
    }
    res.writeHead(200, { "Content-Type": file[1], "Cache-Control": "no-store" }).end(await readFile(file[0]));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Opens the publisher (the participant already in `room`) in `page`; returns its feed id once video goes out. */
export async function openJanusPublisher(page, pageUrl, janusUrl, room) {
  await page.goto(`${pageUrl}/visit.html?role=publisher&janus=${encodeURIComponent(janusUrl)}&room=${room}`);
  return (await settled(page, "publishing")).feed;
}

/** Opens the joiner's page in `page` and waits in the "waiting room" (session and handles attached). */
export async function openJanusJoiner(page, pageUrl, janusUrl, { room, feed, subscribeAtClick }) {
  const q = new URLSearchParams({ role: "joiner", janus: janusUrl, room: String(room), feed: String(feed), subscribe: subscribeAtClick ? "click" : "admission" });
  await page.goto(`${pageUrl}/visit.html?${q}`);
  await settled(page, "waiting");
}

async function settled(page, state) {
  const handle = await page.waitForFunction(
    (s) => {
      const b = window.bench;
      return b && (b.state === s || b.state === "failed") && { state: b.state, error: b.error, feed: b.feed };
    },
    state,
    { timeout: 30000 },
  );
  const bench = await handle.jsonValue();
  if (bench.state === "failed") throw new Error(bench.error);
  return bench;
}
