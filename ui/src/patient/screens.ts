// The patient pages, one function per screen. Each builds its DOM from the app's state and
// returns a dispose function for what it started (meters, timers, listeners).

import { ApiError } from "../api/client";
import type { IntakeQuestion, Problem, WaitEstimate, WaitingItem } from "../generated/proto";
import { ChatPanel } from "../components/chat";
import { h, replace, uniqueId } from "../components/dom";
import { svg } from "../components/icons";
import { videoFor } from "../components/video-pool";
import { VisitView } from "../components/visit-view";
import type { BrowserKind } from "../devices/browser";
import { LevelMeter, listDevices, playTones, stopStream, TEST_SOUND } from "../devices/media";
import { runNetworkTest, type NetworkResult } from "../devices/network";
import { formatVisitTime, lang, t, tn, type Key } from "../i18n";
import type { App, Screen } from "./app";

function screen(name: string, ...children: Parameters<typeof h>[2][]): HTMLElement {
  return h("section", { class: `screen screen-${name}`, "data-screen": name }, ...children);
}

function callClinic(app: App): HTMLElement {
  const phone = app.content?.clinic_phone;
  return h(
    "p",
    { class: "call-clinic" },
    svg("phone"),
    phone
      ? h("span", {}, t("common.callClinicAt"), " ", h("a", { href: `tel:${phone.replace(/[^0-9+]/g, "")}` }, phone))
      : h("span", {}, t("common.callClinic")),
  );
}

// ---- simple pages ---------------------------------------------------------------------

export function loading(text = t("loading.title")): Screen {
  return { el: screen("loading", h("h1", {}, text), h("p", { class: "spinner", role: "status" }, t("loading.wait"))) };
}

export function unsupported(app: App, reason: string): Screen {
  const copy = h("button", {
    type: "button",
    class: "button secondary",
    onclick: () => void navigator.clipboard?.writeText(window.location.href).then(() => app.announce(t("unsupported.copied"))),
  }, t("unsupported.copy"));
  return {
    el: screen(
      "unsupported",
      h("h1", {}, t("unsupported.title")),
      h("p", { class: "lead" }, reason === "insecure" ? t("unsupported.insecure") : t("unsupported.body")),
      h("ul", { class: "browser-list" }, ...(["unsupported.chrome", "unsupported.safari", "unsupported.edge", "unsupported.firefox", "unsupported.samsung"] as Key[]).map((k) => h("li", {}, t(k)))),
      h("p", {}, t("unsupported.howto")),
      copy,
      callClinic(app),
    ),
  };
}

export function linkProblem(app: App, problem: Problem | null, status = 404): Screen {
  const slug = problem?.type.split("/").pop() ?? "";
  let title: Key = "problem.unknown.title";
  let body: Key = "problem.unknown.body";
  if (slug === "expired-link") [title, body] = ["problem.expired.title", "problem.expired.body"];
  else if (slug === "revoked-link") [title, body] = ["problem.revoked.title", "problem.revoked.body"];
  else if (slug === "visit-ended") [title, body] = ["problem.ended.title", "problem.ended.body"];
  else if (slug === "removed") [title, body] = ["closed.removed.title", "closed.removed.body"];
  else if (status === 429) [title, body] = ["problem.busy.title", "problem.busy.body"];
  else if (status === 0) [title, body] = ["problem.offline.title", "problem.offline.body"];
  else if (status === 401) [title, body] = ["problem.access.title", "problem.access.body"];
  else if (status >= 500) [title, body] = ["problem.server.title", "problem.server.body"];
  const retry = status === 0 || status === 429 || status >= 500 || status === 401;
  return {
    el: screen(
      "problem",
      h("div", { class: "notice warn" }, svg("alert"), h("h1", {}, t(title))),
      h("p", { class: "lead" }, t(body)),
      callClinic(app),
      retry ? h("button", { type: "button", class: "button primary", onclick: () => window.location.reload() }, t("common.tryAgain")) : null,
      problem?.request_id ? h("p", { class: "fine" }, t("problem.reference", { id: problem.request_id })) : null,
    ),
  };
}

export function welcome(app: App): Screen {
  const info = app.info;
  if (!info) return loading();
  const guest = info.role !== "patient";
  return {
    el: screen(
      "welcome",
      h("h1", {}, guest ? t("welcome.guestTitle", { clinic: info.clinic_name }) : t("welcome.title", { clinic: info.clinic_name })),
      h("p", { class: "when" }, svg("clock"), h("span", {}, formatVisitTime(info.scheduled_at, info.time_zone))),
      info.running_late_minutes ? h("p", { class: "notice info" }, tn("waiting.late", info.running_late_minutes)) : null,
      h("p", { class: "lead" }, t("welcome.body")),
      h(
        "ol",
        { class: "steps" },
        h("li", {}, t("welcome.step1")),
        h("li", {}, t("welcome.step2")),
        h("li", {}, t("welcome.step3")),
      ),
      h("p", {}, t("welcome.privacy")),
      h("button", { type: "button", class: "button primary big", onclick: () => app.goCheck() }, t("welcome.start")),
    ),
  };
}

// ---- device and network check ---------------------------------------------------------

function permissionHelp(kind: BrowserKind, what: "camera" | "microphone" | "both"): HTMLElement {
  const steps = t(`perm.${kind}` as Key).split("\n");
  return h(
    "div",
    { class: "perm-help" },
    h("p", {}, what === "camera" ? t("perm.cameraBlocked") : what === "microphone" ? t("perm.micBlocked") : t("perm.bothBlocked")),
    h("p", { class: "perm-how" }, t("perm.howTo")),
    h("ol", {}, ...steps.map((s) => h("li", {}, s))),
  );
}

function select(label: string, devices: MediaDeviceInfo[], current: string | undefined, fallback: string, onchange: (id: string) => void): HTMLElement | null {
  if (devices.length < 2) return null;
  const id = uniqueId("device");
  const el = h("select", { id, onchange: (e: Event) => onchange((e.target as HTMLSelectElement).value) },
    ...devices.map((d, i) => h("option", { value: d.deviceId, selected: d.deviceId === current }, d.label || `${fallback} ${i + 1}`)));
  return h("div", { class: "field" }, h("label", { for: id }, label), el);
}

function networkSummary(result: NetworkResult | null): HTMLElement {
  if (!result) {
    return h("p", { class: "status pending", role: "status" }, t("net.testing"));
  }
  const words: Record<NetworkResult["grade"], [Key, Key]> = {
    good: ["net.grade.good", "net.grade.goodBody"],
    fair: ["net.grade.fair", "net.grade.fairBody"],
    poor: ["net.grade.poor", "net.grade.poorBody"],
    blocked: ["net.grade.blocked", "net.grade.blockedBody"],
  };
  const [title, body] = words[result.grade];
  const path: Record<NetworkResult["path"], Key> = { udp: "net.path.udp", tcp: "net.path.tcp", unknown: "net.path.unknown", none: "net.path.none" };
  return h(
    "div",
    { class: `net-result grade-${result.grade}`, role: "status", "data-grade": result.grade, "data-path": result.path },
    h("p", { class: "status" }, svg(result.grade === "good" ? "check" : result.grade === "fair" ? "wifi" : "alert"), h("strong", {}, t(title))),
    h("p", {}, t(body)),
    h(
      "details",
      {},
      h("summary", {}, t("net.details")),
      h(
        "dl",
        {},
        h("dt", {}, t("net.rtt")), h("dd", {}, result.rttMs === null ? "–" : `${result.rttMs} ms`),
        h("dt", {}, t("net.down")), h("dd", {}, result.downMbps === null ? "–" : `${result.downMbps} Mbps`),
        h("dt", {}, t("net.up")), h("dd", {}, result.upMbps === null ? "–" : `${result.upMbps} Mbps`),
        h("dt", {}, t("net.path")), h("dd", {}, t(path[result.path])),
      ),
    ),
  );
}

export function deviceCheck(app: App): Screen {
  let meter: LevelMeter | null = null;
  let disposed = false;
  let heard = false;
  const cameraSection = h("section", { class: "check-item", "aria-labelledby": "cam-h" });
  const micSection = h("section", { class: "check-item", "aria-labelledby": "mic-h" });
  const speakerSection = h("section", { class: "check-item", "aria-labelledby": "spk-h" });
  const netSection = h("section", { class: "check-item", "aria-labelledby": "net-h" });
  const continueButton = h("button", { type: "button", class: "button primary big", onclick: () => app.goCheckIn() }, t("check.continue"));

  const recapture = async (opts: { audioOnly?: boolean } = {}) => {
    meter?.stop();
    meter = null;
    stopStream(app.media);
    app.media = null;
    if (opts.audioOnly !== undefined) app.audioOnly = opts.audioOnly;
    await app.acquireMedia();
    if (!disposed) void drawDevices();
  };

  const drawDevices = async () => {
    const devices = await listDevices();
    const stream = app.media;
    const video = stream?.getVideoTracks()[0];
    const audio = stream?.getAudioTracks()[0];
    if (video) app.cameraId = video.getSettings().deviceId ?? app.cameraId;
    if (audio) app.microphoneId = audio.getSettings().deviceId ?? app.microphoneId;

    // Camera
    let cameraBody: (HTMLElement | null)[];
    if (video && stream) {
      const preview = h("video", { class: "preview mirror", autoplay: true, playsinline: true, "aria-label": t("check.cameraPreview") });
      preview.muted = true;
      preview.srcObject = new MediaStream([video]);
      void preview.play().catch(() => undefined);
      cameraBody = [
        preview,
        h("p", { class: "status ok" }, svg("check"), h("span", {}, t("check.cameraOk"))),
        select(t("check.chooseCamera"), devices.cameras, app.cameraId, t("check.camera"), (id) => {
          app.cameraId = id;
          void recapture();
        }),
      ];
    } else if (app.audioOnly) {
      cameraBody = [
        h("p", { class: "status" }, t("check.audioOnlyChosen")),
        h("button", { type: "button", class: "button secondary", onclick: () => void recapture({ audioOnly: false }) }, t("check.useCamera")),
      ];
    } else {
      const problem = app.videoProblem;
      cameraBody = [
        problem === "denied"
          ? permissionHelp(app.browser.kind, app.audioProblem === "denied" ? "both" : "camera")
          : h("p", { class: "status warn" }, svg("alert"), h("span", {}, problem === "in-use" ? t("check.cameraInUse") : problem === "not-found" ? t("check.noCamera") : t("check.cameraFailed"))),
        h(
          "div",
          { class: "actions" },
          h("button", { type: "button", class: "button secondary", onclick: () => void recapture() }, t("common.tryAgain")),
          audio
            ? h("button", { type: "button", class: "button primary", "data-action": "audio-only", onclick: () => void recapture({ audioOnly: true }) }, t("check.audioOnly"))
            : null,
        ),
      ];
    }
    replace(cameraSection, h("h2", { id: "cam-h" }, svg("camera"), t("check.camera")), ...cameraBody);

    // Microphone
    const meterEl = h("meter", { id: "mic-level", min: 0, max: 1, low: 0.2, high: 0.9, optimum: 0.5, value: 0 });
    const micStatus = h("p", { class: heard ? "status ok" : "status", "aria-live": "polite" }, heard ? t("check.micOk") : t("check.micSay"));
    let micBody: (HTMLElement | null)[];
    if (audio) {
      micBody = [
        h("label", { for: "mic-level", class: "meter-label" }, t("check.micLevel")),
        meterEl,
        micStatus,
        select(t("check.chooseMic"), devices.microphones, app.microphoneId, t("check.microphone"), (id) => {
          app.microphoneId = id;
          void recapture();
        }),
      ];
      meter?.stop();
      meter = new LevelMeter(audio, (level) => {
        meterEl.value = level;
        if (!heard && level > 0.25) {
          heard = true;
          micStatus.className = "status ok";
          micStatus.textContent = t("check.micOk");
        }
      });
    } else {
      micBody = [
        app.audioProblem === "denied" && app.videoProblem !== "denied"
          ? permissionHelp(app.browser.kind, "microphone")
          : app.audioProblem === "denied"
            ? h("p", { class: "status warn" }, t("check.micBlockedToo"))
            : h("p", { class: "status warn" }, svg("alert"), h("span", {}, app.audioProblem === "in-use" ? t("check.micInUse") : t("check.noMic"))),
        h("p", {}, t("check.noMicChat")),
      ];
    }
    replace(micSection, h("h2", { id: "mic-h" }, svg("mic"), t("check.microphone")), ...micBody);

    // Speaker
    const speakerStatus = h("p", { class: "status", "aria-live": "polite" },
      app.speakerOk === true ? t("check.speakerOk") : app.speakerOk === false ? t("check.speakerNo") : "");
    const answer = h("div", { class: "actions", hidden: app.speakerOk !== null ? false : true },
      h("p", { class: "question" }, t("check.heard")),
      h("button", { type: "button", class: "button secondary", "data-action": "heard-yes", onclick: () => { app.speakerOk = true; void drawDevices(); } }, t("common.yes")),
      h("button", { type: "button", class: "button secondary", onclick: () => { app.speakerOk = false; void drawDevices(); } }, t("common.no")),
    );
    const play = h("button", {
      type: "button",
      class: "button secondary",
      "data-action": "test-sound",
      onclick: async () => {
        speakerStatus.textContent = t("check.playing");
        await playTones(TEST_SOUND, app.speakerId).catch(() => undefined);
        speakerStatus.textContent = "";
        answer.hidden = false;
        answer.querySelector("button")?.focus();
      },
    }, svg("speaker"), t("check.playSound"));
    replace(
      speakerSection,
      h("h2", { id: "spk-h" }, svg("speaker"), t("check.speaker")),
      h("p", {}, t("check.speakerHow")),
      play,
      answer,
      speakerStatus,
      app.speakerOk === false ? h("ul", { class: "tips" }, h("li", {}, t("check.tipVolume")), h("li", {}, t("check.tipSilent")), h("li", {}, t("check.tipOther"))) : null,
      app.browser.canChooseSpeaker
        ? select(t("check.chooseSpeaker"), devices.speakers, app.speakerId, t("check.speaker"), (id) => (app.speakerId = id))
        : null,
    );
  };

  const drawNetwork = () =>
    replace(netSection, h("h2", { id: "net-h" }, svg("wifi"), t("check.network")), networkSummary(app.network));

  const el = screen(
    "check",
    h("h1", {}, t("check.title")),
    h("p", { class: "lead" }, t("check.lead")),
    cameraSection,
    micSection,
    speakerSection,
    netSection,
    continueButton,
  );
  replace(cameraSection, h("h2", { id: "cam-h" }, svg("camera"), t("check.camera")), h("p", { class: "status pending" }, t("check.asking")));
  drawNetwork();

  void (async () => {
    await app.acquireMedia();
    if (!disposed) await drawDevices();
  })();
  if (!app.networkRun) {
    app.networkRun = app.api
      .networkTestInfo(app.code)
      .catch(() => null)
      .then((info) => runNetworkTest(app.code, info));
  }
  void app.networkRun.then((result) => {
    app.network = result;
    if (!disposed) drawNetwork();
  });

  return {
    el,
    dispose() {
      disposed = true;
      meter?.stop();
    },
  };
}

// ---- check-in ---------------------------------------------------------------------------

function questionField(q: IntakeQuestion, app: App): HTMLElement {
  const id = `q-${q.id}`;
  const helpId = `${id}-help`;
  const value = app.draft.get(q.id) ?? "";
  const remember = (e: Event) => app.draft.set(q.id, (e.target as HTMLInputElement).value);
  const label = q.required ? `${q.label} ${t("form.required")}` : q.label;
  const help = q.help ? h("p", { class: "hint", id: helpId }, q.help) : null;
  if (q.kind === "yes_no" || q.kind === "choice") {
    const options = q.kind === "yes_no" ? [["yes", t("common.yes")], ["no", t("common.no")]] : q.choices.map((c) => [c, c]);
    return h(
      "fieldset",
      { class: "field choice", id, "data-question": q.id, "aria-describedby": help ? helpId : undefined },
      h("legend", {}, label),
      help,
      ...options.map(([v = "", text = ""], i) => {
        const optId = `${id}-${i}`;
        return h("div", { class: "option" },
          h("input", { type: "radio", id: optId, name: id, value: v, checked: value === v, required: q.required && i === 0, onchange: remember }),
          h("label", { for: optId }, text));
      }),
      h("p", { class: "field-error", id: `${id}-error` }),
    );
  }
  const input =
    q.kind === "long_text"
      ? h("textarea", { id, name: id, rows: 4, maxlength: 2000, required: q.required, "aria-describedby": help ? helpId : undefined, oninput: remember }, value)
      : h("input", { id, name: id, type: "text", maxlength: 2000, required: q.required, value, "aria-describedby": help ? helpId : undefined, oninput: remember });
  return h("div", { class: "field", "data-question": q.id }, h("label", { for: id }, label), help, input, h("p", { class: "field-error", id: `${id}-error` }));
}

export function checkIn(app: App): Screen {
  const content = app.content;
  const guest = app.info?.role !== "patient";
  const summary = h("div", { class: "error-summary", role: "alert", tabindex: -1, hidden: true });
  const nameInput = h("input", {
    id: "name",
    name: "name",
    type: "text",
    autocomplete: "name",
    required: true,
    maxlength: 100,
    value: app.draft.get("__name") ?? app.saved?.name ?? "",
    "aria-describedby": "name-hint",
    oninput: (e: Event) => app.draft.set("__name", (e.target as HTMLInputElement).value),
  });
  const consentBox = h("input", {
    id: "consent",
    type: "checkbox",
    required: true,
    checked: app.draft.get("__consent") === "1",
    onchange: (e: Event) => app.draft.set("__consent", (e.target as HTMLInputElement).checked ? "1" : ""),
  });
  const submit = h("button", { type: "submit", class: "button primary big" }, t("checkin.submit"));

  const showErrors = (errors: { field: string; text: string }[]) => {
    el.querySelectorAll("[aria-invalid]").forEach((n) => n.removeAttribute("aria-invalid"));
    el.querySelectorAll<HTMLElement>(".field-error").forEach((n) => (n.textContent = ""));
    if (!errors.length) {
      summary.hidden = true;
      return;
    }
    replace(
      summary,
      h("h2", {}, t("form.fix")),
      h("ul", {}, ...errors.map((e) => h("li", {}, h("a", { href: `#${e.field}`, onclick: (ev: Event) => { ev.preventDefault(); el.querySelector<HTMLElement>(`#${e.field} input, #${e.field}`)?.focus(); } }, e.text)))),
    );
    for (const e of errors) {
      const field = el.querySelector<HTMLElement>(`#${e.field}`);
      field?.setAttribute("aria-invalid", "true");
      const msg = el.querySelector<HTMLElement>(`#${e.field}-error`);
      if (msg) msg.textContent = e.text;
    }
    summary.hidden = false;
    summary.focus();
  };

  const onSubmit = async (e: Event) => {
    e.preventDefault();
    const errors: { field: string; text: string }[] = [];
    const name = nameInput.value.trim();
    if (!name) errors.push({ field: "name", text: t("checkin.nameMissing") });
    const answers: { question_id: string; answer: string }[] = [];
    for (const q of guest ? [] : (content?.intake ?? [])) {
      const v = (app.draft.get(q.id) ?? "").trim();
      if (q.required && !v) errors.push({ field: `q-${q.id}`, text: t("form.answer", { question: q.label }) });
      if (v) answers.push({ question_id: q.id, answer: v });
    }
    if (!consentBox.checked) errors.push({ field: "consent", text: t("checkin.consentMissing") });
    showErrors(errors);
    if (errors.length) return;
    submit.disabled = true;
    submit.textContent = t("checkin.sending");
    try {
      await app.completeCheckIn(name, answers);
    } catch (err) {
      submit.disabled = false;
      submit.textContent = t("checkin.submit");
      if (err instanceof ApiError && (err.status === 404 || err.status === 410 || err.status === 403)) {
        app.failed(err);
        return;
      }
      showErrors([{ field: "name", text: err instanceof Error ? err.message : t("chat.failed") }]);
    }
  };

  const el = screen(
    "checkin",
    h("h1", {}, t("checkin.title")),
    h("p", { class: "lead" }, t("checkin.lead", { clinic: app.info?.clinic_name ?? "" })),
    summary,
    h(
      "form",
      { novalidate: true, onsubmit: (e: Event) => void onSubmit(e) },
      h(
        "div",
        { class: "field", id: "name-field" },
        h("label", { for: "name" }, `${t("checkin.name")} ${t("form.required")}`),
        h("p", { class: "hint", id: "name-hint" }, guest ? t("checkin.nameHintGuest") : t("checkin.nameHint")),
        nameInput,
        h("p", { class: "field-error", id: "name-error" }),
      ),
      !guest && content?.intake.length
        ? h("div", { class: "intake" }, h("h2", {}, t("checkin.questions", { clinic: content.clinic_name })), ...content.intake.map((q) => questionField(q, app)))
        : null,
      content
        ? h(
            "section",
            { class: "consent", "aria-labelledby": "consent-title" },
            h("h2", { id: "consent-title" }, content.consent.title),
            ...content.consent.paragraphs.map((p) => h("p", {}, p)),
            h("div", { class: "option consent-box" }, consentBox, h("label", { for: "consent" }, content.consent.checkbox)),
            h("p", { class: "field-error", id: "consent-error" }),
          )
        : null,
      submit,
    ),
  );
  return { el };
}

// ---- waiting room -----------------------------------------------------------------------

function waitingItem(item: WaitingItem): HTMLElement {
  if (item.kind === "video" && item.src) {
    const video = h("video", { controls: true, preload: "metadata", playsinline: true, src: item.src, "aria-label": item.title });
    if (item.captions) {
      video.appendChild(h("track", { kind: "captions", src: item.captions, srclang: lang(), label: item.title, default: true }));
    }
    return h("article", { class: "content-item video" }, h("h3", {}, item.title), video, ...item.paragraphs.map((p) => h("p", {}, p)));
  }
  if (item.kind === "article") {
    return h("article", { class: "content-item" }, h("details", {}, h("summary", {}, h("h3", {}, item.title)), ...item.paragraphs.map((p) => h("p", {}, p))));
  }
  return h("article", { class: "content-item" }, h("h3", {}, item.title), ...item.paragraphs.map((p) => h("p", {}, p)));
}

function chatFor(app: App, title: string, hint?: string): ChatPanel {
  const panel: ChatPanel = new ChatPanel({
    title,
    hint,
    myId: () => app.call?.me?.id ?? app.token?.participant_id,
    nameOf: (id, role) => {
      const p = app.call?.participants.get(id);
      if (p) return p.name;
      return role === "provider" ? t("chat.careTeam") : t("chat.someone");
    },
    send: async (text) => {
      if (!app.token) throw new Error(t("chat.failed"));
      const message = await app.api.postChat(app.token.room, { text });
      panel.add([message]);
    },
  });
  return panel;
}

export function waiting(app: App): Screen {
  const call = app.call;
  const estimate = h("div", { class: "wait-estimate", role: "status", "aria-live": "polite" }, t("waiting.estimating"));
  const late = h("p", { class: "notice info late", role: "status", hidden: true });
  const connection = h("p", { class: "connection", "aria-live": "polite" });
  const chat = chatFor(app, t("waiting.chatTitle"), t("waiting.chatHint"));
  let disposed = false;

  const drawEstimate = (e: WaitEstimate | null) => {
    if (!e || e.minutes === null) {
      replace(estimate, h("p", {}, t("waiting.soon")));
      return;
    }
    replace(
      estimate,
      h("p", { class: "big-number" }, e.minutes <= 1 ? t("waiting.next") : tn("waiting.minutes", e.minutes)),
      e.ahead > 0 ? h("p", {}, tn("waiting.ahead", e.ahead)) : null,
    );
  };
  const drawLate = () => {
    const minutes = call?.runningLate ?? null;
    late.hidden = !minutes;
    late.textContent = minutes ? tn("waiting.late", minutes) : "";
  };
  const drawConnection = () => {
    const status = call?.connection ?? "connecting";
    connection.className = `connection ${status}`;
    connection.textContent = status === "connected" ? t("waiting.connected") : status === "reconnecting" ? t("waiting.reconnecting") : t("waiting.connecting");
  };
  const refresh = async () => {
    if (!app.token || disposed) return;
    drawEstimate(await app.api.wait(app.token.room).catch(() => null));
  };

  let preview: HTMLElement | null = null;
  const video = app.media?.getVideoTracks()[0];
  if (video) {
    const v = h("video", { class: "preview mirror small", autoplay: true, playsinline: true, "aria-label": t("check.cameraPreview") });
    v.muted = true;
    v.srcObject = new MediaStream([video]);
    void v.play().catch(() => undefined);
    preview = v;
  }

  const el = screen(
    "waiting",
    h("h1", {}, t("waiting.title")),
    h("p", { class: "lead" }, t("waiting.lead", { clinic: app.info?.clinic_name ?? "" })),
    late,
    h("section", { class: "card", "aria-labelledby": "est-h" }, h("h2", { id: "est-h" }, t("waiting.estimateTitle")), estimate),
    connection,
    h("section", { class: "card self", "aria-labelledby": "self-h" }, h("h2", { id: "self-h" }, t("waiting.youTitle")), preview, h("p", {}, t("waiting.private"))),
    app.content?.waiting.length
      ? h("section", { class: "waiting-content", "aria-labelledby": "content-h" }, h("h2", { id: "content-h" }, t("waiting.contentTitle")), ...app.content.waiting.map(waitingItem))
      : null,
    chat.el,
    h("button", { type: "button", class: "button secondary", onclick: () => void app.leave(true) }, t("waiting.leave")),
  );

  drawLate();
  drawConnection();
  drawEstimate(null);
  void refresh();
  const timer = window.setInterval(() => void refresh(), 30000);
  if (app.token) {
    void app.api.chatLog(app.token.room).then((log) => chat.add(log.messages)).catch(() => undefined);
  }
  chat.add(call?.chat ?? []);
  const off = call?.on((e) => {
    if (e.type === "running_late") {
      drawLate();
      void refresh();
      app.announce(late.textContent ?? "");
    } else if (e.type === "connection") {
      drawConnection();
    } else if (e.type === "chat") {
      chat.add([e.message]);
    } else if (e.type === "state") {
      drawConnection();
    }
  });
  return {
    el,
    dispose() {
      disposed = true;
      window.clearInterval(timer);
      off?.();
    },
  };
}

export function ready(app: App): Screen {
  const hasVideo = !!app.media?.getVideoTracks().length;
  const hasAudio = !!app.media?.getAudioTracks().length;
  // Once admitted, the others' video already arrives; playing it out of sight keeps the
  // decoder warm, so pressing Join shows the clinician at once instead of after a keyframe.
  const warm = h("div", { class: "warm-up", "aria-hidden": "true" });
  const warmUp = () => {
    const streams = [...(app.call?.remote.values() ?? [])].flatMap((m) => (m.video ? [m.video] : []));
    replace(
      warm,
      ...streams.map((stream) => videoFor(stream)),
    );
  };
  warmUp();
  const off = app.call?.on((e) => e.type === "media" && warmUp());
  return {
    dispose: () => off?.(),
    el: screen(
      "ready",
      warm,
      h("h1", {}, t("ready.title")),
      h("p", { class: "sound-text" }, svg("speaker"), h("span", {}, t("ready.chime"))),
      h("p", { class: "lead" }, t("ready.lead")),
      h("p", {}, hasVideo ? t("ready.withVideo") : hasAudio ? t("ready.audioOnly") : t("ready.listenOnly")),
      h("button", { type: "button", class: "button primary big", "data-action": "join", onclick: () => app.enterVisit() }, t("ready.join")),
    ),
  };
}

// ---- the visit --------------------------------------------------------------------------

export function visit(app: App): Screen {
  const call = app.call;
  if (!call) return loading();
  const chat = chatFor(app, t("visit.chatTitle"));
  const dialog: HTMLDialogElement = h(
    "dialog",
    { class: "confirm", "aria-labelledby": "leave-h" },
    h("h2", { id: "leave-h" }, t("visit.leaveQuestion")),
    h("p", {}, t("visit.leaveBody")),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", class: "button secondary", onclick: () => dialog.close() }, t("visit.stay")),
      h("button", { type: "button", class: "button danger", "data-action": "confirm-leave", onclick: () => { dialog.close(); void app.leave(); } }, t("ctl.leave")),
    ),
  );
  const view = new VisitView({
    call,
    heading: t("visit.heading", { clinic: app.info?.clinic_name ?? "" }),
    canShareScreen: app.browser.canShareScreen,
    chat,
    onLeave: () => dialog.showModal(),
    announce: (text) => app.announce(text),
    speakerId: app.speakerId,
  });
  if (app.token) {
    void app.api.chatLog(app.token.room).then((log) => chat.add(log.messages)).catch(() => undefined);
  }
  const el = screen("visit", view.el, dialog);
  el.classList.add("full");
  return { el, dispose: () => view.dispose() };
}

// ---- after ------------------------------------------------------------------------------

function survey(app: App): HTMLElement {
  const status = h("p", { class: "status", role: "status" });
  if (app.saved?.surveyDone) {
    return h("section", { class: "card survey" }, h("p", { class: "status ok" }, svg("check"), h("span", {}, t("survey.thanks"))));
  }
  const ratings: Key[] = ["survey.r1", "survey.r2", "survey.r3", "survey.r4", "survey.r5"];
  const comment = h("textarea", { id: "survey-comment", rows: 3, maxlength: 2000 });
  const send = h("button", { type: "submit", class: "button primary" }, t("survey.send"));
  const form = h(
    "form",
    {
      class: "card survey",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        const picked = form.querySelector<HTMLInputElement>("input[name=rating]:checked");
        if (!picked) {
          status.textContent = t("survey.pick");
          form.querySelector<HTMLInputElement>("input[name=rating]")?.focus();
          return;
        }
        if (!app.token) return;
        send.disabled = true;
        try {
          await app.api.survey(app.token.room, { rating: Number(picked.value), comment: comment.value.trim() || undefined });
          app.markSurveyDone();
          replace(form, h("p", { class: "status ok" }, svg("check"), h("span", {}, t("survey.thanks"))));
          form.querySelector("p")?.setAttribute("tabindex", "-1");
          form.querySelector<HTMLElement>("p")?.focus();
        } catch (err) {
          send.disabled = false;
          status.textContent = err instanceof Error ? err.message : t("chat.failed");
        }
      },
    },
    h(
      "fieldset",
      { class: "rating" },
      h("legend", {}, t("survey.question")),
      ...ratings.map((k, i) =>
        h("div", { class: "option rate" }, h("input", { type: "radio", id: `rate-${i + 1}`, name: "rating", value: i + 1 }), h("label", { for: `rate-${i + 1}` }, t(k))),
      ),
    ),
    h("div", { class: "field" }, h("label", { for: "survey-comment" }, t("survey.comment")), comment),
    send,
    status,
  );
  return form;
}

export function ended(app: App): Screen {
  const reason = app.endReason;
  const title: Key = reason === "ended" ? "ended.title" : reason === "left" ? "left.title" : "leftLobby.title";
  const body: Key = reason === "ended" ? "ended.body" : reason === "left" ? "left.body" : "leftLobby.body";
  return {
    el: screen(
      "ended",
      h("h1", {}, t(title)),
      h("p", { class: "lead" }, t(body, { clinic: app.info?.clinic_name ?? "" })),
      reason !== "ended"
        ? h("button", { type: "button", class: "button primary", "data-action": "rejoin", onclick: () => void app.comeBack() }, reason === "left" ? t("left.rejoin") : t("leftLobby.again"))
        : null,
      reason !== "left-lobby" && app.token ? survey(app) : null,
      reason === "ended" ? h("p", {}, t("ended.close")) : null,
    ),
  };
}

export function closed(app: App, why: "denied" | "removed"): Screen {
  return {
    el: screen(
      "closed",
      h("h1", {}, why === "denied" ? t("closed.denied.title") : t("closed.removed.title")),
      h("p", { class: "lead" }, why === "denied" ? t("closed.denied.body") : t("closed.removed.body")),
      callClinic(app),
    ),
  };
}

export function replaced(app: App): Screen {
  return {
    el: screen(
      "replaced",
      h("h1", {}, t("replaced.title")),
      h("p", { class: "lead" }, t("replaced.body")),
      h("button", { type: "button", class: "button primary", onclick: () => void app.comeBack() }, t("replaced.here")),
    ),
  };
}
