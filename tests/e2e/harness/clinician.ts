// A stand-in for the clinician in end-to-end tests: the shared call code and visit view of
// the UI, driven with a provider token, in a second Chromium page. Bundled by esbuild at
// test time and served on the server's own origin through Playwright's request routing.

import "../../../ui/src/styles/patient.css";
import { Call } from "../../../ui/src/call/call";
import { ChatPanel } from "../../../ui/src/components/chat";
import { VisitView } from "../../../ui/src/components/visit-view";
import { initLang } from "../../../ui/src/i18n";

declare global {
  interface Window {
    harness: { call: Call; events: string[]; ready: Promise<void> };
  }
}

initLang();
const token = new URLSearchParams(window.location.hash.slice(1)).get("token") ?? "";
const call = new Call({ token, lowEnd: false });
const events: string[] = [];
call.on((e) => events.push(e.type === "state" ? `state:${e.state}` : e.type));

const ready = (async () => {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 1280, height: 720, frameRate: 24 } });
  call.startMedia(stream);
  call.connect();
})();

const chat = new ChatPanel({
  title: "Chat",
  myId: () => call.me?.id,
  nameOf: (id) => call.participants.get(id)?.name ?? id,
  send: async (text) => {
    call.sendChat(text);
  },
});
const view = new VisitView({
  call,
  heading: "Clinician test view",
  canShareScreen: false,
  chat,
  onLeave: () => call.leave(),
  announce: () => undefined,
});
const root = document.getElementById("app");
if (root) {
  const screen = document.createElement("section");
  screen.className = "screen screen-visit full";
  screen.appendChild(view.el);
  root.appendChild(screen);
}
window.harness = { call, events, ready };
