//! The SMART on FHIR pages: `/ehr/launch` (the EHR opens it from the chart), `/ehr/standalone`
//! (the desktop app opens it in the browser) and `/ehr/callback` (the EHR's answer).
//!
//! They are pages for a clinician in a browser: success hands off to the desktop app, and
//! every failure is a short page saying what happened and what to do. A client that asks for
//! JSON only gets the same failure as `application/problem+json`.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use rounds_notify::messages::escape_html;
use rounds_proto::{EhrChoice, EhrLaunchOptions};
use serde::Deserialize;

use crate::AppState;
use crate::ehr::launch::LaunchKind;
use crate::ehr::{self, CallbackParams, Failure, Handoff, LaunchError};
use crate::error::ApiError;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LaunchParams {
    /// The EHR's FHIR base URL.
    pub iss: Option<String>,
    /// The EHR's launch id.
    pub launch: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct StandaloneParams {
    /// The EHR's FHIR base URL; may be left out when only one EHR is configured.
    pub iss: Option<String>,
}

/// The EHRs the desktop app can start a standalone launch at (none when none is configured).
#[utoipa::path(get, path = "/api/v1/ehr", tag = "ehr",
    responses((status = 200, body = EhrLaunchOptions)))]
pub async fn options(State(state): State<AppState>) -> super::extract::Json<EhrLaunchOptions> {
    let base = state.config.public_url().trim_end_matches('/').to_owned();
    let ehrs = state
        .config
        .ehr
        .issuers
        .iter()
        .map(|issuer| {
            let name = issuer
                .name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .or_else(|| {
                    url::Url::parse(&issuer.iss)
                        .ok()
                        .and_then(|u| u.host_str().map(str::to_owned))
                })
                .unwrap_or_else(|| issuer.iss.clone());
            let mut standalone = url::Url::parse(&format!("{base}/ehr/standalone"))
                .expect("the public URL is validated at start-up");
            standalone.query_pairs_mut().append_pair("iss", &issuer.iss);
            EhrChoice {
                name,
                iss: issuer.iss.clone(),
                standalone_url: standalone.into(),
            }
        })
        .collect();
    super::extract::Json(EhrLaunchOptions { ehrs })
}

/// The EHR launch URL registered with the EHR: sends the browser to the EHR's authorize endpoint.
#[utoipa::path(get, path = "/ehr/launch", tag = "ehr", params(LaunchParams),
    responses((status = 303, description = "To the EHR's authorize endpoint"),
        (status = 400, content_type = "text/html", body = String),
        (status = 403, content_type = "text/html", body = String),
        (status = 502, content_type = "text/html", body = String)))]
pub async fn launch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LaunchParams>,
) -> Response {
    start(
        &state,
        &headers,
        LaunchKind::Ehr,
        q.iss.as_deref(),
        q.launch.as_deref(),
    )
    .await
}

/// A standalone launch: Rounds signs in at the EHR, which asks for the patient and encounter.
#[utoipa::path(get, path = "/ehr/standalone", tag = "ehr", params(StandaloneParams),
    responses((status = 303, description = "To the EHR's authorize endpoint"),
        (status = 400, content_type = "text/html", body = String),
        (status = 403, content_type = "text/html", body = String),
        (status = 502, content_type = "text/html", body = String)))]
pub async fn standalone(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<StandaloneParams>,
) -> Response {
    start(
        &state,
        &headers,
        LaunchKind::Standalone,
        q.iss.as_deref(),
        None,
    )
    .await
}

/// The redirect URI registered with the EHR: finishes the launch and hands off to the desktop app.
#[utoipa::path(get, path = "/ehr/callback", tag = "ehr", params(CallbackParams),
    responses((status = 200, content_type = "text/html", body = String, description = "Opens the visit in the desktop app"),
        (status = 400, content_type = "text/html", body = String),
        (status = 403, content_type = "text/html", body = String),
        (status = 502, content_type = "text/html", body = String)))]
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CallbackParams>,
) -> Response {
    match ehr::finish(&state, q).await {
        Ok(handoff) => handoff_page(&handoff),
        Err((kind, e)) => {
            ehr::record_failure(&state, kind, &e).await;
            failure(&headers, &e)
        }
    }
}

async fn start(
    state: &AppState,
    headers: &HeaderMap,
    kind: LaunchKind,
    iss: Option<&str>,
    launch: Option<&str>,
) -> Response {
    match ehr::start(state, kind, iss, launch).await {
        Ok(url) => Redirect::to(url.as_str()).into_response(),
        Err(e) => {
            ehr::record_failure(state, kind, &e).await;
            failure(headers, &e)
        }
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;line-height:1.5;color:#1d2b2a;font-size:1.0625rem}\
    .button{display:inline-block;background:#0b6e6e;color:#fff;padding:.7rem 1.3rem;border-radius:.4rem;text-decoration:none;font-weight:600}\
    .muted{color:#4b5d5b;font-size:.95rem}";

fn page(status: StatusCode, title: &str, body: &str, head_extra: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{head_extra}\
         <title>{title} | Rounds</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        title = escape_html(title)
    );
    let mut response = (status, Html(html)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Opens the visit in the desktop app at once, with a button for browsers that ask first.
fn handoff_page(handoff: &Handoff) -> Response {
    let link = escape_html(&handoff.link);
    let body = format!(
        "<h1>Opening the video visit in Rounds</h1>\
         <p>Your Rounds app opens this patient's video visit now. If it does not, select the button.</p>\
         <p><a class=\"button\" id=\"open\" href=\"{link}\">Open in Rounds</a></p>\
         <p class=\"muted\">This link signs you in once and works for two minutes. If it has expired, \
         launch Rounds again from the chart. You can close this page once the visit is open.</p>"
    );
    page(
        StatusCode::OK,
        "Opening the video visit",
        &body,
        &format!("<meta http-equiv=\"refresh\" content=\"0;url={link}\">"),
    )
}

fn failure(headers: &HeaderMap, e: &LaunchError) -> Response {
    let f: Failure = e.failure;
    let status = StatusCode::from_u16(f.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("json") && !a.contains("text/html"));
    if wants_json {
        return ApiError::new(
            status,
            f.slug(),
            format!("{} {}", f.sentence(), f.next_step()),
        )
        .into_response();
    }
    let said = e
        .ehr_said
        .as_deref()
        .map(|d| {
            format!(
                "<p class=\"muted\">Your EHR said: \u{201c}{}\u{201d}</p>",
                escape_html(d)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<h1>{title}</h1><p>{sentence}</p>{said}<p><strong>What to do:</strong> {next}</p>\
         <p class=\"muted\">Reason code for IT: {slug}</p>",
        title = escape_html(f.title()),
        sentence = escape_html(f.sentence()),
        next = escape_html(f.next_step()),
        slug = f.slug(),
    );
    page(status, f.title(), &body, "")
}
