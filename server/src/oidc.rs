//! Clinician sign-in with the hospital's OpenID Connect identity provider.
//!
//! The desktop app runs the browser part: the authorization code flow with PKCE (S256), a
//! `state` and a `nonce`, in the system browser, with a loopback redirect (RFC 8252). It
//! hands the code, its PKCE verifier, the redirect URI and the nonce to [`sign_in`], which
//! finishes here on the server:
//!
//! 1. exchange the code at the provider's token endpoint (a replayed, expired or foreign
//!    code, or a wrong verifier, is refused by the provider);
//! 2. check the id_token with the openidconnect crate: the signature against the
//!    provider's published keys, `iss`, `aud`, `exp` and the `nonce`;
//! 3. find the clinician: the account linked to this issuer and subject, else the account
//!    the configured claim (email or fhirUser) names, which is then linked, else, in
//!    `auto` provisioning, a new account in the configured clinic;
//! 4. start the Rounds session exactly as a password sign-in does, so refresh and
//!    sign-out (which revokes the refresh token's family) work the same.
//!
//! Every refusal is a problem document with a sentence, and an audit entry that names
//! the reason and never the person. The provider's metadata and keys come from discovery
//! and are cached; a signature no cached key verifies refetches them once (key rotation).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::Utc;
use openidconnect::core::{
    CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, ClaimsVerificationError, ClientId, IdToken, IdTokenVerifier, IssuerUrl, Nonce,
};
use rounds_proto::{OidcSignIn, OidcTokenRequest, SessionResponse};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::audit::{Action, Event};
use crate::config::{MatchClaim, OidcConfig, Provisioning};
use crate::error::{ApiError, ApiResult};
use crate::store::ClinicianRow;

/// How long discovered metadata and keys are trusted before they are read again.
const METADATA_TTL: Duration = Duration::from_secs(10 * 60);

/// The provider's configuration as discovered, cached for the whole server.
pub struct Oidc {
    config: OidcConfig,
    http: reqwest::Client,
    metadata: Mutex<Option<(Instant, CoreProviderMetadata)>>,
}

/// What the app needs to start a sign-in.
pub async fn sign_in_info(state: &AppState) -> ApiResult<OidcSignIn> {
    let oidc = configured(state)?;
    let metadata = oidc.metadata(false).await.map_err(|f| f.into_error(oidc))?;
    Ok(OidcSignIn {
        issuer: oidc.config.issuer.clone(),
        authorization_endpoint: metadata.authorization_endpoint().to_string(),
        client_id: oidc.config.client_id.clone(),
        scopes: oidc.config.scopes.clone(),
        password_login: oidc.config.password_login,
    })
}

/// Finishes a sign-in the app started in the browser and issues the Rounds session.
pub async fn sign_in(state: &AppState, req: &OidcTokenRequest) -> ApiResult<SessionResponse> {
    let oidc = configured(state)?;
    let account =
        match oidc.identify(state, req).await {
            Ok(account) => account,
            Err(failure) => {
                metrics::counter!("rounds_logins_total", "outcome" => "failed").increment(1);
                state
                    .audit
                    .record(Event::new("anonymous", Action::LoginFailed).detail(
                        serde_json::json!({ "method": "oidc", "reason": failure.reason() }),
                    ))
                    .await?;
                return Err(failure.into_error(oidc));
            }
        };
    metrics::counter!("rounds_logins_total", "outcome" => "succeeded").increment(1);
    state
        .audit
        .record(
            Event::new(format!("clinician:{}", account.id), Action::LoginSucceeded)
                .detail(serde_json::json!({ "method": "oidc" })),
        )
        .await?;
    crate::sessions::start_session(state, &account).await
}

fn configured(state: &AppState) -> ApiResult<&Oidc> {
    state.oidc.as_deref().ok_or_else(|| {
        ApiError::not_found(
            "sso-not-configured",
            "This Rounds server has no hospital sign-in set up. Sign in with your email and \
             password, or ask your IT team to configure single sign-on.",
        )
    })
}

/// The claims Rounds reads beyond the standard ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ExtraClaims {
    #[serde(rename = "fhirUser", default, skip_serializing_if = "Option::is_none")]
    fhir_user: Option<String>,
}

impl AdditionalClaims for ExtraClaims {}

type HospitalIdToken = IdToken<
    ExtraClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
}

/// The person the id_token names, with only what the account mapping needs.
struct Identity {
    subject: String,
    email: Option<String>,
    email_verified: Option<bool>,
    name: Option<String>,
    fhir_user: Option<String>,
}

/// Why a sign-in was refused. The audit log gets [`Failure::reason`]; the clinician gets
/// the sentence of [`Failure::into_error`].
#[derive(Debug)]
enum Failure {
    Unreachable(String),
    PkceMissing,
    BadRedirect,
    CodeRejected,
    ClientRejected,
    NoIdToken,
    Token(TokenCheck),
    NotRegistered,
    MissingClaim(&'static str),
    LinkedElsewhere,
    Disabled,
    Store(ApiError),
}

#[derive(Debug, Clone, Copy)]
enum TokenCheck {
    Audience,
    Nonce,
    Expired,
    Issuer,
    Signature,
    Malformed,
}

impl Failure {
    fn reason(&self) -> &'static str {
        match self {
            Failure::Unreachable(_) => "idp-unreachable",
            Failure::PkceMissing => "pkce-missing",
            Failure::BadRedirect => "redirect-not-loopback",
            Failure::CodeRejected => "code-rejected",
            Failure::ClientRejected => "client-rejected",
            Failure::NoIdToken => "no-id-token",
            Failure::Token(TokenCheck::Audience) => "id-token-audience",
            Failure::Token(TokenCheck::Nonce) => "id-token-nonce",
            Failure::Token(TokenCheck::Expired) => "id-token-expired",
            Failure::Token(TokenCheck::Issuer) => "id-token-issuer",
            Failure::Token(TokenCheck::Signature) => "id-token-signature",
            Failure::Token(TokenCheck::Malformed) => "id-token-malformed",
            Failure::NotRegistered => "not-registered",
            Failure::MissingClaim(_) => "missing-claim",
            Failure::LinkedElsewhere => "linked-elsewhere",
            Failure::Disabled => "account-disabled",
            Failure::Store(_) => "internal",
        }
    }

    fn into_error(self, oidc: &Oidc) -> ApiError {
        let issuer = &oidc.config.issuer;
        match self {
            Failure::Unreachable(cause) => {
                tracing::warn!(%issuer, %cause, "the identity provider cannot be reached");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "idp-unreachable",
                    format!(
                        "Rounds cannot reach your hospital's sign-in service ({issuer}) right \
                         now. Try again in a few minutes; if it keeps happening, tell your IT \
                         team."
                    ),
                )
            }
            Failure::PkceMissing => ApiError::bad_request(
                "pkce-required",
                "This sign-in has no PKCE code verifier, so Rounds cannot finish it. Start the \
                 sign-in again from the Rounds app.",
            ),
            Failure::BadRedirect => ApiError::bad_request(
                "redirect-not-loopback",
                "The sign-in must return to the Rounds app on this computer (an \
                 http://127.0.0.1 address). Start the sign-in again from the Rounds app.",
            ),
            Failure::CodeRejected => ApiError::unauthorized(
                "sso-code-rejected",
                "Your hospital's sign-in service did not accept this sign-in: it expired, was \
                 already used, or was started elsewhere. Sign in again.",
            ),
            Failure::ClientRejected => {
                tracing::warn!(%issuer, "the identity provider refused Rounds' client registration");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "sso-misconfigured",
                    "Your hospital's sign-in service does not recognise Rounds' registration. \
                     Tell your IT team to check the client id and secret in Rounds' oidc \
                     settings.",
                )
            }
            Failure::NoIdToken => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "sso-no-id-token",
                "Your hospital's sign-in service answered without an ID token. Tell your IT \
                 team that Rounds needs the openid scope allowed for its registration.",
            ),
            Failure::Token(check) => {
                let what = match check {
                    TokenCheck::Audience => "it was issued for a different application",
                    TokenCheck::Nonce => "it does not belong to this sign-in attempt",
                    TokenCheck::Expired => "it has expired",
                    TokenCheck::Issuer => "it comes from a different identity provider",
                    TokenCheck::Signature => "its signature is not valid",
                    TokenCheck::Malformed => "it could not be read",
                };
                ApiError::unauthorized(
                    "sso-token-invalid",
                    format!(
                        "Rounds did not accept the answer from your hospital's sign-in \
                         service because {what}, so you are not signed in. Sign in again; if \
                         it keeps happening, tell your IT team."
                    ),
                )
            }
            Failure::NotRegistered => {
                let key = match oidc.config.match_claim {
                    MatchClaim::Email => "the email address of your hospital account",
                    MatchClaim::FhirUser => "your practitioner record in the EHR (fhirUser)",
                };
                ApiError::forbidden(
                    "sso-not-registered",
                    format!(
                        "Your hospital account is not registered for Rounds. Ask your clinic's \
                         IT team to create your Rounds account with {key}, then sign in again."
                    ),
                )
            }
            Failure::MissingClaim(claim) => ApiError::forbidden(
                "sso-missing-claim",
                format!(
                    "Your hospital's sign-in service did not share your {claim}, which Rounds \
                     needs to find your account. Ask your IT team to release the {claim} claim \
                     to Rounds."
                ),
            ),
            Failure::LinkedElsewhere => ApiError::forbidden(
                "sso-account-conflict",
                "The Rounds account for this hospital account is already linked to another \
                 sign-in. Ask your clinic's IT team to check your Rounds account.",
            ),
            Failure::Disabled => ApiError::forbidden(
                "account-disabled",
                "Your Rounds account is disabled. Ask your clinic's IT team.",
            ),
            Failure::Store(e) => e,
        }
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(e: crate::store::StoreError) -> Self {
        Failure::Store(e.into())
    }
}

impl From<crate::audit::AuditError> for Failure {
    fn from(e: crate::audit::AuditError) -> Self {
        Failure::Store(e.into())
    }
}

impl Oidc {
    pub fn new(config: OidcConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("rounds-server/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(10))
            // The provider's answers are used as they are; a redirect is not followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            config,
            http,
            metadata: Mutex::new(None),
        })
    }

    async fn identify(
        &self,
        state: &AppState,
        req: &OidcTokenRequest,
    ) -> Result<ClinicianRow, Failure> {
        // RFC 7636: a verifier is 43 to 128 characters.
        if !(43..=128).contains(&req.code_verifier.len()) {
            return Err(Failure::PkceMissing);
        }
        if !is_loopback_redirect(&req.redirect_uri) {
            return Err(Failure::BadRedirect);
        }
        let metadata = self.metadata(false).await?;
        let id_token = self.exchange(&metadata, req).await?;
        let identity = match self.verify(&metadata, &id_token, &req.nonce) {
            // The provider may have rotated its keys since they were cached.
            Err(Failure::Token(TokenCheck::Signature)) => {
                let fresh = self.metadata(true).await?;
                self.verify(&fresh, &id_token, &req.nonce)?
            }
            other => other?,
        };
        let account = self.account(state, &identity).await?;
        if account.disabled {
            return Err(Failure::Disabled);
        }
        Ok(account)
    }

    async fn metadata(&self, refresh: bool) -> Result<CoreProviderMetadata, Failure> {
        if !refresh
            && let Some((at, m)) = self
                .metadata
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
            && at.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone())
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        let client = self.http.clone();
        let http = move |r| send(client.clone(), r);
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| Failure::Unreachable(format!("discovery: {e}")))?;
        *self.metadata.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), metadata.clone()));
        Ok(metadata)
    }

    async fn exchange(
        &self,
        metadata: &CoreProviderMetadata,
        req: &OidcTokenRequest,
    ) -> Result<String, Failure> {
        let Some(endpoint) = metadata.token_endpoint() else {
            return Err(Failure::Unreachable(
                "the provider publishes no token endpoint".into(),
            ));
        };
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", req.code.as_str()),
            ("redirect_uri", req.redirect_uri.as_str()),
            ("code_verifier", req.code_verifier.as_str()),
        ];
        let mut request = self.http.post(endpoint.url().as_str());
        match &self.config.client_secret {
            Some(secret) => request = request.basic_auth(&self.config.client_id, Some(secret)),
            None => form.push(("client_id", self.config.client_id.as_str())),
        }
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| Failure::Unreachable(format!("token endpoint: {e}")))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(Failure::Unreachable(format!(
                "token endpoint answered {status}"
            )));
        }
        if !status.is_success() {
            let error = response
                .json::<TokenError>()
                .await
                .map(|e| e.error)
                .unwrap_or_default();
            return Err(match error.as_str() {
                "invalid_client" | "unauthorized_client" => Failure::ClientRejected,
                _ => Failure::CodeRejected,
            });
        }
        let body: TokenResponse = response
            .json()
            .await
            .map_err(|e| Failure::Unreachable(format!("token response: {e}")))?;
        body.id_token.ok_or(Failure::NoIdToken)
    }

    fn verify(
        &self,
        metadata: &CoreProviderMetadata,
        id_token: &str,
        nonce: &str,
    ) -> Result<Identity, Failure> {
        let token: HospitalIdToken = id_token
            .parse()
            .map_err(|_| Failure::Token(TokenCheck::Malformed))?;
        let verifier = IdTokenVerifier::new_public_client(
            ClientId::new(self.config.client_id.clone()),
            metadata.issuer().clone(),
            metadata.jwks().clone(),
        );
        let nonce = Nonce::new(nonce.to_owned());
        let claims = token.claims(&verifier, &nonce).map_err(|e| {
            Failure::Token(match e {
                ClaimsVerificationError::InvalidAudience(_) => TokenCheck::Audience,
                ClaimsVerificationError::InvalidNonce(_) => TokenCheck::Nonce,
                ClaimsVerificationError::Expired(_) => TokenCheck::Expired,
                ClaimsVerificationError::InvalidIssuer(_) => TokenCheck::Issuer,
                ClaimsVerificationError::SignatureVerification(_) => TokenCheck::Signature,
                _ => TokenCheck::Malformed,
            })
        })?;
        Ok(Identity {
            subject: claims.subject().to_string(),
            email: claims.email().map(|e| e.to_string()),
            email_verified: claims.email_verified(),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.to_string()),
            fhir_user: claims.additional_claims().fhir_user.clone(),
        })
    }

    /// The clinician this identity is: linked, matched by the configured claim and then
    /// linked, or (auto provisioning) created.
    async fn account(&self, state: &AppState, who: &Identity) -> Result<ClinicianRow, Failure> {
        let issuer = self.config.issuer.as_str();
        if let Some(account) = state.store.clinician_by_oidc(issuer, &who.subject).await? {
            return Ok(account);
        }
        let email = who
            .email
            .as_deref()
            .filter(|_| who.email_verified != Some(false));
        let matched = match self.config.match_claim {
            MatchClaim::Email => match email {
                Some(email) => state.store.clinician_by_email(email).await?,
                None => None,
            },
            MatchClaim::FhirUser => match &who.fhir_user {
                Some(f) => state.store.clinician_by_fhir_user(f).await?,
                None => None,
            },
        };
        if let Some(account) = matched {
            if state.store.oidc_link(&account.id).await?.is_some() {
                return Err(Failure::LinkedElsewhere);
            }
            state
                .store
                .link_oidc(&account.id, issuer, &who.subject)
                .await?;
            state
                .audit
                .record(
                    Event::new(format!("clinician:{}", account.id), Action::AccountLinked)
                        .detail(serde_json::json!({ "issuer": issuer })),
                )
                .await?;
            return Ok(account);
        }
        if self.config.provisioning == Provisioning::Registered {
            return Err(Failure::NotRegistered);
        }
        let Some(email) = email else {
            return Err(Failure::MissingClaim("email address"));
        };
        if state.store.clinician_by_email(email).await?.is_some() {
            // The email belongs to an account this identity does not match by the
            // configured claim: linking it would hand that account over.
            return Err(Failure::LinkedElsewhere);
        }
        let now = Utc::now();
        let clinic_name = self.config.auto_clinic.as_deref().unwrap_or("Clinic");
        let clinic = match state.store.clinic_by_name(clinic_name).await? {
            Some(c) => c,
            None => {
                state
                    .store
                    .create_clinic(clinic_name, &self.config.auto_time_zone, now)
                    .await?
            }
        };
        let name = who.name.as_deref().unwrap_or(email);
        let account = state
            .store
            .create_clinician(&clinic.id, email, name, None, now)
            .await?;
        state
            .store
            .link_oidc(&account.id, issuer, &who.subject)
            .await?;
        if let Some(f) = &who.fhir_user
            && state.store.clinician_by_fhir_user(f).await?.is_none()
        {
            state.store.set_fhir_user(&account.id, f).await?;
        }
        state
            .audit
            .record(
                Event::new(
                    format!("clinician:{}", account.id),
                    Action::AccountProvisioned,
                )
                .detail(serde_json::json!({ "issuer": issuer, "clinic": clinic.id })),
            )
            .await?;
        Ok(account)
    }
}

/// RFC 8252 §7.3: the app listens on the loopback interface, on any port.
fn is_loopback_redirect(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| {
        u.scheme() == "http"
            && matches!(u.host_str(), Some("127.0.0.1" | "[::1]"))
            && u.fragment().is_none()
    })
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct HttpFailure(String);

/// The openidconnect crate's HTTP calls (discovery and keys), through reqwest.
async fn send(
    http: reqwest::Client,
    req: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, HttpFailure> {
    let (parts, body) = req.into_parts();
    let response = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| HttpFailure(e.to_string()))?;
    let mut out = openidconnect::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        out = out.header(name, value);
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| HttpFailure(e.to_string()))?;
    out.body(bytes.to_vec())
        .map_err(|e| HttpFailure(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_redirects_are_accepted() {
        assert!(is_loopback_redirect("http://127.0.0.1:53121/callback"));
        assert!(is_loopback_redirect("http://[::1]:53121/callback"));
        assert!(!is_loopback_redirect("https://evil.example/callback"));
        assert!(!is_loopback_redirect(
            "http://localhost.evil.example/callback"
        ));
        assert!(!is_loopback_redirect("not a url"));
    }
}
