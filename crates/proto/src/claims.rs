//! Token claims: what a Rounds token says about its holder.
//!
//! Two kinds of token are signed by the server with the same keys and told apart by `aud`:
//! a *room token* ([`RoomClaims`], audience [`ROOM_AUDIENCE`]) lets one participant take part
//! in one room; a *session token* ([`SessionClaims`], audience [`SESSION_AUDIENCE`]) is a
//! clinician's short-lived access to the REST API.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// `aud` of room tokens.
pub const ROOM_AUDIENCE: &str = "rounds:room";
/// `aud` of clinician session (API access) tokens.
pub const SESSION_AUDIENCE: &str = "rounds:api";
/// No room token lives longer than this.
pub const MAX_ROOM_TOKEN_TTL_SECS: i64 = 4 * 60 * 60;

/// What a participant is in a visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Provider,
    Patient,
    Guest,
    Interpreter,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Provider => "provider",
            Role::Patient => "patient",
            Role::Guest => "guest",
            Role::Interpreter => "interpreter",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "provider" => Role::Provider,
            "patient" => Role::Patient,
            "guest" => Role::Guest,
            "interpreter" => Role::Interpreter,
            _ => return None,
        })
    }

    /// Staff are never held in the lobby and may see who is waiting.
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Provider)
    }
}

/// A permission carried by a room token.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, TS, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// Send audio, video and screen share (once admitted).
    Publish,
    /// Receive the room's media (once admitted).
    Subscribe,
    /// Send chat messages.
    Chat,
    /// Admit or deny people waiting in the lobby.
    Admit,
    /// Mint guest tokens and send guest links for this room.
    Invite,
    /// Mute, stop the camera of, or remove other participants; end the visit.
    Moderate,
    /// Start and stop a recording (with consent).
    Record,
}

/// Claims of a room token: one participant, one room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomClaims {
    pub iss: String,
    pub aud: String,
    /// The participant id.
    pub sub: String,
    /// Display name shown to others once admitted.
    pub name: String,
    pub room: String,
    pub role: Role,
    pub grants: Vec<Grant>,
    #[ts(type = "number")]
    pub iat: i64,
    #[ts(type = "number")]
    pub nbf: i64,
    #[ts(type = "number")]
    pub exp: i64,
    pub jti: String,
}

impl RoomClaims {
    pub fn has(&self, grant: Grant) -> bool {
        self.grants.contains(&grant)
    }
}

/// Claims of a clinician's API access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionClaims {
    pub iss: String,
    pub aud: String,
    /// The clinician id.
    pub sub: String,
    pub clinic: String,
    /// The refresh-token family this access token came from; revoking the family ends it.
    pub sid: String,
    #[ts(type = "number")]
    pub iat: i64,
    #[ts(type = "number")]
    pub nbf: i64,
    #[ts(type = "number")]
    pub exp: i64,
    pub jti: String,
}
