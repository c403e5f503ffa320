//! The bridge between signaling and the SFU: SDP offers and answers, and ICE candidates.

use rounds_proto::{ClientMessage, ErrorCode, RoomClaims, ServerMessage};

use crate::AppState;

/// Handles an offer, answer or candidate; returns an error message for the client, if any.
pub async fn negotiate(_state: &AppState, _claims: &RoomClaims, _message: ClientMessage) -> Option<ServerMessage> {
    Some(ServerMessage::error(
        ErrorCode::MediaRejected,
        "Audio and video are not enabled on this server.",
    ))
}
