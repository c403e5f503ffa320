//! Bodies of the REST API under `/api/v1`.
//!
//! Request bodies reject unknown fields, so a typo in a client is a clear 422, not a silently
//! ignored setting.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

use crate::{Grant, Phi, Role};

/// An RFC 9457 problem document: every 4xx and 5xx the server sends has this body, with
/// content type `application/problem+json`.
#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `https://rounds.health/problems/expired-link`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    pub status: u16,
    /// A sentence a person can act on.
    pub detail: String,
    /// The request id, to quote when asking for help.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub request_id: Option<String>,
    /// Seconds to wait before retrying (rate limits).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub retry_after: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    pub refresh_token: String,
}

/// What the app needs to start a sign-in with the hospital's identity provider
/// (`GET /api/v1/auth/oidc`). The app runs the authorization code flow with PKCE (S256), a
/// `state` and a `nonce`, in the system browser, redirecting to a loopback address
/// (`http://127.0.0.1:{port}/callback`, RFC 8252).
#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct OidcSignIn {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub client_id: String,
    /// Space them into the `scope` parameter.
    pub scopes: Vec<String>,
    /// Hospital IT keeps the email-and-password sign-in too.
    pub password_login: bool,
}

/// The EHRs a clinician can start a visit from (`GET /api/v1/ehr`). Empty when none is
/// configured.
#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct EhrLaunchOptions {
    pub ehrs: Vec<EhrChoice>,
}

/// One EHR, and the page that starts a standalone SMART launch there: the clinician signs
/// in at the EHR, picks the patient and encounter, and the visit opens in the app.
#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct EhrChoice {
    /// What the hospital calls it ("Epic", "Cerner at St Mary's"); the EHR's host otherwise.
    pub name: String,
    /// Its FHIR base URL (the `iss` of its launches).
    pub iss: String,
    /// Open this in the clinician's browser to start the launch.
    pub standalone_url: String,
}

/// The result of the browser part of an OIDC sign-in, for the server to finish
/// (`POST /api/v1/auth/oidc/token`).
#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcTokenRequest {
    /// The authorization code from the redirect.
    pub code: String,
    /// The PKCE verifier whose S256 challenge went into the authorization request.
    pub code_verifier: String,
    /// The exact redirect URI of the authorization request.
    pub redirect_uri: String,
    /// The nonce of the authorization request; the id_token must carry it.
    pub nonce: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct Clinician {
    pub id: String,
    pub clinic_id: String,
    pub clinic_name: String,
    pub email: String,
    pub display_name: String,
}

/// A clinician session: a short-lived access token and a single-use refresh token.
#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct SessionResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until `access_token` expires.
    pub expires_in: u32,
    /// Use once with `/auth/refresh`; using it twice ends the whole session.
    pub refresh_token: String,
    pub refresh_expires_in: u32,
    pub clinician: Clinician,
}

/// Where a visit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VisitState {
    /// Nobody has checked in yet.
    Scheduled,
    /// The patient has checked in and is in the lobby.
    Waiting,
    /// The patient has been admitted.
    InProgress,
    Ended,
    /// The visit's window passed without the patient checking in.
    NoShow,
}

impl VisitState {
    pub fn as_str(self) -> &'static str {
        match self {
            VisitState::Scheduled => "scheduled",
            VisitState::Waiting => "waiting",
            VisitState::InProgress => "in_progress",
            VisitState::Ended => "ended",
            VisitState::NoShow => "no_show",
        }
    }
}

/// The plain-language result of the patient's network test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NetworkGrade {
    Good,
    Fair,
    Poor,
    Blocked,
}

/// The patient's device check, as reported by the patient page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
pub struct DeviceCheck {
    pub camera_ok: bool,
    pub microphone_ok: bool,
    pub speaker_ok: bool,
    pub network: NetworkGrade,
}

/// A visit as the clinician's queue shows it.
#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct Visit {
    pub id: String,
    /// The room of this visit (one room per visit).
    pub room: String,
    pub clinic_id: String,
    pub clinician_id: String,
    pub scheduled_at: DateTime<Utc>,
    pub duration_minutes: u32,
    pub state: VisitState,
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    #[ts(type = "string")]
    pub patient_name: Option<Phi<String>>,
    /// When the patient checked in, if they are waiting.
    pub waiting_since: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// How late the clinician said they are running, in minutes.
    pub running_late_minutes: Option<u32>,
    pub device_check: Option<DeviceCheck>,
    /// When the patient link stops working.
    pub link_expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVisitRequest {
    pub scheduled_at: DateTime<Utc>,
    /// Defaults to the clinic's configured visit length.
    #[ts(optional)]
    pub duration_minutes: Option<u32>,
    /// Shown to the clinician only; treated as PHI.
    #[ts(optional, type = "string")]
    #[schema(value_type = Option<String>)]
    pub patient_name: Option<Phi<String>>,
}

/// A newly issued patient link. The code in it is shown once; the server keeps only its hash.
#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct PatientLink {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct CreatedVisit {
    pub visit: Visit,
    pub patient_link: PatientLink,
}

/// One day of a clinician's visits, in the clinic's time zone.
#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct Queue {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub time_zone: String,
    pub visits: Vec<Visit>,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunningLateRequest {
    /// About how many minutes late; 0 clears the message.
    pub minutes: u32,
}

/// Where a participant stands in the waiting-room state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantState {
    /// Waiting: signaling and chat with the clinic only, no media, no names.
    Lobby,
    Admitted,
    Denied,
    Removed,
    /// Left on their own; may rejoin from the same link.
    Left,
}

impl ParticipantState {
    pub fn as_str(self) -> &'static str {
        match self {
            ParticipantState::Lobby => "lobby",
            ParticipantState::Admitted => "admitted",
            ParticipantState::Denied => "denied",
            ParticipantState::Removed => "removed",
            ParticipantState::Left => "left",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "lobby" => ParticipantState::Lobby,
            "admitted" => ParticipantState::Admitted,
            "denied" => ParticipantState::Denied,
            "removed" => ParticipantState::Removed,
            "left" => ParticipantState::Left,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct Participant {
    pub id: String,
    pub role: Role,
    pub state: ParticipantState,
    #[ts(type = "string")]
    #[schema(value_type = String)]
    pub display_name: Phi<String>,
    pub joined_at: DateTime<Utc>,
    pub admitted_at: Option<DateTime<Utc>>,
}

/// A signed room token and what it allows.
#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct RoomToken {
    pub token: String,
    pub room: String,
    pub participant_id: String,
    pub role: Role,
    pub grants: Vec<Grant>,
    pub state: ParticipantState,
    pub expires_at: DateTime<Utc>,
}

/// What a link shows before anyone checks in: enough to reassure, nothing clinical.
#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct JoinLinkInfo {
    pub clinic_name: String,
    pub scheduled_at: DateTime<Utc>,
    pub time_zone: String,
    pub role: Role,
    pub visit_state: VisitState,
    pub running_late_minutes: Option<u32>,
}

/// Checking in from a link.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The name to show the clinic; defaults to the name on the visit, else "Patient".
    #[ts(optional, type = "string")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Phi<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuestTokenRequest {
    #[ts(type = "string")]
    #[schema(value_type = String)]
    pub display_name: Phi<String>,
    /// `guest` or `interpreter`.
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Sms,
    Email,
    /// No message is sent; the link is returned to copy and paste.
    Copy,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
            Channel::Copy => "copy",
        }
    }
}

/// Who an invitation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Invitee {
    Patient,
    Guest,
    Interpreter,
}

impl Invitee {
    pub fn role(self) -> Role {
        match self {
            Invitee::Patient => Role::Patient,
            Invitee::Guest => Role::Guest,
            Invitee::Interpreter => Role::Interpreter,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    Sent,
    Failed,
    /// `copy` invitations: nothing to send.
    Created,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitationRequest {
    pub channel: Channel,
    pub invitee: Invitee,
    /// Phone number (E.164, for `sms`) or email address (for `email`). PHI.
    #[ts(optional, type = "string")]
    #[schema(value_type = Option<String>)]
    pub to: Option<Phi<String>>,
    /// Send a reminder before the visit (the clinic's configured lead time). Default true.
    #[ts(optional)]
    pub remind: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct Invitation {
    pub id: String,
    pub visit_id: String,
    pub channel: Channel,
    pub invitee: Invitee,
    pub status: InvitationStatus,
    /// The link this invitation carries, to copy. Shown only in this response.
    pub link: String,
    pub link_expires_at: DateTime<Utc>,
    pub reminder_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct ChatMessage {
    pub id: String,
    pub from: String,
    pub from_role: Role,
    /// A private message to one participant; `null` is to the whole room (staff only, for
    /// anyone in the lobby).
    pub to: Option<String>,
    #[ts(type = "string")]
    #[schema(value_type = String)]
    pub text: Phi<String>,
    pub sent_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostChatRequest {
    #[ts(type = "string")]
    #[schema(value_type = String)]
    pub text: Phi<String>,
    #[ts(optional)]
    pub to: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct ChatLog {
    pub messages: Vec<ChatMessage>,
}

/// An Ed25519 public key in JWK form (RFC 8037).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// Grants a role carries. Admission still gates media: a patient holding `publish` sends
/// nothing until the room admits them.
pub fn grants_for(role: Role) -> Vec<Grant> {
    use Grant::*;
    match role {
        Role::Provider => vec![Publish, Subscribe, Chat, Admit, Invite, Moderate, Record],
        Role::Patient | Role::Guest | Role::Interpreter => vec![Publish, Subscribe, Chat],
    }
}

// ---- patient web: check-in content, intake, consent, waiting, network test, survey ----

/// The kind of answer an intake question takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IntakeKind {
    /// One line of text.
    Text,
    /// A few sentences.
    LongText,
    /// `yes` or `no`.
    YesNo,
    /// One of `choices`.
    Choice,
}

/// One question of a clinic's intake form, in the language asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
pub struct IntakeQuestion {
    /// Stable across languages and edits of the wording; answers refer to it.
    pub id: String,
    pub label: String,
    /// A hint shown under the question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub help: Option<String>,
    pub kind: IntakeKind,
    /// For `choice`: the options, in order.
    #[serde(default)]
    pub choices: Vec<String>,
    pub required: bool,
}

/// The consent a patient or guest agrees to before waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
pub struct ConsentText {
    /// Changes whenever the wording changes; stored with each agreement.
    pub version: String,
    pub title: String,
    /// Paragraphs.
    pub paragraphs: Vec<String>,
    /// The label of the checkbox.
    pub checkbox: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitingItemKind {
    /// A short note.
    Text,
    /// A title and a few paragraphs to read.
    Article,
    /// A video the server hosts itself, under `/content/`.
    Video,
}

/// Something to read or watch in the waiting room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
pub struct WaitingItem {
    pub kind: WaitingItemKind,
    pub title: String,
    #[serde(default)]
    pub paragraphs: Vec<String>,
    /// For `video`: a same-origin address such as `/content/breathing.webm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub src: Option<String>,
    /// For `video`: a WebVTT captions file, same origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub captions: Option<String>,
}

/// What a link's check-in and waiting room show, in one language. Configured per clinic;
/// nothing in it is about the patient.
#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct PatientContent {
    pub clinic_name: String,
    /// The language of this content (`en` or `es`); English when the one asked for is missing.
    pub lang: String,
    /// The clinic's phone number, for the "call the clinic" advice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub clinic_phone: Option<String>,
    /// Empty for guests: intake is the patient's.
    pub intake: Vec<IntakeQuestion>,
    pub consent: ConsentText,
    pub waiting: Vec<WaitingItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntakeAnswer {
    pub question_id: String,
    /// PHI.
    #[ts(type = "string")]
    #[schema(value_type = String)]
    pub answer: Phi<String>,
}

/// The check-in form: intake answers (patients) and the consent agreement (everyone).
#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInRequest {
    #[serde(default)]
    pub answers: Vec<IntakeAnswer>,
    /// The `version` of the consent text that was shown.
    pub consent_version: String,
    /// Must be true: the checkbox was ticked.
    pub consent_accepted: bool,
    /// The language the form was shown in.
    pub lang: String,
}

/// A stored consent agreement.
#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct ConsentRecord {
    pub participant_id: String,
    pub role: Role,
    pub version: String,
    pub lang: String,
    pub accepted_at: DateTime<Utc>,
}

/// One stored intake answer, with the question's wording as it was asked.
#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct IntakeAnswerRecord {
    pub question_id: String,
    pub label: String,
    #[ts(type = "string")]
    #[schema(value_type = String)]
    pub answer: Phi<String>,
}

/// The patient's answers to the post-visit survey.
#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveyRequest {
    /// 1 (poor) to 5 (excellent).
    pub rating: u8,
    /// PHI: free text may say anything.
    #[serde(default)]
    #[ts(optional, type = "string")]
    #[schema(value_type = Option<String>)]
    pub comment: Option<Phi<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct SurveyRecord {
    pub participant_id: String,
    pub role: Role,
    pub rating: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "string")]
    #[schema(value_type = Option<String>)]
    pub comment: Option<Phi<String>>,
    pub submitted_at: DateTime<Utc>,
}

/// What the patient pages collected for one visit, for its clinician.
#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct CheckInRecord {
    pub intake: Vec<IntakeAnswerRecord>,
    pub intake_submitted_at: Option<DateTime<Utc>>,
    pub consents: Vec<ConsentRecord>,
    pub surveys: Vec<SurveyRecord>,
}

/// How long a waiting participant can expect to wait, from the clinician's queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
pub struct WaitEstimate {
    /// Patients the clinician will see first (in a visit now or waiting ahead).
    pub ahead: u32,
    /// About how many minutes; `null` when there is nothing to go on.
    pub minutes: Option<u32>,
    pub running_late_minutes: Option<u32>,
}

/// Where the patient page's network test sends its probes.
#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct NetworkTestInfo {
    /// The media UDP address (`ip:port`), for a STUN reachability probe; `null` when UDP
    /// media is off.
    pub udp: Option<String>,
    /// Whether media can fall back to ICE-TCP on this server's HTTP port.
    pub ice_tcp: bool,
    /// Largest download the test may ask for, in bytes.
    pub max_download_bytes: u32,
    /// Largest upload body the test may send, in bytes.
    pub max_upload_bytes: u32,
}

/// Where this server takes media, for connectivity checks before a visit
/// (`GET /api/v1/connectivity`, public: every client learns the same from its SDP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
pub struct Connectivity {
    /// The media UDP address (`ip:port`) every participant sends to; it answers a plain STUN
    /// binding request. `null` when UDP media is off.
    pub udp: Option<String>,
    /// The ICE-TCP address (`ip:port`, the web listener's port) media falls back to when UDP
    /// is blocked; it answers an RFC 4571-framed STUN binding request. `null` when off.
    pub ice_tcp: Option<String>,
    /// The path of the signaling WebSocket on this server's URL.
    pub signaling_path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct NetworkTestUpload {
    /// Bytes the server received.
    pub bytes: u32,
}

/// A one-time sign-in ticket: a signed-in clinician (or the server itself, after an EHR
/// launch) hands it to the desktop app, which trades it for a session once.
#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
pub struct SignInTicket {
    pub ticket: String,
    /// Seconds until the ticket stops working.
    pub expires_in: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketExchangeRequest {
    pub ticket: String,
}

/// One event of a clinician's live queue feed (`GET /api/v1/events`, Server-Sent Events).
///
/// Events carry ids, never names: the app reads details from the queue it already has, or
/// re-reads the queue. Each is sent as an SSE `event:` of its `type` with this JSON as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum QueueEvent {
    /// First event on every stream: the feed is live.
    Hello { clinician_id: String },
    /// Something about this visit changed (state, device check, running late, ...): read
    /// the queue again.
    QueueChanged { visit_id: String },
    /// The patient finished check-in and is now waiting in the lobby.
    PatientCheckedIn { visit_id: String },
    /// A guest (family, interpreter, specialist) checked in to this visit's lobby.
    GuestJoined { visit_id: String, role: Role },
}
