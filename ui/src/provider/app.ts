// The clinician window: sign-in, today's queue, and the visit panel (lobby, invitations,
// running late, end). State lives in the app's controller; this file only draws it.
import { listen } from "@tauri-apps/api/event";
import { h, replace } from "../components/dom";
import { commands, EVENT } from "../generated/desktop";
import type { ApiError, AppEvent, AppStatus, Alert, Devices, NetworkCheck, Settings, SsoOptions } from "../generated/desktop";
import type { Participant, Queue, Visit, Channel, Invitee, EhrChoice } from "../generated/proto";
import { CallView } from "./call";
import { clock, connectionWords, deviceWords, queueOrder, stateWords, waited } from "./format";
import { networkCheckScreen } from "./netcheck";

interface View {
  settingsOpen: boolean;
  devices: Devices | null;
  settings: Settings | null;
  status: AppStatus | null;
  queue: Queue | null;
  selected: string | null;
  participants: Participant[];
  notice: { text: string; error: boolean } | null;
  busy: boolean;
  /** What the server shown on the sign-in screen offers: hospital sign-in, passwords. */
  sso: { server: string | null; options: SsoOptions } | null;
  /** The EHRs a visit can be started from (standalone SMART launch). */
  ehrs: EhrChoice[];
  /** The network check screen: shown or not, the latest check, the server typed on the
   * sign-in screen (signed out), and whether its text is shown to copy by hand. */
  netcheck: { open: boolean; check: NetworkCheck | null; server: string | null; showText: boolean };
}

const view: View = {
  settingsOpen: false, devices: null, settings: null, status: null, queue: null, selected: null, participants: [], notice: null, busy: false, sso: null, ehrs: [],
  netcheck: { open: false, check: null, server: null, showText: false },
};
let root: HTMLElement;
const call = new CallView(() => render());

async function startCall(visitId: string): Promise<void> {
  await select(visitId);
  await act(() => call.start(visitId));
  call.devices = await commands.devices().catch(() => null);
  render();
}

function message(e: unknown): string {
  const err = e as Partial<ApiError> | undefined;
  return typeof err?.message === "string" ? err.message : "Something went wrong. Try again.";
}

function notice(text: string, error = false): void {
  view.notice = { text, error };
  render();
}

async function act(what: () => Promise<unknown>, done?: string): Promise<void> {
  view.busy = true;
  render();
  try {
    await what();
    view.notice = done ? { text: done, error: false } : null;
  } catch (e) {
    view.notice = { text: message(e), error: true };
  } finally {
    view.busy = false;
    render();
  }
}

async function refreshParticipants(): Promise<void> {
  if (!view.selected) return;
  try {
    view.participants = await commands.participants(view.selected);
  } catch (e) {
    view.participants = [];
    notice(message(e), true);
  }
}

async function select(visitId: string | null): Promise<void> {
  view.selected = visitId;
  view.participants = [];
  render();
  await refreshParticipants();
  render();
}

function onEvent(event: AppEvent): void {
  switch (event.type) {
    case "status":
      view.status = event.status;
      if (!event.status.clinician) {
        view.queue = null;
        view.selected = null;
      }
      break;
    case "queue":
      view.queue = event.queue;
      if (view.status) view.status = { ...view.status, waiting: event.waiting };
      void refreshParticipants().then(render);
      break;
    case "alert":
      showAlert(event.alert);
      break;
    case "open_visit":
      void openRequested(event.visit_id, event.join);
      return;
    case "call":
      call.state = event.call.ended && !call.state ? null : event.call;
      break;
    case "chat":
      call.chat.push(event.message);
      break;
    case "devices":
      // Plugged in or out: the settings and the call's pickers show what is there now.
      view.devices = event.devices;
      call.devices = event.devices;
      break;
    case "show_network_check":
      // Taken so a window built later does not open it a second time.
      void commands.takePendingNetworkCheck().catch(() => false);
      void openNetworkCheck(null);
      return;
    case "network_check":
      view.netcheck.check = event.check;
      break;
  }
  render();
}

function showAlert(alert: Alert): void {
  view.notice = { text: `${alert.title}: ${alert.body}`, error: false };
  if (alert.kind !== "still_waiting") void select(view.selected ?? alert.visit_id);
}

async function openRequested(visitId: string, join: boolean): Promise<void> {
  // Taken so a window built later does not open it a second time.
  await commands.takePendingOpen().catch(() => null);
  if (join && !call.state) {
    await startCall(visitId);
  } else {
    await select(visitId);
  }
}

/** Shows the network check and runs it, against `server` when signed out (the sign-in
 * screen's address), else the app's own server. */
async function openNetworkCheck(server: string | null): Promise<void> {
  view.netcheck = { ...view.netcheck, open: true, server, showText: false };
  view.settingsOpen = false;
  view.notice = null;
  await runNetworkCheck();
}

/** A check asked for and not answered yet (a link and the window's start can both ask). */
let checking = false;

async function runNetworkCheck(): Promise<void> {
  if (checking) return;
  checking = true;
  view.netcheck.showText = false;
  const server = view.status?.clinician || view.status?.server_locked ? null : view.netcheck.server;
  try {
    await act(async () => {
      view.netcheck.check = await commands.networkCheck(server);
    });
  } finally {
    checking = false;
  }
}

async function copyNetworkCheck(): Promise<void> {
  const text = view.netcheck.check?.text;
  if (!text) return;
  try {
    await navigator.clipboard.writeText(text);
    notice("The results are copied. Paste them into your message to IT.");
  } catch {
    view.netcheck.showText = true;
    notice("Rounds could not reach the clipboard. Select the results below and copy them.", true);
  }
}

function networkCheckView(): HTMLElement {
  return networkCheckScreen(view.netcheck.check, {
    busy: view.busy,
    showText: view.netcheck.showText,
    run: runNetworkCheck,
    copy: copyNetworkCheck,
    back: () => {
      view.netcheck.open = false;
      view.notice = null;
      render();
    },
  });
}

async function toggleSettings(): Promise<void> {
  view.settingsOpen = !view.settingsOpen;
  if (view.settingsOpen) {
    [view.devices, view.settings] = await Promise.all([commands.devices(), commands.settings()]);
  }
  render();
}

function settingsPanel(): HTMLElement | null {
  const d = view.devices;
  const s = view.settings;
  if (!view.settingsOpen || !d || !s) return null;
  const choose = (id: string, label: string, list: { id: string; name: string }[], current: string | null, none: string) =>
    [
      h("label", { for: id }, label),
      h("select", { id },
        h("option", { value: "" }, list.length ? "System default" : none),
        list.map((x) => h("option", { value: x.id, selected: x.id === current }, x.name))),
    ];
  const noCamera = d.synthetic_allowed
    ? "No camera found: a labelled test card is sent instead (set by IT)"
    : "No camera found: others will see your name";
  return h(
    "form",
    {
      class: "settings card",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        const value = (id: string): string | null => {
          const el = document.getElementById(id) as HTMLSelectElement | null;
          return el && el.value ? el.value : null;
        };
        const startAtLogin = (document.getElementById("start-at-login") as HTMLInputElement | null)?.checked ?? false;
        await act(async () => {
          view.settings = await commands.setSettings({ ...s, camera: value("camera-choice"), microphone: value("mic-choice"), speaker: value("speaker-choice") });
          if (startAtLogin !== s.start_at_login) view.settings = await commands.setStartAtLogin(startAtLogin);
          view.settingsOpen = false;
        }, "Settings saved. They apply to your next call.");
      },
    },
    h("h2", {}, "Settings"),
    choose("camera-choice", "Camera", d.cameras, s.camera, noCamera),
    choose("mic-choice", "Microphone", d.microphones, s.microphone, "No microphone found"),
    choose("speaker-choice", "Speaker", d.speakers, s.speaker, "No speaker found"),
    h("label", { class: "check" }, h("input", { type: "checkbox", id: "start-at-login", checked: s.start_at_login }), " Start Rounds when I log in"),
    h("p", { class: "muted small" }, `Your sign-in is kept in ${view.status?.keychain ?? "the system keychain"}.`),
    h("div", { class: "row-buttons" },
      h("button", { class: "primary", type: "submit", disabled: view.busy }, "Save"),
      h("button", { type: "button", onclick: () => { view.settingsOpen = false; render(); } }, "Cancel"),
      h("button", { class: "quiet", type: "button", id: "settings-network-check", onclick: () => openNetworkCheck(null) }, "Check the network")),
  );
}

// ---- screens ----

/** Asks the server whether it offers the hospital sign-in; the sign-in screen follows. */
async function loadSso(server: string | null): Promise<void> {
  try {
    const options = await commands.ssoOptions(server);
    view.sso = { server, options };
  } catch {
    view.sso = null;
  }
  await loadEhrs(server);
  render();
}

/** Which EHRs the server can start a visit from; none if it cannot be asked. */
async function loadEhrs(server: string | null): Promise<void> {
  view.ehrs = await commands.ehrOptions(server).catch(() => []);
}

/** A standalone EHR launch: the EHR opens in the browser, the chosen visit opens here. */
async function startEhrLaunch(ehr: EhrChoice, server: string | null): Promise<void> {
  await act(
    () => commands.startEhrLaunch(server, ehr.iss),
    `${ehr.name} is open in your web browser. Sign in there and choose the patient; their visit opens here.`,
  );
}

function ehrButtons(server: string | null): HTMLElement | null {
  if (view.ehrs.length === 0) return null;
  return h(
    "div",
    { class: "ehr-launch" },
    view.ehrs.map((ehr) =>
      h("button", { type: "button", disabled: view.busy, "data-ehr": ehr.iss, onclick: () => startEhrLaunch(ehr, server) },
        `Open a patient from ${ehr.name}`)),
  );
}

async function signInSso(status: AppStatus, server: string): Promise<void> {
  view.notice = { text: "Your hospital's sign-in page is open in your web browser. Sign in there, then come back.", error: false };
  await act(async () => {
    view.status = await commands.signInSso(status.server_locked ? null : server);
    view.queue = await commands.queue();
    await loadEhrs(null);
  });
}

function signInScreen(status: AppStatus): HTMLElement {
  const server = h("input", {
    id: "server", type: "url", required: true, autocomplete: "url",
    placeholder: "https://rounds.your-hospital.org", value: status.server_url ?? "",
  });
  const email = h("input", { id: "email", type: "email", required: true, autocomplete: "username", value: status.last_email ?? "" });
  const password = h("input", { id: "password", type: "password", required: true, autocomplete: "current-password" });
  const sso = view.sso?.options;
  const passwords = sso?.password_login ?? true;
  const hospital = sso?.available
    ? [
        h("button", { class: "primary", type: "button", disabled: view.busy, onclick: () => signInSso(status, server.value) },
          "Sign in with your hospital account"),
        h("p", { class: "muted small" }, "Your hospital's sign-in page opens in your web browser."),
        passwords ? h("p", { class: "muted" }, "Or with a Rounds password:") : null,
      ]
    : null;
  if (!status.server_locked) {
    server.addEventListener("change", () => void loadSso(server.value || null));
  }
  const form = h(
    "form",
    {
      class: "signin card",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        await act(async () => {
          view.status = await commands.signIn({
            server_url: status.server_locked ? undefined : server.value,
            email: email.value,
            password: password.value,
          });
          view.queue = await commands.queue();
          await loadEhrs(null);
        });
      },
    },
    h("h1", {}, "Sign in to Rounds"),
    status.server_locked
      ? h("p", { class: "muted" }, `Server: ${status.server_url ?? ""} (set by your IT department)`)
      : [h("label", { for: "server" }, "Server address"), server],
    hospital,
    passwords
      ? [
          h("label", { for: "email" }, "Email"),
          email,
          h("label", { for: "password" }, "Password"),
          password,
          h("button", { class: sso?.available ? "" : "primary", type: "submit", disabled: view.busy }, view.busy ? "Signing in…" : "Sign in"),
        ]
      : null,
    view.ehrs.length
      ? [h("p", { class: "muted" }, "Or start from the patient's chart:"), ehrButtons(status.server_locked ? null : server.value || null)]
      : null,
    h("p", { class: "muted small" }, `Your sign-in is kept in ${status.keychain}, never in a file.`),
    h("button", {
      class: "quiet", type: "button", id: "open-network-check",
      onclick: () => openNetworkCheck(status.server_locked ? null : server.value || null),
    }, "Cannot connect? Check the network"),
  );
  return form;
}

function header(status: AppStatus): HTMLElement {
  const online = status.connection.state === "online";
  return h(
    "header",
    { class: "bar" },
    h("strong", { class: "brand" }, "Rounds"),
    h("span", { class: "clinic" }, status.clinician?.clinic_name ?? ""),
    h("span", { class: `pill ${online ? "ok" : "warn"}`, id: "connection" }, connectionWords(status)),
    h("span", { class: "pill", id: "waiting-count" },
      status.waiting === 1 ? "1 patient waiting" : `${status.waiting} patients waiting`),
    h("span", { class: "spacer" }),
    h("span", { class: "who" }, status.clinician?.display_name ?? ""),
    h("button", { class: "quiet", id: "settings", onclick: toggleSettings }, "Settings"),
    h("button", { class: "quiet", onclick: () => act(async () => { view.status = await commands.signOut(); }) }, "Sign out"),
  );
}

function visitRow(v: Visit, tz: string): HTMLElement {
  const device = deviceWords(v.device_check);
  return h(
    "li",
    { class: `visit ${v.state}${view.selected === v.id ? " selected" : ""}`, "data-visit": v.id },
    h(
      "button",
      { class: "row", onclick: () => select(v.id) },
      h("span", { class: "time" }, clock(v.scheduled_at, tz)),
      h("span", { class: "name" }, v.patient_name ?? "Patient"),
      h("span", { class: `state ${v.state}` }, stateWords(v.state)),
      v.state === "waiting" && v.waiting_since
        ? h("span", { class: "waited" }, `waiting ${waited(v.waiting_since, new Date())}`)
        : null,
      device ? h("span", { class: `device ${device.ok ? "ok" : "warn"}` }, device.text) : null,
      v.running_late_minutes ? h("span", { class: "late" }, `running ${v.running_late_minutes} min late`) : null,
    ),
  );
}

function lobby(v: Visit): HTMLElement {
  const people = view.participants.filter((p) => p.role !== "provider");
  return h(
    "section",
    { class: "people" },
    h("h3", {}, "People"),
    people.length === 0 ? h("p", { class: "muted" }, "Nobody has opened the link yet.") : null,
    h(
      "ul",
      {},
      people.map((p) =>
        h(
          "li",
          { "data-participant": p.id },
          h("span", { class: "name" }, p.display_name),
          h("span", { class: "role" }, p.role),
          h("span", { class: `state ${p.state}` }, p.state === "lobby" ? "waiting" : p.state),
          p.state === "lobby"
            ? [
                h("button", { class: "primary", disabled: view.busy, onclick: () => act(() => commands.admit(v.id, p.id), "Admitted.") }, "Admit"),
                h("button", { class: "quiet", disabled: view.busy, onclick: () => act(() => commands.deny(v.id, p.id), "Denied.") }, "Deny"),
              ]
            : null,
          p.state === "admitted"
            ? h("button", { class: "quiet", disabled: view.busy, onclick: () => act(() => commands.remove(v.id, p.id), "Removed.") }, "Remove")
            : null,
        ),
      ),
    ),
  );
}

function inviteForm(v: Visit): HTMLElement {
  const channel = h("select", { id: "invite-channel" },
    h("option", { value: "sms" }, "Text message"), h("option", { value: "email" }, "Email"), h("option", { value: "copy" }, "Copy link"));
  const invitee = h("select", { id: "invite-who" },
    h("option", { value: "patient" }, "Patient"), h("option", { value: "guest" }, "Family or guest"), h("option", { value: "interpreter" }, "Interpreter"));
  const to = h("input", { id: "invite-to", placeholder: "Phone (+1…) or email" });
  return h(
    "form",
    {
      class: "invite",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        await act(async () => {
          const ch = channel.value as Channel;
          const inv = await commands.invite(v.id, {
            channel: ch,
            invitee: invitee.value as Invitee,
            to: ch === "copy" ? undefined : to.value,
          });
          if (ch === "copy") {
            await navigator.clipboard.writeText(inv.link).catch(() => undefined);
            notice(`Link copied: ${inv.link}`);
          }
        }, channel.value === "copy" ? undefined : "Invitation sent.");
      },
    },
    h("h3", {}, "Invite"),
    invitee, channel, to,
    h("button", { type: "submit", disabled: view.busy }, "Send"),
  );
}

function lateForm(v: Visit): HTMLElement {
  const minutes = h("select", { id: "late-minutes" },
    [0, 5, 10, 15, 20, 30, 45, 60].map((m) =>
      h("option", { value: m, selected: (v.running_late_minutes ?? 0) === m }, m === 0 ? "On time" : `${m} min late`)));
  return h(
    "form",
    { class: "late", onsubmit: async (e: Event) => { e.preventDefault(); await act(() => commands.runningLate(v.id, Number(minutes.value)), "The patient has been told."); } },
    h("h3", {}, "Running late"),
    minutes,
    h("button", { type: "submit", disabled: view.busy }, "Tell the patient"),
  );
}

function visitPanel(v: Visit, tz: string): HTMLElement {
  const live = v.state !== "ended" && v.state !== "no_show";
  return h(
    "aside",
    { class: "panel", id: "visit-panel" },
    h("h2", {}, `${v.patient_name ?? "Patient"} · ${clock(v.scheduled_at, tz)}`),
    h("p", { class: "muted" }, stateWords(v.state)),
    lobby(v),
    live && !call.state
      ? h("button", { class: "primary", id: "start-call", disabled: view.busy, onclick: () => startCall(v.id) }, "Start visit")
      : null,
    live ? [lateForm(v), inviteForm(v)] : null,
    live
      ? h("button", { class: "danger", disabled: view.busy, onclick: () => act(() => commands.endVisit(v.id), "The visit has ended.") }, "End visit")
      : null,
  );
}

function queueScreen(status: AppStatus): HTMLElement[] {
  const q = view.queue;
  const tz = q?.time_zone ?? "UTC";
  const selected = q?.visits.find((v) => v.id === view.selected) ?? null;
  return [
    header(status),
    h(
      "div",
      { class: "main" },
      call.state
        ? call.view()
        : h(
        "section",
        { class: "queue", id: "queue" },
        h("h2", {}, q ? `Today, ${q.day}` : "Today"),
        ehrButtons(null),
        !q ? h("p", { class: "muted" }, "Loading the queue…") : null,
        q && q.visits.length === 0 ? h("p", { class: "muted" }, "No visits today.") : null,
        q ? h("ul", {}, queueOrder(q.visits).map((v) => visitRow(v, tz))) : null,
      ),
      selected ? visitPanel(selected, tz) : h("aside", { class: "panel empty" }, h("p", { class: "muted" }, "Choose a visit to see who is waiting.")),
    ),
  ];
}

let queueShown = false;
let networkCheckShown = false;

function render(): void {
  const status = view.status;
  const n = view.notice
    ? h("div", { class: `notice ${view.notice.error ? "error" : ""}`, role: view.notice.error ? "alert" : "status" }, view.notice.text)
    : null;
  if (!status) {
    replace(root, h("p", { class: "muted" }, "Starting…"));
    return;
  }
  if (view.netcheck.open) {
    replace(root, status.clinician ? header(status) : null, networkCheckView(), n);
    const check = view.netcheck.check;
    if (check && !check.running && !networkCheckShown) {
      // Painted with every path's result: the desktop tests wait for this mark.
      networkCheckShown = true;
      requestAnimationFrame(() => void commands.shown("network-check").catch(() => undefined));
    }
    return;
  }
  if (!status.clinician) {
    replace(root, h("div", { class: "center" }, signInScreen(status), n));
    return;
  }
  replace(root, ...queueScreen(status), settingsPanel(), n);
  if (view.queue && !queueShown) {
    // Once it is painted: the cold-start benchmark times the app's start to this.
    queueShown = true;
    requestAnimationFrame(() => void commands.shown("queue").catch(() => undefined));
  }
}

export async function start(el: HTMLElement): Promise<void> {
  root = el;
  render();
  await listen<AppEvent>(EVENT, (e) => onEvent(e.payload));
  view.status = await commands.status();
  if (!view.status.clinician && view.status.server_url) {
    await loadSso(view.status.server_locked ? null : view.status.server_url);
  }
  if (view.status.clinician) {
    try {
      view.queue = await commands.queue();
    } catch (e) {
      view.notice = { text: message(e), error: true };
    }
    // The queue first: the EHR buttons can follow a round trip later.
    render();
    void loadEhrs(null).then(render);
  }
  const pending = await commands.takePendingOpen().catch(() => null);
  if (pending && view.status.clinician) {
    await openRequested(pending.visit_id, pending.join);
  }
  if (await commands.takePendingNetworkCheck().catch(() => false)) {
    await openNetworkCheck(null);
  }
  render();
  // Wait times move: redraw every 30 s, but never under someone's typing.
  setInterval(() => {
    const active = document.activeElement;
    if (!(active instanceof HTMLInputElement || active instanceof HTMLSelectElement)) render();
  }, 30_000);
}
