//! Who is calling, and what they may do to a visit.
//!
//! A caller is either a signed-in clinician (session token) or a participant of one room
//! (room token). Room tokens are checked against the participant's current admission state
//! on every use, so denying or removing someone ends their token at once.

use rounds_proto::{Grant, RoomClaims, SessionClaims};

use crate::error::{ApiError, ApiResult};
use crate::rooms::admission;
use crate::store::{ParticipantRow, VisitRow};

#[derive(Debug, Clone)]
pub enum Actor {
    Clinician(SessionClaims),
    Participant {
        claims: RoomClaims,
        participant: ParticipantRow,
    },
}

impl Actor {
    /// The audit log's name for this caller.
    pub fn audit_name(&self) -> String {
        match self {
            Actor::Clinician(c) => format!("clinician:{}", c.sub),
            Actor::Participant { claims, .. } => format!("participant:{}", claims.sub),
        }
    }

    /// The caller's own place in `room`: only a participant of that room has one.
    pub fn own_place(&self, room: &str) -> ApiResult<(&RoomClaims, &ParticipantRow)> {
        match self {
            Actor::Participant {
                claims,
                participant,
            } if claims.room == room => Ok((claims, participant)),
            Actor::Participant { .. } => Err(wrong_room()),
            Actor::Clinician(_) => Err(ApiError::forbidden(
                "room-token-required",
                "Use the access from your visit link for this.",
            )),
        }
    }

    /// May this caller act on `visit` with `grant`? Clinicians of the visit's clinic may do
    /// anything to it; participants need the grant, in this room, while admitted.
    pub fn require(&self, visit: &VisitRow, grant: Grant) -> ApiResult<()> {
        match self {
            Actor::Clinician(session) => {
                if session.clinic == visit.clinic_id {
                    Ok(())
                } else {
                    Err(not_your_visit())
                }
            }
            Actor::Participant {
                claims,
                participant,
            } => {
                if claims.room != visit.id {
                    return Err(wrong_room());
                }
                if !claims.has(grant) {
                    return Err(ApiError::forbidden(
                        "missing-grant",
                        format!(
                            "Your access to this visit does not allow this ({}). Ask the clinician.",
                            grant_words(grant)
                        ),
                    ));
                }
                if grant != Grant::Chat && !admission::may_exchange_media(participant.state) {
                    return Err(ApiError::forbidden(
                        "not-admitted",
                        "You can do this once the clinic has let you into the visit.",
                    ));
                }
                Ok(())
            }
        }
    }
}

fn grant_words(grant: Grant) -> &'static str {
    match grant {
        Grant::Publish => "sending audio and video",
        Grant::Subscribe => "receiving audio and video",
        Grant::Chat => "chat",
        Grant::Admit => "admitting people from the waiting room",
        Grant::Invite => "inviting guests",
        Grant::Moderate => "managing participants",
        Grant::Record => "recording",
    }
}

pub fn not_your_visit() -> ApiError {
    ApiError::not_found("visit-not-found", "There is no such visit in your clinic.")
}

pub fn wrong_room() -> ApiError {
    ApiError::forbidden(
        "wrong-room",
        "Your access is for a different visit. Open the link you were sent for this one.",
    )
}

/// Checks that a room token still belongs to a usable participant of its room.
pub fn check_participant(
    claims: &RoomClaims,
    participant: Option<ParticipantRow>,
) -> ApiResult<ParticipantRow> {
    let Some(p) = participant.filter(|p| p.visit_id == claims.room) else {
        return Err(ApiError::unauthorized(
            "unknown-participant",
            "Your access to this visit is no longer valid. Open your link again.",
        ));
    };
    if !admission::token_usable(p.state) {
        return Err(ApiError::forbidden(
            "removed",
            "The clinic has closed this visit to you. If you think this is a mistake, call the clinic.",
        ));
    }
    Ok(p)
}
