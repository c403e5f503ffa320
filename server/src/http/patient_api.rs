//! REST handlers for the patient pages: check-in content, the network test, the check-in
//! form (intake and consent), the estimated wait and the post-visit survey; and, for the
//! clinician, what the patient pages collected.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use rounds_proto::{
    CheckInRecord, CheckInRequest, NetworkTestInfo, NetworkTestUpload, ParticipantState,
    PatientContent, Problem, Role, SurveyRequest, WaitEstimate,
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{Caller, ClientIp, Json, Path, Query, Session};
use crate::AppState;
use crate::access::not_your_visit;
use crate::audit::{Action as AuditAction, Event};
use crate::error::{ApiError, ApiResult};
use crate::ratelimit::Class;
use crate::store::VisitRow;
use crate::{clinic_content, visits};

/// Largest network-test download, in bytes.
pub const MAX_DOWNLOAD_BYTES: u32 = 2 * 1024 * 1024;
/// Longest survey comment, in characters.
const MAX_COMMENT_CHARS: usize = 2000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LangQuery {
    /// `en` or `es` (a tag such as `es-MX` is fine); English when absent or unknown.
    pub lang: Option<String>,
}

/// The check-in form and waiting-room content a link shows, in one language.
#[utoipa::path(get, path = "/api/v1/join/{code}/content", tag = "patient pages", params(("code" = String, Path), LangQuery),
    responses((status = 200, body = PatientContent), (status = 404, body = Problem), (status = 410, body = Problem), (status = 429, body = Problem)))]
pub async fn content(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(code): Path<String>,
    Query(q): Query<LangQuery>,
) -> ApiResult<Json<PatientContent>> {
    state.limits.check(Class::Join, ip)?;
    let (link, visit) = visits::resolve_link(&state, &code).await?;
    let clinic = state
        .store
        .clinic(&visit.clinic_id)
        .await?
        .ok_or_else(not_your_visit)?;
    let words = clinic_content::for_clinic(
        state.config.server.clinic_content.as_deref(),
        &clinic.id,
        &clinic.name,
    );
    Ok(Json(words.render(
        &clinic.name,
        clinic_content::language(q.lang.as_deref()),
        link.role,
    )))
}

/// A valid link may run the network test as often as it likes (the payloads are bounded);
/// only failed lookups count against the link rate limit, so nobody can guess codes with it.
async fn network_test_allowed(state: &AppState, ip: std::net::IpAddr, code: &str) -> ApiResult<()> {
    match visits::resolve_link(state, code).await {
        Ok(_) => Ok(()),
        Err(e) => {
            state.limits.check(Class::Join, ip)?;
            Err(e)
        }
    }
}

/// Where the network test sends its probes.
#[utoipa::path(get, path = "/api/v1/join/{code}/network-test", tag = "patient pages", params(("code" = String, Path)),
    responses((status = 200, body = NetworkTestInfo), (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn network_test(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(code): Path<String>,
) -> ApiResult<Json<NetworkTestInfo>> {
    network_test_allowed(&state, ip, &code).await?;
    let (udp, ice_tcp) = super::ops::media_addresses(&state);
    Ok(Json(NetworkTestInfo {
        udp: udp.map(|a| a.to_string()),
        ice_tcp: ice_tcp.is_some(),
        max_download_bytes: MAX_DOWNLOAD_BYTES,
        max_upload_bytes: u32::try_from(state.config.limits.max_body_bytes).unwrap_or(u32::MAX),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DownloadQuery {
    /// How many bytes to send (at most 2 MiB; 0 for a round-trip-time probe).
    pub bytes: u32,
}

fn payload() -> &'static Bytes {
    static PAYLOAD: OnceLock<Bytes> = OnceLock::new();
    // Random bytes, so no compressing proxy can make the test look faster than it is.
    PAYLOAD.get_or_init(|| {
        let mut v = vec![0u8; MAX_DOWNLOAD_BYTES as usize];
        rand::Rng::fill(&mut rand::thread_rng(), v.as_mut_slice());
        Bytes::from(v)
    })
}

/// Network test: a download of the size asked for.
#[utoipa::path(get, path = "/api/v1/join/{code}/network-test/download", tag = "patient pages", params(("code" = String, Path), DownloadQuery),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn network_test_download(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(code): Path<String>,
    Query(q): Query<DownloadQuery>,
) -> ApiResult<Response> {
    network_test_allowed(&state, ip, &code).await?;
    if q.bytes > MAX_DOWNLOAD_BYTES {
        return Err(ApiError::unprocessable(
            "too-large",
            format!("A test download is at most {MAX_DOWNLOAD_BYTES} bytes."),
        ));
    }
    let mut response = payload().slice(0..q.bytes as usize).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}

/// Network test: an upload, counted and thrown away.
#[utoipa::path(post, path = "/api/v1/join/{code}/network-test/upload", tag = "patient pages", params(("code" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = NetworkTestUpload), (status = 404, body = Problem), (status = 413, body = Problem)))]
pub async fn network_test_upload(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(code): Path<String>,
    body: Bytes,
) -> ApiResult<Json<NetworkTestUpload>> {
    network_test_allowed(&state, ip, &code).await?;
    Ok(Json(NetworkTestUpload {
        bytes: u32::try_from(body.len()).unwrap_or(u32::MAX),
    }))
}

/// Check in: the intake answers (patients) and the consent agreement (everyone).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/check-in", tag = "patient pages", params(("room" = String, Path)),
    request_body = CheckInRequest,
    responses((status = 204, description = "Stored"), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn check_in(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(room): Path<String>,
    Json(req): Json<CheckInRequest>,
) -> ApiResult<StatusCode> {
    let (claims, participant) = actor.own_place(&room)?;
    let visit = visits::load(&state, &room).await?;
    if !visit.is_live() {
        return Err(ApiError::conflict(
            "visit-ended",
            "This visit has ended. Call your clinic if you need another one.",
        ));
    }
    let clinic = state
        .store
        .clinic(&visit.clinic_id)
        .await?
        .ok_or_else(not_your_visit)?;
    let words = clinic_content::for_clinic(
        state.config.server.clinic_content.as_deref(),
        &clinic.id,
        &clinic.name,
    );
    if !req.consent_accepted {
        return Err(ApiError::unprocessable(
            "consent-required",
            "Please tick the box to agree before you check in.",
        ));
    }
    if req.consent_version != words.consent.version {
        return Err(ApiError::conflict(
            "consent-changed",
            "The clinic has just changed the consent text. Please read it again and agree.",
        ));
    }
    let lang = clinic_content::language(Some(&req.lang));
    let answers = if claims.role == Role::Patient {
        words
            .canonical_answers(&req.answers, lang)
            .map_err(|m| ApiError::unprocessable("invalid-answers", m))?
    } else if req.answers.is_empty() {
        Vec::new()
    } else {
        return Err(ApiError::unprocessable(
            "patient-only",
            "Only the patient answers the intake questions.",
        ));
    };
    let now = Utc::now();
    state
        .store
        .save_check_in(
            &visit.id,
            &participant.id,
            claims.role,
            &answers,
            &req.consent_version,
            lang,
            now,
        )
        .await?;
    state
        .audit
        .record(
            Event::new(actor.audit_name(), AuditAction::CheckedIn)
                .visit(&visit.id)
                .subject(&participant.id)
                .detail(serde_json::json!({ "form": "check-in", "consent_version": req.consent_version, "answers": answers.len() })),
        )
        .await?;
    state.events.checked_in(&visit, claims.role);
    Ok(StatusCode::NO_CONTENT)
}

/// How long the caller can expect to wait, from the clinician's queue.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/wait", tag = "patient pages", params(("room" = String, Path)),
    responses((status = 200, body = WaitEstimate), (status = 403, body = Problem)))]
pub async fn wait(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(room): Path<String>,
) -> ApiResult<Json<WaitEstimate>> {
    let (_, participant) = actor.own_place(&room)?;
    let visit = visits::load(&state, &room).await?;
    let now = Utc::now();
    let queue = state
        .store
        .visits_between(
            &visit.clinician_id,
            now - Duration::hours(12),
            now + Duration::hours(12),
        )
        .await?;
    Ok(Json(estimate_wait(&visit, participant.state, &queue, now)))
}

/// The estimated wait: everyone the clinician sees first (the visit in progress, then those
/// checked in ahead in schedule order), but never before the scheduled time, plus any
/// "running late" the clinician announced.
pub fn estimate_wait(
    visit: &VisitRow,
    me: ParticipantState,
    queue: &[VisitRow],
    now: DateTime<Utc>,
) -> WaitEstimate {
    let running_late_minutes = visit.running_late_minutes;
    if me == ParticipantState::Admitted || visit.ended_at.is_some() {
        return WaitEstimate {
            ahead: 0,
            minutes: Some(0),
            running_late_minutes: None,
        };
    }
    let my_key = (
        visit.scheduled_at,
        visit.waiting_since.unwrap_or(now),
        visit.id.as_str(),
    );
    let mut ahead = 0;
    let mut busy = Duration::zero();
    for other in queue
        .iter()
        .filter(|o| o.id != visit.id && o.ended_at.is_none())
    {
        let length = Duration::minutes(i64::from(other.duration_minutes));
        if let Some(started) = other.started_at {
            ahead += 1;
            busy += (length - (now - started)).max(Duration::minutes(2));
        } else if let Some(since) = other.waiting_since
            && (other.scheduled_at, since, other.id.as_str()) < my_key
        {
            ahead += 1;
            busy += length;
        }
    }
    let until_start = (visit.scheduled_at - now).max(Duration::zero());
    let wait =
        busy.max(until_start) + Duration::minutes(i64::from(running_late_minutes.unwrap_or(0)));
    let minutes = u32::try_from((wait.num_seconds() + 59) / 60).unwrap_or(u32::MAX);
    WaitEstimate {
        ahead,
        minutes: Some(minutes),
        running_late_minutes,
    }
}

/// The post-visit survey: a rating and an optional comment.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/survey", tag = "patient pages", params(("room" = String, Path)),
    request_body = SurveyRequest,
    responses((status = 204, description = "Stored"), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn survey(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(room): Path<String>,
    Json(req): Json<SurveyRequest>,
) -> ApiResult<StatusCode> {
    let (claims, participant) = actor.own_place(&room)?;
    if !(1..=5).contains(&req.rating) {
        return Err(ApiError::unprocessable(
            "invalid-rating",
            "Choose a rating from 1 to 5.",
        ));
    }
    let comment = req
        .comment
        .as_ref()
        .map(|c| rounds_proto::Phi::new(c.expose().trim().to_owned()))
        .filter(|c| !c.expose().is_empty());
    if comment
        .as_ref()
        .is_some_and(|c| c.expose().chars().count() > MAX_COMMENT_CHARS)
    {
        return Err(ApiError::unprocessable(
            "invalid-comment",
            format!("A comment must be at most {MAX_COMMENT_CHARS} characters."),
        ));
    }
    state
        .store
        .save_survey(
            &room,
            &participant.id,
            claims.role,
            req.rating,
            comment.as_ref(),
            Utc::now(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the patient pages collected for a visit: intake answers, consents, surveys.
#[utoipa::path(get, path = "/api/v1/visits/{id}/check-in", tag = "visits", params(("id" = String, Path)),
    responses((status = 200, body = CheckInRecord), (status = 404, body = Problem)))]
pub async fn visit_check_in(
    State(state): State<AppState>,
    Session(s): Session,
    Path(id): Path<String>,
) -> ApiResult<Json<CheckInRecord>> {
    let visit = visits::load_for(&state, &s, &id).await?;
    let record = state.store.check_in_record(&visit.id).await?;
    state
        .audit
        .record(
            Event::new(format!("clinician:{}", s.sub), AuditAction::VisitViewed)
                .visit(&visit.id)
                .detail(serde_json::json!({ "what": "check-in" })),
        )
        .await?;
    Ok(Json(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visit(
        id: &str,
        at_min: i64,
        waiting_min: Option<i64>,
        started_min: Option<i64>,
        now: DateTime<Utc>,
    ) -> VisitRow {
        VisitRow {
            id: id.into(),
            clinic_id: "c".into(),
            clinician_id: "d".into(),
            scheduled_at: now + Duration::minutes(at_min),
            duration_minutes: 20,
            patient_name: None,
            waiting_since: waiting_min.map(|m| now + Duration::minutes(m)),
            started_at: started_min.map(|m| now + Duration::minutes(m)),
            ended_at: None,
            running_late_minutes: None,
            device_check: None,
        }
    }

    #[test]
    fn wait_counts_the_visit_in_progress_and_those_ahead() {
        let now = Utc::now();
        let me = visit("me", -5, Some(-6), None, now);
        let in_visit = visit("a", -30, Some(-31), Some(-15), now); // 5 minutes left
        let ahead = visit("b", -10, Some(-12), None, now); // 20 minutes
        let behind = visit("c", 10, Some(-1), None, now); // not counted
        let absent = visit("e", -20, None, None, now); // not checked in: not counted
        let e = estimate_wait(
            &me,
            ParticipantState::Lobby,
            &[in_visit, ahead, behind, absent, me.clone()],
            now,
        );
        assert_eq!(
            e,
            WaitEstimate {
                ahead: 2,
                minutes: Some(25),
                running_late_minutes: None
            }
        );
    }

    #[test]
    fn wait_is_never_before_the_scheduled_time_and_adds_running_late() {
        let now = Utc::now();
        let mut me = visit("me", 30, Some(0), None, now);
        me.running_late_minutes = Some(10);
        let e = estimate_wait(&me, ParticipantState::Lobby, &[], now);
        assert_eq!(e.minutes, Some(40));
        assert_eq!(e.running_late_minutes, Some(10));
        assert_eq!(
            estimate_wait(&me, ParticipantState::Admitted, &[], now).minutes,
            Some(0)
        );
    }
}
