//! Configuration parsing, defaults, validation and secret hiding.

use rounds_notify::{EmailConfig, EmailSender, NotifyError, SmsConfig, SmtpTls, TwilioSms};
use serde_json::json;

#[test]
fn email_defaults() {
    let cfg: EmailConfig = serde_json::from_value(json!({
        "smtp_host": "smtp.example.com",
        "smtp_port": 587,
        "from": "Rounds <visits@clinic.example>",
    }))
    .unwrap();
    assert_eq!(cfg.tls, SmtpTls::Starttls);
    assert_eq!(cfg.timeout_secs, 15);
    assert_eq!(cfg.username, None);
    assert_eq!(cfg.validate(), Ok(()));

    for (text, tls) in [
        ("none", SmtpTls::None),
        ("starttls", SmtpTls::Starttls),
        ("tls", SmtpTls::Tls),
    ] {
        let cfg: EmailConfig = serde_json::from_value(json!({
            "smtp_host": "smtp.example.com", "smtp_port": 465, "from": "visits@clinic.example", "tls": text,
        }))
        .unwrap();
        assert_eq!(cfg.tls, tls);
    }
}

#[test]
fn sms_defaults() {
    let cfg: SmsConfig = serde_json::from_value(json!({
        "account_sid": "AC0123456789abcdef0123456789abcdef",
        "auth_token": "tok",
        "from": "+15550001111",
    }))
    .unwrap();
    assert_eq!(cfg.base_url, "https://api.twilio.com");
    assert_eq!(cfg.timeout_secs, 15);
    assert_eq!(cfg.validate(), Ok(()));
}

#[test]
fn unknown_fields_are_refused() {
    let email = serde_json::from_value::<EmailConfig>(json!({
        "smtp_host": "smtp.example.com", "smtp_port": 587, "from": "visits@clinic.example", "smtp_pass": "x",
    }));
    assert!(email.is_err());
    let sms = serde_json::from_value::<SmsConfig>(json!({
        "account_sid": "AC1", "auth_token": "tok", "from": "+15550001111", "token": "x",
    }));
    assert!(sms.is_err());
    let tls = serde_json::from_value::<EmailConfig>(json!({
        "smtp_host": "smtp.example.com", "smtp_port": 587, "from": "visits@clinic.example", "tls": "ssl",
    }));
    assert!(tls.is_err());
}

#[test]
fn debug_hides_secrets() {
    let email = EmailConfig {
        smtp_host: "smtp.example.com".into(),
        smtp_port: 587,
        tls: SmtpTls::Starttls,
        username: Some("rounds".into()),
        password: Some("pa55-word-secret".into()),
        from: "visits@clinic.example".into(),
        timeout_secs: 15,
    };
    let shown = format!("{email:?} {email:#?}");
    assert!(!shown.contains("pa55-word-secret"), "{shown}");
    assert!(shown.contains("smtp.example.com"));

    let sms = SmsConfig {
        base_url: "https://api.twilio.com".into(),
        account_sid: "AC1".into(),
        auth_token: "auth-token-secret".into(),
        from: "+15550001111".into(),
        timeout_secs: 15,
    };
    let shown = format!("{sms:?} {sms:#?}");
    assert!(!shown.contains("auth-token-secret"), "{shown}");
    assert!(shown.contains("AC1"));

    let sender = TwilioSms::new(&sms).unwrap();
    assert!(!format!("{sender:?}").contains("auth-token-secret"));
}

#[test]
fn senders_refuse_invalid_configs() {
    let sms = SmsConfig {
        base_url: "ftp://api.twilio.com".into(),
        account_sid: "AC1".into(),
        auth_token: "tok".into(),
        from: "+15550001111".into(),
        timeout_secs: 15,
    };
    assert!(matches!(
        TwilioSms::new(&sms),
        Err(NotifyError::NotConfigured(_))
    ));
    let email = EmailConfig {
        smtp_host: "smtp.example.com".into(),
        smtp_port: 25,
        tls: SmtpTls::None,
        username: Some("rounds".into()),
        password: Some("secret".into()),
        from: "visits@clinic.example".into(),
        timeout_secs: 15,
    };
    let err = EmailSender::new(&email).unwrap_err();
    assert!(matches!(err, NotifyError::NotConfigured(_)));
    assert!(!format!("{err} {err:?}").contains("secret"));
}

#[test]
fn every_tls_mode_builds_a_sender() {
    for tls in [SmtpTls::None, SmtpTls::Starttls, SmtpTls::Tls] {
        let cfg = EmailConfig {
            smtp_host: "smtp.example.com".into(),
            smtp_port: 587,
            tls,
            username: None,
            password: None,
            from: "visits@clinic.example".into(),
            timeout_secs: 15,
        };
        EmailSender::new(&cfg).unwrap();
    }
}
