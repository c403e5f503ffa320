//! The `[email]` and `[sms]` sections of the server configuration: their shape, defaults,
//! validation, and a `Debug` that keeps the secrets out of logs.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain SMTP. Only for a relay on the same host or a test sink.
    None,
    /// Plain connection upgraded with STARTTLS; sending fails if the server does not offer it.
    #[default]
    Starttls,
    /// TLS from the first byte ("SMTPS", usually port 465).
    Tls,
}

/// Where and how to send email.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub smtp_host: String,
    pub smtp_port: u16,
    #[serde(default)]
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The `From` mailbox, e.g. `Rounds <visits@clinic.example>`.
    pub from: String,
    /// Bounds the whole exchange with the SMTP server for one message.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

/// Where and how to send SMS, through the Twilio Messaging API or a compatible one.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    #[serde(default = "default_sms_base_url")]
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: String,
    /// An E.164 sender number, or a Messaging Service SID (`MG...`).
    pub from: String,
    /// Bounds one request to the provider, connection included.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

const MAX_TIMEOUT_SECS: u64 = 300;

fn default_timeout_secs() -> u64 {
    15
}

fn default_sms_base_url() -> String {
    "https://api.twilio.com".to_owned()
}

const REDACTED: &str = "[redacted]";

impl fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailConfig")
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("from", &self.from)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

impl fmt::Debug for SmsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsConfig")
            .field("base_url", &self.base_url)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &REDACTED)
            .field("from", &self.from)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

impl EmailConfig {
    /// Checks every field; the error is a sentence naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        let host = self.smtp_host.trim();
        if host.is_empty()
            || host.len() != self.smtp_host.len()
            || host.contains(char::is_whitespace)
        {
            return Err(
                "email.smtp_host must be a host name or IP address, like smtp.example.com."
                    .to_owned(),
            );
        }
        if url::Host::parse(host).is_err() {
            return Err(format!(
                "email.smtp_host {host:?} is not a valid host name."
            ));
        }
        if self.smtp_port == 0 {
            return Err("email.smtp_port must be between 1 and 65535.".to_owned());
        }
        if lettre::message::Mailbox::from_str(&self.from).is_err() {
            return Err(
                "email.from is not a valid sender; use an address like visits@clinic.example \
                 or a mailbox like \"Rounds <visits@clinic.example>\"."
                    .to_owned(),
            );
        }
        match (&self.username, &self.password) {
            (Some(user), Some(password)) => {
                if user.is_empty() {
                    return Err("email.username must not be empty.".to_owned());
                }
                if password.is_empty() {
                    return Err("email.password must not be empty.".to_owned());
                }
                // A relay on the same machine is the one case where plain SMTP does not put
                // the password on the network.
                if self.tls == SmtpTls::None && !is_loopback(host) {
                    return Err("email.tls is \"none\", which would send email.password \
                                unencrypted; use \"starttls\" or \"tls\"."
                        .to_owned());
                }
            }
            (None, None) => {}
            _ => {
                return Err("email.username and email.password must be set together.".to_owned());
            }
        }
        check_timeout("email", self.timeout_secs)
    }
}

impl SmsConfig {
    /// Checks every field; the error is a sentence naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        let Ok(url) = url::Url::parse(&self.base_url) else {
            return Err("sms.base_url is not a valid URL.".to_owned());
        };
        let Some(host) = url.host_str() else {
            return Err("sms.base_url is not a valid URL.".to_owned());
        };
        match url.scheme() {
            "https" => {}
            // The auth token travels in every request, so plain HTTP is only acceptable to a
            // stand-in on this machine.
            "http" if is_loopback(host) => {}
            _ => {
                return Err(
                    "sms.base_url must start with https:// (http:// is only allowed \
                            for a server on this machine)."
                        .to_owned(),
                );
            }
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(
                "sms.base_url must not contain credentials, a query or a fragment.".to_owned(),
            );
        }
        if self.account_sid.is_empty()
            || !self
                .account_sid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(
                "sms.account_sid must be the Account SID from the provider's console \
                        (letters and digits, like AC0123...)."
                    .to_owned(),
            );
        }
        if self.auth_token.trim().is_empty() {
            return Err("sms.auth_token must not be empty.".to_owned());
        }
        let messaging_service = self.from.strip_prefix("MG").is_some_and(|rest| {
            !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric())
        });
        if !messaging_service && crate::validate_phone(&self.from).is_err() {
            return Err(
                "sms.from must be a phone number in international format, like \
                        +15551234567, or a Messaging Service SID starting with MG."
                    .to_owned(),
            );
        }
        check_timeout("sms", self.timeout_secs)
    }

    /// Whether `from` names a Messaging Service rather than a sender number.
    pub(crate) fn uses_messaging_service(&self) -> bool {
        self.from.starts_with("MG")
    }
}

fn check_timeout(section: &str, secs: u64) -> Result<(), String> {
    if (1..=MAX_TIMEOUT_SECS).contains(&secs) {
        Ok(())
    } else {
        Err(format!(
            "{section}.timeout_secs must be between 1 and {MAX_TIMEOUT_SECS}."
        ))
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || IpAddr::from_str(bare).is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> EmailConfig {
        EmailConfig {
            smtp_host: "smtp.example.com".into(),
            smtp_port: 587,
            tls: SmtpTls::Starttls,
            username: Some("rounds".into()),
            password: Some("hunter2-secret".into()),
            from: "Rounds <visits@clinic.example>".into(),
            timeout_secs: 15,
        }
    }

    fn sms() -> SmsConfig {
        SmsConfig {
            base_url: "https://api.twilio.com".into(),
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
            auth_token: "tok-secret".into(),
            from: "+15550001111".into(),
            timeout_secs: 15,
        }
    }

    #[test]
    fn valid_configs_pass() {
        assert_eq!(email().validate(), Ok(()));
        assert_eq!(sms().validate(), Ok(()));
        let local = EmailConfig {
            smtp_host: "127.0.0.1".into(),
            tls: SmtpTls::None,
            ..email()
        };
        assert_eq!(local.validate(), Ok(()));
        let mg = SmsConfig {
            from: "MG0123456789abcdef".into(),
            ..sms()
        };
        assert_eq!(mg.validate(), Ok(()));
        let fake = SmsConfig {
            base_url: "http://127.0.0.1:4010/".into(),
            ..sms()
        };
        assert_eq!(fake.validate(), Ok(()));
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(EmailConfig, &str)> = vec![
            (
                EmailConfig {
                    smtp_host: "".into(),
                    ..email()
                },
                "email.smtp_host",
            ),
            (
                EmailConfig {
                    smtp_host: "smtp example".into(),
                    ..email()
                },
                "email.smtp_host",
            ),
            (
                EmailConfig {
                    smtp_port: 0,
                    ..email()
                },
                "email.smtp_port",
            ),
            (
                EmailConfig {
                    from: "not an address".into(),
                    ..email()
                },
                "email.from",
            ),
            (
                EmailConfig {
                    password: None,
                    ..email()
                },
                "email.username",
            ),
            (
                EmailConfig {
                    tls: SmtpTls::None,
                    ..email()
                },
                "email.tls",
            ),
            (
                EmailConfig {
                    timeout_secs: 0,
                    ..email()
                },
                "email.timeout_secs",
            ),
        ];
        for (cfg, field) in cases {
            let err = cfg.validate().unwrap_err();
            assert!(err.contains(field), "{err} should name {field}");
            assert!(!err.contains("hunter2"));
        }
        let cases: Vec<(SmsConfig, &str)> = vec![
            (
                SmsConfig {
                    base_url: "api.twilio.com".into(),
                    ..sms()
                },
                "sms.base_url",
            ),
            (
                SmsConfig {
                    base_url: "http://api.twilio.com".into(),
                    ..sms()
                },
                "sms.base_url",
            ),
            (
                SmsConfig {
                    base_url: "https://x.example/?a=1".into(),
                    ..sms()
                },
                "sms.base_url",
            ),
            (
                SmsConfig {
                    account_sid: "AC 1".into(),
                    ..sms()
                },
                "sms.account_sid",
            ),
            (
                SmsConfig {
                    auth_token: " ".into(),
                    ..sms()
                },
                "sms.auth_token",
            ),
            (
                SmsConfig {
                    from: "5550001111".into(),
                    ..sms()
                },
                "sms.from",
            ),
            (
                SmsConfig {
                    from: "MG".into(),
                    ..sms()
                },
                "sms.from",
            ),
            (
                SmsConfig {
                    timeout_secs: 301,
                    ..sms()
                },
                "sms.timeout_secs",
            ),
        ];
        for (cfg, field) in cases {
            let err = cfg.validate().unwrap_err();
            assert!(err.contains(field), "{err} should name {field}");
            assert!(!err.contains("tok-secret"));
        }
        assert_eq!(
            SmsConfig {
                base_url: "not a url".into(),
                ..sms()
            }
            .validate()
            .unwrap_err(),
            "sms.base_url is not a valid URL."
        );
    }

    #[test]
    fn loopback_hosts() {
        for host in ["localhost", "127.0.0.1", "127.1.2.3", "[::1]", "::1"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["smtp.example.com", "10.0.0.1", "localhost.example.com"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
