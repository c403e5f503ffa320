//! Chat with the clinic and within the visit. Messages are stored with the visit and are PHI.
//!
//! Addressing: `to: null` is the whole room (admitted people and staff), `to: "staff"` is the
//! clinic only, any other value is one participant. Someone still in the lobby can write only
//! to the clinic and reads only their own conversation with it.

use chrono::Utc;
use rounds_proto::{ChatLog, ChatMessage, Grant, ParticipantState, PostChatRequest, Role};

use crate::AppState;
use crate::access::Actor;
use crate::error::{ApiError, ApiResult};
use crate::visits::load;

pub const STAFF: &str = "staff";
const MAX_CHARS: usize = 2000;

fn sender(actor: &Actor) -> (String, Role, bool) {
    match actor {
        Actor::Clinician(s) => (format!("clinician:{}", s.sub), Role::Provider, true),
        Actor::Participant {
            claims,
            participant,
        } => (
            claims.sub.clone(),
            claims.role,
            claims.role.is_staff() || participant.state == ParticipantState::Admitted,
        ),
    }
}

pub async fn post(
    state: &AppState,
    actor: &Actor,
    visit_id: &str,
    req: PostChatRequest,
) -> ApiResult<ChatMessage> {
    let visit = load(state, visit_id).await?;
    actor.require(&visit, Grant::Chat)?;
    if !visit.is_live() {
        return Err(ApiError::conflict(
            "visit-ended",
            "This visit has ended, so chat is closed.",
        ));
    }
    let text = req.text.expose().trim();
    if text.is_empty() || text.chars().count() > MAX_CHARS {
        return Err(ApiError::unprocessable(
            "invalid-message",
            "A message must be between 1 and 2000 characters.",
        ));
    }
    let (from, role, in_room) = sender(actor);
    let to = match (in_room, req.to.as_deref()) {
        (false, None | Some(STAFF)) => Some(STAFF.to_owned()),
        (false, Some(_)) => {
            return Err(ApiError::forbidden(
                "lobby-chat",
                "While you wait, your messages go to the clinic only.",
            ));
        }
        (true, None) => None,
        (true, Some(STAFF)) => Some(STAFF.to_owned()),
        (true, Some(id)) => {
            let known = state
                .store
                .participant(id)
                .await?
                .is_some_and(|p| p.visit_id == visit.id);
            if !known {
                return Err(ApiError::not_found(
                    "participant-not-found",
                    "That person is not part of this visit.",
                ));
            }
            Some(id.to_owned())
        }
    };
    let message = state
        .store
        .insert_chat(
            &visit.id,
            &from,
            role,
            to.as_deref(),
            &rounds_proto::Phi::new(text.to_owned()),
            Utc::now(),
        )
        .await?;
    metrics::counter!("rounds_chat_messages_total").increment(1);
    state.rooms.chat(&visit.id, message.clone()).await;
    tracing::debug!(visit = %visit.id, message = %message.id, "chat message stored");
    Ok(message)
}

pub async fn list(state: &AppState, actor: &Actor, visit_id: &str) -> ApiResult<ChatLog> {
    let visit = load(state, visit_id).await?;
    actor.require(&visit, Grant::Chat)?;
    let (me, role, in_room) = sender(actor);
    let staff = role.is_staff();
    let messages = state
        .store
        .chat(&visit.id)
        .await?
        .into_iter()
        .filter(|m| {
            staff
                || m.from == me
                || m.to.as_deref() == Some(me.as_str())
                || (in_room && m.to.is_none())
        })
        .collect();
    Ok(ChatLog { messages })
}
