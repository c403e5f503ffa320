//! Bad input gets a clear 4xx problem, never a 500.

use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;

async fn raw(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value, reqwest::header::HeaderMap) {
    let mut req = server
        .http()
        .request(method.parse().unwrap(), format!("{}{}", server.url, path))
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, value, headers)
}

fn assert_problem(
    status: StatusCode,
    body: &serde_json::Value,
    headers: &reqwest::header::HeaderMap,
    expected: StatusCode,
) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(body["detail"].as_str().unwrap().len() > 10, "{body}");
    assert!(
        body["request_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{body}"
    );
    assert_eq!(
        headers["x-request-id"].to_str().unwrap(),
        body["request_id"].as_str().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_oversized_and_unknown_input_is_refused_clearly() {
    let server = Server::start().await;
    let access = server.access_token().await;
    let json_ct = Some("application/json");

    let (s, b, h) = raw(
        &server,
        "POST",
        "/api/v1/visits",
        Some(&access),
        json_ct,
        b"{\"scheduled_at\": ".to_vec(),
    )
    .await;
    assert_problem(s, &b, &h, StatusCode::BAD_REQUEST);
    assert_eq!(b["type"], "https://rounds.health/problems/malformed-json");

    let (s, b, h) = raw(
        &server,
        "POST",
        "/api/v1/visits",
        Some(&access),
        json_ct,
        br#"{"scheduled_at":"2030-01-01T10:00:00Z","colour":"blue"}"#.to_vec(),
    )
    .await;
    assert_problem(s, &b, &h, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(b["detail"].as_str().unwrap().contains("colour"), "{b}");

    let (s, b, h) = raw(
        &server,
        "POST",
        "/api/v1/visits",
        Some(&access),
        json_ct,
        br#"{"scheduled_at": 5}"#.to_vec(),
    )
    .await;
    assert_problem(s, &b, &h, StatusCode::UNPROCESSABLE_ENTITY);

    let big = format!(
        r#"{{"scheduled_at":"2030-01-01T10:00:00Z","patient_name":"{}"}}"#,
        "x".repeat(200_000)
    );
    let (s, b, h) = raw(
        &server,
        "POST",
        "/api/v1/visits",
        Some(&access),
        json_ct,
        big.into_bytes(),
    )
    .await;
    assert_problem(s, &b, &h, StatusCode::PAYLOAD_TOO_LARGE);

    let (s, b, h) = raw(
        &server,
        "POST",
        "/api/v1/auth/login",
        None,
        Some("text/plain"),
        b"hello".to_vec(),
    )
    .await;
    assert_problem(s, &b, &h, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let (s, b, h) = raw(&server, "GET", "/api/v1/nothing-here", None, None, vec![]).await;
    assert_problem(s, &b, &h, StatusCode::NOT_FOUND);

    let (s, b, h) = raw(&server, "DELETE", "/api/v1/auth/login", None, None, vec![]).await;
    assert_problem(s, &b, &h, StatusCode::METHOD_NOT_ALLOWED);

    let (s, b, h) = raw(
        &server,
        "POST",
        "/api/v1/join/!!!",
        None,
        json_ct,
        b"{}".to_vec(),
    )
    .await;
    assert!(s.is_client_error(), "{s} {b}");
    assert_eq!(h["content-type"], "application/problem+json");

    // Out-of-range values get sentences too.
    let (status, p) = server
        .post(
            "/api/v1/visits",
            Some(&access),
            json!({ "scheduled_at": "2020-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p["detail"].as_str().unwrap().contains("scheduled"));
    let at = chrono::Utc::now() + chrono::Duration::hours(1);
    let (status, _) = server
        .post(
            "/api/v1/visits",
            Some(&access),
            json!({ "scheduled_at": at, "duration_minutes": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = server
        .call("GET", "/api/v1/visits", Some("not-a-token"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Security headers on every response.
    let (_, _, h) = raw(&server, "GET", "/healthz", None, None, vec![]).await;
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(h.contains_key("x-request-id"));
}

#[tokio::test(flavor = "multi_thread")]
async fn random_bodies_never_cause_a_server_error() {
    let server = Server::start().await;
    let access = server.access_token().await;
    let (visit, code) = server.create_visit(&access, 5, "Fuzz").await;
    let id = visit["id"].as_str().unwrap();
    let targets = [
        "/api/v1/auth/login".to_owned(),
        "/api/v1/auth/refresh".to_owned(),
        "/api/v1/visits".to_owned(),
        format!("/api/v1/visits/{id}/invitations"),
        format!("/api/v1/visits/{id}/running-late"),
        format!("/api/v1/join/{code}"),
        format!("/api/v1/rooms/{id}/chat"),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let shapes = [
        r#"{}"#,
        r#"[]"#,
        r#"null"#,
        r#"{"email":1}"#,
        r#"{"scheduled_at":"9999-99-99"}"#,
        r#"{"channel":"fax"}"#,
        r#"{"minutes":-1}"#,
        r#"{"minutes":99999999999}"#,
        r#"{"text":""}"#,
        r#"{"display_name":""}"#,
        "\u{0}\u{1}",
        r#"{"refresh_token":"rrt_x"}"#,
        r#"{"channel":"sms","invitee":"patient","to":"12"}"#,
    ];
    for round in 0..120 {
        let target = &targets[round % targets.len()];
        let body: Vec<u8> = if round % 3 == 0 {
            (0..rng.gen_range(0..300))
                .map(|_| rng.r#gen::<u8>())
                .collect()
        } else {
            shapes[rng.gen_range(0..shapes.len())].as_bytes().to_vec()
        };
        let (status, b, h) = raw(
            &server,
            "POST",
            target,
            Some(&access),
            Some("application/json"),
            body,
        )
        .await;
        assert!(!status.is_server_error(), "{target} -> {status}: {b}");
        if status.is_client_error() {
            assert_eq!(
                h["content-type"], "application/problem+json",
                "{target}: {b}"
            );
        }
    }
    let (ok, report) = server.audit_verify();
    assert!(ok, "{report}");
}
