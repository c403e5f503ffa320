// The visit: a responsive grid (the dominant speaker or a shared screen large, everyone else
// as thumbnails), the controls, network bars, the "you are speaking while muted" hint, and
// clear words when the host mutes you. Shared by the patient pages and the clinician window.

import type { RoomParticipant } from "../generated/proto";
import type { Call, CallEvent } from "../call/call";
import { LevelMeter } from "../devices/media";
import { t, tn } from "../i18n";
import { bars } from "./bars";
import type { ChatPanel } from "./chat";
import { h, replace } from "./dom";
import { videoFor } from "./video-pool";
import { svg } from "./icons";

export interface VisitViewOptions {
  call: Call;
  heading: string;
  canShareScreen: boolean;
  chat: ChatPanel;
  onLeave: () => void;
  /** Said aloud (and shown) for short notices. */
  announce: (text: string) => void;
  /** The speaker chosen in the device check, where the browser lets pages choose (`setSinkId`). */
  speakerId?: string;
}

interface TileRef {
  el: HTMLElement;
  /** The pooled element showing this tile's stream, if any. */
  video: HTMLVideoElement | null;
  avatar: HTMLElement;
  caption: HTMLElement;
}

const SELF = "self";

function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  return ((parts[0]?.[0] ?? "?") + (parts.length > 1 ? (parts[parts.length - 1]?.[0] ?? "") : "")).toUpperCase();
}

export class VisitView {
  readonly el: HTMLElement;
  private readonly stage = h("div", { class: "stage" });
  private readonly strip = h("div", { class: "strip", role: "list", "aria-label": t("visit.others") });
  private readonly banners = h("div", { class: "banners", role: "status", "aria-live": "polite" });
  private readonly mutedHint: HTMLElement;
  private readonly audioSink = h("div", { class: "audio-sink", hidden: true });
  private readonly unlock: HTMLButtonElement;
  private readonly controls = h("div", { class: "controls", role: "toolbar", "aria-label": t("visit.controls") });
  private readonly drawer: HTMLElement;
  private readonly chatButton: HTMLButtonElement;
  private readonly tiles = new Map<string, TileRef>();
  private readonly audios = new Map<MediaStream, HTMLAudioElement>();
  private readonly off: (() => void)[] = [];
  private meter: LevelMeter | null = null;
  private recent: boolean[] = [];
  private hintTimer = 0;
  private lastMain: string | null = null;
  private unread = 0;
  private known = new Set<string>();
  /** Watches the others' camera tiles, so the server sends each the layer that fills it. */
  private readonly resize = new ResizeObserver(() => this.queueRenderSizes());
  private sizeTimer = 0;

  constructor(private readonly opts: VisitViewOptions) {
    const call = opts.call;
    this.mutedHint = h(
      "div",
      { class: "muted-hint", role: "alert", hidden: true },
      svg("mic", true),
      h("span", {}, t("visit.speakingMuted")),
      h("button", { type: "button", class: "button small", onclick: () => call.setAudioMuted(false) }, t("ctl.unmute")),
    );
    this.unlock = h(
      "button",
      { type: "button", class: "button primary sound-unlock", hidden: true, onclick: () => this.playAll() },
      svg("speaker"),
      t("visit.turnOnSound"),
    );
    this.chatButton = h("button", { type: "button", class: "control", onclick: () => this.toggleChat() });
    this.drawer = h(
      "div",
      { class: "chat-drawer", hidden: true, onkeydown: (e: Event) => (e as KeyboardEvent).key === "Escape" && this.toggleChat(false) },
      h("button", { type: "button", class: "button small close-chat", onclick: () => this.toggleChat(false) }, t("chat.close")),
      opts.chat.el,
    );
    this.el = h(
      "section",
      { class: "visit", "aria-labelledby": "visit-heading" },
      h("h1", { id: "visit-heading", class: "sr-only", tabindex: -1 }, opts.heading),
      this.banners,
      h("div", { class: "grid" }, this.stage, this.strip),
      this.mutedHint,
      this.unlock,
      this.audioSink,
      this.controls,
      this.drawer,
    );
    opts.chat.add(call.chat);
    for (const p of call.participants.values()) this.known.add(p.id);
    this.off.push(call.on((e) => this.onEvent(e)));
    this.startMeter();
    this.render();
  }

  dispose(): void {
    this.off.forEach((f) => f());
    this.meter?.stop();
    this.resize.disconnect();
    window.clearTimeout(this.hintTimer);
    window.clearTimeout(this.sizeTimer);
    for (const a of this.audios.values()) a.srcObject = null;
  }

  private onEvent(e: CallEvent) {
    const call = this.opts.call;
    switch (e.type) {
      case "chat":
        this.opts.chat.add([e.message]);
        if (this.drawer.hidden && e.message.from !== call.me?.id) {
          this.unread += 1;
          this.renderControls();
        }
        return;
      case "mute_requested":
        this.banner(e.kind === "audio" ? t("visit.hostMutedAudio") : t("visit.hostStoppedVideo"), "warn");
        break;
      case "connection":
        this.renderConnection();
        return;
      case "participants":
        this.noticeArrivals();
        break;
      case "local":
        this.startMeter();
        break;
      default:
        break;
    }
    this.render();
  }

  private noticeArrivals() {
    const call = this.opts.call;
    const now = new Set([...call.participants.keys()].filter((id) => id !== call.me?.id));
    for (const id of now) {
      if (!this.known.has(id)) this.opts.announce(t("visit.joined", { name: call.participants.get(id)?.name ?? "" }));
    }
    for (const id of this.known) {
      if (!now.has(id) && id !== call.me?.id) this.opts.announce(t("visit.left"));
    }
    this.known = now;
  }

  private banner(text: string, kind: "info" | "warn") {
    const close: HTMLButtonElement = h("button", { type: "button", class: "button small", onclick: () => item.remove() }, t("common.ok"));
    const item: HTMLElement = h("div", { class: `banner ${kind}` }, svg(kind === "warn" ? "alert" : "check"), h("span", {}, text), close);
    this.banners.appendChild(item);
    window.setTimeout(() => item.remove(), 15000);
  }

  private renderConnection() {
    const call = this.opts.call;
    this.el.classList.toggle("reconnecting", call.connection === "reconnecting");
    const existing = this.banners.querySelector(".banner.reconnect");
    if (call.connection === "reconnecting" && !existing) {
      this.banners.appendChild(h("div", { class: "banner warn reconnect" }, svg("wifi"), h("span", {}, t("visit.reconnecting"))));
    } else if (call.connection !== "reconnecting") {
      existing?.remove();
    }
  }

  private startMeter() {
    const track = this.opts.call.local?.getAudioTracks()[0];
    if (!track || this.meter) return;
    try {
      this.meter = new LevelMeter(track, (level) => this.onLevel(level));
    } catch {
      this.meter = null;
    }
  }

  private onLevel(level: number) {
    if (!this.opts.call.audioMuted) {
      this.recent = [];
      this.mutedHint.hidden = true;
      return;
    }
    // Speech over the last 2 s (20 samples): loud moments spread out, not one knock or cough.
    this.recent.push(level > 0.3);
    if (this.recent.length > 20) this.recent.shift();
    if (this.recent.filter(Boolean).length >= 3 && this.mutedHint.hidden) {
      this.mutedHint.hidden = false;
      window.clearTimeout(this.hintTimer);
      this.hintTimer = window.setTimeout(() => (this.mutedHint.hidden = true), 6000);
    }
  }

  private toggleChat(open = this.drawer.hidden) {
    this.drawer.hidden = !open;
    this.el.classList.toggle("chat-open", open);
    if (open) {
      this.unread = 0;
      this.opts.chat.focus();
    } else {
      this.chatButton.focus();
    }
    this.renderControls();
  }

  private nameOf(p: RoomParticipant): string {
    return p.id === this.opts.call.me?.id ? t("visit.you") : p.name;
  }

  /** Who is shown large: a shared screen, else the dominant speaker, else the clinician. */
  private mainKey(): string {
    const call = this.opts.call;
    for (const [id, m] of call.remote) {
      if (m.screen) return `${id}:screen`;
    }
    if (call.screen) return `${SELF}:screen`;
    const others = [...call.participants.values()].filter((p) => p.id !== call.me?.id);
    const dominant = call.dominant && call.dominant !== call.me?.id && call.participants.has(call.dominant) ? call.dominant : null;
    const pick =
      dominant ??
      (this.lastMain && call.participants.has(this.lastMain) ? this.lastMain : null) ??
      others.find((p) => p.role === "provider")?.id ??
      others[0]?.id ??
      null;
    if (pick) {
      this.lastMain = pick;
      return `${pick}:camera`;
    }
    return `${SELF}:camera`;
  }

  private render() {
    const call = this.opts.call;
    const mainKey = this.mainKey();
    const keys: string[] = [];
    for (const p of call.participants.values()) {
      if (p.id === call.me?.id) continue;
      keys.push(`${p.id}:camera`);
      if (call.remote.get(p.id)?.screen) keys.push(`${p.id}:screen`);
    }
    keys.push(`${SELF}:camera`);
    if (call.screen) keys.push(`${SELF}:screen`);
    if (!keys.includes(mainKey)) keys.unshift(mainKey);

    for (const key of [...this.tiles.keys()]) {
      if (!keys.includes(key)) {
        const gone = this.tiles.get(key);
        if (gone) this.resize.unobserve(gone.el);
        gone?.el.remove();
        this.tiles.delete(key);
      }
    }
    const thumbs: HTMLElement[] = [];
    for (const key of keys) {
      const tile = this.tile(key);
      this.updateTile(key, tile, key === mainKey);
      if (key === mainKey) {
        if (tile.el.parentElement !== this.stage) {
          replace(this.stage, tile.el);
        }
      } else {
        thumbs.push(tile.el);
      }
    }
    thumbs.forEach((el) => this.strip.appendChild(el));
    this.el.classList.toggle("solo", thumbs.length === 0);
    this.renderAudio();
    this.renderControls();
    this.renderConnection();
  }

  private tile(key: string): TileRef {
    const existing = this.tiles.get(key);
    if (existing) return existing;
    const avatar = h("div", { class: "avatar", "aria-hidden": "true" });
    const caption = h("figcaption", { class: "caption" });
    const el = h("figure", { class: "tile", "data-key": key }, avatar, caption);
    const ref: TileRef = { el, video: null, avatar, caption };
    this.tiles.set(key, ref);
    if (!key.startsWith(`${SELF}:`) && key.endsWith(":camera")) this.resize.observe(el);
    return ref;
  }

  private queueRenderSizes() {
    // Resizes come in bursts (a window drag, a tile moving to the stage): send the outcome.
    window.clearTimeout(this.sizeTimer);
    this.sizeTimer = window.setTimeout(() => this.sendRenderSizes(), 250);
  }

  private sendRenderSizes() {
    const scale = window.devicePixelRatio || 1;
    const sizes = [];
    for (const [key, tile] of this.tiles) {
      const [id = "", kind] = key.split(":");
      if (id === SELF || kind !== "camera") continue;
      const box = tile.el.getBoundingClientRect();
      sizes.push({ participant_id: id, width: Math.round(box.width * scale), height: Math.round(box.height * scale) });
    }
    this.opts.call.setRenderSizes(sizes);
  }

  private updateTile(key: string, tile: TileRef, main: boolean) {
    const call = this.opts.call;
    const [id = "", kind] = key.split(":");
    const self = id === SELF;
    const p = self ? call.me : call.participants.get(id);
    const name = self ? t("visit.you") : p ? this.nameOf(p) : "";
    let stream: MediaStream | null | undefined;
    if (self) {
      stream = kind === "screen" ? call.screen : call.videoMuted ? null : call.local;
    } else {
      const media = call.remote.get(id);
      stream = kind === "screen" ? media?.screen : p?.video_muted ? null : media?.video;
    }
    const hasVideo = !!stream && stream.getVideoTracks().length > 0;
    const video = hasVideo && stream ? videoFor(stream) : null;
    if (tile.video !== video) {
      tile.video?.remove();
      tile.video = video;
      if (video) tile.el.insertBefore(video, tile.avatar);
    }
    tile.el.classList.toggle("main", main);
    // Thumbnails sit in the strip's list; the large tile stands alone as a figure.
    if (main) tile.el.removeAttribute("role");
    else tile.el.setAttribute("role", "listitem");
    tile.el.classList.toggle("self", self && kind === "camera");
    tile.el.classList.toggle("screen", kind === "screen");
    tile.el.classList.toggle("no-video", !hasVideo);
    tile.el.classList.toggle("speaking", !self && call.dominant === id);
    tile.avatar.hidden = hasVideo;
    tile.avatar.textContent = initials(self ? (call.me?.name ?? "") : name);
    tile.el.dataset.participant = self ? (call.me?.id ?? "") : id;
    const audioMuted = self ? call.audioMuted : (p?.audio_muted ?? false);
    const label = kind === "screen" ? t("visit.screenOf", { name }) : name;
    tile.video?.setAttribute("aria-label", label);
    const score = call.quality.get(self ? (call.me?.id ?? "") : id) ?? 0;
    replace(
      tile.caption,
      h("span", { class: "name" }, label),
      audioMuted && kind === "camera"
        ? h("span", { class: "muted-icon", role: "img", "aria-label": t("visit.micOffOf", { name }) }, svg("mic", true))
        : null,
      kind === "camera" ? bars(score, name) : null,
    );
  }

  private renderAudio() {
    const call = this.opts.call;
    const wanted = new Set<MediaStream>();
    for (const m of call.remote.values()) {
      if (m.audio) wanted.add(m.audio);
    }
    for (const [stream, el] of this.audios) {
      if (!wanted.has(stream)) {
        el.srcObject = null;
        el.remove();
        this.audios.delete(stream);
      }
    }
    for (const stream of wanted) {
      if (this.audios.has(stream)) continue;
      const el = h("audio", { autoplay: true });
      const speakerId = this.opts.speakerId;
      if (speakerId && "setSinkId" in el) {
        void (el as HTMLAudioElement & { setSinkId(id: string): Promise<void> }).setSinkId(speakerId).catch(() => undefined);
      }
      el.srcObject = stream;
      this.audioSink.appendChild(el);
      this.audios.set(stream, el);
      el.play().catch(() => (this.unlock.hidden = false));
    }
  }

  private playAll() {
    for (const el of this.audios.values()) void el.play().catch(() => undefined);
    this.unlock.hidden = true;
  }

  private renderControls() {
    const call = this.opts.call;
    const hasMic = !!call.local?.getAudioTracks().length;
    const hasCamera = !!call.local?.getVideoTracks().length || call.videoMuted;
    const control = (label: string, icon: SVGSVGElement, onclick: () => void, extra: Record<string, string | boolean> = {}) =>
      h("button", { type: "button", class: "control", onclick, ...extra }, icon, h("span", { class: "control-label" }, label));
    const buttons: HTMLElement[] = [
      control(call.audioMuted ? t("ctl.unmute") : t("ctl.mute"), svg("mic", call.audioMuted || !hasMic), () => call.setAudioMuted(!call.audioMuted), {
        disabled: !hasMic,
        class: call.audioMuted ? "control off" : "control",
        "data-control": "mic",
      }),
      control(call.videoMuted || !hasCamera ? t("ctl.camOn") : t("ctl.camOff"), svg("camera", call.videoMuted || !hasCamera), () => {
        void call.setVideoMuted(!call.videoMuted).catch(() => this.banner(t("visit.cameraFailed"), "warn"));
      }, { disabled: !hasCamera, class: call.videoMuted ? "control off" : "control", "data-control": "camera" }),
    ];
    if (this.opts.canShareScreen) {
      buttons.push(
        control(call.screen ? t("ctl.stopShare") : t("ctl.share"), svg("screen"), () => {
          const action = call.screen ? call.stopScreenShare() : call.startScreenShare();
          void action.catch(() => undefined);
        }, { class: call.screen ? "control active" : "control", "data-control": "share" }),
      );
    }
    replace(this.chatButton, svg("chat"), h("span", { class: "control-label" }, t("ctl.chat")),
      this.unread > 0 ? h("span", { class: "badge", "aria-hidden": "true" }, String(this.unread)) : null);
    this.chatButton.setAttribute("aria-label", this.unread > 0 ? `${t("ctl.chat")}: ${tn("chat.unread", this.unread)}` : t("ctl.chat"));
    this.chatButton.setAttribute("aria-expanded", String(!this.drawer.hidden));
    this.chatButton.dataset.control = "chat";
    buttons.push(this.chatButton);
    buttons.push(control(t("ctl.leave"), svg("leave"), () => this.opts.onLeave(), { class: "control danger", "data-control": "leave" }));
    const focused = document.activeElement instanceof HTMLElement ? document.activeElement.dataset.control : undefined;
    replace(this.controls, buttons);
    if (focused) {
      this.controls.querySelector<HTMLElement>(`[data-control="${focused}"]`)?.focus();
    }
  }
}
