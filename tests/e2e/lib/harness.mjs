// Serves the clinician stand-in (harness/clinician.ts, bundled with esbuild) on the server's
// origin, so its WebSocket and API calls are same-origin like the real pages.

import { build } from "esbuild";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
let bundle;

async function bundled() {
  if (!bundle) {
    const result = await build({
      entryPoints: [join(HERE, "..", "harness", "clinician.ts")],
      bundle: true,
      format: "esm",
      target: "es2022",
      write: false,
      outdir: "/harness",
      logLevel: "warning",
    });
    const file = (ext) => result.outputFiles.find((f) => f.path.endsWith(ext))?.text ?? "";
    bundle = { js: file(".js"), css: file(".css") };
  }
  return bundle;
}

const PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Clinician (test)</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/__e2e/clinician.css"></head>
<body><div id="app"></div><script type="module" src="/__e2e/clinician.js"></script></body></html>`;

/** Opens the clinician stand-in in `page` with a provider room token. */
export async function openClinician(page, serverUrl, token) {
  const { js, css } = await bundled();
  await page.route(`${serverUrl}/__e2e/**`, (route) => {
    const url = new URL(route.request().url());
    if (url.pathname.endsWith(".js")) return route.fulfill({ contentType: "text/javascript", body: js });
    if (url.pathname.endsWith(".css")) return route.fulfill({ contentType: "text/css", body: css });
    return route.fulfill({ contentType: "text/html", body: PAGE });
  });
  await page.goto(`${serverUrl}/__e2e/clinician.html#token=${encodeURIComponent(token)}`);
  await page.waitForFunction(() => window.harness !== undefined);
  await page.evaluate(() => window.harness.ready);
}
