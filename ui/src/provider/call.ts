// The in-call view of the clinician window: video tiles drawn from the app's native
// decoder (see yuv.ts), the dominant speaker (or someone's shared screen) large, controls,
// our own screen share, host actions and chat.
import { Channel } from "@tauri-apps/api/core";
import { h } from "../components/dom";
import { commands } from "../generated/desktop";
import type { CallParticipant, CallState, DeviceSlot, Devices } from "../generated/desktop";
import type { ChatMessage } from "../generated/proto";
import { parseFrame, YuvCanvas } from "./yuv";

const LOCAL = "local";

/** The tile key of a participant's shared screen (rounds_client::screen_key). */
export function screenKey(participant: string): string {
  return `${participant}/screen`;
}

export class CallView {
  state: CallState | null = null;
  chat: ChatMessage[] = [];
  chatOpen = false;
  /** A failure of our own action (screen share, a device switch), in words. */
  problem: string | null = null;
  /** The devices present, kept current by hot-plug events. */
  devices: Devices | null = null;
  private tiles = new Map<string, YuvCanvas>();
  private sizes = new Map<string, string>();
  private observer: ResizeObserver;
  framesDrawn = 0;

  constructor(private readonly onChange: () => void) {
    this.observer = new ResizeObserver((entries) => {
      for (const e of entries) {
        const who = (e.target as HTMLElement).dataset.tile;
        if (!who || who === LOCAL) continue;
        const dpr = window.devicePixelRatio || 1;
        const w = Math.round(e.contentRect.width * dpr);
        const hgt = Math.round(e.contentRect.height * dpr);
        const key = `${w}x${hgt}`;
        if (w > 0 && hgt > 0 && this.sizes.get(who) !== key) {
          this.sizes.set(who, key);
          commands.setRenderSize(who, w, hgt).catch(() => undefined);
        }
      }
    });
  }

  async start(visitId: string): Promise<CallState> {
    const frames = new Channel<ArrayBuffer>();
    frames.onmessage = (buffer) => {
      const frame = parseFrame(buffer);
      if (!frame) return;
      this.canvas(frame.participant).draw(frame);
      this.framesDrawn++;
    };
    this.state = await commands.startCall(visitId, frames);
    return this.state;
  }

  private canvas(who: string): YuvCanvas {
    let c = this.tiles.get(who);
    if (!c) {
      c = new YuvCanvas(h("canvas", { class: "video", "data-tile": who }));
      this.tiles.set(who, c);
      this.observer.observe(c.canvas);
    }
    return c;
  }

  async leave(): Promise<void> {
    await commands.leaveCall();
    this.state = null;
    this.problem = null;
    this.chat = [];
    for (const c of this.tiles.values()) this.observer.unobserve(c.canvas);
    this.tiles.clear();
    this.sizes.clear();
  }

  private tile(p: CallParticipant, large: boolean): HTMLElement {
    const s = this.state;
    const who = p.me ? LOCAL : p.id;
    const quality = h("span", { class: `bars q${p.quality}`, title: `Connection ${p.quality} of 5` },
      [1, 2, 3, 4, 5].map((i) => h("i", { class: i <= p.quality ? "on" : "" })));
    const label = p.me && s?.synthetic_camera ? h("span", { class: "synthetic" }, "SYNTHETIC test card — no camera on this computer") : null;
    const host = !p.me && s && !s.ended
      ? h("span", { class: "host" },
          h("button", { class: "quiet", disabled: p.audio_muted, onclick: () => this.host(p.id, "mute_audio") }, "Mute"),
          h("button", { class: "quiet", disabled: p.video_muted, onclick: () => this.host(p.id, "stop_video") }, "Stop camera"),
          h("button", { class: "quiet danger", onclick: () => this.host(p.id, "remove") }, "Remove"))
      : null;
    return h(
      "figure",
      { class: `tile${large ? " large" : ""}${s?.dominant_speaker === p.id ? " speaking" : ""}`, "data-participant": p.id },
      p.video_muted || (p.me && s?.camera_off) ? h("div", { class: "novideo" }, p.name) : this.canvas(who).canvas,
      h("figcaption", {}, p.me ? "You" : p.name, p.audio_muted ? h("span", { class: "muted-mic" }, " · muted") : null, quality, host),
      label,
    );
  }

  private screenTile(p: CallParticipant): HTMLElement {
    return h(
      "figure",
      { class: "tile large screen", "data-screen": p.id },
      this.canvas(screenKey(p.id)).canvas,
      h("figcaption", {}, `${p.name}'s screen`),
    );
  }

  private async host(participant: string, action: "mute_audio" | "stop_video" | "remove"): Promise<void> {
    await commands.hostAction(participant, action);
  }

  private async switchDevice(slot: DeviceSlot, id: string): Promise<void> {
    try {
      this.state = await commands.switchDevice(slot, id || null);
      this.problem = null;
    } catch (e) {
      const err = e as { message?: unknown } | undefined;
      this.problem = typeof err?.message === "string" ? err.message : "That device could not be used.";
    }
    this.onChange();
  }

  /** Pickers for the devices in use, listing what is connected now. */
  private devicePickers(s: CallState): HTMLElement | null {
    const d = this.devices;
    if (!d) return null;
    const picker = (slot: DeviceSlot, label: string, list: { id: string; name: string }[], current: string | undefined) =>
      h("label", { class: "device-pick" }, label,
        h("select", { id: `call-${slot}`, onchange: (e: Event) => this.switchDevice(slot, (e.target as HTMLSelectElement).value) },
          current ? null : h("option", { value: "", selected: true }, list.length ? "Choose…" : "None connected"),
          list.map((x) => h("option", { value: x.id, selected: x.id === current }, x.name))));
    return h("div", { class: "device-picks" },
      picker("microphone", "Microphone", d.microphones, s.microphone_id),
      picker("camera", "Camera", d.cameras, s.camera_id),
      picker("speaker", "Speaker", d.speakers, s.speaker_id));
  }

  private async share(on: boolean): Promise<void> {
    try {
      this.state = await commands.shareScreen(on);
      this.problem = null;
    } catch (e) {
      const err = e as { message?: unknown } | undefined;
      this.problem = typeof err?.message === "string" ? err.message : "Your screen could not be shared.";
    }
    this.onChange();
  }

  view(): HTMLElement {
    const s = this.state;
    if (!s) return h("p", { class: "muted" }, "Joining the call…");
    const others = s.participants.filter((p) => !p.me && p.state === "admitted");
    const me = s.participants.find((p) => p.me);
    // Someone's shared screen takes the stage; everyone's camera goes to the thumbnails.
    const sharer = others.find((p) => p.screen);
    const big = sharer ? undefined : (others.find((p) => p.id === s.dominant_speaker) ?? others[0]);
    const small = [...others.filter((p) => p !== big), ...(me ? [me] : [])];
    const input = h("input", { id: "chat-input", placeholder: "Message", maxlength: 2000 });
    return h(
      "section",
      { class: "call", id: "call" },
      s.ended ? h("p", { class: "notice-inline", role: "status" }, s.ended) : null,
      s.notice ? h("p", { class: "notice-inline", role: "status" }, s.notice) : null,
      this.problem ? h("p", { class: "notice-inline", role: "alert" }, this.problem) : null,
      s.sharing_screen
        ? h("div", { class: "sharing", id: "sharing", role: "status" },
            h("strong", {}, "You are sharing your screen"),
            " with everyone in this call. Close anything private first.",
            h("button", { id: "stop-share", class: "danger", onclick: () => this.share(false) }, "Stop sharing"))
        : null,
      h("div", { class: "stage" },
        sharer
          ? this.screenTile(sharer)
          : big
            ? this.tile(big, true)
            : h("div", { class: "waiting" }, "Nobody else is in the call yet. Admit the patient from the list."),
        h("div", { class: "thumbs" }, small.map((p) => this.tile(p, false)))),
      h("div", { class: "controls" },
        h("button", { id: "mic", class: s.mic_muted ? "primary" : "", onclick: async () => { this.state = await commands.setMicMuted(!s.mic_muted); this.onChange(); } },
          s.mic_muted ? "Unmute" : "Mute"),
        h("button", { id: "camera", onclick: async () => { this.state = await commands.setCameraOff(!s.camera_off); this.onChange(); } },
          s.camera_off ? "Camera on" : "Camera off"),
        h("button", { id: "share", class: s.sharing_screen ? "primary" : "", onclick: () => this.share(!s.sharing_screen) },
          s.sharing_screen ? "Stop sharing" : "Share screen"),
        h("button", { id: "chat", onclick: () => { this.chatOpen = !this.chatOpen; this.onChange(); } }, this.chatOpen ? "Hide chat" : "Chat"),
        h("span", { class: "devices muted small" }, `${s.camera_label} · ${s.microphone_label}`),
        h("button", { id: "leave", class: "danger", onclick: async () => { await this.leave(); this.onChange(); } }, "Leave call")),
      this.devicePickers(s),
      this.chatOpen
        ? h("aside", { class: "chat" },
            h("ul", {}, this.chat.map((m) => h("li", {}, h("strong", {}, m.from_role === "provider" ? "Clinic" : m.from_role), " ", m.text))),
            h("form", { onsubmit: async (e: Event) => { e.preventDefault(); const text = input.value; input.value = ""; await commands.sendChat(text); } },
              input, h("button", { type: "submit" }, "Send")))
        : null,
    );
  }
}
