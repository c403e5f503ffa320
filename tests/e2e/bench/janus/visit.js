// The Janus visit page of the join benchmark (see visit.html), shaped like the patient pages'
// join so both are timed over the same interval:
//
//   waiting   camera and microphone open, the Janus session and two VideoRoom handles
//             attached (the patient pages' waiting-room socket);
//   ready     after `bench.admit()` (the clinician's admission): the page joins the room and,
//             with ?subscribe=admission, subscribes to the publisher's feed at once and plays
//             it out of sight, as the patient pages do; shows "Join the visit";
//   visit     after the click: the page publishes its own camera and microphone and shows the
//             remote video in `.stage .tile:not(.self) video` (subscribing only now with
//             ?subscribe=click, the way Janus' own VideoRoom demo joins).
//
// `window.bench` is what the benchmark reads: `state`, `error`, and for the publisher `feed`.

"use strict";

const params = new URLSearchParams(location.search);
const role = params.get("role");
const server = params.get("janus");
const room = Number(params.get("room"));
const bench = { state: "loading", error: null, feed: null, admit: null, destroy: null };
window.bench = bench;

// The same capture the two sides of the Rounds benchmark ask for: the clinician stand-in
// (tests/e2e/harness/clinician.ts) and the patient pages (ui/src/devices/media.ts), which ask
// for 640x480 on a device they count as low-end (ui/src/devices/browser.ts: a phone, two cores
// or fewer, 2 GB or less), as the benchmark's two-core machine is.
const PUBLISHER_MEDIA = { audio: true, video: { width: 1280, height: 720, frameRate: 24 } };
const LOW_END =
  /Android|iPhone|iPad|Mobile/.test(navigator.userAgent) ||
  (navigator.hardwareConcurrency || 8) <= 2 ||
  (navigator.deviceMemory !== undefined && navigator.deviceMemory <= 2);
const [JOINER_WIDTH, JOINER_HEIGHT] = LOW_END ? [640, 480] : [1280, 720];
const JOINER_MEDIA = {
  audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  video: { width: { ideal: JOINER_WIDTH }, height: { ideal: JOINER_HEIGHT }, frameRate: { ideal: 24, max: 30 } },
};
// The Rounds room's cap for a two-person visit (server/src/rooms/room.rs).
const MAX_BITRATE = 1_500_000;

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  el.append(...children);
  return el;
}

function show(screen, ...children) {
  const app = document.getElementById("app");
  app.dataset.screen = screen;
  app.replaceChildren(...children);
  bench.state = screen;
}

function fail(e) {
  bench.error = String(e && e.message ? e.message : e);
  show("failed", h("p", { role: "alert" }, `Janus page failed: ${bench.error}`));
}

// ---- Janus' library, as promises ------------------------------------------------------

function connect() {
  return new Promise((resolve, reject) => {
    const janus = new Janus({
      server,
      success: () => resolve(janus),
      error: (e) => reject(new Error(`Janus session: ${e}`)),
    });
  });
}

/** A VideoRoom handle; plugin events queue up for `handle.next`, remote tracks go to `onTrack`. */
function attach(janus, onTrack = () => undefined) {
  const pending = [];
  const waiters = [];
  const deliver = (event) => {
    const i = waiters.findIndex((w) => event.msg.error || w.match(event));
    if (i < 0) return void pending.push(event);
    const [w] = waiters.splice(i, 1);
    if (event.msg.error) w.reject(new Error(`VideoRoom: ${event.msg.error}`));
    else w.resolve(event);
  };
  return new Promise((resolve, reject) => {
    janus.attach({
      plugin: "janus.plugin.videoroom",
      success: (handle) => {
        handle.next = (match) => {
          const i = pending.findIndex(match);
          if (i >= 0) return Promise.resolve(pending.splice(i, 1)[0]);
          return new Promise((res, rej) => waiters.push({ match, resolve: res, reject: rej }));
        };
        resolve(handle);
      },
      error: (e) => reject(new Error(`attach: ${e}`)),
      onmessage: (msg, jsep) => deliver({ msg, jsep }),
      onremotetrack: (track, mid, on) => on && onTrack(track, mid),
    });
  });
}

function send(handle, message, jsep) {
  return new Promise((resolve, reject) =>
    handle.send({
      message,
      jsep,
      success: (data) => (data && data.error ? reject(new Error(`${message.request}: ${data.error}`)) : resolve(data)),
      error: (e) => reject(new Error(`${message.request}: ${e}`)),
    }),
  );
}

/** Sends `message` and waits for the VideoRoom event that answers it. */
async function ask(handle, message, match, jsep) {
  const reply = handle.next(match);
  await send(handle, message, jsep);
  return reply;
}

async function joinAsPublisher(handle, display) {
  const { msg } = await ask(handle, { request: "join", ptype: "publisher", room, display }, (e) => e.msg.videoroom === "joined");
  return msg.id;
}

/** Sends `stream` on `handle` (already joined as a publisher): VP8 and Opus, as the room allows. */
async function publish(handle, stream) {
  const offer = await new Promise((resolve, reject) =>
    handle.createOffer({
      tracks: [
        { type: "audio", capture: stream.getAudioTracks()[0], recv: false },
        { type: "video", capture: stream.getVideoTracks()[0], recv: false, codec: "vp8" },
      ],
      success: resolve,
      error: reject,
    }),
  );
  const { jsep } = await ask(handle, { request: "publish" }, (e) => e.jsep && e.jsep.type === "answer", offer);
  await new Promise((resolve, reject) => handle.handleRemoteJsep({ jsep, success: resolve, error: reject }));
}

/** Subscribes `handle` to `feed`: Janus offers, the page answers and starts. */
async function subscribe(handle, feed) {
  const { jsep } = await ask(handle, { request: "join", ptype: "subscriber", room, streams: [{ feed }] }, (e) => e.jsep && e.jsep.type === "offer");
  const answer = await new Promise((resolve, reject) =>
    handle.createAnswer({ jsep, tracks: [{ type: "data" }], success: resolve, error: reject }),
  );
  await ask(handle, { request: "start" }, (e) => e.msg.started === "ok", answer);
}

// ---- the two roles ---------------------------------------------------------------------

async function publisher() {
  const stream = await navigator.mediaDevices.getUserMedia(PUBLISHER_MEDIA);
  const janus = await connect();
  const handle = await attach(janus);
  await send(handle, { request: "create", room, publishers: 6, audiocodec: "opus", videocodec: "vp8", bitrate: MAX_BITRATE });
  bench.feed = await joinAsPublisher(handle, "clinician");
  await publish(handle, stream);
  bench.destroy = () => send(handle, { request: "destroy", room });
  show("publishing", h("video", { autoplay: "", muted: "", playsinline: "" }));
  document.querySelector("video").srcObject = stream;
}

async function joiner() {
  const feed = Number(params.get("feed"));
  const subscribeAtClick = params.get("subscribe") === "click";
  const local = await navigator.mediaDevices.getUserMedia(JOINER_MEDIA);
  const janus = await connect();
  // The remote video element is made once and moved, never remade (as ui/src/components/video-pool.ts).
  let remoteVideo = null;
  const warm = h("div", { class: "warm-up", "aria-hidden": "true" });
  const remoteTile = h("div", { class: "tile" });
  const onTrack = (track) => {
    if (track.kind === "audio") {
      const audio = h("audio", { autoplay: "" });
      audio.srcObject = new MediaStream([track]);
      document.body.append(audio);
      return;
    }
    if (remoteVideo) return;
    remoteVideo = h("video", { autoplay: "", playsinline: "" });
    remoteVideo.muted = true;
    remoteVideo.srcObject = new MediaStream([track]);
    (bench.state === "visit" ? remoteTile : warm).append(remoteVideo);
    remoteVideo.play().catch(() => undefined);
  };
  const [pub, sub] = await Promise.all([attach(janus), attach(janus, onTrack)]);
  show("waiting", h("h1", {}, "Please wait, your clinician will let you in"));

  bench.admit = async () => {
    try {
      const joined = joinAsPublisher(pub, "patient");
      show(
        "ready",
        warm,
        h("h1", {}, "Your clinician is ready"),
        h("button", { type: "button", "data-action": "join", onclick: () => enter(joined) }, "Join the visit"),
      );
      await Promise.all([joined, subscribeAtClick ? null : subscribe(sub, feed)]);
    } catch (e) {
      fail(e);
    }
  };

  // "Join the visit": the remote video moves to its tile (or starts now), our media goes out.
  const enter = async (joined) => {
    const self = h("video", { autoplay: "", playsinline: "" });
    self.muted = true;
    self.srcObject = local;
    if (remoteVideo) remoteTile.append(remoteVideo);
    show("visit", h("div", { class: "stage" }, remoteTile, h("div", { class: "tile self" }, self)));
    try {
      await joined;
      await Promise.all([subscribeAtClick ? subscribe(sub, feed) : null, publish(pub, local)]);
    } catch (e) {
      fail(e);
    }
  };
}

window.addEventListener("DOMContentLoaded", () => {
  if (typeof Janus === "undefined") return fail("Janus' JavaScript library did not load (install janus-demos)");
  Janus.init({
    debug: false,
    callback: () => {
      if (!Janus.isWebrtcSupported()) return fail("this browser has no WebRTC");
      (role === "publisher" ? publisher() : joiner()).catch(fail);
    },
  });
});
