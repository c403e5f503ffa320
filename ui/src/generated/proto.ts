// Generated from crates/proto by `cargo run -p rounds-proto --bin gen-ts`. Do not edit.

export type Role = "provider" | "patient" | "guest" | "interpreter";

export type Grant = "publish" | "subscribe" | "chat" | "admit" | "invite" | "moderate" | "record";

export type RoomClaims = { iss: string, aud: string, 
/**
 * The participant id.
 */
sub: string, 
/**
 * Display name shown to others once admitted.
 */
name: string, room: string, role: Role, grants: Array<Grant>, iat: number, nbf: number, exp: number, jti: string, };

export type SessionClaims = { iss: string, aud: string, 
/**
 * The clinician id.
 */
sub: string, clinic: string, 
/**
 * The refresh-token family this access token came from; revoking the family ends it.
 */
sid: string, iat: number, nbf: number, exp: number, jti: string, };

export type Problem = { 
/**
 * A URI naming the kind of problem, e.g. `https://rounds.health/problems/expired-link`.
 */
type: string, 
/**
 * A short summary of the kind of problem.
 */
title: string, status: number, 
/**
 * A sentence a person can act on.
 */
detail: string, 
/**
 * The request id, to quote when asking for help.
 */
request_id?: string, 
/**
 * Seconds to wait before retrying (rate limits).
 */
retry_after?: bigint, };

export type LoginRequest = { email: string, password: string, };

export type RefreshRequest = { refresh_token: string, };

export type LogoutRequest = { refresh_token: string, };

export type Clinician = { id: string, clinic_id: string, clinic_name: string, email: string, display_name: string, };

export type SessionResponse = { access_token: string, 
/**
 * Always `Bearer`.
 */
token_type: string, 
/**
 * Seconds until `access_token` expires.
 */
expires_in: number, 
/**
 * Use once with `/auth/refresh`; using it twice ends the whole session.
 */
refresh_token: string, refresh_expires_in: number, clinician: Clinician, };

export type VisitState = "scheduled" | "waiting" | "in_progress" | "ended" | "no_show";

export type NetworkGrade = "good" | "fair" | "poor" | "blocked";

export type DeviceCheck = { camera_ok: boolean, microphone_ok: boolean, speaker_ok: boolean, network: NetworkGrade, };

export type Visit = { id: string, 
/**
 * The room of this visit (one room per visit).
 */
room: string, clinic_id: string, clinician_id: string, scheduled_at: string, duration_minutes: number, state: VisitState, patient_name?: string, 
/**
 * When the patient checked in, if they are waiting.
 */
waiting_since: string | null, started_at: string | null, ended_at: string | null, 
/**
 * How late the clinician said they are running, in minutes.
 */
running_late_minutes: number | null, device_check: DeviceCheck | null, 
/**
 * When the patient link stops working.
 */
link_expires_at: string, };

export type CreateVisitRequest = { scheduled_at: string, 
/**
 * Defaults to the clinic's configured visit length.
 */
duration_minutes?: number, 
/**
 * Shown to the clinician only; treated as PHI.
 */
patient_name?: string, };

export type CreatedVisit = { visit: Visit, patient_link: PatientLink, };

export type Queue = { 
/**
 * `YYYY-MM-DD`.
 */
day: string, time_zone: string, visits: Array<Visit>, };

export type PatientLink = { url: string, expires_at: string, };

export type RunningLateRequest = { 
/**
 * About how many minutes late; 0 clears the message.
 */
minutes: number, };

export type ParticipantState = "lobby" | "admitted" | "denied" | "removed" | "left";

export type Participant = { id: string, role: Role, state: ParticipantState, display_name: string, joined_at: string, admitted_at: string | null, };

export type RoomToken = { token: string, room: string, participant_id: string, role: Role, grants: Array<Grant>, state: ParticipantState, expires_at: string, };

export type JoinLinkInfo = { clinic_name: string, scheduled_at: string, time_zone: string, role: Role, visit_state: VisitState, running_late_minutes: number | null, };

export type JoinRequest = { 
/**
 * The name to show the clinic; defaults to the name on the visit, else "Patient".
 */
display_name?: string, };

export type GuestTokenRequest = { display_name: string, 
/**
 * `guest` or `interpreter`.
 */
role: Role, };

export type Channel = "sms" | "email" | "copy";

export type Invitee = "patient" | "guest" | "interpreter";

export type InvitationStatus = "sent" | "failed" | "created";

export type CreateInvitationRequest = { channel: Channel, invitee: Invitee, 
/**
 * Phone number (E.164, for `sms`) or email address (for `email`). PHI.
 */
to?: string, 
/**
 * Send a reminder before the visit (the clinic's configured lead time). Default true.
 */
remind?: boolean, };

export type Invitation = { id: string, visit_id: string, channel: Channel, invitee: Invitee, status: InvitationStatus, 
/**
 * The link this invitation carries, to copy. Shown only in this response.
 */
link: string, link_expires_at: string, reminder_at: string | null, created_at: string, };

export type ChatMessage = { id: string, from: string, from_role: Role, 
/**
 * A private message to one participant; `null` is to the whole room (staff only, for
 * anyone in the lobby).
 */
to: string | null, text: string, sent_at: string, };

export type PostChatRequest = { text: string, to?: string, };

export type ChatLog = { messages: Array<ChatMessage>, };

export type Jwk = { kty: string, crv: string, x: string, kid: string, alg: string, use: string, };

export type Jwks = { keys: Array<Jwk>, };

export type Health = { status: string, version: string, };
