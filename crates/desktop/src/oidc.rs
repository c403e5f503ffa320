//! The browser part of signing in with the hospital's identity provider (RFC 8252).
//!
//! The app opens the provider's authorization page in the clinician's own browser, with
//! PKCE (S256), a `state` and a `nonce`, and a redirect to a listener it binds on
//! 127.0.0.1 with a port the system picks. When the browser comes back, the `state` is
//! checked here and the tab is told to return to Rounds; the code, the PKCE verifier and
//! the nonce then go to the Rounds server, which finishes the sign-in
//! ([`crate::Controller::sign_in_sso`]). Nothing of this is stored.
//!
//! Opening the browser is behind [`Browser`], so tests can drive the provider's pages
//! with a script instead of a real browser.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rounds_proto::{OidcSignIn, OidcTokenRequest};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

use crate::api::ApiError;

/// How long the clinician has to finish signing in in the browser.
pub const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Opens a URL for the clinician: their system browser in the app, a script in tests.
pub trait Browser: Send + Sync {
    fn open(&self, url: &Url) -> Result<(), String>;
}

/// The clinician's default browser: `$BROWSER` when set, else the desktop's opener.
pub struct SystemBrowser;

impl Browser for SystemBrowser {
    fn open(&self, url: &Url) -> Result<(), String> {
        let mut command = match std::env::var("BROWSER")
            .ok()
            .filter(|b| !b.trim().is_empty())
        {
            Some(browser) => std::process::Command::new(browser),
            None if cfg!(target_os = "macos") => std::process::Command::new("open"),
            None if cfg!(windows) => {
                let mut c = std::process::Command::new("rundll32");
                c.arg("url.dll,FileProtocolHandler");
                c
            }
            None => std::process::Command::new("xdg-open"),
        };
        command
            .arg(url.as_str())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// 256 random bits, base64url: a PKCE verifier (43 characters), a `state` or a `nonce`.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The S256 challenge of a PKCE verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Runs the browser part and returns what the server needs to finish the sign-in.
pub async fn authorize(
    info: &OidcSignIn,
    browser: &dyn Browser,
    timeout: Duration,
) -> Result<OidcTokenRequest, ApiError> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| {
        ApiError::new(
            "sso-listener",
            format!("Rounds cannot receive the sign-in on this computer ({e})."),
        )
    })?;
    let port = listener
        .local_addr()
        .map_err(|e| ApiError::new("sso-listener", e.to_string()))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let (verifier, state, nonce) = (random_token(), random_token(), random_token());

    let mut url = Url::parse(&info.authorization_endpoint).map_err(|_| {
        ApiError::new(
            "sso-misconfigured",
            "The Rounds server gave a sign-in address that is not valid. Tell your IT team.",
        )
    })?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &info.client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", &info.scopes.join(" "))
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &pkce_challenge(&verifier))
        .append_pair("code_challenge_method", "S256");
    browser.open(&url).map_err(|e| {
        ApiError::new(
            "no-browser",
            format!("Rounds cannot open your web browser for the hospital sign-in ({e})."),
        )
    })?;

    let code = tokio::time::timeout(timeout, wait_for_callback(&listener, &state))
        .await
        .map_err(|_| {
            ApiError::new(
                "sso-timeout",
                "The hospital sign-in was not finished in time. Try again.",
            )
        })??;
    Ok(OidcTokenRequest {
        code,
        code_verifier: verifier,
        redirect_uri,
        nonce,
    })
}

/// Answers the browser's requests until the redirect arrives; returns its code.
async fn wait_for_callback(listener: &TcpListener, state: &str) -> Result<String, ApiError> {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let Some(target) = read_request_target(&mut stream).await else {
            continue;
        };
        let Ok(url) = Url::parse("http://127.0.0.1").and_then(|base| base.join(&target)) else {
            continue;
        };
        if url.path() != "/callback" {
            respond(
                &mut stream,
                "404 Not Found",
                "Not here",
                "This is Rounds' sign-in address; there is nothing else here.",
            )
            .await;
            continue;
        }
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let outcome = if param("state").as_deref() != Some(state) {
            // A redirect this app did not start: possibly forged, never used.
            Err(ApiError::new(
                "sso-wrong-state",
                "The hospital sign-in came back with an answer that does not belong to the \
                 sign-in Rounds started, so it was not used. Sign in again.",
            ))
        } else if let Some(error) = param("error") {
            Err(if error == "access_denied" {
                ApiError::new(
                    "sso-denied",
                    "The hospital sign-in was cancelled or access was declined, so you are not \
                     signed in.",
                )
            } else {
                ApiError::new(
                    "sso-refused",
                    format!(
                        "Your hospital's sign-in service refused the sign-in ({error}). Try \
                         again; if it keeps happening, tell your IT team."
                    ),
                )
            })
        } else {
            param("code").ok_or_else(|| {
                ApiError::new(
                    "sso-no-code",
                    "The hospital sign-in came back without a sign-in code. Sign in again.",
                )
            })
        };
        match &outcome {
            Ok(_) => respond(
                &mut stream,
                "200 OK",
                "Signed in",
                "Rounds is finishing your sign-in. You can close this tab and return to Rounds.",
            )
            .await,
            Err(e) => {
                let text = format!("{} You can close this tab and return to Rounds.", e.message);
                respond(&mut stream, "400 Bad Request", "Not signed in", &text).await
            }
        }
        return outcome;
    }
}

/// The request target of an HTTP/1 request (`/callback?code=...`), read within 5 seconds.
async fn read_request_target(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Some(())
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .ok()??;
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.lines().next()?.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    (method == "GET").then(|| target.to_owned())
}

async fn respond(stream: &mut TcpStream, status: &str, title: &str, text: &str) {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>Rounds: {title}</title>\
         <body style=\"font-family:sans-serif;max-width:32em;margin:4em auto\">\
         <h1>{title}</h1><p>{}</p></body>",
        escape(text)
    );
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_s256_in_base64url_without_padding() {
        // SHA-256 of the verifier, base64url without padding (RFC 7636 §4.2); the expected
        // value was computed independently with Python's hashlib.
        let challenge = pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r7wW1gFWFOEjXk");
        assert_eq!(challenge, "bwWFMyPfdG9qreDhH2lmftFx_dFeLDalzcT1gb_j68g");
        assert_eq!(challenge.len(), 43);
    }

    #[test]
    fn tokens_are_unpredictable_and_long_enough() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        // 256 bits; a PKCE verifier must be 43 to 128 characters.
        assert_eq!(a.len(), 43);
    }
}
