// The patient (and guest) app: one link, one flow.
//
//   link → welcome → device and network check → check-in (name, intake, consent)
//        → waiting room (knocking is automatic) → "your clinician is ready" → visit
//        → ended (survey)
//
// A reload or a dropped connection goes straight back to where the person was, from the
// same link. Every screen is a function of this object's state, so switching the language
// re-renders it in place.

import { ApiError, RoundsApi } from "../api/client";
import { Call, type CallEvent } from "../call/call";
import { detectBrowser, unsupportedReason } from "../devices/browser";
import { capture, playTones, READY_CHIME, stopStream, type MediaProblem } from "../devices/media";
import type { NetworkResult } from "../devices/network";
import type { DeviceCheck, JoinLinkInfo, PatientContent, Problem, RoomToken } from "../generated/proto";
import { h, replace } from "../components/dom";
import { svg } from "../components/icons";
import { initLang, lang, LANG_NAMES, LANGS, onLangChange, setLang, t } from "../i18n";
import { forgetVisit, loadVisit, saveVisit, type SavedVisit } from "./session";
import * as screens from "./screens";

export interface Screen {
  el: HTMLElement;
  dispose?(): void;
}

export type EndReason = "ended" | "left" | "left-lobby";

export class App {
  readonly api = new RoundsApi();
  readonly browser = detectBrowser();
  code = "";
  info: JoinLinkInfo | null = null;
  content: PatientContent | null = null;
  saved: SavedVisit | null = null;
  token: RoomToken | null = null;
  call: Call | null = null;
  /** The camera and microphone from the device check, kept live so joining is instant. */
  media: MediaStream | null = null;
  videoProblem: MediaProblem | null = null;
  audioProblem: MediaProblem | null = null;
  audioOnly = false;
  cameraId: string | undefined;
  microphoneId: string | undefined;
  speakerId: string | undefined;
  speakerOk: boolean | null = null;
  network: NetworkResult | null = null;
  networkRun: Promise<NetworkResult> | null = null;
  /** Form answers kept across a language switch. */
  readonly draft = new Map<string, string>();
  endReason: EndReason = "ended";
  endMessage = "";

  private readonly header: HTMLElement;
  private readonly main: HTMLElement;
  private readonly announcer: HTMLElement;
  private current: { render: () => Screen; screen: Screen } | null = null;
  private callOff: (() => void) | null = null;

  constructor(root: HTMLElement) {
    initLang();
    this.header = h("header", { class: "topbar" });
    this.main = h("main", { id: "main", class: "page", tabindex: -1 });
    this.announcer = h("div", { class: "sr-only", role: "status", "aria-live": "polite" });
    replace(root, this.header, this.main, this.announcer);
    onLangChange(() => void this.languageChanged());
    this.renderHeader();
  }

  // ---- shell ----------------------------------------------------------------------------

  show(render: () => Screen, focus = true): void {
    this.current?.screen.dispose?.();
    const screen = render();
    this.current = { render, screen };
    replace(this.main, screen.el);
    this.main.dataset.screen = screen.el.dataset.screen ?? "";
    this.renderHeader();
    // Each page has its own title (what a screen reader and the tab say first).
    const title = screen.el.querySelector("h1")?.textContent?.trim();
    document.title = title ? `${title} · ${this.info?.clinic_name ?? t("app.name")}` : t("app.name");
    window.scrollTo(0, 0);
    if (focus) {
      const heading = screen.el.querySelector<HTMLElement>("h1");
      if (heading) {
        heading.tabIndex = -1;
        heading.focus({ preventScroll: true });
      }
    }
  }

  /** Says `text` to screen readers (and nothing on screen). */
  announce(text: string): void {
    this.announcer.textContent = "";
    window.setTimeout(() => (this.announcer.textContent = text), 50);
  }

  private renderHeader() {
    const other = LANGS.find((l) => l !== lang()) ?? "en";
    replace(
      this.header,
      h("span", { class: "brand" }, this.info?.clinic_name ?? t("app.name")),
      h(
        "button",
        { type: "button", class: "lang-switch", lang: other, onclick: () => setLang(other), "aria-label": `${LANG_NAMES[other]}: ${t("app.switchLanguage")}` },
        svg("globe"),
        h("span", {}, LANG_NAMES[other]),
      ),
    );
  }

  private async languageChanged() {
    if (this.info && this.code) {
      this.content = await this.api.joinContent(this.code, lang()).catch(() => this.content);
    }
    this.renderHeader();
    if (this.current) {
      const render = this.current.render;
      this.show(render, false);
      this.header.querySelector<HTMLElement>(".lang-switch")?.focus();
    }
  }

  // ---- the flow -------------------------------------------------------------------------

  async start(): Promise<void> {
    const match = /^\/join\/([A-Za-z0-9]+)\/?$/.exec(window.location.pathname);
    this.code = match?.[1] ?? "";
    const reason = unsupportedReason();
    if (reason) {
      this.show(() => screens.unsupported(this, reason));
      return;
    }
    if (!this.code) {
      this.show(() => screens.linkProblem(this, null));
      return;
    }
    this.show(() => screens.loading());
    this.saved = loadVisit(this.code);
    try {
      this.info = await this.api.joinInfo(this.code);
    } catch (e) {
      const problem = e instanceof ApiError ? (e.problem ?? null) : null;
      if (this.saved?.token && problem?.type.endsWith("/visit-ended")) {
        // The visit ended while this tab was away: the survey still waits.
        this.token = { token: this.saved.token, room: this.saved.room } as RoomToken;
        this.api.accessToken = this.saved.token;
        this.endReason = "ended";
        this.show(() => screens.ended(this));
        return;
      }
      this.show(() => screens.linkProblem(this, problem, e instanceof ApiError ? e.status : 0));
      return;
    }
    this.content = await this.api.joinContent(this.code, lang()).catch(() => null);
    if (this.saved) {
      await this.rejoin(this.saved);
      return;
    }
    this.show(() => screens.welcome(this));
  }

  /** Back from a reload: check in again silently and return to the waiting room or the visit. */
  private async rejoin(saved: SavedVisit) {
    this.show(() => screens.loading(t("rejoin.title")));
    this.audioOnly = saved.audioOnly;
    this.cameraId = saved.cameraId;
    this.microphoneId = saved.microphoneId;
    this.speakerId = saved.speakerId;
    try {
      await this.checkInToken(saved.name);
    } catch (e) {
      this.failed(e);
      return;
    }
    await this.acquireMedia();
    this.knock();
    if (this.token?.state === "admitted" && saved.joined) {
      this.enterVisit();
    } else if (this.token?.state === "admitted") {
      this.show(() => screens.ready(this));
    } else {
      this.show(() => screens.waiting(this));
    }
  }

  /** Camera and microphone with the choices made, without asking anything on screen. */
  async acquireMedia(): Promise<void> {
    if (this.media?.getTracks().some((t) => t.readyState === "live")) return;
    const result = await capture({
      cameraId: this.cameraId,
      microphoneId: this.microphoneId,
      lowEnd: this.browser.lowEnd,
      audioOnly: this.audioOnly,
    });
    this.media = result.stream;
    this.videoProblem = this.audioOnly ? null : result.videoProblem;
    this.audioProblem = result.audioProblem;
  }

  goCheck(): void {
    this.show(() => screens.deviceCheck(this));
  }

  goCheckIn(): void {
    this.show(() => screens.checkIn(this));
  }

  /** POST /join: a room token (the same participant every time for this link). */
  async checkInToken(name: string): Promise<RoomToken> {
    const token = await this.api.join(this.code, name ? { display_name: name } : {});
    this.token = token;
    this.api.accessToken = token.token;
    return token;
  }

  deviceReport(): DeviceCheck {
    return {
      camera_ok: !this.audioOnly && !!this.media?.getVideoTracks().length,
      microphone_ok: !!this.media?.getAudioTracks().length,
      speaker_ok: this.speakerOk === true,
      network: this.network?.grade ?? "poor",
    };
  }

  /** The check-in form was sent: report the device check, store the answers, knock. */
  async completeCheckIn(name: string, answers: { question_id: string; answer: string }[]): Promise<void> {
    const token = await this.checkInToken(name);
    const content = this.content;
    if (token.role === "patient") {
      await this.api.deviceCheck(token.room, this.deviceReport()).catch(() => undefined);
    }
    if (content) {
      await this.api.checkIn(token.room, {
        answers: token.role === "patient" ? answers : [],
        consent_version: content.consent.version,
        consent_accepted: true,
        lang: lang(),
      });
    }
    this.saved = {
      name,
      role: token.role,
      room: token.room,
      participantId: token.participant_id,
      cameraId: this.cameraId,
      microphoneId: this.microphoneId,
      speakerId: this.speakerId,
      audioOnly: this.audioOnly,
      check: this.deviceReport(),
      token: token.token,
    };
    saveVisit(this.code, this.saved);
    this.knock();
    if (token.state === "admitted") {
      this.show(() => screens.ready(this));
    } else {
      this.show(() => screens.waiting(this));
    }
  }

  /** Connects signaling: in the lobby, this is the knock the clinician sees. */
  knock(): void {
    if (!this.token) return;
    this.callOff?.();
    this.call?.close();
    const call = new Call({
      token: this.token.token,
      lowEnd: this.browser.lowEnd,
      refreshToken: async () => {
        const fresh = await this.checkInToken(this.saved?.name ?? "");
        if (this.saved) saveVisit(this.code, { ...this.saved, token: fresh.token });
        return fresh.token;
      },
    });
    this.call = call;
    this.callOff = call.on((e) => this.onCallEvent(e));
    call.connect();
  }

  private onCallEvent(e: CallEvent) {
    if (e.type !== "state") return;
    const screen = this.main.dataset.screen;
    switch (e.state) {
      case "admitted":
        if (screen === "waiting") {
          this.show(() => screens.ready(this));
          document.title = `● ${document.title}`;
          void playTones(READY_CHIME, this.speakerId).catch(() => undefined);
        }
        break;
      case "denied":
        this.stopAll();
        this.show(() => screens.closed(this, "denied"));
        break;
      case "removed":
        this.stopAll();
        this.show(() => screens.closed(this, "removed"));
        break;
      case "ended":
        this.stopAll();
        this.endReason = "ended";
        this.show(() => screens.ended(this));
        break;
      case "replaced":
        this.show(() => screens.replaced(this));
        break;
      case "failed":
        this.show(() => screens.linkProblem(this, null, 401));
        break;
      default:
        break;
    }
  }

  /** "Join the visit": media starts now, never before the person chose to. */
  enterVisit(): void {
    if (this.saved) {
      this.saved.joined = true;
      saveVisit(this.code, this.saved);
    }
    this.call?.startMedia(this.media, this.cameraId);
    this.show(() => screens.visit(this));
  }

  /** Leaving on purpose: the survey, with a way back in while the visit lasts. */
  leave(fromLobby = false): void {
    this.call?.leave();
    this.callOff?.();
    this.stopAll();
    if (this.saved) {
      this.saved.joined = false;
      saveVisit(this.code, this.saved);
    }
    this.endReason = fromLobby ? "left-lobby" : "left";
    this.show(() => screens.ended(this));
  }

  /** Back in from the "you left" page. */
  async comeBack(): Promise<void> {
    if (!this.saved) {
      window.location.reload();
      return;
    }
    await this.rejoin(this.saved);
  }

  markSurveyDone(): void {
    if (this.saved) {
      this.saved.surveyDone = true;
      saveVisit(this.code, this.saved);
    }
  }

  forget(): void {
    forgetVisit(this.code);
  }

  stopAll(): void {
    stopStream(this.media);
    this.media = null;
  }

  failed(e: unknown): void {
    const problem: Problem | null = e instanceof ApiError ? (e.problem ?? null) : null;
    this.show(() => screens.linkProblem(this, problem, e instanceof ApiError ? e.status : 0));
  }
}
