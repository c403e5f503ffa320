//! Extractors that turn requests into typed inputs, refusing bad ones with a problem
//! document instead of axum's plain-text rejections.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use rounds_auth::TokenError;
use rounds_proto::{ROOM_AUDIENCE, RoomClaims, SESSION_AUDIENCE, SessionClaims};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::access::{Actor, check_participant};
use crate::error::ApiError;

/// JSON in and out. Bad bodies become 400/413/415/422 problems.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_problem(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => ApiError::unprocessable(
            "invalid-body",
            format!(
                "The request body has the wrong shape: {}.",
                e.body_text().trim_start_matches(
                    "Failed to deserialize the JSON body into the target type: "
                )
            ),
        ),
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::bad_request("malformed-json", "The request body is not valid JSON.")
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "json-required",
            "Send the request body as JSON, with the header Content-Type: application/json.",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "The request body is too large.",
        ),
        other => ApiError::bad_request(
            "unreadable-body",
            format!("The request body could not be read ({}).", other.status()),
        ),
    }
}

/// Path parameters; a bad one is a 400 problem.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e: PathRejection| {
                ApiError::bad_request(
                    "invalid-path",
                    format!("The address is not valid: {}.", e.body_text()),
                )
            })
    }
}

/// Query parameters; a bad one is a 400 problem.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e: QueryRejection| {
                ApiError::bad_request(
                    "invalid-query",
                    format!("The query is not valid: {}.", e.body_text()),
                )
            })
    }
}

/// The client's address, from the socket.
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ))
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthorized("sign-in-required", "Sign in to continue."))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| {
            ApiError::unauthorized(
                "sign-in-required",
                "Send your access token as 'Authorization: Bearer <token>'.",
            )
        })?;
    Ok(token.trim())
}

pub fn token_problem(e: TokenError) -> ApiError {
    match e {
        TokenError::Expired => ApiError::unauthorized(
            "token-expired",
            "Your access has expired. Clinicians: sign in again. Patients and guests: open your visit link again.",
        ),
        TokenError::NotYetValid => ApiError::unauthorized(
            "token-not-yet-valid",
            "This access is not valid yet. Check that your device's date and time are correct.",
        ),
        TokenError::UnknownKey => ApiError::unauthorized(
            "unknown-signing-key",
            "This access was not issued by this server, or its key has been retired. Sign in or open your link again.",
        ),
        TokenError::WrongAudience => ApiError::unauthorized(
            "wrong-token-kind",
            "This kind of access cannot be used here.",
        ),
        TokenError::BadSignature | TokenError::Malformed(_) | TokenError::UnsupportedAlgorithm => {
            ApiError::unauthorized(
                "invalid-token",
                "This access token is not valid. Sign in or open your link again.",
            )
        }
    }
}

fn verify_session(state: &AppState, token: &str) -> Result<SessionClaims, TokenError> {
    state
        .tokens
        .verify::<SessionClaims>(token, SESSION_AUDIENCE)
}

fn verify_room(state: &AppState, token: &str) -> Result<RoomClaims, TokenError> {
    state.tokens.verify::<RoomClaims>(token, ROOM_AUDIENCE)
}

/// Whether the token says it is a room token. Unverified: it only picks which verification
/// to run, so each request pays for one signature check.
fn claims_room(token: &str) -> bool {
    rounds_auth::peek_audience(token).as_deref() == Some(ROOM_AUDIENCE)
}

async fn session_active(
    state: &AppState,
    claims: SessionClaims,
) -> Result<SessionClaims, ApiError> {
    if state.store.family_active(&claims.sid).await? {
        Ok(claims)
    } else {
        Err(ApiError::unauthorized(
            "session-ended",
            "Your session has ended. Sign in again to continue.",
        ))
    }
}

/// A signed-in clinician.
pub struct Session(pub SessionClaims);

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        match verify_session(state, token) {
            Ok(claims) => Ok(Session(session_active(state, claims).await?)),
            Err(_) if claims_room(token) && verify_room(state, token).is_ok() => {
                Err(ApiError::forbidden(
                    "clinicians-only",
                    "Only a signed-in clinician can do this; access from a visit link cannot.",
                ))
            }
            Err(e) => Err(token_problem(e)),
        }
    }
}

/// A signed-in clinician or a participant holding a room token.
pub struct Caller(pub Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        if !claims_room(token) {
            let claims = verify_session(state, token).map_err(token_problem)?;
            return Ok(Caller(Actor::Clinician(
                session_active(state, claims).await?,
            )));
        }
        let claims = verify_room(state, token).map_err(token_problem)?;
        let participant = check_participant(&claims, state.store.participant(&claims.sub).await?)?;
        Ok(Caller(Actor::Participant {
            claims,
            participant,
        }))
    }
}
