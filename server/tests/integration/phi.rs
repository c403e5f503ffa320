//! Patient data never reaches the logs.

use reqwest::StatusCode;
use rounds_notify::testing::FakeTwilio;
use serde_json::json;

use crate::common::*;

const PATIENT_NAME: &str = "Zanele Mthembu-Vasquez";
const PATIENT_PHONE: &str = "+15559871234";
const PATIENT_EMAIL: &str = "zanele.mv@patientmail.example";
const GUEST_NAME: &str = "Thandiwe Mthembu";
const CHAT_TEXT: &str = "my chest pain started on tuesday";
const CHAT_REPLY: &str = "please have your inhaler nearby";

#[tokio::test(flavor = "multi_thread")]
async fn a_full_visit_leaves_no_phi_in_the_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let twilio = FakeTwilio::start("AC1", "secret").await;
    let smtp = SmtpSink::start(tmp.path());
    let config = format!(
        "[email]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls = \"none\"\nfrom = \"visits@stmarys.example\"\n\n\
         [sms]\nbase_url = \"{}\"\naccount_sid = \"AC1\"\nauth_token = \"secret\"\nfrom = \"+15550001111\"\n",
        smtp.port,
        twilio.base_url()
    );
    // Debug logging everywhere: the most a hospital would ever turn on.
    let mut server = Server::start_with(&config, "debug").await;
    let access = server.access_token().await;
    let (visit, code) = server.create_visit(&access, 30, PATIENT_NAME).await;
    let id = visit["id"].as_str().unwrap();

    let (s, _) = server
        .post(
            &format!("/api/v1/visits/{id}/invitations"),
            Some(&access),
            json!({ "channel": "sms", "invitee": "patient", "to": PATIENT_PHONE }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = server
        .post(
            &format!("/api/v1/visits/{id}/invitations"),
            Some(&access),
            json!({ "channel": "email", "invitee": "patient", "to": PATIENT_EMAIL }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // A failing delivery logs its error: still no number in it.
    twilio.reject_number("+15550004444");
    let (s, _) = server
        .post(
            &format!("/api/v1/visits/{id}/invitations"),
            Some(&access),
            json!({ "channel": "sms", "invitee": "guest", "to": "+15550004444" }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
    // Bad input echoing PHI back to the client must not echo it into the logs.
    let (s, _) = server
        .post(
            &format!("/api/v1/visits/{id}/invitations"),
            Some(&access),
            json!({ "channel": "sms", "invitee": "patient", "to": PATIENT_EMAIL }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, lobby) = server.join(&code, Some(PATIENT_NAME)).await;
    let patient = lobby["token"].as_str().unwrap().to_owned();
    let pid = lobby["participant_id"].as_str().unwrap().to_owned();
    let (s, _) = server
        .post(
            &format!("/api/v1/rooms/{id}/chat"),
            Some(&patient),
            json!({ "text": CHAT_TEXT }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, provider) = server
        .post(
            &format!("/api/v1/visits/{id}/token"),
            Some(&access),
            json!({}),
        )
        .await;
    let provider = provider["token"].as_str().unwrap().to_owned();
    let (s, _) = server
        .post(
            &format!("/api/v1/rooms/{id}/chat"),
            Some(&provider),
            json!({ "text": CHAT_REPLY, "to": pid }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = server
        .post(
            &format!("/api/v1/visits/{id}/admit/{pid}"),
            Some(&access),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = server
        .post(
            &format!("/api/v1/rooms/{id}/guest-tokens"),
            Some(&provider),
            json!({ "display_name": GUEST_NAME, "role": "guest" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, queue) = server.get(&Server::queue_path(&visit), Some(&access)).await;
    assert!(
        queue.to_string().contains(PATIENT_NAME),
        "the clinician does see the name"
    );
    let (s, _) = server
        .get(&format!("/api/v1/rooms/{id}/chat"), Some(&patient))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = server
        .post(
            &format!("/api/v1/visits/{id}/end"),
            Some(&access),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(smtp.wait_for(1).await.len() == 1);
    server.stop();

    let logs = server.logs();
    assert!(
        logs.lines().count() > 20,
        "the server did log the visit:\n{logs}"
    );
    for (what, secret) in [
        ("patient name", PATIENT_NAME),
        ("patient surname", "Mthembu"),
        ("phone", PATIENT_PHONE),
        ("phone digits", "5559871234"),
        ("rejected phone", "5550004444"),
        ("email", PATIENT_EMAIL),
        ("email local part", "zanele.mv"),
        ("guest name", GUEST_NAME),
        ("chat text", CHAT_TEXT),
        ("chat reply", CHAT_REPLY),
        ("join code", code.as_str()),
    ] {
        assert!(
            !logs.contains(secret),
            "the {what} appeared in the logs:\n{}",
            logs.lines()
                .filter(|l| l.contains(secret))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // The audit log holds no PHI either.
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        server.data_dir().join("rounds.db").display()
    ))
    .await
    .unwrap();
    let rows: Vec<(String, Option<String>, String)> =
        sqlx::query_as("SELECT actor, subject, detail FROM audit_log")
            .fetch_all(&pool)
            .await
            .unwrap();
    for (actor, subject, detail) in rows {
        let row = format!("{actor} {subject:?} {detail}");
        for secret in [
            PATIENT_NAME,
            PATIENT_PHONE,
            PATIENT_EMAIL,
            GUEST_NAME,
            CHAT_TEXT,
        ] {
            assert!(!row.contains(secret), "audit row holds PHI: {row}");
        }
    }
}
