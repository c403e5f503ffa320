//! Delivery of Rounds invitations and reminders by SMS and email.
//!
//! The server decides *whom* to tell and *when*; this crate owns *how*: the wording of the
//! messages ([`messages`]), sending SMS through a Twilio-compatible Messaging API
//! ([`TwilioSms`], behind the object-safe [`SmsProvider`] trait), and sending email over SMTP
//! ([`EmailSender`]).
//!
//! Recipients are personal data. They arrive wrapped in [`Phi`], are exposed only to build
//! the request to the provider, and never appear in a log line or in a [`NotifyError`]:
//! provider messages that quote the recipient back are scrubbed before they are returned.
//!
//! With the `testing` feature, `testing::FakeTwilio` is an in-process server that speaks the
//! Twilio wire format, for this crate's tests and the server's.

mod config;
mod email;
pub mod messages;
mod sms;
#[cfg(feature = "testing")]
pub mod testing;

use std::error::Error as StdError;
use std::str::FromStr;

pub use config::{EmailConfig, SmsConfig, SmtpTls};
pub use email::EmailSender;
pub use rounds_proto::Phi;
pub use sms::{SendFuture, SmsProvider, TwilioSms};

/// Why a message was not delivered.
///
/// No variant ever contains the recipient, so the error can be logged and shown as is.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The phone number or email address can not be used. The text is a sentence for the
    /// person who typed it; it does not repeat the value.
    #[error("{0}")]
    InvalidRecipient(String),
    /// This channel is switched off, or its configuration is unusable.
    #[error("{0}")]
    NotConfigured(&'static str),
    /// The provider refused this message. `status` is the HTTP status (SMS) or the SMTP reply
    /// code (email); `code` is the provider's own error code when it sends one (Twilio's
    /// `21211`, ...); `message` is the provider's explanation.
    #[error("the provider refused the message (status {status}): {message}")]
    Rejected {
        status: u16,
        code: Option<i64>,
        message: String,
    },
    /// The provider could not be reached or asked us to come back later. Worth retrying.
    #[error("{0}")]
    Unavailable(String),
}

impl NotifyError {
    /// Whether sending the same message again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// What the provider said when it accepted a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Twilio's message `sid`, or the SMTP server's queue id (or its whole reply when it
    /// does not name one).
    pub provider_id: Option<String>,
}

const PHONE_FORMAT: &str = "The phone number must be in international format, like +15551234567.";

/// Checks that `p` is an E.164 number: `+`, then 8 to 15 digits, the first not zero.
pub fn validate_phone(p: &str) -> Result<(), NotifyError> {
    let ok = p.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    });
    if ok {
        Ok(())
    } else {
        Err(NotifyError::InvalidRecipient(PHONE_FORMAT.to_owned()))
    }
}

/// Checks that `e` is a single, bare email address (`name@example.com`, no display name).
pub fn validate_email(e: &str) -> Result<(), NotifyError> {
    parse_email(e).map(drop)
}

pub(crate) fn parse_email(e: &str) -> Result<lettre::Address, NotifyError> {
    // RFC 5321 caps a forward path at 256 octets including the angle brackets.
    let parsed = (e.len() <= 254)
        .then(|| lettre::Address::from_str(e).ok())
        .flatten();
    parsed.ok_or_else(|| {
        NotifyError::InvalidRecipient(
            "The email address does not look right. It should look like name@example.com."
                .to_owned(),
        )
    })
}

/// The longest provider explanation passed on; anything longer is noise in a log or a form.
const MAX_PROVIDER_MESSAGE_CHARS: usize = 500;

/// Makes a provider's text safe to return: removes every spelling of the recipient that
/// providers are known to echo back (Twilio: "The 'To' number +1555... is not valid";
/// Postfix: "<bob@example.com>: Recipient address rejected") and bounds its length.
pub(crate) fn scrub(text: &str, recipient: &str) -> String {
    let mut needles = vec![recipient];
    if let Some(digits) = recipient.strip_prefix('+') {
        needles.push(digits);
    }
    let mut out = text.to_owned();
    for needle in needles.into_iter().filter(|n| n.len() >= 3) {
        out = replace_ignore_ascii_case(&out, needle, "[recipient]");
    }
    if out.chars().count() > MAX_PROVIDER_MESSAGE_CHARS {
        out = out
            .chars()
            .take(MAX_PROVIDER_MESSAGE_CHARS)
            .collect::<String>()
            + "...";
    }
    out
}

fn replace_ignore_ascii_case(haystack: &str, needle: &str, with: &str) -> String {
    // ASCII lowercasing keeps every byte offset, so positions found in the lowered copy are
    // valid in the original; and UTF-8 being self-synchronising, a match of a whole string
    // starts and ends on character boundaries.
    let lower_hay = haystack.to_ascii_lowercase();
    let lower_needle = needle.to_ascii_lowercase();
    let mut out = String::with_capacity(haystack.len());
    let mut rest = 0;
    while let Some(found) = lower_hay[rest..].find(&lower_needle) {
        let start = rest + found;
        out.push_str(&haystack[rest..start]);
        out.push_str(with);
        rest = start + needle.len();
    }
    out.push_str(&haystack[rest..]);
    out
}

/// "1 second", "15 seconds".
pub(crate) fn seconds(n: u64) -> String {
    if n == 1 {
        "1 second".to_owned()
    } else {
        format!("{n} seconds")
    }
}

/// An error and its causes on one line, for the operator reading the log.
pub(crate) fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Wrappers often repeat their cause verbatim in their own message.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers() {
        for good in [
            "+15551234567",
            "+447911123456",
            "+12345678",
            "+123456789012345",
        ] {
            assert!(validate_phone(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "15551234567",
            "+1555123456a",
            "+1234567",
            "+1234567890123456",
            "+05551234567",
            "+1 555 123 4567",
            " +15551234567",
            "++15551234567",
        ] {
            assert!(validate_phone(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn email_addresses() {
        assert!(validate_email("ada@example.com").is_ok());
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "Ada <ada@example.com>",
            "ada@example.com, bob@example.com",
            "ada@exa mple.com",
        ] {
            assert!(validate_email(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(validate_email(&long).is_err());
    }

    #[test]
    fn scrub_removes_every_spelling_of_the_recipient() {
        assert_eq!(
            scrub(
                "The 'To' number +15551234567 is not a valid phone number.",
                "+15551234567"
            ),
            "The 'To' number [recipient] is not a valid phone number."
        );
        assert_eq!(
            scrub("unknown number 15551234567", "+15551234567"),
            "unknown number [recipient]"
        );
        assert_eq!(
            scrub(
                "5.1.1 <Ada@Example.com>: Recipient address rejected",
                "ada@example.com"
            ),
            "5.1.1 <[recipient]>: Recipient address rejected"
        );
        assert_eq!(
            scrub("héllo ada@example.com ünd", "ada@example.com"),
            "héllo [recipient] ünd"
        );
        assert!(scrub(&"x".repeat(2000), "ada@example.com").chars().count() < 510);
    }
}
