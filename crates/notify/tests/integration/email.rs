//! `EmailSender` against a real SMTP server (the aiosmtpd sink) and against broken ones.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use mail_parser::{MessageParser, MimeHeaders};
use rounds_notify::{EmailSender, NotifyError, Phi, messages};

use crate::support::{SmtpSink, assert_not_leaked, closed_port, local_email_config};

const CLINIC: &str = "St. Mary's Clinic";
// Longer than an SMTP line, so the body is quoted-printable and must be decoded to match.
const LINK: &str =
    "https://rounds.clinic.example/j/Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFy";

fn recipient(address: &str) -> Phi<String> {
    Phi::new(address.to_owned())
}

#[tokio::test]
async fn invitation_arrives_as_text_and_html() {
    let sink = SmtpSink::start().await;
    let sender = EmailSender::new(&sink.config()).unwrap();
    let out = messages::invitation(CLINIC, LINK, "Mon 24 Nov, 14:30", false);

    let receipt = sender
        .send(
            &recipient("ada@example.com"),
            &out.email_subject,
            &out.email_text,
            Some(&out.email_html),
        )
        .await
        .unwrap();
    let queue_id = receipt.provider_id.expect("the sink names a queue id");
    assert_eq!(queue_id.len(), 12, "{queue_id}");

    let received = sink.messages();
    assert_eq!(received.len(), 1);
    let record = &received[0];
    assert_eq!(record["mail_from"], "visits@clinic.example");
    assert_eq!(record["rcpt_tos"], serde_json::json!(["ada@example.com"]));

    let raw = record["data"].as_str().unwrap();
    let parsed = MessageParser::default().parse(raw.as_bytes()).unwrap();
    assert_eq!(parsed.subject(), Some(out.email_subject.as_str()));
    assert!(out.email_subject.contains(CLINIC));
    let to = parsed.to().unwrap().first().unwrap();
    assert_eq!(to.address(), Some("ada@example.com"));
    let from = parsed.from().unwrap().first().unwrap();
    assert_eq!(
        (from.name(), from.address()),
        (Some("Rounds"), Some("visits@clinic.example"))
    );
    let message_id = parsed.message_id().expect("a Message-ID");
    assert!(message_id.ends_with("@clinic.example"), "{message_id}");
    assert!(parsed.date().is_some());

    let content_type = parsed.content_type().unwrap();
    assert_eq!(content_type.ctype(), "multipart");
    assert_eq!(content_type.subtype(), Some("alternative"));
    assert_eq!((parsed.text_body.len(), parsed.html_body.len()), (1, 1));

    let text = parsed.body_text(0).unwrap();
    assert!(text.contains(LINK), "{text}");
    assert!(text.contains(CLINIC));
    assert!(text.contains("Mon 24 Nov, 14:30"));
    let html = parsed.body_html(0).unwrap();
    assert!(html.contains(&format!("href=\"{LINK}\"")), "{html}");
    assert!(html.contains("St. Mary&#39;s Clinic"));
}

#[tokio::test]
async fn without_html_the_message_is_plain_text() {
    let sink = SmtpSink::start().await;
    let sender = EmailSender::new(&sink.config()).unwrap();
    let out = messages::reminder(CLINIC, LINK, "Mon 24 Nov, 14:30");

    sender
        .send(
            &recipient("bob@example.com"),
            &out.email_subject,
            &out.email_text,
            None,
        )
        .await
        .unwrap();

    let received = sink.messages();
    let raw = received[0]["data"].as_str().unwrap();
    let parsed = MessageParser::default().parse(raw.as_bytes()).unwrap();
    let content_type = parsed.content_type().unwrap();
    assert_eq!(
        (content_type.ctype(), content_type.subtype()),
        ("text", Some("plain"))
    );
    assert!(parsed.body_text(0).unwrap().contains(LINK));
    assert!(!raw.contains("text/html"));
}

#[tokio::test]
async fn invalid_address_is_refused_before_connecting() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let sender = EmailSender::new(&local_email_config(port, 5)).unwrap();

    for bad in [
        "not-an-address",
        "Ada <ada@example.com>",
        "ada@example.com\r\nBcc: eve@example.com",
        "",
    ] {
        let err = sender
            .send(&recipient(bad), "Subject", "Body", None)
            .await
            .unwrap_err();
        assert!(matches!(err, NotifyError::InvalidRecipient(_)), "{err:?}");
        if !bad.is_empty() {
            assert_not_leaked(&err, bad);
        }
    }
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the sender connected: {accepted:?}"
    );
}

#[tokio::test]
async fn server_down_is_unavailable() {
    let sender = EmailSender::new(&local_email_config(closed_port(), 5)).unwrap();
    let err = sender
        .send(&recipient("ada@example.com"), "Subject", "Body", None)
        .await
        .unwrap_err();
    assert!(matches!(err, NotifyError::Unavailable(_)), "{err:?}");
    assert!(err.is_transient());
    assert_not_leaked(&err, "ada@example.com");
}

#[tokio::test]
async fn silent_server_times_out() {
    // Connections complete in the kernel's backlog, but nobody ever says hello.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sender = EmailSender::new(&local_email_config(port, 1)).unwrap();

    let started = Instant::now();
    let err = sender
        .send(&recipient("ada@example.com"), "Subject", "Body", None)
        .await
        .unwrap_err();
    assert!(matches!(err, NotifyError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(listener);
}

#[tokio::test]
async fn refused_recipient_is_rejected_without_echoing_it() {
    let sink = SmtpSink::start().await;
    let sender = EmailSender::new(&sink.config()).unwrap();

    let err = sender
        .send(&recipient("reject.me@example.com"), "Subject", "Body", None)
        .await
        .unwrap_err();
    match &err {
        NotifyError::Rejected {
            status,
            code,
            message,
        } => {
            assert_eq!(*status, 550);
            assert_eq!(*code, None);
            assert!(message.contains("Recipient address rejected"), "{message}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert_not_leaked(&err, "reject.me@example.com");
    assert!(sink.messages().is_empty());
}
