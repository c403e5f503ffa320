//! The bridge between signaling and the SFU: SDP offers and answers, and ICE candidates.
//!
//! Only admitted participants negotiate media, as the room task knows them (not the database:
//! this runs for every trickled candidate); a lobby page that asked to prepare its media may
//! only answer the server's subscriber offer, which carries no track until admission. The SFU
//! also enforces admission on every packet (the room task keeps its gate current), so a stale
//! negotiation cannot leak media.

use rounds_proto::{ClientMessage, ErrorCode, PcKind, RoomClaims, ServerMessage};

use crate::AppState;
use crate::rooms::room::MediaAccess;
use crate::sfu::{self, SfuError};

fn driver_kind(pc: PcKind) -> sfu::PcKind {
    match pc {
        PcKind::Publisher => sfu::PcKind::Publisher,
        PcKind::Subscriber => sfu::PcKind::Subscriber,
    }
}

fn rejected(e: SfuError) -> ServerMessage {
    let message = match e {
        SfuError::InvalidSdp(_) => "The session description could not be used.".to_owned(),
        SfuError::InvalidCandidate(_) => "The ICE candidate could not be used.".to_owned(),
        SfuError::NegotiationInProgress => {
            "A negotiation is already in progress; answer it first.".to_owned()
        }
        SfuError::NoOfferPending => "There is no offer waiting for this answer.".to_owned(),
        SfuError::UnknownPeer => "Send your publisher offer first.".to_owned(),
        other => {
            tracing::warn!(error = %other, "media negotiation failed");
            "Media could not be set up. Try rejoining.".to_owned()
        }
    };
    ServerMessage::error(ErrorCode::MediaRejected, message)
}

/// Handles an offer, answer or candidate. `Ok(Some(..))` is a reply for the client.
// The error is the typed message sent back to the client.
#[allow(clippy::result_large_err)]
pub async fn negotiate(
    state: &AppState,
    claims: &RoomClaims,
    message: ClientMessage,
) -> Result<Option<ServerMessage>, ServerMessage> {
    let Some(sfu) = state.rooms.sfu() else {
        return Err(ServerMessage::error(
            ErrorCode::MediaRejected,
            "Audio and video are not enabled on this server.",
        ));
    };
    // The room task's own record: it is what admission changes first, and asking it costs a
    // message, not a database read per trickled candidate.
    let allowed = match state.rooms.media_access(&claims.room, &claims.sub).await {
        MediaAccess::Admitted => true,
        // A lobby page preparing its subscriber connection, which carries no track until
        // admission (the SFU's gate): it may answer the server's offer and trickle for it.
        MediaAccess::Preparing => matches!(
            message,
            ClientMessage::Answer {
                pc: PcKind::Subscriber,
                ..
            } | ClientMessage::Ice {
                pc: PcKind::Subscriber,
                ..
            }
        ),
        MediaAccess::None => false,
    };
    if !allowed {
        return Err(ServerMessage::error(
            ErrorCode::NotAdmitted,
            "You can share audio and video once the clinic lets you in.",
        ));
    }
    let peer = claims.sub.clone();
    match message {
        ClientMessage::Offer {
            pc: PcKind::Publisher,
            sdp,
            offer_id,
        } => {
            let answer = sfu.publisher_answer(&peer, sdp).await.map_err(rejected)?;
            Ok(Some(ServerMessage::Answer {
                pc: PcKind::Publisher,
                sdp: answer,
                offer_id,
            }))
        }
        ClientMessage::Answer {
            pc: PcKind::Subscriber,
            sdp,
        } => {
            sfu.subscriber_answer(&peer, sdp).await.map_err(rejected)?;
            Ok(None)
        }
        ClientMessage::Ice { pc, candidate } => {
            if candidate.candidate.is_empty() {
                return Ok(None);
            }
            sfu.add_ice_candidate(
                &peer,
                driver_kind(pc),
                candidate.candidate,
                candidate.sdp_mid,
                candidate.sdp_mline_index,
            )
            .await
            .map_err(rejected)?;
            Ok(None)
        }
        ClientMessage::Offer { .. } => Err(ServerMessage::error(
            ErrorCode::BadMessage,
            "Offers are made on the publisher connection only; the server offers the subscriber connection.",
        )),
        ClientMessage::Answer { .. } => Err(ServerMessage::error(
            ErrorCode::BadMessage,
            "Answers are sent for the subscriber connection only.",
        )),
        _ => Ok(None),
    }
}
