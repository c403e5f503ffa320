//! Visits: creating them, the day's queue, links, checking in, admission and ending.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rounds_auth::RoomGrant;
use rounds_proto::{
    CreateVisitRequest, CreatedVisit, Grant, GuestTokenRequest, JoinLinkInfo, JoinRequest,
    ParticipantState, PatientLink, Phi, Queue, Role, RoomToken, SessionClaims, Visit, grants_for,
};

use crate::AppState;
use crate::access::{Actor, not_your_visit, wrong_room};
use crate::audit::{Action as AuditAction, Event};
use crate::error::{ApiError, ApiResult};
use crate::rooms::admission::{self, Action, AdmissionError};
use crate::store::{LinkRow, NewParticipant, NewVisit, ParticipantRow, VisitRow, new_id};

/// The invitee id shared by every link sent to a visit's patient: all of them lead to the
/// same participant, so a reminder link and the first link rejoin as the same person.
pub const PATIENT_INVITEE: &str = "patient";

pub fn link_url(state: &AppState, code: &str) -> String {
    format!("{}/join/{code}", state.config.public_url())
}

/// Creates a visit in `clinic_id`'s queue for `clinician_id`, with its patient link. Callers
/// have already established who the clinician is (a session, the demo, an EHR launch).
pub async fn create(
    state: &AppState,
    clinic_id: &str,
    clinician_id: &str,
    req: CreateVisitRequest,
) -> ApiResult<CreatedVisit> {
    let now = Utc::now();
    let duration = req
        .duration_minutes
        .unwrap_or(state.config.visits.default_duration_minutes);
    if !(1..=8 * 60).contains(&duration) {
        return Err(ApiError::unprocessable(
            "invalid-duration",
            "A visit must last between 1 minute and 8 hours.",
        ));
    }
    if req.scheduled_at < now - Duration::hours(24) || req.scheduled_at > now + Duration::days(366)
    {
        return Err(ApiError::unprocessable(
            "invalid-time",
            "A visit must be scheduled between yesterday and a year from now.",
        ));
    }
    if let Some(name) = &req.patient_name
        && (name.expose().trim().is_empty() || name.expose().chars().count() > 200)
    {
        return Err(ApiError::unprocessable(
            "invalid-name",
            "The patient's name must be between 1 and 200 characters.",
        ));
    }
    let id = new_id();
    state
        .store
        .insert_visit(
            &NewVisit {
                id: &id,
                clinic_id,
                clinician_id,
                scheduled_at: req.scheduled_at,
                duration_minutes: duration,
                patient_name: req.patient_name.as_ref(),
            },
            now,
        )
        .await?;
    let visit = load(state, &id).await?;
    let expires_at = visit.link_expires_at(state.config.visits.link_grace_minutes);
    let code = state
        .store
        .create_link(&id, Role::Patient, PATIENT_INVITEE, expires_at, now)
        .await?;
    let actor = format!("clinician:{clinician_id}");
    state
        .audit
        .record(
            Event::new(&actor, AuditAction::VisitCreated)
                .visit(&id)
                .detail(serde_json::json!({ "scheduled_at": visit.scheduled_at, "duration_minutes": duration })),
        )
        .await?;
    state
        .audit
        .record(
            Event::new(&actor, AuditAction::LinkIssued)
                .visit(&id)
                .subject(PATIENT_INVITEE),
        )
        .await?;
    metrics::counter!("rounds_visits_created_total").increment(1);
    Ok(CreatedVisit {
        visit: visit.to_proto(now, state.config.visits.link_grace_minutes),
        patient_link: PatientLink {
            url: link_url(state, &code),
            expires_at,
        },
    })
}

pub async fn load(state: &AppState, id: &str) -> ApiResult<VisitRow> {
    state.store.visit(id).await?.ok_or_else(not_your_visit)
}

/// A visit the clinician's clinic owns.
pub async fn load_for(state: &AppState, session: &SessionClaims, id: &str) -> ApiResult<VisitRow> {
    let visit = load(state, id).await?;
    if visit.clinic_id != session.clinic {
        return Err(not_your_visit());
    }
    Ok(visit)
}

pub fn to_proto(state: &AppState, visit: &VisitRow) -> Visit {
    visit.to_proto(Utc::now(), state.config.visits.link_grace_minutes)
}

/// The clinician's visits on `day` (clinic time zone; today when absent).
pub async fn queue(
    state: &AppState,
    session: &SessionClaims,
    day: Option<&str>,
) -> ApiResult<Queue> {
    let clinic = state
        .store
        .clinic(&session.clinic)
        .await?
        .ok_or_else(not_your_visit)?;
    let tz: chrono_tz::Tz = clinic.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let date = match day {
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
            ApiError::bad_request("invalid-day", "The day must be a date like 2026-11-24.")
        })?,
        None => Utc::now().with_timezone(&tz).date_naive(),
    };
    let start = day_start(tz, date);
    let end = day_start(tz, date.succ_opt().unwrap_or(date));
    let rows = state.store.visits_between(&session.sub, start, end).await?;
    Ok(Queue {
        day: date.format("%Y-%m-%d").to_string(),
        time_zone: tz.name().to_owned(),
        visits: rows.iter().map(|v| to_proto(state, v)).collect(),
    })
}

fn day_start(tz: chrono_tz::Tz, date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
}

/// Resolves a join code, refusing unknown, revoked and expired links with a friendly word.
pub async fn resolve_link(state: &AppState, code: &str) -> ApiResult<(LinkRow, VisitRow)> {
    const UNKNOWN: &str = "This visit link is not valid. Check that you opened the whole link from \
        your message, or call your clinic for a new one.";
    if code.len() > 64 || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::not_found("unknown-link", UNKNOWN));
    }
    let link = state
        .store
        .link(code)
        .await?
        .ok_or_else(|| ApiError::not_found("unknown-link", UNKNOWN))?;
    if link.revoked_at.is_some() {
        return Err(ApiError::gone(
            "revoked-link",
            "This visit link has been cancelled by the clinic. Call your clinic if you still need your visit.",
        ));
    }
    let visit = load(state, &link.visit_id).await?;
    if visit.ended_at.is_some() {
        return Err(ApiError::gone(
            "visit-ended",
            "This visit has ended. Call your clinic if you need another one.",
        ));
    }
    if Utc::now() >= link.expires_at {
        return Err(ApiError::gone(
            "expired-link",
            "This visit link has expired. Call your clinic and they will send you a new one.",
        ));
    }
    Ok((link, visit))
}

pub async fn link_info(state: &AppState, code: &str) -> ApiResult<JoinLinkInfo> {
    let (link, visit) = resolve_link(state, code).await?;
    let clinic = state
        .store
        .clinic(&visit.clinic_id)
        .await?
        .ok_or_else(not_your_visit)?;
    Ok(JoinLinkInfo {
        clinic_name: clinic.name,
        scheduled_at: visit.scheduled_at,
        time_zone: clinic.time_zone,
        role: link.role,
        visit_state: visit.state(Utc::now()),
        running_late_minutes: visit.running_late_minutes,
    })
}

/// Checks in from a link: the same link always returns the same participant.
pub async fn join(state: &AppState, code: &str, req: JoinRequest) -> ApiResult<RoomToken> {
    let (link, visit) = resolve_link(state, code).await?;
    if let Some(name) = &req.display_name
        && (name.expose().trim().is_empty() || name.expose().chars().count() > 100)
    {
        return Err(ApiError::unprocessable(
            "invalid-name",
            "Your name must be between 1 and 100 characters.",
        ));
    }
    let now = Utc::now();
    let existing = state
        .store
        .participant_by_invitee(&visit.id, &link.invitee_id)
        .await?;
    let participant = match existing {
        None => {
            let default_name = match link.role {
                Role::Patient => visit
                    .patient_name
                    .clone()
                    .unwrap_or_else(|| Phi::new("Patient".into())),
                Role::Interpreter => Phi::new("Interpreter".into()),
                _ => Phi::new("Guest".into()),
            };
            let name = req
                .display_name
                .clone()
                .map(|n| Phi::new(n.expose().trim().to_owned()))
                .unwrap_or(default_name);
            state
                .store
                .insert_or_get_participant(
                    &NewParticipant {
                        visit_id: &visit.id,
                        role: link.role,
                        invitee_id: Some(&link.invitee_id),
                        clinician_id: None,
                        display_name: &name,
                        state: ParticipantState::Lobby,
                    },
                    now,
                )
                .await?
        }
        Some(mut p) => {
            let to = admission::next(p.state, Action::Rejoin).map_err(admission_error)?;
            if to != p.state {
                state
                    .store
                    .transition_participant(&p.id, p.state, to, now)
                    .await?;
                p.state = to;
            }
            if let Some(name) = &req.display_name {
                state.store.rename_participant(&p.id, name).await?;
            }
            p
        }
    };
    // A patient rejoining the lobby is already waiting: only the first knock is a write.
    if participant.role == Role::Patient
        && participant.state == ParticipantState::Lobby
        && visit.waiting_since.is_none()
        && visit.started_at.is_none()
    {
        state.store.mark_waiting(&visit.id, now).await?;
    }
    let checked_in = Event::new(
        format!("participant:{}", participant.id),
        AuditAction::CheckedIn,
    )
    .visit(&visit.id)
    .subject(&participant.id)
    .detail(serde_json::json!({ "role": participant.role, "state": participant.state }));
    let ttl = token_ttl(state, &visit, state.config.tokens.participant_ttl_secs);
    issue_room_token(
        state,
        &visit,
        &participant,
        ttl,
        &format!("participant:{}", participant.id),
        Some(checked_in),
    )
    .await
}

/// A room token never outlives the visit's links.
fn token_ttl(state: &AppState, visit: &VisitRow, configured: u32) -> i64 {
    let until_expiry =
        (visit.link_expires_at(state.config.visits.link_grace_minutes) - Utc::now()).num_seconds();
    i64::from(configured).min(until_expiry.max(60))
}

async fn issue_room_token(
    state: &AppState,
    visit: &VisitRow,
    participant: &ParticipantRow,
    ttl: i64,
    actor: &str,
    first: Option<Event>,
) -> ApiResult<RoomToken> {
    let grants = grants_for(participant.role);
    let (token, claims) = state.tokens.mint_room(
        RoomGrant {
            participant: &participant.id,
            name: participant.display_name.expose(),
            room: &visit.id,
            role: participant.role,
            grants: grants.clone(),
        },
        ttl,
    );
    let issued = Event::new(actor, AuditAction::TokenIssued)
        .visit(&visit.id)
        .subject(&claims.jti)
        .detail(serde_json::json!({ "kind": "room", "role": participant.role, "participant": participant.id, "exp": claims.exp }));
    // Written with whatever the caller records first, in one wait for the audit writer.
    state
        .audit
        .record_all(first.into_iter().chain([issued]).collect())
        .await?;
    metrics::counter!("rounds_tokens_issued_total", "role" => participant.role.as_str())
        .increment(1);
    Ok(RoomToken {
        token,
        room: visit.id.clone(),
        participant_id: participant.id.clone(),
        role: participant.role,
        grants,
        state: participant.state,
        expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or_default(),
    })
}

/// A provider token for the clinician's own place in the room (always admitted).
pub async fn provider_token(
    state: &AppState,
    session: &SessionClaims,
    visit_id: &str,
) -> ApiResult<RoomToken> {
    let visit = load_for(state, session, visit_id).await?;
    if !visit.is_live() {
        return Err(ApiError::conflict("visit-ended", "This visit has ended."));
    }
    let participant = match state
        .store
        .participant_by_clinician(&visit.id, &session.sub)
        .await?
    {
        Some(p) => p,
        None => {
            let clinician = state
                .store
                .clinician(&session.sub)
                .await?
                .ok_or_else(not_your_visit)?;
            state
                .store
                .insert_or_get_participant(
                    &NewParticipant {
                        visit_id: &visit.id,
                        role: Role::Provider,
                        invitee_id: None,
                        clinician_id: Some(&session.sub),
                        display_name: &Phi::new(clinician.display_name),
                        state: ParticipantState::Admitted,
                    },
                    Utc::now(),
                )
                .await?
        }
    };
    let ttl = i64::from(state.config.tokens.provider_ttl_secs);
    issue_room_token(
        state,
        &visit,
        &participant,
        ttl,
        &format!("clinician:{}", session.sub),
        None,
    )
    .await
}

/// A guest token minted by an admitted participant holding `invite`, for their own live room.
pub async fn guest_token(
    state: &AppState,
    actor: &Actor,
    room: &str,
    req: GuestTokenRequest,
) -> ApiResult<RoomToken> {
    let Actor::Participant { claims, .. } = actor else {
        return Err(ApiError::forbidden(
            "room-token-required",
            "Guest tokens are minted from inside the visit: use your room token, or send a guest \
             invitation from the visit instead.",
        ));
    };
    if claims.room != room {
        return Err(wrong_room());
    }
    // Never creates a room: the room must be an existing, live visit.
    let visit = state.store.visit(room).await?.ok_or_else(wrong_room)?;
    actor.require(&visit, Grant::Invite)?;
    if !visit.is_live() {
        return Err(ApiError::conflict(
            "visit-ended",
            "This visit has ended, so nobody new can join it.",
        ));
    }
    if !matches!(req.role, Role::Guest | Role::Interpreter) {
        return Err(ApiError::unprocessable(
            "invalid-role",
            "A guest token is for a guest or an interpreter.",
        ));
    }
    let name = req.display_name.expose().trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::unprocessable(
            "invalid-name",
            "The guest's name must be between 1 and 100 characters.",
        ));
    }
    let invitee = format!("guest:{}", new_id());
    let participant = state
        .store
        .insert_participant(
            &NewParticipant {
                visit_id: &visit.id,
                role: req.role,
                invitee_id: Some(&invitee),
                clinician_id: None,
                display_name: &Phi::new(name.to_owned()),
                state: ParticipantState::Lobby,
            },
            Utc::now(),
        )
        .await?;
    let ttl = token_ttl(state, &visit, state.config.tokens.participant_ttl_secs);
    issue_room_token(state, &visit, &participant, ttl, &actor.audit_name(), None).await
}

fn admission_error(e: AdmissionError) -> ApiError {
    match e {
        AdmissionError::Refused => ApiError::forbidden(
            "removed",
            "The clinic has closed this visit to you. If you think this is a mistake, call the clinic.",
        ),
        AdmissionError::NotWaiting => ApiError::conflict(
            "not-waiting",
            "This person is already in the visit. To take them out, remove them instead.",
        ),
        AdmissionError::AlreadyLeft => ApiError::conflict(
            "already-left",
            "This person has left the visit. They can rejoin from their link.",
        ),
    }
}

/// Admits, denies or removes a participant of `visit_id`.
pub async fn decide(
    state: &AppState,
    actor: &Actor,
    visit_id: &str,
    participant_id: &str,
    action: Action,
) -> ApiResult<rounds_proto::Participant> {
    let visit = load(state, visit_id).await?;
    let grant = if action == Action::Remove {
        Grant::Moderate
    } else {
        Grant::Admit
    };
    actor.require(&visit, grant)?;
    if !visit.is_live() {
        return Err(ApiError::conflict("visit-ended", "This visit has ended."));
    }
    let mut participant = state
        .store
        .participant(participant_id)
        .await?
        .filter(|p| p.visit_id == visit.id)
        .ok_or_else(|| {
            ApiError::not_found(
                "participant-not-found",
                "That person is not part of this visit.",
            )
        })?;
    if participant.role == Role::Provider && action != Action::Leave {
        return Err(ApiError::forbidden(
            "provider",
            "Clinicians cannot be admitted, denied or removed.",
        ));
    }
    let now = Utc::now();
    let to = admission::next(participant.state, action).map_err(admission_error)?;
    if to != participant.state {
        if !state
            .store
            .transition_participant(&participant.id, participant.state, to, now)
            .await?
        {
            return Err(ApiError::conflict(
                "changed",
                "Someone else changed this person's status just now. Refresh and try again.",
            ));
        }
        participant.state = to;
        if to == ParticipantState::Admitted {
            participant.admitted_at = Some(now);
            if participant.role == Role::Patient {
                state.store.mark_started(&visit.id, now).await?;
            }
        }
        let audit_action = match action {
            Action::Admit => AuditAction::Admitted,
            Action::Deny => AuditAction::Denied,
            Action::Remove => AuditAction::Removed,
            Action::Leave | Action::Rejoin => AuditAction::Left,
        };
        state.rooms.admission(&visit.id, &participant.id, to).await;
        state
            .audit
            .record(
                Event::new(actor.audit_name(), audit_action)
                    .visit(&visit.id)
                    .subject(&participant.id)
                    .detail(serde_json::json!({ "role": participant.role })),
            )
            .await?;
        state.events.queue_changed(&visit);
    }
    Ok(participant.to_proto())
}

pub async fn end(state: &AppState, actor: &Actor, visit_id: &str) -> ApiResult<Visit> {
    let visit = load(state, visit_id).await?;
    actor.require(&visit, Grant::Moderate)?;
    if state.store.end_visit(&visit.id, Utc::now()).await? {
        state
            .audit
            .record(Event::new(actor.audit_name(), AuditAction::VisitEnded).visit(&visit.id))
            .await?;
    }
    state.rooms.ended(&visit.id).await;
    state.events.queue_changed(&visit);
    crate::ehr::visit_ended(state, &visit.id);
    Ok(to_proto(state, &load(state, visit_id).await?))
}

pub async fn running_late(
    state: &AppState,
    actor: &Actor,
    visit_id: &str,
    minutes: u32,
) -> ApiResult<Visit> {
    let visit = load(state, visit_id).await?;
    actor.require(&visit, Grant::Moderate)?;
    if minutes > 240 {
        return Err(ApiError::unprocessable(
            "invalid-minutes",
            "Running late must be between 0 and 240 minutes.",
        ));
    }
    if !visit.is_live() {
        return Err(ApiError::conflict("visit-ended", "This visit has ended."));
    }
    state
        .store
        .set_running_late(&visit.id, (minutes > 0).then_some(minutes))
        .await?;
    state.rooms.running_late(&visit.id, minutes).await;
    state
        .audit
        .record(
            Event::new(actor.audit_name(), AuditAction::RunningLate)
                .visit(&visit.id)
                .detail(serde_json::json!({ "minutes": minutes })),
        )
        .await?;
    state.events.queue_changed(&visit);
    Ok(to_proto(state, &load(state, visit_id).await?))
}

/// Revokes every patient link of the visit and issues a fresh one.
pub async fn reissue_patient_link(
    state: &AppState,
    session: &SessionClaims,
    visit_id: &str,
    issue_new: bool,
) -> ApiResult<Option<PatientLink>> {
    let visit = load_for(state, session, visit_id).await?;
    let now = Utc::now();
    let revoked = state
        .store
        .revoke_links(&visit.id, PATIENT_INVITEE, now)
        .await?;
    let actor = format!("clinician:{}", session.sub);
    state
        .audit
        .record(
            Event::new(&actor, AuditAction::LinkRevoked)
                .visit(&visit.id)
                .subject(PATIENT_INVITEE)
                .detail(serde_json::json!({ "links": revoked })),
        )
        .await?;
    if !issue_new {
        return Ok(None);
    }
    if !visit.is_live() {
        return Err(ApiError::conflict("visit-ended", "This visit has ended."));
    }
    let expires_at = visit.link_expires_at(state.config.visits.link_grace_minutes);
    let code = state
        .store
        .create_link(&visit.id, Role::Patient, PATIENT_INVITEE, expires_at, now)
        .await?;
    state
        .audit
        .record(
            Event::new(&actor, AuditAction::LinkIssued)
                .visit(&visit.id)
                .subject(PATIENT_INVITEE),
        )
        .await?;
    Ok(Some(PatientLink {
        url: link_url(state, &code),
        expires_at,
    }))
}

/// A participant's view of who is in the room: nobody, until they are admitted.
pub async fn participants(
    state: &AppState,
    actor: &Actor,
    visit_id: &str,
) -> ApiResult<Vec<rounds_proto::Participant>> {
    let visit = load(state, visit_id).await?;
    match actor {
        Actor::Clinician(_) => actor.require(&visit, Grant::Admit)?,
        Actor::Participant { .. } => actor.require(&visit, Grant::Subscribe)?,
    }
    let all = state.store.participants(&visit.id).await?;
    let staff_view = matches!(actor, Actor::Clinician(_))
        || matches!(actor, Actor::Participant { claims, .. } if claims.role.is_staff());
    Ok(all
        .iter()
        .filter(|p| staff_view || p.state == ParticipantState::Admitted)
        .map(ParticipantRow::to_proto)
        .collect())
}

/// `rounds-server token`: a room token for an existing live visit, recorded as issued by the
/// command line. Providers join admitted; everyone else waits in the lobby.
pub async fn admin_token(
    state: &AppState,
    room: &str,
    role: &str,
    name: &str,
    ttl: u32,
) -> anyhow::Result<String> {
    let role = Role::parse(role).ok_or_else(|| anyhow::anyhow!("unknown role {role}"))?;
    let visit = state
        .store
        .visit(room)
        .await?
        .ok_or_else(|| anyhow::anyhow!("there is no visit {room}"))?;
    if !visit.is_live() {
        anyhow::bail!("visit {room} has ended");
    }
    let state_in_room = if role == Role::Provider {
        ParticipantState::Admitted
    } else {
        ParticipantState::Lobby
    };
    let invitee = format!("cli:{}", new_id());
    let participant = state
        .store
        .insert_participant(
            &NewParticipant {
                visit_id: &visit.id,
                role,
                invitee_id: Some(&invitee),
                clinician_id: None,
                display_name: &Phi::new(name.to_owned()),
                state: state_in_room,
            },
            Utc::now(),
        )
        .await?;
    let ttl = i64::from(ttl.min(rounds_proto::MAX_ROOM_TOKEN_TTL_SECS as u32));
    let token = issue_room_token(state, &visit, &participant, ttl, "cli", None)
        .await
        .map_err(|e| anyhow::anyhow!(e.detail))?;
    Ok(token.token)
}

/// `rounds-server clinician add`.
pub async fn add_clinician(
    state: &AppState,
    clinic: &str,
    time_zone: &str,
    email: &str,
    name: &str,
    password: &str,
) -> anyhow::Result<String> {
    time_zone.parse::<chrono_tz::Tz>().map_err(|_| {
        anyhow::anyhow!("\"{time_zone}\" is not an IANA time zone name, like America/Chicago")
    })?;
    rounds_notify::validate_email(email).map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = Utc::now();
    let clinic = match state.store.clinic_by_name(clinic).await? {
        Some(c) => c,
        None => state.store.create_clinic(clinic, time_zone, now).await?,
    };
    if state.store.clinician_by_email(email).await?.is_some() {
        anyhow::bail!("a clinician with that email already exists");
    }
    let hash = crate::sessions::hash_password(password)?;
    let row = state
        .store
        .create_clinician(&clinic.id, email, name, Some(&hash), now)
        .await?;
    Ok(row.id)
}

/// A participant leaves on purpose; the same link can bring them back (to the lobby).
pub async fn leave(
    state: &AppState,
    actor: &Actor,
    room: &str,
) -> ApiResult<rounds_proto::Participant> {
    let (_, participant) = actor.own_place(room)?;
    let to = admission::next(participant.state, Action::Leave).map_err(admission_error)?;
    if to != participant.state {
        state
            .store
            .transition_participant(&participant.id, participant.state, to, Utc::now())
            .await?;
        state.rooms.admission(room, &participant.id, to).await;
        state
            .audit
            .record(
                Event::new(actor.audit_name(), AuditAction::Left)
                    .visit(room)
                    .subject(&participant.id),
            )
            .await?;
        if let Some(visit) = state.store.visit(room).await? {
            state.events.queue_changed(&visit);
        }
    }
    let mut p = participant.to_proto();
    p.state = to;
    Ok(p)
}

/// A host turns off someone's microphone or camera. Only the participant can turn it back on.
pub async fn host_mute(
    state: &AppState,
    actor: &Actor,
    room: &str,
    participant_id: &str,
    action: rounds_proto::HostAction,
) -> ApiResult<()> {
    let visit = load(state, room).await?;
    actor.require(&visit, Grant::Moderate)?;
    let target = state
        .store
        .participant(participant_id)
        .await?
        .filter(|p| p.visit_id == visit.id)
        .ok_or_else(|| {
            ApiError::not_found(
                "participant-not-found",
                "That person is not part of this visit.",
            )
        })?;
    let kind = match action {
        rounds_proto::HostAction::StopVideo => rounds_proto::MediaKind::Video,
        _ => rounds_proto::MediaKind::Audio,
    };
    state.rooms.host_mute(room, &target.id, kind).await;
    state
        .audit
        .record(
            Event::new(actor.audit_name(), AuditAction::Muted)
                .visit(room)
                .subject(&target.id)
                .detail(serde_json::json!({ "kind": kind })),
        )
        .await?;
    Ok(())
}
