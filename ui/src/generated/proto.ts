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
retry_after?: number, };

export type LoginRequest = { email: string, password: string, };

export type RefreshRequest = { refresh_token: string, };

export type LogoutRequest = { refresh_token: string, };

export type OidcSignIn = { issuer: string, authorization_endpoint: string, client_id: string, 
/**
 * Space them into the `scope` parameter.
 */
scopes: Array<string>, 
/**
 * Hospital IT keeps the email-and-password sign-in too.
 */
password_login: boolean, };

export type OidcTokenRequest = { 
/**
 * The authorization code from the redirect.
 */
code: string, 
/**
 * The PKCE verifier whose S256 challenge went into the authorization request.
 */
code_verifier: string, 
/**
 * The exact redirect URI of the authorization request.
 */
redirect_uri: string, 
/**
 * The nonce of the authorization request; the id_token must carry it.
 */
nonce: string, };

export type EhrLaunchOptions = { ehrs: Array<EhrChoice>, };

export type EhrChoice = { 
/**
 * What the hospital calls it ("Epic", "Cerner at St Mary's"); the EHR's host otherwise.
 */
name: string, 
/**
 * Its FHIR base URL (the `iss` of its launches).
 */
iss: string, 
/**
 * Open this in the clinician's browser to start the launch.
 */
standalone_url: string, };

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

export type SignInTicket = { ticket: string, 
/**
 * Seconds until the ticket stops working.
 */
expires_in: number, };

export type TicketExchangeRequest = { ticket: string, };

export type QueueEvent = { "type": "hello", clinician_id: string, } | { "type": "queue_changed", visit_id: string, } | { "type": "patient_checked_in", visit_id: string, } | { "type": "guest_joined", visit_id: string, role: Role, };

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

export type IntakeKind = "text" | "long_text" | "yes_no" | "choice";

export type IntakeQuestion = { 
/**
 * Stable across languages and edits of the wording; answers refer to it.
 */
id: string, label: string, 
/**
 * A hint shown under the question.
 */
help?: string, kind: IntakeKind, 
/**
 * For `choice`: the options, in order.
 */
choices: Array<string>, required: boolean, };

export type ConsentText = { 
/**
 * Changes whenever the wording changes; stored with each agreement.
 */
version: string, title: string, 
/**
 * Paragraphs.
 */
paragraphs: Array<string>, 
/**
 * The label of the checkbox.
 */
checkbox: string, };

export type WaitingItemKind = "text" | "article" | "video";

export type WaitingItem = { kind: WaitingItemKind, title: string, paragraphs: Array<string>, 
/**
 * For `video`: a same-origin address such as `/content/breathing.webm`.
 */
src?: string, 
/**
 * For `video`: a WebVTT captions file, same origin.
 */
captions?: string, };

export type PatientContent = { clinic_name: string, 
/**
 * The language of this content (`en` or `es`); English when the one asked for is missing.
 */
lang: string, 
/**
 * The clinic's phone number, for the "call the clinic" advice.
 */
clinic_phone?: string, 
/**
 * Empty for guests: intake is the patient's.
 */
intake: Array<IntakeQuestion>, consent: ConsentText, waiting: Array<WaitingItem>, };

export type IntakeAnswer = { question_id: string, 
/**
 * PHI.
 */
answer: string, };

export type CheckInRequest = { answers: Array<IntakeAnswer>, 
/**
 * The `version` of the consent text that was shown.
 */
consent_version: string, 
/**
 * Must be true: the checkbox was ticked.
 */
consent_accepted: boolean, 
/**
 * The language the form was shown in.
 */
lang: string, };

export type ConsentRecord = { participant_id: string, role: Role, version: string, lang: string, accepted_at: string, };

export type IntakeAnswerRecord = { question_id: string, label: string, answer: string, };

export type SurveyRequest = { 
/**
 * 1 (poor) to 5 (excellent).
 */
rating: number, 
/**
 * PHI: free text may say anything.
 */
comment?: string, };

export type SurveyRecord = { participant_id: string, role: Role, rating: number, comment?: string, submitted_at: string, };

export type CheckInRecord = { intake: Array<IntakeAnswerRecord>, intake_submitted_at: string | null, consents: Array<ConsentRecord>, surveys: Array<SurveyRecord>, };

export type WaitEstimate = { 
/**
 * Patients the clinician will see first (in a visit now or waiting ahead).
 */
ahead: number, 
/**
 * About how many minutes; `null` when there is nothing to go on.
 */
minutes: number | null, running_late_minutes: number | null, };

export type NetworkTestInfo = { 
/**
 * The media UDP address (`ip:port`), for a STUN reachability probe; `null` when UDP
 * media is off.
 */
udp: string | null, 
/**
 * Whether media can fall back to ICE-TCP on this server's HTTP port.
 */
ice_tcp: boolean, 
/**
 * Largest download the test may ask for, in bytes.
 */
max_download_bytes: number, 
/**
 * Largest upload body the test may send, in bytes.
 */
max_upload_bytes: number, };

export type NetworkTestUpload = { 
/**
 * Bytes the server received.
 */
bytes: number, };

export type Connectivity = { 
/**
 * The media UDP address (`ip:port`) every participant sends to; it answers a plain STUN
 * binding request. `null` when UDP media is off.
 */
udp: string | null, 
/**
 * The ICE-TCP address (`ip:port`, the web listener's port) media falls back to when UDP
 * is blocked; it answers an RFC 4571-framed STUN binding request. `null` when off.
 */
ice_tcp: string | null, 
/**
 * The path of the signaling WebSocket on this server's URL.
 */
signaling_path: string, };

export type PcKind = "publisher" | "subscriber";

export type TrackKind = "audio" | "video" | "screen";

export type TrackInfo = { 
/**
 * The client's id for the track (its MediaStreamTrack id or the SDP `msid` track part).
 */
id: string, kind: TrackKind, 
/**
 * The SDP media id once negotiated.
 */
mid?: string, simulcast: boolean, muted: boolean, };

export type IceCandidate = { 
/**
 * The `candidate:` line; empty marks the end of candidates.
 */
candidate: string, sdpMid?: string, sdpMLineIndex?: number, };

export type RenderSize = { participant_id: string, width: number, height: number, };

export type MediaKind = "audio" | "video";

export type HostAction = "admit" | "deny" | "mute_audio" | "stop_video" | "remove";

export type ClientMessage = { "type": "join", v: number, token: string, resume?: string, 
/**
 * The client takes a subscriber offer while it waits in the lobby, so that its media
 * connection is already up (ICE and DTLS done) when it is admitted. Until then the
 * connection carries no track: the server adds them at admission.
 */
prepare_media?: boolean, } | { "type": "offer", pc: PcKind, sdp: string, offer_id?: number, } | { "type": "answer", pc: PcKind, sdp: string, } | { "type": "ice", pc: PcKind, candidate: IceCandidate, } | { "type": "publish", track: TrackInfo, } | { "type": "unpublish", track_id: string, } | { "type": "set_muted", kind: MediaKind, muted: boolean, } | { "type": "render_sizes", sizes: Array<RenderSize>, } | { "type": "chat", text: string, 
/**
 * A participant id, `"staff"`, or absent for the whole room.
 */
to?: string, } | { "type": "host", participant: string, action: HostAction, } | { "type": "ping", t: number, } | { "type": "pong", t: number, } | { "type": "leave" };

export type RoomParticipant = { id: string, name: string, role: Role, state: ParticipantState, audio_muted: boolean, video_muted: boolean, connected: boolean, tracks: Array<TrackInfo>, };

export type VideoConstraints = { width: number, height: number, fps: number, max_bitrate_kbps: number, simulcast: boolean, 
/**
 * `VP8` by default; `H264` when the room asks for it.
 */
codec: string, };

export type ParticipantQuality = { participant_id: string, 
/**
 * 0 (no data) to 5 (excellent).
 */
score: number, };

export type ErrorCode = "bad_message" | "unsupported_version" | "too_large" | "not_joined" | "unauthorized" | "forbidden" | "not_admitted" | "rate_limited" | "room_closed" | "media_rejected" | "replaced" | "internal";

export type ServerMessage = { "type": "joined", v: number, 
/**
 * Send this back as `join.resume` after a reconnect.
 */
session: string, room: string, me: RoomParticipant, 
/**
 * Everyone admitted, including me once admitted. Empty while in the lobby.
 */
participants: Array<RoomParticipant>, 
/**
 * Who is waiting in the lobby (staff only; empty for everyone else).
 */
waiting: Array<RoomParticipant>, video: VideoConstraints, 
/**
 * The server pings at least this often; a client that hears nothing for twice as
 * long should reconnect.
 */
heartbeat_secs: number, 
/**
 * How long after a drop `resume` still works.
 */
resume_secs: number, running_late_minutes: number | null, 
/**
 * True when this join took back an earlier session.
 */
resumed: boolean, } | { "type": "admitted", participants: Array<RoomParticipant>, } | { "type": "denied", message: string, } | { "type": "removed", message: string, } | { "type": "participant_joined", participant: RoomParticipant, } | { "type": "participant_updated", participant: RoomParticipant, } | { "type": "participant_left", participant_id: string, } | { "type": "lobby_updated", waiting: Array<RoomParticipant>, } | { "type": "offer", pc: PcKind, sdp: string, } | { "type": "answer", pc: PcKind, sdp: string, offer_id?: number, } | { "type": "ice", pc: PcKind, candidate: IceCandidate, } | { "type": "track_published", participant_id: string, track: TrackInfo, } | { "type": "track_unpublished", participant_id: string, track_id: string, } | { "type": "dominant_speaker", participant_id: string | null, } | { "type": "network_quality", scores: Array<ParticipantQuality>, } | { "type": "chat", message: ChatMessage, } | { "type": "mute_requested", kind: MediaKind, message: string, } | { "type": "running_late", minutes: number, } | { "type": "video_constraints", video: VideoConstraints, } | { "type": "visit_ended", message: string, } | { "type": "error", code: ErrorCode, message: string, } | { "type": "ping", t: number, } | { "type": "pong", t: number, };
