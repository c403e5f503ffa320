//! The shapes the server relies on: shareable senders, `Send` futures, redacting errors.

use std::sync::Arc;

use rounds_notify::{EmailSender, NotifyError, Phi, Receipt, SmsConfig, SmsProvider, TwilioSms};

fn is_send_sync<T: Send + Sync>() {}
fn is_send<T: Send>(_: &T) {}

#[test]
fn senders_can_live_in_shared_state() {
    is_send_sync::<EmailSender>();
    is_send_sync::<TwilioSms>();
    is_send_sync::<Arc<dyn SmsProvider>>();
    is_send_sync::<NotifyError>();
    is_send_sync::<Receipt>();
}

#[test]
fn futures_are_send() {
    // axum handlers and spawned tasks need `Send` futures; these are created, never polled.
    let email = EmailSender::new(&crate::support::local_email_config(25, 5)).unwrap();
    let sms: Arc<dyn SmsProvider> = Arc::new(
        TwilioSms::new(&SmsConfig {
            base_url: "https://api.twilio.com".into(),
            account_sid: "AC1".into(),
            auth_token: "tok".into(),
            from: "+15550001111".into(),
            timeout_secs: 5,
        })
        .unwrap(),
    );
    let to = Phi::new("ada@example.com".to_owned());
    is_send(&email.send(&to, "subject", "text", Some("<p>html</p>")));
    is_send(&sms.send(&to, "body"));
}

#[test]
fn error_sentences_are_for_people() {
    let err = rounds_notify::validate_phone("555-0100").unwrap_err();
    assert_eq!(
        err.to_string(),
        "The phone number must be in international format, like +15551234567."
    );
    let err = rounds_notify::validate_email("ada at example.com").unwrap_err();
    assert!(matches!(err, NotifyError::InvalidRecipient(_)));
    assert!(!format!("{err} {err:?}").contains("ada"));

    let rejected = NotifyError::Rejected {
        status: 400,
        code: Some(21211),
        message: "Invalid 'To' Phone Number".into(),
    };
    assert_eq!(
        rejected.to_string(),
        "the provider refused the message (status 400): Invalid 'To' Phone Number"
    );
}
