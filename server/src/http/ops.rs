//! Operations endpoints.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

use rounds_proto::{Connectivity, Health, Jwks, Problem};

use super::extract::Json;
use crate::AppState;

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = Problem)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(Health {
            status: "ready".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "readiness check failed");
            crate::error::ApiError::unavailable("The server cannot reach its database.")
                .into_response()
        }
    }
}

/// Where media goes, from the running SFU: the UDP address (when UDP media is on) and the
/// ICE-TCP address (when the web port takes media too), as clients are told to reach them.
pub fn media_addresses(state: &AppState) -> (Option<SocketAddr>, Option<SocketAddr>) {
    let media = &state.config.media;
    let Some(sfu) = state.rooms.sfu().filter(|_| media.enabled) else {
        return (None, None);
    };
    let ip = state.config.media_advertise_ip();
    let udp = media
        .udp_enabled
        .then(|| SocketAddr::new(ip, sfu.udp_addr().port()));
    let tcp = sfu.ice_tcp_port().map(|port| SocketAddr::new(ip, port));
    (udp, tcp)
}

/// Where this server takes media and signaling, for connectivity checks before a visit
/// (`rounds-server check`, the desktop app's network check). Public and cheap: it holds
/// nothing a client does not learn from its first SDP.
#[utoipa::path(get, path = "/api/v1/connectivity", tag = "operations", responses((status = 200, body = Connectivity)))]
pub async fn connectivity(State(state): State<AppState>) -> Json<Connectivity> {
    let (udp, ice_tcp) = media_addresses(&state);
    Json(Connectivity {
        udp: udp.map(|a| a.to_string()),
        ice_tcp: ice_tcp.map(|a| a.to_string()),
        signaling_path: "/rtc".into(),
    })
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics() -> Response {
    let body = crate::metrics::handle()
        .map(|h| h.render())
        .unwrap_or_default();
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
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", responses((status = 200, body = Object)))]
pub async fn openapi() -> Response {
    Json(super::api_doc()).into_response()
}
