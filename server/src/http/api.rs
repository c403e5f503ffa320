//! REST handlers under `/api/v1`. Each one extracts, calls the domain, and maps the result.

use axum::extract::State;
use axum::http::StatusCode;
use rounds_proto::*;
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{Caller, ClientIp, Json, Path, Query, Session};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::ratelimit::Class;
use crate::rooms::admission::Action;
use crate::{chat, invitations, sessions, visits};

// ---- sessions ----

/// Sign in with a local account.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "sessions", request_body = LoginRequest,
    responses((status = 200, body = SessionResponse), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Json<SessionResponse>> {
    state.limits.check(Class::Login, ip)?;
    state.limits.check_account(&req.email)?;
    Ok(Json(
        sessions::login(&state, &req.email, &req.password).await?,
    ))
}

/// Trade a refresh token for a new session pair. Each refresh token works once.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "sessions", request_body = RefreshRequest,
    responses((status = 200, body = SessionResponse), (status = 401, body = Problem)))]
pub async fn refresh(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<Json<SessionResponse>> {
    state.limits.check(Class::Token, ip)?;
    Ok(Json(sessions::refresh(&state, &req.refresh_token).await?))
}

/// Sign out: the refresh token's whole session ends.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "sessions", request_body = LogoutRequest,
    responses((status = 204, description = "Signed out")))]
pub async fn logout(
    State(state): State<AppState>,
    Json(req): Json<LogoutRequest>,
) -> ApiResult<StatusCode> {
    sessions::logout(&state, &req.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- visits ----

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DayQuery {
    /// `YYYY-MM-DD` in the clinic's time zone; today when absent.
    pub day: Option<String>,
}

/// The signed-in clinician's queue for one day.
#[utoipa::path(get, path = "/api/v1/visits", tag = "visits", params(DayQuery),
    responses((status = 200, body = Queue), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn queue(
    State(state): State<AppState>,
    Session(s): Session,
    Query(q): Query<DayQuery>,
) -> ApiResult<Json<Queue>> {
    Ok(Json(visits::queue(&state, &s, q.day.as_deref()).await?))
}

/// Create a visit; the response carries its patient link (shown once).
#[utoipa::path(post, path = "/api/v1/visits", tag = "visits", request_body = CreateVisitRequest,
    responses((status = 201, body = CreatedVisit), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_visit(
    State(state): State<AppState>,
    Session(s): Session,
    Json(req): Json<CreateVisitRequest>,
) -> ApiResult<(StatusCode, Json<CreatedVisit>)> {
    Ok((
        StatusCode::CREATED,
        Json(visits::create(&state, &s.clinic, &s.sub, req).await?),
    ))
}

/// One visit of the clinician's clinic.
#[utoipa::path(get, path = "/api/v1/visits/{id}", tag = "visits", params(("id" = String, Path)),
    responses((status = 200, body = Visit), (status = 404, body = Problem)))]
pub async fn get_visit(
    State(state): State<AppState>,
    Session(s): Session,
    Path(id): Path<String>,
) -> ApiResult<Json<Visit>> {
    let visit = visits::load_for(&state, &s, &id).await?;
    state
        .audit
        .record(
            crate::audit::Event::new(
                format!("clinician:{}", s.sub),
                crate::audit::Action::VisitViewed,
            )
            .visit(&visit.id),
        )
        .await?;
    Ok(Json(visits::to_proto(&state, &visit)))
}

/// A provider room token for the signed-in clinician.
#[utoipa::path(post, path = "/api/v1/visits/{id}/token", tag = "visits", params(("id" = String, Path)),
    responses((status = 200, body = RoomToken), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn provider_token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Session(s): Session,
    Path(id): Path<String>,
) -> ApiResult<Json<RoomToken>> {
    state.limits.check(Class::Token, ip)?;
    Ok(Json(visits::provider_token(&state, &s, &id).await?))
}

/// Let a waiting participant in.
#[utoipa::path(post, path = "/api/v1/visits/{id}/admit/{participant}", tag = "waiting room",
    params(("id" = String, Path), ("participant" = String, Path)),
    responses((status = 200, body = Participant), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn admit(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path((id, participant)): Path<(String, String)>,
) -> ApiResult<Json<Participant>> {
    Ok(Json(
        visits::decide(&state, &actor, &id, &participant, Action::Admit).await?,
    ))
}

/// Turn a waiting participant away; their link and token stop working.
#[utoipa::path(post, path = "/api/v1/visits/{id}/deny/{participant}", tag = "waiting room",
    params(("id" = String, Path), ("participant" = String, Path)),
    responses((status = 200, body = Participant), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn deny(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path((id, participant)): Path<(String, String)>,
) -> ApiResult<Json<Participant>> {
    Ok(Json(
        visits::decide(&state, &actor, &id, &participant, Action::Deny).await?,
    ))
}

/// Remove a participant from the visit.
#[utoipa::path(post, path = "/api/v1/visits/{id}/remove/{participant}", tag = "waiting room",
    params(("id" = String, Path), ("participant" = String, Path)),
    responses((status = 200, body = Participant), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn remove(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path((id, participant)): Path<(String, String)>,
) -> ApiResult<Json<Participant>> {
    Ok(Json(
        visits::decide(&state, &actor, &id, &participant, Action::Remove).await?,
    ))
}

/// End the visit for everyone.
#[utoipa::path(post, path = "/api/v1/visits/{id}/end", tag = "visits", params(("id" = String, Path)),
    responses((status = 200, body = Visit), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn end(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Visit>> {
    Ok(Json(visits::end(&state, &actor, &id).await?))
}

/// Tell the waiting patient the clinician is running late (0 clears it).
#[utoipa::path(post, path = "/api/v1/visits/{id}/running-late", tag = "waiting room", params(("id" = String, Path)),
    request_body = RunningLateRequest,
    responses((status = 200, body = Visit), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn running_late(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    Json(req): Json<RunningLateRequest>,
) -> ApiResult<Json<Visit>> {
    Ok(Json(
        visits::running_late(&state, &actor, &id, req.minutes).await?,
    ))
}

/// Cancel every patient link of the visit and issue a new one.
#[utoipa::path(post, path = "/api/v1/visits/{id}/patient-link", tag = "visits", params(("id" = String, Path)),
    responses((status = 200, body = PatientLink), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn reissue_link(
    State(state): State<AppState>,
    Session(s): Session,
    Path(id): Path<String>,
) -> ApiResult<Json<PatientLink>> {
    let link = visits::reissue_patient_link(&state, &s, &id, true).await?;
    link.map(Json)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no link issued")))
}

/// Cancel every patient link of the visit.
#[utoipa::path(delete, path = "/api/v1/visits/{id}/patient-link", tag = "visits", params(("id" = String, Path)),
    responses((status = 204, description = "Links revoked"), (status = 404, body = Problem)))]
pub async fn revoke_link(
    State(state): State<AppState>,
    Session(s): Session,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    visits::reissue_patient_link(&state, &s, &id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send the patient or a guest their link by SMS or email, or just create one to copy.
#[utoipa::path(post, path = "/api/v1/visits/{id}/invitations", tag = "invitations", params(("id" = String, Path)),
    request_body = CreateInvitationRequest,
    responses((status = 201, body = Invitation), (status = 404, body = Problem), (status = 422, body = Problem), (status = 502, body = Problem)))]
pub async fn invite(
    State(state): State<AppState>,
    Session(s): Session,
    Path(id): Path<String>,
    Json(req): Json<CreateInvitationRequest>,
) -> ApiResult<(StatusCode, Json<Invitation>)> {
    Ok((
        StatusCode::CREATED,
        Json(invitations::create(&state, &s, &id, req).await?),
    ))
}

// ---- links ----

/// What a visit link is for, before checking in.
#[utoipa::path(get, path = "/api/v1/join/{code}", tag = "links", params(("code" = String, Path)),
    responses((status = 200, body = JoinLinkInfo), (status = 404, body = Problem), (status = 410, body = Problem), (status = 429, body = Problem)))]
pub async fn join_info(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(code): Path<String>,
) -> ApiResult<Json<JoinLinkInfo>> {
    state.limits.check(Class::Join, ip)?;
    Ok(Json(visits::link_info(&state, &code).await?))
}

/// Check in from a link: returns a room token in the lobby (or admitted, when rejoining).
#[utoipa::path(post, path = "/api/v1/join/{code}", tag = "links", params(("code" = String, Path)),
    request_body = JoinRequest,
    responses((status = 200, body = RoomToken), (status = 403, body = Problem), (status = 404, body = Problem), (status = 410, body = Problem), (status = 429, body = Problem)))]
pub async fn join(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(code): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<RoomToken>> {
    state.limits.check(Class::Join, ip)?;
    // The body is optional: a bare POST checks in with the name on the visit.
    let req = if body.iter().all(u8::is_ascii_whitespace) {
        JoinRequest::default()
    } else {
        serde_json::from_slice::<JoinRequest>(&body).map_err(|e| {
            if e.is_syntax() || e.is_eof() {
                ApiError::bad_request("malformed-json", "The request body is not valid JSON.")
            } else {
                ApiError::unprocessable(
                    "invalid-body",
                    format!("The request body has the wrong shape: {e}."),
                )
            }
        })?
    };
    Ok(Json(visits::join(&state, &code, req).await?))
}

// ---- rooms ----

/// Mint a token for a guest or interpreter of this room (admitted participants with `invite`).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/guest-tokens", tag = "rooms", params(("room" = String, Path)),
    request_body = GuestTokenRequest,
    responses((status = 201, body = RoomToken), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn guest_token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Caller(actor): Caller,
    Path(room): Path<String>,
    Json(req): Json<GuestTokenRequest>,
) -> ApiResult<(StatusCode, Json<RoomToken>)> {
    state.limits.check(Class::Token, ip)?;
    Ok((
        StatusCode::CREATED,
        Json(visits::guest_token(&state, &actor, &room, req).await?),
    ))
}

/// The caller's own place in the room (for the waiting room to learn it was admitted).
#[utoipa::path(get, path = "/api/v1/rooms/{room}/me", tag = "rooms", params(("room" = String, Path)),
    responses((status = 200, body = Participant), (status = 403, body = Problem)))]
pub async fn me(Caller(actor): Caller, Path(room): Path<String>) -> ApiResult<Json<Participant>> {
    let (_, participant) = actor.own_place(&room)?;
    Ok(Json(participant.to_proto()))
}

/// Leave the room (the same link can rejoin).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/leave", tag = "rooms", params(("room" = String, Path)),
    responses((status = 200, body = Participant), (status = 403, body = Problem)))]
pub async fn leave(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(room): Path<String>,
) -> ApiResult<Json<Participant>> {
    Ok(Json(visits::leave(&state, &actor, &room).await?))
}

/// Who is in the room. People still in the lobby see nobody.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/participants", tag = "rooms", params(("room" = String, Path)),
    responses((status = 200, body = [Participant]), (status = 403, body = Problem)))]
pub async fn participants(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(room): Path<String>,
) -> ApiResult<Json<Vec<Participant>>> {
    Ok(Json(visits::participants(&state, &actor, &room).await?))
}

/// Record the patient's device and network check, for the clinician's queue.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/device-check", tag = "rooms", params(("room" = String, Path)),
    request_body = DeviceCheck,
    responses((status = 204, description = "Stored"), (status = 403, body = Problem)))]
pub async fn device_check(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(room): Path<String>,
    Json(check): Json<DeviceCheck>,
) -> ApiResult<StatusCode> {
    match &actor {
        crate::access::Actor::Participant { claims, .. }
            if claims.room == room && claims.role == Role::Patient =>
        {
            state.store.set_device_check(&room, &check).await?;
            if let Some(visit) = state.store.visit(&room).await? {
                state.events.queue_changed(&visit);
            }
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Err(ApiError::forbidden(
            "patient-only",
            "Only the patient of this visit reports its device check.",
        )),
    }
}

/// The chat messages the caller may read.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/chat", tag = "rooms", params(("room" = String, Path)),
    responses((status = 200, body = ChatLog), (status = 403, body = Problem)))]
pub async fn chat_log(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(room): Path<String>,
) -> ApiResult<Json<ChatLog>> {
    Ok(Json(chat::list(&state, &actor, &room).await?))
}

/// Send a chat message. From the lobby, messages go to the clinic only.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/chat", tag = "rooms", params(("room" = String, Path)),
    request_body = PostChatRequest,
    responses((status = 201, body = ChatMessage), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn chat_post(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(room): Path<String>,
    Json(req): Json<PostChatRequest>,
) -> ApiResult<(StatusCode, Json<ChatMessage>)> {
    Ok((
        StatusCode::CREATED,
        Json(chat::post(&state, &actor, &room, req).await?),
    ))
}

// ---- desktop app: sign-in tickets and the live queue feed ----

/// A one-time sign-in ticket for the desktop app (for a `rounds://signin` link).
#[utoipa::path(post, path = "/api/v1/auth/tickets", tag = "sessions",
    responses((status = 201, body = SignInTicket), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn issue_ticket(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Session(s): Session,
) -> ApiResult<(StatusCode, Json<SignInTicket>)> {
    state.limits.check(Class::Token, ip)?;
    Ok((
        StatusCode::CREATED,
        Json(sessions::issue_ticket(&state, &s).await?),
    ))
}

/// Trade a one-time sign-in ticket for a session. Each ticket works once, for two minutes.
#[utoipa::path(post, path = "/api/v1/auth/ticket", tag = "sessions", request_body = TicketExchangeRequest,
    responses((status = 200, body = SessionResponse), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn redeem_ticket(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<TicketExchangeRequest>,
) -> ApiResult<Json<SessionResponse>> {
    state.limits.check(Class::Login, ip)?;
    Ok(Json(sessions::redeem_ticket(&state, &req.ticket).await?))
}

/// The signed-in clinician's live queue feed, as Server-Sent Events (`text/event-stream`).
///
/// Each event's name is its `type`; its data is a [`QueueEvent`]. A comment line is sent
/// every 15 seconds so proxies and the app notice a dead connection. The stream ends when
/// the access token expires: refresh, then connect again.
#[utoipa::path(get, path = "/api/v1/events", tag = "visits",
    responses((status = 200, content_type = "text/event-stream", body = QueueEvent), (status = 401, body = Problem)))]
pub async fn events(
    State(state): State<AppState>,
    Session(s): Session,
) -> axum::response::Sse<
    impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use tokio::sync::broadcast::error::RecvError;

    fn encode(event: &QueueEvent) -> Event {
        let name = match event {
            QueueEvent::Hello { .. } => "hello",
            QueueEvent::QueueChanged { .. } => "queue_changed",
            QueueEvent::PatientCheckedIn { .. } => "patient_checked_in",
            QueueEvent::GuestJoined { .. } => "guest_joined",
        };
        Event::default()
            .event(name)
            .json_data(event)
            .unwrap_or_else(|_| Event::default().comment("unencodable"))
    }

    let rx = state.events.subscribe();
    let ends_in = u64::try_from(s.exp - chrono::Utc::now().timestamp()).unwrap_or(0);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(ends_in);
    let hello = QueueEvent::Hello {
        clinician_id: s.sub.clone(),
    };
    let first = futures_util::stream::once(async move { Ok(encode(&hello)) });
    let rest = futures_util::stream::unfold((rx, s), move |(mut rx, s)| async move {
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) | Ok(Err(RecvError::Closed)) => return None,
                Ok(Ok(e)) if e.clinician_id == s.sub && e.clinic_id == s.clinic => {
                    return Some((Ok(encode(&e.event)), (rx, s)));
                }
                Ok(Ok(_)) => continue,
                Ok(Err(RecvError::Lagged(_))) => {
                    // Too far behind to replay: ask for a full re-read.
                    let reread = QueueEvent::QueueChanged {
                        visit_id: String::new(),
                    };
                    return Some((Ok(encode(&reread)), (rx, s)));
                }
            }
        }
    });
    let stream = futures_util::StreamExt::chain(first, rest);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
}
