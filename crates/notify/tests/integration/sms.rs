//! `TwilioSms` against `FakeTwilio`, and the fake's own wire format.

use std::sync::Arc;

use rounds_notify::testing::FakeTwilio;
use rounds_notify::{NotifyError, Phi, SmsConfig, SmsProvider, TwilioSms, messages};

use crate::support::{assert_not_leaked, closed_port};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "the-auth-token";
const SENDER: &str = "+15550001111";
const PATIENT: &str = "+15551234567";

fn phone(number: &str) -> Phi<String> {
    Phi::new(number.to_owned())
}

#[tokio::test]
async fn message_arrives_exactly_as_sent() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let provider: Arc<dyn SmsProvider> =
        Arc::new(TwilioSms::new(&fake.sms_config(SENDER)).unwrap());
    let out = messages::invitation(
        "Oak & Elm Clinic",
        "https://rounds.example/j/a+b=c?d&e",
        "Mon 24 Nov, 14:30",
        false,
    );

    let receipt = provider.send(&phone(PATIENT), &out.sms).await.unwrap();

    let received = fake.messages();
    assert_eq!(received.len(), 1);
    let sms = &received[0];
    assert_eq!(
        (sms.to.as_str(), sms.from.as_str(), sms.body.as_str()),
        (PATIENT, SENDER, out.sms.as_str())
    );
    assert_eq!(receipt.provider_id.as_deref(), Some(sms.sid.as_str()));
    assert!(
        sms.sid.starts_with("SM") && sms.sid.len() == 34,
        "{}",
        sms.sid
    );
    assert!(sms.sid[2..].bytes().all(|b| b.is_ascii_hexdigit()));
}

#[tokio::test]
async fn non_ascii_body_is_preserved() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let sms = TwilioSms::new(&fake.sms_config(SENDER)).unwrap();
    let body = "Clínica São José: à 14h30 — ok?\nLigne 2 & 100% = ✓";
    sms.send(&phone(PATIENT), body).await.unwrap();
    assert_eq!(fake.messages()[0].body, body);
}

#[tokio::test]
async fn messaging_service_sid_is_sent_as_such() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let service = "MG0123456789abcdef0123456789abcdef";
    let sms = TwilioSms::new(&fake.sms_config(service)).unwrap();
    sms.send(&phone(PATIENT), "hello").await.unwrap();
    assert_eq!(fake.messages()[0].from, service);

    // The fake tells the two fields apart: it names the service in its answer.
    let response = reqwest::Client::new()
        .post(format!(
            "{}/2010-04-01/Accounts/{SID}/Messages.json",
            fake.base_url()
        ))
        .basic_auth(SID, Some(TOKEN))
        .form(&[
            ("To", PATIENT),
            ("MessagingServiceSid", service),
            ("Body", "hi"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let resource: serde_json::Value = response.json().await.unwrap();
    assert_eq!(resource["messaging_service_sid"], service);
    assert_eq!(resource["from"], serde_json::Value::Null);
}

#[tokio::test]
async fn wrong_token_is_rejected_with_401() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let cfg = SmsConfig {
        auth_token: "not-the-token".into(),
        ..fake.sms_config(SENDER)
    };
    let err = TwilioSms::new(&cfg)
        .unwrap()
        .send(&phone(PATIENT), "hello")
        .await
        .unwrap_err();
    match &err {
        NotifyError::Rejected {
            status,
            code,
            message,
        } => {
            assert_eq!((*status, *code), (401, Some(20003)));
            assert_eq!(message, "Authenticate");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(!format!("{err} {err:?}").contains("not-the-token"));
    assert_not_leaked(&err, PATIENT);
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn refused_number_carries_the_provider_code_and_message() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    fake.reject_number("+15559999999");
    let sms = TwilioSms::new(&fake.sms_config(SENDER)).unwrap();

    let err = sms.send(&phone("+15559999999"), "hello").await.unwrap_err();
    match &err {
        NotifyError::Rejected {
            status,
            code,
            message,
        } => {
            assert_eq!((*status, *code), (400, Some(21211)));
            assert_eq!(message, "Invalid 'To' Phone Number");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert_not_leaked(&err, "+15559999999");

    // Other numbers still go through.
    sms.send(&phone(PATIENT), "hello").await.unwrap();
    assert_eq!(fake.messages().len(), 1);
}

#[tokio::test]
async fn provider_outage_is_unavailable() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    fake.set_unavailable(true);
    let sms = TwilioSms::new(&fake.sms_config(SENDER)).unwrap();
    let err = sms.send(&phone(PATIENT), "hello").await.unwrap_err();
    assert!(matches!(err, NotifyError::Unavailable(_)), "{err:?}");
    assert!(err.is_transient());

    fake.set_unavailable(false);
    sms.send(&phone(PATIENT), "hello").await.unwrap();
}

#[tokio::test]
async fn unreachable_provider_is_unavailable() {
    let cfg = SmsConfig {
        base_url: format!("http://127.0.0.1:{}", closed_port()),
        account_sid: SID.into(),
        auth_token: TOKEN.into(),
        from: SENDER.into(),
        timeout_secs: 5,
    };
    let err = TwilioSms::new(&cfg)
        .unwrap()
        .send(&phone(PATIENT), "hello")
        .await
        .unwrap_err();
    assert!(matches!(err, NotifyError::Unavailable(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(TOKEN));
    assert_not_leaked(&err, PATIENT);
}

#[tokio::test]
async fn invalid_number_is_refused_before_sending() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let sms = TwilioSms::new(&fake.sms_config(SENDER)).unwrap();
    for bad in ["4155550100", "+1 415 555 0100", "+1415", "call me", ""] {
        let err = sms.send(&phone(bad), "hello").await.unwrap_err();
        match &err {
            NotifyError::InvalidRecipient(sentence) => {
                assert_eq!(
                    sentence,
                    "The phone number must be in international format, like +15551234567."
                );
            }
            other => panic!("expected InvalidRecipient, got {other:?}"),
        }
        if !bad.is_empty() {
            assert_not_leaked(&err, bad);
        }
    }
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn fake_speaks_twilio_errors() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let client = reqwest::Client::new();
    let url = format!(
        "{}/2010-04-01/Accounts/{SID}/Messages.json",
        fake.base_url()
    );

    let post = |form: Vec<(&'static str, &'static str)>, auth: bool| {
        let mut request = client.post(&url).form(&form);
        if auth {
            request = request.basic_auth(SID, Some(TOKEN));
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };

    let (status, body) = post(
        vec![("To", PATIENT), ("From", SENDER), ("Body", "hi")],
        false,
    )
    .await;
    assert_eq!(
        (status, &body["code"], &body["status"]),
        (401, &20003.into(), &401.into())
    );
    assert!(
        body["more_info"]
            .as_str()
            .unwrap()
            .starts_with("https://www.twilio.com/docs/errors/")
    );

    let (status, body) = post(vec![("From", SENDER), ("Body", "hi")], true).await;
    assert_eq!((status, &body["code"]), (400, &21604.into()));
    let (status, body) = post(vec![("To", PATIENT), ("Body", "hi")], true).await;
    assert_eq!((status, &body["code"]), (400, &21603.into()));
    let (status, body) = post(vec![("To", PATIENT), ("From", SENDER)], true).await;
    assert_eq!((status, &body["code"]), (400, &21602.into()));
    assert!(body["message"].is_string());

    let (status, body) = post(
        vec![("To", PATIENT), ("From", SENDER), ("Body", "hi")],
        true,
    )
    .await;
    assert_eq!(
        (status, &body["status"], &body["to"], &body["body"]),
        (201, &"queued".into(), &PATIENT.into(), &"hi".into())
    );
    assert_eq!(fake.messages().len(), 1);
}
