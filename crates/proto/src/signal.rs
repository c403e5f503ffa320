//! Signaling: the messages on the WebSocket at `/rtc`.
//!
//! Every message is a JSON object with a `type` field. The first message a client sends is
//! [`ClientMessage::Join`], carrying the protocol version and a room token; the server answers
//! [`ServerMessage::Joined`] or an [`ServerMessage::Error`] and closes. Unknown types or
//! fields are refused with a typed error, not ignored, so a client built against another
//! version finds out at once. `docs/protocol.md` walks through a whole visit.
//!
//! Media uses two peer connections per participant, so neither side ever has to resolve an
//! offer collision: on the **publisher** connection the client offers and the server
//! answers; on the **subscriber** connection the server offers (again whenever the tracks
//! the client receives change) and the client answers.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::{ChatMessage, ParticipantState, Phi, Role};

/// The signaling protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest signaling message accepted, in bytes.
pub const MAX_SIGNAL_BYTES: usize = 64 * 1024;

/// Which of a participant's two peer connections a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum PcKind {
    /// Client → server media. The client offers.
    Publisher,
    /// Server → client media. The server offers.
    Subscriber,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    Audio,
    Video,
    /// Screen share (a video track shown differently).
    Screen,
}

/// A track a participant publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct TrackInfo {
    /// The client's id for the track (its MediaStreamTrack id or the SDP `msid` track part).
    pub id: String,
    pub kind: TrackKind,
    /// The SDP media id once negotiated.
    #[serde(default)]
    #[ts(optional)]
    pub mid: Option<String>,
    #[serde(default)]
    pub simulcast: bool,
    #[serde(default)]
    pub muted: bool,
}

/// How large a client draws one participant's camera, in device pixels; 0 × 0 when it does
/// not show it at all. The server sends each viewer the smallest simulcast layer that fills
/// the tile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct RenderSize {
    pub participant_id: String,
    pub width: u32,
    pub height: u32,
}

/// Most render sizes one `render_sizes` message may carry: more tiles than any visit shows.
pub const MAX_RENDER_SIZES: usize = 16;

/// A trickled ICE candidate (the fields of `RTCIceCandidateInit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct IceCandidate {
    /// The `candidate:` line; empty marks the end of candidates.
    pub candidate: String,
    #[serde(default, rename = "sdpMid")]
    #[ts(optional)]
    pub sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex")]
    #[ts(optional)]
    pub sdp_mline_index: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Audio,
    Video,
}

/// What a host can do to another participant. There is no "unmute": only the participant
/// can turn their own microphone or camera back on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum HostAction {
    Admit,
    Deny,
    MuteAudio,
    StopVideo,
    Remove,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// The first message: who I am (the token) and which protocol I speak. `resume` is the
    /// session id from an earlier `joined`, to take back one's place after a reconnect.
    Join {
        v: u32,
        token: String,
        #[serde(default)]
        #[ts(optional)]
        resume: Option<String>,
        /// The client takes a subscriber offer while it waits in the lobby, so that its media
        /// connection is already up (ICE and DTLS done) when it is admitted. Until then the
        /// connection carries no track: the server adds them at admission.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        #[ts(as = "Option<bool>", optional)]
        prepare_media: bool,
    },
    /// `offer_id` is the client's own number for this offer; the server's answer carries it
    /// back, so an answer to an offer since replaced is recognised as such.
    Offer {
        pc: PcKind,
        sdp: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        offer_id: Option<u32>,
    },
    Answer {
        pc: PcKind,
        sdp: String,
    },
    Ice {
        pc: PcKind,
        candidate: IceCandidate,
    },
    Publish {
        track: TrackInfo,
    },
    Unpublish {
        track_id: String,
    },
    /// My own microphone or camera turned on or off.
    SetMuted {
        kind: MediaKind,
        muted: bool,
    },
    /// How large I draw each participant's camera now (send again when tiles change; each
    /// message replaces the sizes it names). At most [`MAX_RENDER_SIZES`] entries.
    RenderSizes {
        sizes: Vec<RenderSize>,
    },
    Chat {
        #[ts(type = "string")]
        text: Phi<String>,
        /// A participant id, `"staff"`, or absent for the whole room.
        #[serde(default)]
        #[ts(optional)]
        to: Option<String>,
    },
    Host {
        participant: String,
        action: HostAction,
    },
    Ping {
        #[ts(type = "number")]
        t: u64,
    },
    Pong {
        #[ts(type = "number")]
        t: u64,
    },
    Leave,
}

/// Someone in the room, as others see them. Lobby participants never see these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RoomParticipant {
    pub id: String,
    #[ts(type = "string")]
    pub name: Phi<String>,
    pub role: Role,
    pub state: ParticipantState,
    pub audio_muted: bool,
    pub video_muted: bool,
    pub connected: bool,
    pub tracks: Vec<TrackInfo>,
}

/// What the server asks of the client's video.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct VideoConstraints {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub max_bitrate_kbps: u32,
    pub simulcast: bool,
    /// `VP8` by default; `H264` when the room asks for it.
    pub codec: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ParticipantQuality {
    pub participant_id: String,
    /// 0 (no data) to 5 (excellent).
    pub score: u8,
}

/// Typed signaling errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, or not a known message, or fields missing or unknown.
    BadMessage,
    UnsupportedVersion,
    TooLarge,
    /// The first message was not `join`, or `join` came twice.
    NotJoined,
    /// The token was refused (expired, forged, other room...).
    Unauthorized,
    /// Not allowed for your role or grants.
    Forbidden,
    /// Media and room details wait until the clinic admits you.
    NotAdmitted,
    RateLimited,
    /// The visit has ended or the room closed.
    RoomClosed,
    /// The SDP or candidate could not be used.
    MediaRejected,
    /// Another connection took over this participant.
    Replaced,
    Internal,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Joined {
        v: u32,
        /// Send this back as `join.resume` after a reconnect.
        session: String,
        room: String,
        me: RoomParticipant,
        /// Everyone admitted, including me once admitted. Empty while in the lobby.
        participants: Vec<RoomParticipant>,
        /// Who is waiting in the lobby (staff only; empty for everyone else).
        waiting: Vec<RoomParticipant>,
        video: VideoConstraints,
        /// The server pings at least this often; a client that hears nothing for twice as
        /// long should reconnect.
        heartbeat_secs: u32,
        /// How long after a drop `resume` still works.
        resume_secs: u32,
        running_late_minutes: Option<u32>,
        /// True when this join took back an earlier session.
        resumed: bool,
    },
    /// The clinic let you in: here is the room.
    Admitted {
        participants: Vec<RoomParticipant>,
    },
    Denied {
        message: String,
    },
    Removed {
        message: String,
    },
    ParticipantJoined {
        participant: RoomParticipant,
    },
    ParticipantUpdated {
        participant: RoomParticipant,
    },
    ParticipantLeft {
        participant_id: String,
    },
    /// Staff only: the people waiting, whenever it changes.
    LobbyUpdated {
        waiting: Vec<RoomParticipant>,
    },
    Offer {
        pc: PcKind,
        sdp: String,
    },
    /// `offer_id` repeats the one of the client's offer this answers, when it had one.
    Answer {
        pc: PcKind,
        sdp: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        offer_id: Option<u32>,
    },
    Ice {
        pc: PcKind,
        candidate: IceCandidate,
    },
    TrackPublished {
        participant_id: String,
        track: TrackInfo,
    },
    TrackUnpublished {
        participant_id: String,
        track_id: String,
    },
    DominantSpeaker {
        participant_id: Option<String>,
    },
    NetworkQuality {
        scores: Vec<ParticipantQuality>,
    },
    Chat {
        message: ChatMessage,
    },
    /// A host turned off your microphone or camera. Only you can turn it back on.
    MuteRequested {
        kind: MediaKind,
        message: String,
    },
    RunningLate {
        minutes: u32,
    },
    VideoConstraints {
        video: VideoConstraints,
    },
    VisitEnded {
        message: String,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    Ping {
        #[ts(type = "number")]
        t: u64,
    },
    Pong {
        #[ts(type = "number")]
        t: u64,
    },
}

impl ServerMessage {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_parses_and_unknown_fields_are_refused() {
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"join","v":1,"token":"abc"}"#).unwrap();
        assert!(matches!(m, ClientMessage::Join { v: 1, .. }));
        assert!(
            serde_json::from_str::<ClientMessage>(r#"{"type":"join","v":1,"token":"a","x":1}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"teleport"}"#).is_err());
    }

    #[test]
    fn ice_uses_browser_field_names() {
        let m: ClientMessage = serde_json::from_str(
            r#"{"type":"ice","pc":"publisher","candidate":{"candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ host","sdpMid":"0","sdpMLineIndex":0}}"#,
        )
        .unwrap();
        let ClientMessage::Ice { candidate, .. } = m else {
            panic!()
        };
        assert_eq!(candidate.sdp_mid.as_deref(), Some("0"));
    }

    #[test]
    fn chat_text_is_redacted_in_debug() {
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"chat","text":"my secret"}"#).unwrap();
        assert!(!format!("{m:?}").contains("secret"));
    }
}
