//! Clinician sign-in with the hospital's identity provider (see [`crate::oidc`]).

use axum::extract::State;
use rounds_proto::{OidcSignIn, OidcTokenRequest, Problem, SessionResponse};

use super::extract::{ClientIp, Json};
use crate::AppState;
use crate::error::ApiResult;
use crate::oidc;
use crate::ratelimit::Class;

/// What the app needs to start a hospital sign-in; 404 when SSO is not configured.
#[utoipa::path(get, path = "/api/v1/auth/oidc", tag = "sessions",
    responses((status = 200, body = OidcSignIn), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn sign_in_info(State(state): State<AppState>) -> ApiResult<Json<OidcSignIn>> {
    Ok(Json(oidc::sign_in_info(&state).await?))
}

/// Finish a hospital sign-in: the server exchanges the code, checks the id_token, finds
/// the clinician's account and starts a session, as `/auth/login` does.
#[utoipa::path(post, path = "/api/v1/auth/oidc/token", tag = "sessions", request_body = OidcTokenRequest,
    responses((status = 200, body = SessionResponse), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 429, body = Problem), (status = 502, body = Problem), (status = 503, body = Problem)))]
pub async fn sign_in(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<OidcTokenRequest>,
) -> ApiResult<Json<SessionResponse>> {
    state.limits.check(Class::Login, ip)?;
    Ok(Json(oidc::sign_in(&state, &req).await?))
}
