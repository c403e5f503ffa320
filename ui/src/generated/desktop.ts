// Generated from src-tauri (commands.rs) and crates/desktop; do not edit.
// Regenerate: ROUNDS_WRITE_BINDINGS=1 cargo test -p rounds-desktop bindings

import { invoke } from "@tauri-apps/api/core";
import type { Clinician, CreateInvitationRequest, CreateVisitRequest, CreatedVisit, Invitation, Participant, Queue, Visit } from "./proto";

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

export type AppEvent = { "type": "status", status: AppStatus, } | { "type": "queue", queue: Queue, waiting: number, } | { "type": "alert", alert: Alert, } | { "type": "open_visit", visit_id: string, };

export type SignInRequest = { 
/**
 * Ignored when IT's policy fixes the server.
 */
server_url?: string, email: string, password: string, };

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

/** The event carrying an AppEvent. */
export const EVENT = "rounds://event";

/** Every command of the Rounds window, typed. Errors reject with an ApiError. */
export const commands = {
  status: (): Promise<AppStatus> => invoke<AppStatus>("status"),
  signIn: (req: SignInRequest): Promise<AppStatus> => invoke<AppStatus>("sign_in", { req }),
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
  setStartAtLogin: (enabled: boolean): Promise<Settings> => invoke<Settings>("set_start_at_login", { enabled }),
};
