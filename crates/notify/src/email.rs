//! Sending email over SMTP: building the MIME message and mapping SMTP outcomes onto
//! [`NotifyError`].

use std::str::FromStr;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::response::Response;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::{
    EmailConfig, NotifyError, Phi, Receipt, SmtpTls, error_chain, parse_email, scrub, seconds,
};

/// Sends email through one SMTP server. Cheap to share: each message opens its own
/// connection, so there is no session to go stale between rare invitations.
pub struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

impl std::fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSender")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

const MISCONFIGURED: &str = "Email sending is not configured correctly on this server.";

impl EmailSender {
    /// Prepares a transport for `cfg`. No connection is made until the first
    /// [`send`](Self::send).
    pub fn new(cfg: &EmailConfig) -> Result<Self, NotifyError> {
        if let Err(reason) = cfg.validate() {
            tracing::error!(%reason, "email configuration is invalid");
            return Err(NotifyError::NotConfigured(MISCONFIGURED));
        }
        let from =
            Mailbox::from_str(&cfg.from).map_err(|_| NotifyError::NotConfigured(MISCONFIGURED))?;
        let tls_setup = |e: lettre::transport::smtp::Error| {
            tracing::error!(error = %error_chain(&e), "could not set up TLS for SMTP");
            NotifyError::NotConfigured("Email sending could not be set up on this server.")
        };
        let builder = match cfg.tls {
            SmtpTls::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.smtp_host)
            }
            SmtpTls::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.smtp_host)
                    .map_err(tls_setup)?
            }
            SmtpTls::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.smtp_host).map_err(tls_setup)?
            }
        };
        let timeout = Duration::from_secs(cfg.timeout_secs);
        let mut builder = builder.port(cfg.smtp_port).timeout(Some(timeout));
        if let (Some(user), Some(password)) = (&cfg.username, &cfg.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            timeout,
        })
    }

    /// Sends one message to `to`: plain text, or text and HTML as `multipart/alternative`
    /// when `html_body` is given. A malformed address fails with
    /// [`NotifyError::InvalidRecipient`] before any network I/O.
    pub async fn send(
        &self,
        to: &Phi<String>,
        subject: &str,
        text_body: &str,
        html_body: Option<&str>,
    ) -> Result<Receipt, NotifyError> {
        let address = parse_email(to.expose())?;

        let builder = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, address))
            .subject(subject)
            .message_id(Some(self.new_message_id()));
        let built = match html_body {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                text_body.to_owned(),
                html.to_owned(),
            )),
            None => builder.singlepart(SinglePart::plain(text_body.to_owned())),
        };
        let message = built.map_err(|e| {
            tracing::error!(error = %e, "could not build the email");
            NotifyError::NotConfigured(MISCONFIGURED)
        })?;

        // lettre bounds only the connect with its timeout; a server that accepts and then
        // stalls would otherwise hold this task forever.
        let outcome = tokio::time::timeout(self.timeout, self.transport.send(message)).await;
        match outcome {
            Ok(Ok(response)) => {
                let receipt = Receipt {
                    provider_id: queue_id(&response),
                };
                tracing::info!(provider_id = ?receipt.provider_id, "email accepted by the SMTP server");
                Ok(receipt)
            }
            Ok(Err(e)) => Err(self.failure(&e, to.expose())),
            Err(_elapsed) => {
                let text = format!(
                    "The email server did not finish within {}.",
                    seconds(self.timeout.as_secs())
                );
                tracing::warn!(error = %text, "email not sent");
                Err(NotifyError::Unavailable(text))
            }
        }
    }

    /// A Message-ID under the sender's own domain: the local host name (lettre's default)
    /// is often a container id, which spam filters hold against the message.
    fn new_message_id(&self) -> String {
        format!(
            "<{}@{}>",
            uuid::Uuid::new_v4().simple(),
            self.from.email.domain()
        )
    }

    fn failure(&self, e: &lettre::transport::smtp::Error, recipient: &str) -> NotifyError {
        // The reply text is the server's own words and may quote the address back.
        let detail = scrub(&error_chain(e), recipient);
        let error = match e.status() {
            Some(code) if e.is_permanent() => {
                // lettre keeps the server's reply text as the error's source.
                let reply = std::error::Error::source(e).map_or_else(
                    || detail.clone(),
                    |reply| scrub(&reply.to_string(), recipient),
                );
                NotifyError::Rejected {
                    status: u16::from(code),
                    code: None,
                    message: reply,
                }
            }
            Some(code) => NotifyError::Unavailable(format!(
                "The email server is temporarily refusing mail ({code}): {detail}"
            )),
            None if e.is_timeout() => NotifyError::Unavailable(format!(
                "The email server did not answer within {}.",
                seconds(self.timeout.as_secs())
            )),
            None if e.is_tls() => NotifyError::Unavailable(format!(
                "Could not set up an encrypted connection to the email server: {detail}"
            )),
            None => NotifyError::Unavailable(format!("Could not reach the email server: {detail}")),
        };
        tracing::warn!(%error, "email not sent");
        error
    }
}

/// The queue id from a reply like `250 2.0.0 Ok: queued as 4ABC123`, else the whole reply.
fn queue_id(response: &Response) -> Option<String> {
    let text = response.message().collect::<Vec<_>>().join(" ");
    let id = text
        .split_once("queued as ")
        .and_then(|(_, after)| after.split_whitespace().next());
    match id {
        Some(id) => Some(id.to_owned()),
        None => Some(text.trim().to_owned()).filter(|t| !t.is_empty()),
    }
}
