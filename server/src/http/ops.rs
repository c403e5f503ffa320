//! Operations endpoints and the placeholder patient page.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use rounds_proto::{Health, Jwks, Problem};

use super::extract::{ClientIp, Json, Path};
use crate::AppState;
use crate::ratelimit::Class;

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into(), version: env!("CARGO_PKG_VERSION").into() })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = Problem)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(Health { status: "ready".into(), version: env!("CARGO_PKG_VERSION").into() }).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "readiness check failed");
            crate::error::ApiError::unavailable("The server cannot reach its database.").into_response()
        }
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics() -> Response {
    let body = crate::metrics::handle().map(|h| h.render()).unwrap_or_default();
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The public keys that verify Rounds tokens.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "operations", responses((status = 200, body = Jwks)))]
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = Json(state.tokens.jwks()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;line-height:1.5;color:#1d2b2a}}\
         h1{{font-size:1.5rem}}</style></head><body>{body}</body></html>",
        title = escape(title)
    )
}

/// The page a patient's link opens. (The full check-in experience is served here later.)
#[utoipa::path(get, path = "/join/{code}", tag = "links", params(("code" = String, Path)),
    responses((status = 200, content_type = "text/html", body = String), (status = 404, content_type = "text/html", body = String), (status = 410, content_type = "text/html", body = String)))]
pub async fn join_page(State(state): State<AppState>, ClientIp(ip): ClientIp, Path(code): Path<String>) -> Response {
    if let Err(e) = state.limits.check(Class::Join, ip) {
        return e.into_response();
    }
    let (status, html) = match crate::visits::link_info(&state, &code).await {
        Ok(info) => {
            let tz: chrono_tz::Tz = info.time_zone.parse().unwrap_or(chrono_tz::UTC);
            let when = info.scheduled_at.with_timezone(&tz).format("%A %-d %B at %H:%M %Z").to_string();
            (
                StatusCode::OK,
                page(
                    "Your video visit",
                    &format!(
                        "<h1>Your video visit with {}</h1><p>Your visit is on {}.</p>\
                         <p>Keep this page open. You will be able to check in here shortly before your visit.</p>",
                        escape(&info.clinic_name),
                        escape(&when)
                    ),
                ),
            )
        }
        Err(e) => (e.status, page("This link cannot be used", &format!("<h1>This link cannot be used</h1><p>{}</p>", escape(&e.detail)))),
    };
    let mut response = (status, Html(html)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", responses((status = 200, body = Object)))]
pub async fn openapi() -> Response {
    Json(super::api_doc()).into_response()
}

