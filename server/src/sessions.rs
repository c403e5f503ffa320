//! Clinician sessions: local-account login, refresh-token rotation with reuse detection,
//! and sign-out.
//!
//! A session is a *family*: one login, then a chain of single-use refresh tokens. Presenting
//! a refresh token twice means it was copied, so the whole family is revoked and every access
//! token from it stops working. Identity providers (OIDC) plug in at [`start_session`]: once
//! an account is identified by any means, the same function issues the Rounds session.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{Duration, Utc};
use rounds_proto::{Clinician, SessionResponse};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::audit::{Action, Event};
use crate::error::{ApiError, ApiResult};
use crate::store::{ClinicianRow, RefreshOutcome};

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A real hash of nothing in particular, checked when the account does not exist.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("no account has this password").unwrap_or_default())
}

fn hash_refresh(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_refresh_token() -> String {
    format!(
        "rrt_{}{}",
        rounds_auth::random_id(),
        rounds_auth::random_id()
    )
}

const BAD_LOGIN: &str = "That email and password do not match an account. Check them and try \
    again, or ask your clinic's administrator to reset your password.";

/// Checks a local account's password and starts a session.
pub async fn login(state: &AppState, email: &str, password: &str) -> ApiResult<SessionResponse> {
    if state
        .config
        .oidc
        .as_ref()
        .is_some_and(|o| !o.password_login)
    {
        return Err(ApiError::forbidden(
            "password-login-disabled",
            "This Rounds server signs clinicians in with the hospital's accounts only. Choose \
             \"Sign in with your hospital account\".",
        ));
    }
    let account = state.store.clinician_by_email(email.trim()).await?;
    // Hash even for unknown accounts so timing does not reveal which emails exist.
    let ok = match &account {
        Some(ClinicianRow {
            password_hash: Some(hash),
            disabled: false,
            ..
        }) => {
            let (password, hash) = (password.to_owned(), hash.clone());
            tokio::task::spawn_blocking(move || verify_password(&password, &hash))
                .await
                .unwrap_or(false)
        }
        _ => {
            let password = password.to_owned();
            let _ =
                tokio::task::spawn_blocking(move || verify_password(&password, dummy_hash())).await;
            false
        }
    };
    let Some(account) = account.filter(|_| ok) else {
        metrics::counter!("rounds_logins_total", "outcome" => "failed").increment(1);
        state
            .audit
            .record(Event::new("anonymous", Action::LoginFailed))
            .await?;
        return Err(ApiError::unauthorized("bad-credentials", BAD_LOGIN));
    };
    metrics::counter!("rounds_logins_total", "outcome" => "succeeded").increment(1);
    state
        .audit
        .record(
            Event::new(format!("clinician:{}", account.id), Action::LoginSucceeded)
                .detail(serde_json::json!({ "method": "password" })),
        )
        .await?;
    start_session(state, &account).await
}

/// Issues a new session family for an identified clinician (the seam for OIDC sign-in).
pub async fn start_session(state: &AppState, account: &ClinicianRow) -> ApiResult<SessionResponse> {
    let family = rounds_auth::random_id();
    state
        .store
        .create_family(&family, &account.id, Utc::now())
        .await?;
    issue(state, account, &family).await
}

async fn issue(
    state: &AppState,
    account: &ClinicianRow,
    family: &str,
) -> ApiResult<SessionResponse> {
    let t = &state.config.tokens;
    let now = Utc::now();
    let refresh = new_refresh_token();
    state
        .store
        .insert_refresh_token(
            &hash_refresh(&refresh),
            family,
            &account.id,
            now,
            now + Duration::seconds(i64::from(t.refresh_ttl_secs)),
        )
        .await?;
    let (access, claims) = state.tokens.mint_session(
        &account.id,
        &account.clinic_id,
        family,
        i64::from(t.access_ttl_secs),
    );
    state
        .audit
        .record(
            Event::new(format!("clinician:{}", account.id), Action::TokenIssued)
                .subject(&claims.jti)
                .detail(serde_json::json!({ "kind": "session", "exp": claims.exp })),
        )
        .await?;
    let clinic = state.store.clinic(&account.clinic_id).await?;
    Ok(SessionResponse {
        access_token: access,
        token_type: "Bearer".into(),
        expires_in: t.access_ttl_secs,
        refresh_token: refresh,
        refresh_expires_in: t.refresh_ttl_secs,
        clinician: Clinician {
            id: account.id.clone(),
            clinic_id: account.clinic_id.clone(),
            clinic_name: clinic.map(|c| c.name).unwrap_or_default(),
            email: account.email.clone(),
            display_name: account.display_name.clone(),
        },
    })
}

const SIGN_IN_AGAIN: &str = "Your session has ended. Sign in again to continue.";

/// Spends a refresh token and issues the next pair.
pub async fn refresh(state: &AppState, refresh_token: &str) -> ApiResult<SessionResponse> {
    let now = Utc::now();
    match state
        .store
        .use_refresh_token(&hash_refresh(refresh_token), now)
        .await?
    {
        RefreshOutcome::Rotated {
            clinician_id,
            family,
        } => {
            let Some(account) = state
                .store
                .clinician(&clinician_id)
                .await?
                .filter(|a| !a.disabled)
            else {
                return Err(ApiError::unauthorized("session-ended", SIGN_IN_AGAIN));
            };
            state
                .audit
                .record(
                    Event::new(
                        format!("clinician:{clinician_id}"),
                        Action::SessionRefreshed,
                    )
                    .subject(&family),
                )
                .await?;
            issue(state, &account, &family).await
        }
        RefreshOutcome::Reused {
            family,
            clinician_id,
        } => {
            tracing::warn!(%family, "a refresh token was used twice; the session has been revoked");
            state
                .audit
                .record(
                    Event::new(
                        format!("clinician:{clinician_id}"),
                        Action::RefreshTokenReused,
                    )
                    .subject(&family),
                )
                .await?;
            Err(ApiError::unauthorized(
                "refresh-token-reused",
                "This sign-in was used from somewhere else, so it has been ended for your safety. \
                 Sign in again.",
            ))
        }
        RefreshOutcome::Revoked | RefreshOutcome::Unknown => {
            Err(ApiError::unauthorized("session-ended", SIGN_IN_AGAIN))
        }
    }
}

/// Ends the session the refresh token belongs to.
pub async fn logout(state: &AppState, refresh_token: &str) -> ApiResult<()> {
    if let Some(family) = state
        .store
        .refresh_family(&hash_refresh(refresh_token))
        .await?
        && state
            .store
            .revoke_family(&family, "signed out", Utc::now())
            .await?
    {
        state
            .audit
            .record(Event::new("clinician", Action::SessionRevoked).subject(&family))
            .await?;
    }
    Ok(())
}

/// Mints a one-time sign-in ticket for the clinician of this session, for the desktop app.
pub async fn issue_ticket(
    state: &AppState,
    session: &rounds_proto::SessionClaims,
) -> ApiResult<rounds_proto::SignInTicket> {
    let ticket = state.tickets.issue(&session.sub);
    state
        .audit
        .record(
            Event::new(format!("clinician:{}", session.sub), Action::TokenIssued)
                .detail(serde_json::json!({ "kind": "sign-in-ticket" })),
        )
        .await?;
    Ok(rounds_proto::SignInTicket {
        ticket,
        expires_in: crate::tickets::TICKET_TTL_SECS,
    })
}

const BAD_TICKET: &str = "This sign-in link has expired or was already used. Sign in again.";

/// Spends a one-time sign-in ticket and starts a new session for its clinician.
pub async fn redeem_ticket(state: &AppState, ticket: &str) -> ApiResult<SessionResponse> {
    let Some(clinician_id) = state.tickets.redeem(ticket) else {
        state
            .audit
            .record(
                Event::new("anonymous", Action::LoginFailed)
                    .detail(serde_json::json!({ "method": "ticket" })),
            )
            .await?;
        return Err(ApiError::unauthorized("bad-ticket", BAD_TICKET));
    };
    let account = state
        .store
        .clinician(&clinician_id)
        .await?
        .filter(|a| !a.disabled)
        .ok_or_else(|| ApiError::unauthorized("bad-ticket", BAD_TICKET))?;
    state
        .audit
        .record(
            Event::new(format!("clinician:{}", account.id), Action::LoginSucceeded)
                .detail(serde_json::json!({ "method": "ticket" })),
        )
        .await?;
    start_session(state, &account).await
}
