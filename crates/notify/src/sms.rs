//! Sending SMS through the Twilio Messaging API (or anything that speaks its wire format),
//! and the [`SmsProvider`] seam the server depends on instead of Twilio itself.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

use crate::{NotifyError, Phi, Receipt, SmsConfig, error_chain, scrub, seconds, validate_phone};

/// The future returned by [`SmsProvider::send`].
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Receipt, NotifyError>> + Send + 'a>>;

/// Something that can text a phone number.
///
/// The future is boxed so the trait stays object-safe: the server holds an
/// `Arc<dyn SmsProvider>` and swaps in a fake in tests.
pub trait SmsProvider: Send + Sync {
    /// Sends `body` to `to` (E.164). Fails with [`NotifyError::InvalidRecipient`] before any
    /// network I/O when the number is malformed.
    fn send<'a>(&'a self, to: &'a Phi<String>, body: &'a str) -> SendFuture<'a>;
}

/// An [`SmsProvider`] backed by the Twilio Messaging API.
pub struct TwilioSms {
    client: reqwest::Client,
    messages_url: url::Url,
    account_sid: String,
    auth_token: String,
    /// The form field naming the sender: `From`, or `MessagingServiceSid` for an `MG...` sid.
    sender_field: &'static str,
    sender: String,
    timeout_secs: u64,
}

impl std::fmt::Debug for TwilioSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioSms")
            .field("messages_url", &self.messages_url.as_str())
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

const MISCONFIGURED: &str = "SMS sending is not configured correctly on this server.";

impl TwilioSms {
    /// Prepares a client for `cfg`. No request is made until the first [`SmsProvider::send`].
    pub fn new(cfg: &SmsConfig) -> Result<Self, NotifyError> {
        if let Err(reason) = cfg.validate() {
            tracing::error!(%reason, "SMS configuration is invalid");
            return Err(NotifyError::NotConfigured(MISCONFIGURED));
        }
        let mut messages_url = url::Url::parse(&cfg.base_url)
            .map_err(|_| NotifyError::NotConfigured(MISCONFIGURED))?;
        messages_url
            .path_segments_mut()
            .map_err(|()| NotifyError::NotConfigured(MISCONFIGURED))?
            .pop_if_empty()
            .extend(["2010-04-01", "Accounts", &cfg.account_sid, "Messages.json"]);

        let timeout = Duration::from_secs(cfg.timeout_secs);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirected POST would either be replayed elsewhere with our credentials or
            // silently turned into a GET; neither is a delivery.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("rounds-notify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                tracing::error!(error = %error_chain(&e), "could not build the SMS HTTP client");
                NotifyError::NotConfigured("SMS sending could not be set up on this server.")
            })?;

        let (sender_field, sender) = if cfg.uses_messaging_service() {
            ("MessagingServiceSid", cfg.from.clone())
        } else {
            ("From", cfg.from.clone())
        };
        Ok(Self {
            client,
            messages_url,
            account_sid: cfg.account_sid.clone(),
            auth_token: cfg.auth_token.clone(),
            sender_field,
            sender,
            timeout_secs: cfg.timeout_secs,
        })
    }

    async fn send_message(&self, to: &Phi<String>, body: &str) -> Result<Receipt, NotifyError> {
        validate_phone(to.expose())?;
        let form = [
            ("To", to.expose().as_str()),
            (self.sender_field, self.sender.as_str()),
            ("Body", body),
        ];
        let response = self
            .client
            .post(self.messages_url.clone())
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&form)
            .send()
            .await
            .map_err(|e| self.unavailable(e))?;
        let status = response.status();
        let bytes = response.bytes().await;

        if status.is_success() {
            // The message is accepted at this point. An unreadable answer must not turn into
            // an error, or a retry would text the patient twice.
            let sid = match bytes.map(|b| serde_json::from_slice::<MessageResource>(&b)) {
                Ok(Ok(resource)) => resource.sid,
                Ok(Err(e)) => {
                    tracing::warn!(%status, error = %e, "SMS accepted, but the answer has no sid");
                    None
                }
                Err(e) => {
                    let error = error_chain(&e.without_url());
                    tracing::warn!(%status, %error, "SMS accepted, but the answer was cut off");
                    None
                }
            };
            tracing::info!(provider_id = ?sid, "SMS accepted by the provider");
            return Ok(Receipt { provider_id: sid });
        }

        let bytes = bytes.map_err(|e| self.unavailable(e))?;
        let error = serde_json::from_slice::<TwilioError>(&bytes).unwrap_or_default();
        let message = match error.message {
            Some(m) if !m.trim().is_empty() => scrub(&m, to.expose()),
            _ => format!("The SMS provider answered with HTTP {}.", status.as_u16()),
        };
        tracing::warn!(%status, code = ?error.code, %message, "SMS not accepted by the provider");
        // Throttling and server faults say nothing about this message; they are worth retrying.
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(NotifyError::Unavailable(format!(
                "The SMS provider is temporarily unavailable (HTTP {}): {message}",
                status.as_u16()
            )));
        }
        Err(NotifyError::Rejected {
            status: status.as_u16(),
            code: error.code,
            message,
        })
    }

    fn unavailable(&self, err: reqwest::Error) -> NotifyError {
        // The URL names the account, not the recipient, but it is noise in a sentence.
        let err = err.without_url();
        let text = if err.is_timeout() {
            format!(
                "The SMS provider did not answer within {}.",
                seconds(self.timeout_secs)
            )
        } else if err.is_connect() {
            format!(
                "Could not connect to the SMS provider: {}",
                error_chain(&err)
            )
        } else {
            format!("Could not reach the SMS provider: {}", error_chain(&err))
        };
        tracing::warn!(error = %text, "SMS not sent");
        NotifyError::Unavailable(text)
    }
}

impl SmsProvider for TwilioSms {
    fn send<'a>(&'a self, to: &'a Phi<String>, body: &'a str) -> SendFuture<'a> {
        Box::pin(self.send_message(to, body))
    }
}

/// The part of Twilio's Message resource we keep.
#[derive(Deserialize)]
struct MessageResource {
    sid: Option<String>,
}

/// Twilio's error body: `{"code": 21211, "message": "...", "more_info": "...", "status": 400}`.
#[derive(Deserialize, Default)]
struct TwilioError {
    code: Option<i64>,
    message: Option<String>,
}
