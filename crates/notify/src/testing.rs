//! Test doubles for the providers (feature `testing`).
//!
//! [`FakeTwilio`] is a real HTTP server on `127.0.0.1` that speaks the Twilio Messaging API's
//! wire format: HTTP Basic auth, form-encoded `To`/`From`/`Body`, `201` with a Message
//! resource, and Twilio's error bodies. Tests point a [`TwilioSms`](crate::TwilioSms) at it
//! through [`FakeTwilio::sms_config`] and read back what was "sent".

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use serde_json::json;

use crate::SmsConfig;

/// One message as the fake provider received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSms {
    /// The `SM...` sid the fake answered with.
    pub sid: String,
    pub to: String,
    /// The `From` field, or the `MessagingServiceSid` when the message was sent through a
    /// Messaging Service.
    pub from: String,
    pub body: String,
}

/// An in-process Twilio Messaging API. Stops when dropped.
pub struct FakeTwilio {
    addr: SocketAddr,
    state: Arc<FakeState>,
    server: tokio::task::JoinHandle<()>,
}

struct FakeState {
    account_sid: String,
    auth_token: String,
    rejected: Mutex<HashSet<String>>,
    unavailable: AtomicBool,
    messages: Mutex<Vec<ReceivedSms>>,
}

/// A test that panicked while holding a lock has already failed; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeTwilio {
    /// Starts serving on a free port of `127.0.0.1`, accepting only `account_sid` with
    /// `auth_token`. Must be called inside a Tokio runtime.
    ///
    /// # Panics
    ///
    /// If no local port can be bound.
    pub async fn start(account_sid: impl Into<String>, auth_token: impl Into<String>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("FakeTwilio could not bind a port on 127.0.0.1");
        let addr = listener
            .local_addr()
            .expect("FakeTwilio could not read its own address");
        let state = Arc::new(FakeState {
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            rejected: Mutex::default(),
            unavailable: AtomicBool::new(false),
            messages: Mutex::default(),
        });
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{account_sid}/Messages.json",
                post(create_message),
            )
            .with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            // Serving ends only when the task is aborted on drop.
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            state,
            server,
        }
    }

    /// `http://127.0.0.1:<port>`, to use as [`SmsConfig::base_url`].
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A configuration pointing at this fake with its credentials, sending from `from`.
    pub fn sms_config(&self, from: &str) -> SmsConfig {
        SmsConfig {
            base_url: self.base_url(),
            account_sid: self.state.account_sid.clone(),
            auth_token: self.state.auth_token.clone(),
            from: from.to_owned(),
            timeout_secs: 5,
        }
    }

    /// Answers messages to `to` with Twilio's error 21211, "Invalid 'To' Phone Number".
    pub fn reject_number(&self, to: &str) {
        lock(&self.state.rejected).insert(to.to_owned());
    }

    /// While set, every request is answered `503` with Twilio's error 20503.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.state.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// Every message accepted so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedSms> {
        lock(&self.state.messages).clone()
    }
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl std::fmt::Debug for FakeTwilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTwilio")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn twilio_error(status: StatusCode, code: i64, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, axum::Json(body)).into_response()
}

fn authorized(state: &FakeState, headers: &HeaderMap) -> bool {
    let Some(encoded) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return false;
    };
    decoded
        .split_once(':')
        .is_some_and(|(user, password)| user == state.account_sid && password == state.auth_token)
}

async fn create_message(
    State(state): State<Arc<FakeState>>,
    Path(account_sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&state, &headers) {
        let mut response = twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"Twilio API\""),
        );
        return response;
    }
    if account_sid != state.account_sid {
        return twilio_error(
            StatusCode::NOT_FOUND,
            20404,
            &format!(
                "The requested resource /2010-04-01/Accounts/{account_sid}/Messages.json was not found"
            ),
        );
    }
    if state.unavailable.load(Ordering::SeqCst) {
        return twilio_error(
            StatusCode::SERVICE_UNAVAILABLE,
            20503,
            "Service Unavailable",
        );
    }

    let fields: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| fields.get(name).filter(|v| !v.is_empty()).cloned();
    let Some(to) = field("To") else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21604,
            "A 'To' phone number is required.",
        );
    };
    let from = field("From");
    let service = field("MessagingServiceSid");
    let Some(sender) = from.clone().or_else(|| service.clone()) else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21603,
            "A 'From' phone number is required.",
        );
    };
    let Some(text) = field("Body") else {
        return twilio_error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    };
    if lock(&state.rejected).contains(&to) {
        return twilio_error(StatusCode::BAD_REQUEST, 21211, "Invalid 'To' Phone Number");
    }

    let sid = format!("SM{}", uuid::Uuid::new_v4().simple());
    let resource = json!({
        "account_sid": state.account_sid,
        "api_version": "2010-04-01",
        "body": text,
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": from,
        "messaging_service_sid": service,
        "num_media": "0",
        "num_segments": "1",
        "price": null,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "to": to,
        "uri": format!("/2010-04-01/Accounts/{}/Messages/{sid}.json", state.account_sid),
    });
    lock(&state.messages).push(ReceivedSms {
        sid,
        to,
        from: sender,
        body: text,
    });
    (StatusCode::CREATED, axum::Json(resource)).into_response()
}
