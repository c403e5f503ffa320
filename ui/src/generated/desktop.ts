// Generated from src-tauri (commands.rs) and crates/desktop; do not edit.
// Regenerate: ROUNDS_WRITE_BINDINGS=1 cargo test -p rounds-desktop bindings

import { invoke, Channel } from "@tauri-apps/api/core";
import type { ChatMessage, Clinician, CreateInvitationRequest, CreateVisitRequest, CreatedVisit, EhrChoice, HostAction, Invitation, Participant, ParticipantState, Queue, Role, Visit } from "./proto";

export type ApiError = { 
/**
 * The HTTP status, when the server answered.
 */
status: number | null, 
/**
 * A stable machine code (`bad-credentials`, `unreachable`, ...).
 */
code: string, 
/**
 * A sentence the clinician can act on.
 */
message: string, };

export type Connection = { "state": "signed_out" } | { "state": "connecting" } | { "state": "online" } | { "state": "reconnecting", retry_in_secs: number, reason: string, };

export type AppStatus = { clinician?: Clinician, server_url?: string, 
/**
 * IT's policy fixes the server: the sign-in form does not offer to change it.
 */
server_locked: boolean, last_email?: string, connection: Connection, waiting: number, 
/**
 * Where the sign-in is kept, in words ("the system keyring (Secret Service)").
 */
keychain: string, 
/**
 * IT allows a synthetic camera and microphone where none exist (labelled on screen).
 */
synthetic_media_allowed: boolean, };

export type AlertKind = "patient_waiting" | "still_waiting" | "guest_waiting";

export type Alert = { kind: AlertKind, visit_id: string, title: string, body: string, };

export type AppEvent = { "type": "status", status: AppStatus, } | { "type": "queue", queue: Queue, waiting: number, } | { "type": "alert", alert: Alert, } | { "type": "open_visit", visit_id: string, 
/**
 * Join its call at once (`rounds://visit/{id}?join=1`, the EHR's "start visit").
 */
join: boolean, } | { "type": "call", call: CallState, } | { "type": "chat", message: ChatMessage, } | { "type": "devices", devices: Devices, } | { "type": "show_network_check" } | { "type": "network_check", check: NetworkCheck, };

export type SignInRequest = { 
/**
 * Ignored when IT's policy fixes the server.
 */
server_url?: string, email: string, password: string, };

export type SsoOptions = { 
/**
 * Offer "Sign in with your hospital account".
 */
available: boolean, 
/**
 * Keep the email-and-password form (IT may turn it off when the hospital sign-in is on).
 */
password_login: boolean, };

export type LinkOutcome = { signed_in: boolean, open_visit?: string, };

export type Settings = { 
/**
 * The server last signed in to (unless the policy fixes one).
 */
server_url: string | null, 
/**
 * The email last signed in with, to prefill the form.
 */
email: string | null, camera: string | null, microphone: string | null, speaker: string | null, start_at_login: boolean, };

export type OpenRequest = { visit_id: string, join: boolean, };

export type Device = { id: string, name: string, };

export type Devices = { cameras: Array<Device>, microphones: Array<Device>, speakers: Array<Device>, 
/**
 * IT allows a synthetic camera and microphone where none exist.
 */
synthetic_allowed: boolean, };

export type DeviceSlot = "camera" | "microphone" | "speaker";

export type CallParticipant = { id: string, name: string, role: Role, state: ParticipantState, audio_muted: boolean, video_muted: boolean, 
/**
 * 0 (no data) to 5 (excellent).
 */
quality: number, me: boolean, 
/**
 * Sharing their screen (drawn under `<id>/screen`).
 */
screen: boolean, };

export type CallState = { visit_id: string, participants: Array<CallParticipant>, dominant_speaker?: string, mic_muted: boolean, camera_off: boolean, 
/**
 * What the others see from us: a camera's name, "Synthetic test card", or "No camera".
 */
camera_label: string, microphone_label: string, 
/**
 * The devices in use, by id (none: nothing, or the synthetic source).
 */
camera_id?: string, microphone_id?: string, speaker_id?: string, synthetic_camera: boolean, synthetic_microphone: boolean, 
/**
 * We are sharing our screen with everyone in the call.
 */
sharing_screen: boolean, 
/**
 * Set when the call is over (ended, removed), in words.
 */
ended?: string, 
/**
 * A message for the clinician (a host muted you, ...).
 */
notice?: string, };

export type CheckPath = "web" | "signaling" | "media_udp" | "media_tcp";

export type PathState = "waiting" | "checking" | "pass" | "fail" | "not_checked";

export type PathCheck = { path: CheckPath, label: string, state: PathState, 
/**
 * What was tried (`http://rounds.example.org/healthz`, `udp 203.0.113.5:3478`).
 */
target: string, 
/**
 * One round trip, when there was an answer.
 */
rtt_ms: number | null, 
/**
 * What happened, in a sentence.
 */
detail: string, 
/**
 * On failure, what to ask IT to open or change.
 */
advice: string | null, };

export type NetVerdict = "ready" | "tcp_fallback_only" | "blocked";

export type NetworkCheck = { 
/**
 * The server checked.
 */
server: string, 
/**
 * The proxy web and signaling went through, without its password; "none" when direct.
 */
proxy: string, 
/**
 * When the check started, e.g. "2026-12-06 17:20 UTC".
 */
started: string, running: boolean, 
/**
 * Every path, in the order they are checked.
 */
paths: Array<PathCheck>, 
/**
 * Set once every path is done.
 */
verdict: NetVerdict | null, summary: string | null, 
/**
 * The whole report as plain text, for "Copy the results".
 */
text: string, };

/** The event carrying an AppEvent. */
export const EVENT = "rounds://event";

/** Every command of the Rounds window, typed. Errors reject with an ApiError. */
export const commands = {
  status: (): Promise<AppStatus> => invoke<AppStatus>("status"),
  signIn: (req: SignInRequest): Promise<AppStatus> => invoke<AppStatus>("sign_in", { req }),
  ssoOptions: (server_url: string | null): Promise<SsoOptions> => invoke<SsoOptions>("sso_options", { server_url }),
  signInSso: (server_url: string | null): Promise<AppStatus> => invoke<AppStatus>("sign_in_sso", { server_url }),
  ehrOptions: (server_url: string | null): Promise<Array<EhrChoice>> => invoke<Array<EhrChoice>>("ehr_options", { server_url }),
  startEhrLaunch: (server_url: string | null, iss: string): Promise<null> => invoke<null>("start_ehr_launch", { server_url, iss }),
  signOut: (): Promise<AppStatus> => invoke<AppStatus>("sign_out"),
  openLink: (link: string): Promise<LinkOutcome> => invoke<LinkOutcome>("open_link", { link }),
  queue: (): Promise<Queue> => invoke<Queue>("queue"),
  participants: (visit_id: string): Promise<Array<Participant>> => invoke<Array<Participant>>("participants", { visit_id }),
  admit: (visit_id: string, participant_id: string): Promise<Participant> => invoke<Participant>("admit", { visit_id, participant_id }),
  deny: (visit_id: string, participant_id: string): Promise<Participant> => invoke<Participant>("deny", { visit_id, participant_id }),
  remove: (visit_id: string, participant_id: string): Promise<Participant> => invoke<Participant>("remove", { visit_id, participant_id }),
  endVisit: (visit_id: string): Promise<Visit> => invoke<Visit>("end_visit", { visit_id }),
  runningLate: (visit_id: string, minutes: number): Promise<Visit> => invoke<Visit>("running_late", { visit_id, minutes }),
  invite: (visit_id: string, req: CreateInvitationRequest): Promise<Invitation> => invoke<Invitation>("invite", { visit_id, req }),
  createVisit: (req: CreateVisitRequest): Promise<CreatedVisit> => invoke<CreatedVisit>("create_visit", { req }),
  settings: (): Promise<Settings> => invoke<Settings>("settings"),
  setSettings: (settings: Settings): Promise<Settings> => invoke<Settings>("set_settings", { settings }),
  takePendingOpen: (): Promise<OpenRequest | null> => invoke<OpenRequest | null>("take_pending_open"),
  devices: (): Promise<Devices> => invoke<Devices>("devices"),
  callState: (): Promise<CallState | null> => invoke<CallState | null>("call_state"),
  setMicMuted: (muted: boolean): Promise<CallState> => invoke<CallState>("set_mic_muted", { muted }),
  setCameraOff: (off: boolean): Promise<CallState> => invoke<CallState>("set_camera_off", { off }),
  shareScreen: (on: boolean): Promise<CallState> => invoke<CallState>("share_screen", { on }),
  switchDevice: (slot: DeviceSlot, id: string | null): Promise<CallState> => invoke<CallState>("switch_device", { slot, id }),
  hostAction: (participant_id: string, action: HostAction): Promise<null> => invoke<null>("host_action", { participant_id, action }),
  sendChat: (text: string): Promise<null> => invoke<null>("send_chat", { text }),
  setRenderSize: (participant_id: string, width: number, height: number): Promise<null> => invoke<null>("set_render_size", { participant_id, width, height }),
  leaveCall: (): Promise<null> => invoke<null>("leave_call"),
  networkCheck: (server_url: string | null): Promise<NetworkCheck> => invoke<NetworkCheck>("network_check", { server_url }),
  takePendingNetworkCheck: (): Promise<boolean> => invoke<boolean>("take_pending_network_check"),
  shown: (what: string): Promise<null> => invoke<null>("shown", { what }),
  setStartAtLogin: (enabled: boolean): Promise<Settings> => invoke<Settings>("set_start_at_login", { enabled }),
  startCall: (visit_id: string, frames: Channel<ArrayBuffer>): Promise<CallState> => invoke<CallState>("start_call", { visit_id, frames }),
};
