//! The server's REST API, as the app uses it.
//!
//! HTTPS goes through the system proxy (`HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`, which is how
//! Linux desktops and most hospital deployments publish it; the controller passes the
//! [`ProxyConfig`] the call's WebSocket uses too) and trusts the OS certificate store, so a
//! TLS-inspecting proxy whose root IT installed just works. Every failure comes back as an
//! [`ApiError`] whose message a clinician can act on.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use rounds_client::ProxyConfig;
use rounds_proto::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

/// A failed call, in words for the clinician.
#[derive(Debug, Clone, thiserror::Error, Serialize, ts_rs::TS)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status, when the server answered.
    pub status: Option<u16>,
    /// A stable machine code (`bad-credentials`, `unreachable`, ...).
    pub code: String,
    /// A sentence the clinician can act on.
    pub message: String,
}

impl ApiError {
    pub fn new(code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: None,
            code: code.into(),
            message: message.into(),
        }
    }

    /// The server refused the credentials (expired or revoked session, bad password).
    pub fn is_unauthorized(&self) -> bool {
        self.status == Some(401)
    }

    /// The server could not be reached at all (network down, wrong address, asleep).
    pub fn is_unreachable(&self) -> bool {
        self.status.is_none()
    }
}

/// Checks a server URL typed by a clinician or set by policy.
pub fn parse_server_url(text: &str) -> Result<Url, ApiError> {
    let bad = || {
        ApiError::new(
            "invalid-server",
            format!(
                "\"{}\" is not a server address. It looks like https://rounds.your-hospital.org",
                text.trim()
            ),
        )
    };
    let mut url = Url::parse(text.trim()).map_err(|_| bad())?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match url.scheme() {
        "https" => {}
        // Plain HTTP only to this machine (the demo server).
        "http" if loopback => {}
        "http" => {
            return Err(ApiError::new(
                "insecure-server",
                "The server address must start with https:// (plain http is allowed only for a server on this computer).",
            ));
        }
        _ => return Err(bad()),
    }
    if url.host_str().is_none() || url.cannot_be_a_base() {
        return Err(bad());
    }
    url.set_path("/");
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// One server's REST API.
#[derive(Debug, Clone)]
pub struct ServerApi {
    base: Url,
    http: reqwest::Client,
}

impl ServerApi {
    /// The API of `base`, connecting directly.
    pub fn new(base: Url) -> Result<ServerApi, ApiError> {
        Self::with_proxy(base, &ProxyConfig::direct())
    }

    /// The API of `base`, through the proxy `proxy` chooses for it (HTTPS as a `CONNECT`
    /// tunnel, plain HTTP forwarded), or directly.
    pub fn with_proxy(base: Url, proxy: &ProxyConfig) -> Result<ServerApi, ApiError> {
        let builder = reqwest::Client::builder()
            .user_agent(concat!("rounds-desktop/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            // The proxy is decided here, from the same configuration as the WebSocket's.
            .no_proxy();
        let builder = match proxy.for_url(&base) {
            Some(via) => builder.proxy(reqwest::Proxy::all(via.clone()).map_err(|e| {
                ApiError::new("proxy", format!("The proxy setting cannot be used: {e}"))
            })?),
            None => builder,
        };
        let http = builder
            .build()
            .map_err(|e| ApiError::new("http-client", format!("Cannot start HTTPS: {e}")))?;
        Ok(ServerApi { base, http })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(crate) fn url(&self, path: &str) -> Url {
        self.base
            .join(path.trim_start_matches('/'))
            .unwrap_or_else(|_| self.base.clone())
    }

    fn unreachable(&self, e: &reqwest::Error) -> ApiError {
        tracing::info!(error = %e, "server unreachable");
        ApiError::new(
            "unreachable",
            format!(
                "Cannot reach the Rounds server at {}. Check the network connection; Rounds keeps trying.",
                self.base.as_str().trim_end_matches('/')
            ),
        )
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&B>,
    ) -> Result<T, ApiError> {
        let mut req = self
            .http
            .request(method, self.url(path))
            .timeout(Duration::from_secs(20));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = res.status();
        if status.is_success() {
            let bytes = res.bytes().await.map_err(|e| self.unreachable(&e))?;
            let bytes = if bytes.is_empty() || status == StatusCode::NO_CONTENT {
                &b"null"[..]
            } else {
                &bytes[..]
            };
            return serde_json::from_slice(bytes).map_err(|e| {
                ApiError::new(
                    "bad-response",
                    format!("The server sent an answer this app does not understand ({e}). Is it a Rounds server of the same version?"),
                )
            });
        }
        Err(problem(
            status,
            res.bytes().await.unwrap_or_default().as_ref(),
        ))
    }

    pub async fn login(&self, email: &str, password: &str) -> Result<SessionResponse, ApiError> {
        let body = LoginRequest {
            email: email.into(),
            password: password.into(),
        };
        self.call(Method::POST, "/api/v1/auth/login", None, Some(&body))
            .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<SessionResponse, ApiError> {
        let body = RefreshRequest {
            refresh_token: refresh_token.into(),
        };
        self.call(Method::POST, "/api/v1/auth/refresh", None, Some(&body))
            .await
    }

    pub async fn logout(&self, refresh_token: &str) -> Result<(), ApiError> {
        let body = LogoutRequest {
            refresh_token: refresh_token.into(),
        };
        self.call::<_, serde_json::Value>(Method::POST, "/api/v1/auth/logout", None, Some(&body))
            .await
            .map(drop)
    }

    /// How to start a hospital sign-in; a 404 problem when the server has none.
    pub async fn oidc_sign_in(&self) -> Result<OidcSignIn, ApiError> {
        self.call::<(), _>(Method::GET, "/api/v1/auth/oidc", None, None)
            .await
    }

    /// The EHRs this server can start a standalone launch at.
    pub async fn ehr_options(&self) -> Result<EhrLaunchOptions, ApiError> {
        self.call::<(), _>(Method::GET, "/api/v1/ehr", None, None)
            .await
    }

    /// Finishes a hospital sign-in with what the browser brought back.
    pub async fn oidc_token(&self, req: &OidcTokenRequest) -> Result<SessionResponse, ApiError> {
        self.call(Method::POST, "/api/v1/auth/oidc/token", None, Some(req))
            .await
    }

    pub async fn redeem_ticket(&self, ticket: &str) -> Result<SessionResponse, ApiError> {
        let body = TicketExchangeRequest {
            ticket: ticket.into(),
        };
        self.call(Method::POST, "/api/v1/auth/ticket", None, Some(&body))
            .await
    }

    pub async fn queue(&self, access: &str) -> Result<Queue, ApiError> {
        self.call::<(), _>(Method::GET, "/api/v1/visits", Some(access), None)
            .await
    }

    pub async fn create_visit(
        &self,
        access: &str,
        req: &CreateVisitRequest,
    ) -> Result<CreatedVisit, ApiError> {
        self.call(Method::POST, "/api/v1/visits", Some(access), Some(req))
            .await
    }

    pub async fn participants(
        &self,
        access: &str,
        visit: &str,
    ) -> Result<Vec<Participant>, ApiError> {
        let path = format!("/api/v1/rooms/{}/participants", seg(visit));
        self.call::<(), _>(Method::GET, &path, Some(access), None)
            .await
    }

    pub async fn decide(
        &self,
        access: &str,
        visit: &str,
        action: &str,
        participant: &str,
    ) -> Result<Participant, ApiError> {
        let path = format!(
            "/api/v1/visits/{}/{action}/{}",
            seg(visit),
            seg(participant)
        );
        self.call::<(), _>(Method::POST, &path, Some(access), None)
            .await
    }

    pub async fn end_visit(&self, access: &str, visit: &str) -> Result<Visit, ApiError> {
        let path = format!("/api/v1/visits/{}/end", seg(visit));
        self.call::<(), _>(Method::POST, &path, Some(access), None)
            .await
    }

    pub async fn running_late(
        &self,
        access: &str,
        visit: &str,
        minutes: u32,
    ) -> Result<Visit, ApiError> {
        let path = format!("/api/v1/visits/{}/running-late", seg(visit));
        self.call(
            Method::POST,
            &path,
            Some(access),
            Some(&RunningLateRequest { minutes }),
        )
        .await
    }

    pub async fn invite(
        &self,
        access: &str,
        visit: &str,
        req: &CreateInvitationRequest,
    ) -> Result<Invitation, ApiError> {
        let path = format!("/api/v1/visits/{}/invitations", seg(visit));
        self.call(Method::POST, &path, Some(access), Some(req))
            .await
    }

    pub async fn provider_token(&self, access: &str, visit: &str) -> Result<RoomToken, ApiError> {
        let path = format!("/api/v1/visits/{}/token", seg(visit));
        self.call::<(), _>(Method::POST, &path, Some(access), None)
            .await
    }
}

/// One path segment, percent-encoded, so an id can never change the route.
fn seg(s: &str) -> String {
    if s.is_empty() || s.chars().all(|c| c == '.') {
        return "%2E".repeat(s.len().max(1));
    }
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn problem(status: StatusCode, body: &[u8]) -> ApiError {
    let code = status.as_u16();
    match serde_json::from_slice::<Problem>(body) {
        Ok(p) => ApiError {
            status: Some(code),
            code: p.kind.rsplit('/').next().unwrap_or("error").to_owned(),
            message: p.detail,
        },
        Err(_) => ApiError {
            status: Some(code),
            code: "http-error".into(),
            message: format!(
                "The server answered {status} without an explanation. Try again, and tell IT if it keeps happening."
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_checked_and_normalised() {
        assert_eq!(
            parse_server_url(" https://rounds.example.org/app?x=1 ")
                .unwrap()
                .as_str(),
            "https://rounds.example.org/"
        );
        assert!(parse_server_url("http://127.0.0.1:8443").is_ok());
        let e = parse_server_url("http://rounds.example.org").unwrap_err();
        assert_eq!(e.code, "insecure-server");
        assert_eq!(
            parse_server_url("rounds").unwrap_err().code,
            "invalid-server"
        );
        assert_eq!(
            parse_server_url("file:///etc/passwd").unwrap_err().code,
            "invalid-server"
        );
    }

    #[test]
    fn problems_become_sentences() {
        let e = problem(
            StatusCode::UNAUTHORIZED,
            br#"{"type":"https://rounds.health/problems/bad-credentials","title":"Unauthorized","status":401,"detail":"That email and password do not match."}"#,
        );
        assert!(e.is_unauthorized());
        assert_eq!(e.code, "bad-credentials");
        assert_eq!(e.message, "That email and password do not match.");
        let e = problem(StatusCode::BAD_GATEWAY, b"<html>proxy error</html>");
        assert!(e.message.contains("502"), "{}", e.message);
    }

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        assert_eq!(seg("../../auth/login"), "..%2F..%2Fauth%2Flogin");
        assert_eq!(seg(".."), "%2E%2E");
        assert_eq!(seg(""), "%2E");
    }
}
