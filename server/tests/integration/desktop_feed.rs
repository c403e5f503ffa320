//! What the desktop app relies on: the clinician's live queue feed (Server-Sent Events) and
//! one-time sign-in tickets for `rounds://signin` links.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::Server;

/// An open `GET /api/v1/events` stream, read event by event.
struct Feed {
    res: reqwest::Response,
    buf: String,
}

impl Feed {
    async fn open(server: &Server, token: &str) -> Feed {
        let res = server
            .http()
            .get(format!("{}/api/v1/events", server.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        Feed {
            res,
            buf: String::new(),
        }
    }

    /// The next event (name, data), skipping keep-alive comments; None after `wait`.
    async fn next(&mut self, wait: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if name.is_empty() {
                    continue;
                }
                return Some((name, serde_json::from_str(&data).unwrap()));
            }
            let chunk = tokio::time::timeout_at(deadline, self.res.chunk())
                .await
                .ok()?
                .unwrap()?;
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    async fn expect(&mut self, name: &str) -> Value {
        loop {
            let (n, data) = self
                .next(Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("no {name} event within 10 s"));
            assert_eq!(data["type"], n, "event name and type agree");
            if n == name {
                return data;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_queue_feed_tells_the_clinician_who_is_waiting_and_nobody_else() {
    let server = Server::start().await;
    let access = server.access_token().await;
    let (visit, code) = server.create_visit(&access, 10, "Ada Patient").await;
    let visit_id = visit["id"].as_str().unwrap().to_owned();

    let mut mine = Feed::open(&server, &access).await;
    let hello = mine.expect("hello").await;
    assert!(hello["clinician_id"].is_string());

    // A clinician of another clinic has a feed too; it must stay silent about this visit.
    server.add_other_clinic_clinician("other@clinic.example");
    let (status, other) = server
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": "other@clinic.example", "password": crate::common::PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{other}");
    let mut theirs = Feed::open(&server, other["access_token"].as_str().unwrap()).await;
    theirs.expect("hello").await;

    // The patient opens the link and checks in.
    let (status, content) = server
        .get(&format!("/api/v1/join/{code}/content"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{content}");
    let (status, token) = server.join(&code, Some("Ada Patient")).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let patient = token["token"].as_str().unwrap().to_owned();
    let answers: Vec<Value> = content["intake"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["required"] == true)
        .map(|q| {
            let answer = match q["kind"].as_str() {
                Some("yes_no") => "yes",
                _ => q["choices"][0].as_str().unwrap_or("A cough"),
            };
            json!({ "question_id": q["id"], "answer": answer })
        })
        .collect();
    let (status, body) = server
        .post(
            &format!("/api/v1/rooms/{visit_id}/check-in"),
            Some(&patient),
            json!({
                "answers": answers, "lang": "en", "consent_accepted": true,
                "consent_version": content["consent"]["version"],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let event = mine.expect("patient_checked_in").await;
    assert_eq!(event["visit_id"], visit_id.as_str());
    // Ids only: no name reaches the feed.
    assert!(!event.to_string().contains("Ada"), "{event}");

    // Running late changes the queue.
    let (status, body) = server
        .post(
            &format!("/api/v1/visits/{visit_id}/running-late"),
            Some(&access),
            json!({ "minutes": 10 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let event = mine.expect("queue_changed").await;
    assert_eq!(event["visit_id"], visit_id.as_str());

    // The other clinic's clinician heard none of it.
    assert_eq!(theirs.next(Duration::from_millis(500)).await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_feed_needs_a_session() {
    let server = Server::start().await;
    let (status, problem) = server.get("/api/v1/events", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    let (status, problem) = server.get("/api/v1/events", Some("not-a-token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_ticket_works_once() {
    let server = Server::start().await;
    let (status, problem) = server.post("/api/v1/auth/tickets", None, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");

    let access = server.access_token().await;
    let (status, ticket) = server
        .post("/api/v1/auth/tickets", Some(&access), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    assert_eq!(ticket["expires_in"], 120);
    let ticket = ticket["ticket"].as_str().unwrap().to_owned();

    let (status, session) = server
        .post("/api/v1/auth/ticket", None, json!({ "ticket": ticket }))
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["clinician"]["email"], crate::common::EMAIL);
    // The new session works.
    let (status, _) = server
        .get("/api/v1/visits", session["access_token"].as_str())
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, problem) = server
        .post("/api/v1/auth/ticket", None, json!({ "ticket": ticket }))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("Sign in again")
    );
}
