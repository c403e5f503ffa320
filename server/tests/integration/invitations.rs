//! Invitations by SMS (Twilio wire format) and email (real SMTP), and reminders that survive
//! a restart.

use reqwest::StatusCode;
use rounds_notify::testing::FakeTwilio;
use serde_json::json;

use crate::common::*;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH: &str = "twilio-auth-token-for-tests";

fn notify_config(twilio: &FakeTwilio, smtp: &SmtpSink, reminder_minutes: u32) -> String {
    format!(
        "[visits]\nreminder_minutes = {reminder_minutes}\nreminder_poll_secs = 1\n\n\
         [email]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\ntls = \"none\"\nfrom = \"St. Mary's Visits <visits@stmarys.example>\"\n\n\
         [sms]\nbase_url = \"{base}\"\naccount_sid = \"{SID}\"\nauth_token = \"{AUTH}\"\nfrom = \"+15550001111\"\n",
        port = smtp.port,
        base = twilio.base_url()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sms_and_email_invitations_carry_the_link_and_nothing_clinical() {
    let tmp = tempfile::tempdir().unwrap();
    let twilio = FakeTwilio::start(SID, AUTH).await;
    let smtp = SmtpSink::start(tmp.path());
    let server = Server::start_with(&notify_config(&twilio, &smtp, 15), "info").await;
    let access = server.access_token().await;
    let (visit, _) = server.create_visit(&access, 120, "Olivia Brown").await;
    let id = visit["id"].as_str().unwrap();

    // SMS to the patient.
    let (status, inv) = server
        .post(
            &format!("/api/v1/visits/{id}/invitations"),
            Some(&access),
            json!({ "channel": "sms", "invitee": "patient", "to": "+15557654321" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{inv}");
    assert_eq!(inv["status"], "sent");
    assert!(inv["reminder_at"].is_string(), "a reminder is scheduled");
    let sms = twilio.messages();
    assert_eq!(sms.len(), 1);
    assert_eq!(sms[0].to, "+15557654321");
    assert_eq!(sms[0].from, "+15550001111");
    let link = inv["link"].as_str().unwrap();
    assert!(sms[0].body.contains(link), "{}", sms[0].body);
    assert!(sms[0].body.contains("St. Mary's Clinic"));
    assert!(
        !sms[0].body.contains("Olivia"),
        "no patient name in messages"
    );

    // The SMS link checks in as the visit's patient.
    let code = link.rsplit('/').next().unwrap();
    let (status, token) = server.join(code, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(token["role"], "patient");

    // Email to an interpreter: a guest link of their own.
    let (status, inv) = server
        .post(&format!("/api/v1/visits/{id}/invitations"), Some(&access), json!({ "channel": "email", "invitee": "interpreter", "to": "interp@language.example", "remind": false }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{inv}");
    assert!(inv["reminder_at"].is_null());
    let mail = smtp.wait_for(1).await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0]["rcpt_tos"][0], "interp@language.example");
    let data = mail[0]["data"].as_str().unwrap();
    let guest_link = inv["link"].as_str().unwrap();
    assert!(
        data.contains(guest_link) || data.replace("=\r\n", "").contains(guest_link),
        "{data}"
    );
    assert!(!data.contains("Olivia"));
    let (status, guest) = server
        .join(guest_link.rsplit('/').next().unwrap(), Some("Nadia"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(guest["role"], "interpreter");
    assert_eq!(guest["state"], "lobby");

    // Copy: no message, just a link.
    let (status, inv) = server
        .post(
            &format!("/api/v1/visits/{id}/invitations"),
            Some(&access),
            json!({ "channel": "copy", "invitee": "guest" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(inv["status"], "created");

    // A bad number is refused before sending; a number the carrier rejects is a 502 with its reason.
    let (status, p) = server
        .post(
            &format!("/api/v1/visits/{id}/invitations"),
            Some(&access),
            json!({ "channel": "sms", "invitee": "patient", "to": "555-1234" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        p["detail"].as_str().unwrap().contains("international"),
        "{p}"
    );
    twilio.reject_number("+15550009999");
    let (status, p) = server
        .post(
            &format!("/api/v1/visits/{id}/invitations"),
            Some(&access),
            json!({ "channel": "sms", "invitee": "guest", "to": "+15550009999" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("copy the link"),
        "{p}"
    );

    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        server.data_dir().join("rounds.db").display()
    ))
    .await
    .unwrap();
    let sent: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'invitation.sent'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let failed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'invitation.failed'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((sent, failed), (3, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn reminders_survive_a_restart_and_lead_to_the_same_participant() {
    let tmp = tempfile::tempdir().unwrap();
    let twilio = FakeTwilio::start(SID, AUTH).await;
    let smtp = SmtpSink::start(tmp.path());
    // Reminders 10 minutes ahead; the visit is 10 minutes and a few seconds away.
    let mut server = Server::start_with(&notify_config(&twilio, &smtp, 10), "info").await;
    let access = server.access_token().await;
    let at = chrono::Utc::now() + chrono::Duration::minutes(10) + chrono::Duration::seconds(6);
    let (status, created) = server
        .post(
            "/api/v1/visits",
            Some(&access),
            json!({ "scheduled_at": at }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["visit"]["id"].as_str().unwrap().to_owned();
    let first_code = created["patient_link"]["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let (_, first) = server.join(&first_code, None).await;

    let (status, _) = server
        .post(
            &format!("/api/v1/visits/{id}/invitations"),
            Some(&access),
            json!({ "channel": "sms", "invitee": "patient", "to": "+15557654321" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = server
        .post(
            &format!("/api/v1/visits/{id}/invitations"),
            Some(&access),
            json!({ "channel": "email", "invitee": "patient", "to": "olivia@example.org" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(twilio.messages().len(), 1);

    // The server dies before the reminders are due, and comes back after.
    server.kill9();
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    server.spawn().await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while twilio.messages().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let sms = twilio.messages();
    assert_eq!(sms.len(), 2, "the SMS reminder was sent after the restart");
    assert!(
        sms[1].body.to_lowercase().contains("reminder"),
        "{}",
        sms[1].body
    );
    let mail = smtp.wait_for(2).await;
    assert_eq!(
        mail.len(),
        2,
        "the email reminder was sent after the restart"
    );

    // The reminder's link is a new code for the same patient.
    let reminder_link = sms[1]
        .body
        .split_whitespace()
        .find(|w| w.contains("/join/"))
        .unwrap()
        .trim_end_matches(['.', ',']);
    let code = reminder_link.rsplit('/').next().unwrap();
    assert_ne!(code, first_code);
    let (status, again) = server.join(code, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["participant_id"], first["participant_id"]);

    // Sent once only, even across polls.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(twilio.messages().len(), 2);
    let (ok, report) = server.audit_verify();
    assert!(ok, "{report}");
}
