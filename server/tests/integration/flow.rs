//! The whole visit flow, and what each token allows.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn full_visit_flow_issues_the_right_grants_at_each_step() {
    let server = Server::start().await;
    let session = server.login().await;
    let access = session["access_token"].as_str().unwrap();
    assert_eq!(session["clinician"]["clinic_name"], "St. Mary's Clinic");
    assert_eq!(claims(access)["aud"], "rounds:api");
    assert_eq!(header(access)["alg"], "EdDSA");

    // Create a visit: it comes back with its patient link.
    let (visit, code) = server.create_visit(access, 5, "Maria Gonzalez").await;
    let visit_id = visit["id"].as_str().unwrap();
    assert_eq!(visit["state"], "scheduled");
    assert_eq!(code.len(), 26, "128-bit code");

    // The link shows the clinic and time, nothing clinical.
    let (status, info) = server.get(&format!("/api/v1/join/{code}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["clinic_name"], "St. Mary's Clinic");
    assert_eq!(info["role"], "patient");
    assert!(!info.to_string().contains("Maria"));

    // The link opens the patient app under the strict CSP. The app asks the API for the rest.
    let page = server
        .http()
        .get(format!("{}/join/{code}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.text().await.unwrap().contains(FIXTURE_SCRIPT),
        "the patient app was served"
    );

    // Check in: a lobby token for this room only.
    let (status, lobby) = server.join(&code, None).await;
    assert_eq!(status, StatusCode::OK, "{lobby}");
    assert_eq!(lobby["state"], "lobby");
    assert_eq!(lobby["role"], "patient");
    let patient_token = lobby["token"].as_str().unwrap();
    let pc = claims(patient_token);
    assert_eq!(pc["room"], visit_id);
    assert_eq!(pc["aud"], "rounds:room");
    assert_eq!(pc["role"], "patient");
    assert_eq!(grants(patient_token), ["chat", "publish", "subscribe"]);
    assert!(pc["exp"].as_i64().unwrap() - pc["iat"].as_i64().unwrap() <= 4 * 3600);
    let kid = header(patient_token)["kid"].as_str().unwrap().to_owned();
    let (_, jwks) = server.get("/.well-known/jwks.json", None).await;
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid.as_str() && k["crv"] == "Ed25519")
    );
    let patient_id = lobby["participant_id"].as_str().unwrap().to_owned();

    // The queue shows the patient waiting.
    let (status, queue) = server.get(&Server::queue_path(&visit), Some(access)).await;
    assert_eq!(status, StatusCode::OK);
    let row = queue["visits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == visit_id)
        .unwrap()
        .clone();
    assert_eq!(row["state"], "waiting");
    assert!(row["waiting_since"].is_string());
    assert_eq!(queue["time_zone"], "America/Chicago");

    // In the lobby the patient sees nobody and cannot act on the room.
    let (status, _) = server
        .get(
            &format!("/api/v1/rooms/{visit_id}/participants"),
            Some(patient_token),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, me) = server
        .get(&format!("/api/v1/rooms/{visit_id}/me"), Some(patient_token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["state"], "lobby");

    // The clinician's own room token carries the host grants.
    let (status, provider) = server
        .post(
            &format!("/api/v1/visits/{visit_id}/token"),
            Some(access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{provider}");
    let provider_token = provider["token"].as_str().unwrap();
    assert_eq!(provider["state"], "admitted");
    assert_eq!(
        grants(provider_token),
        [
            "admit",
            "chat",
            "invite",
            "moderate",
            "publish",
            "record",
            "subscribe"
        ]
    );

    // The provider sees the waiting patient.
    let (_, people) = server
        .get(
            &format!("/api/v1/rooms/{visit_id}/participants"),
            Some(provider_token),
        )
        .await;
    assert!(
        people
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == patient_id.as_str() && p["state"] == "lobby")
    );

    // Admit.
    let (status, admitted) = server
        .post(
            &format!("/api/v1/visits/{visit_id}/admit/{patient_id}"),
            Some(access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{admitted}");
    assert_eq!(admitted["state"], "admitted");
    let (_, me) = server
        .get(&format!("/api/v1/rooms/{visit_id}/me"), Some(patient_token))
        .await;
    assert_eq!(me["state"], "admitted");
    let (_, visit_now) = server
        .get(&format!("/api/v1/visits/{visit_id}"), Some(access))
        .await;
    assert_eq!(visit_now["state"], "in_progress");

    // Now the patient sees who is in the room.
    let (status, people) = server
        .get(
            &format!("/api/v1/rooms/{visit_id}/participants"),
            Some(patient_token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(people.as_array().unwrap().len(), 2);

    // Rejoining from the same link is the same participant, still admitted.
    let (_, again) = server.join(&code, None).await;
    assert_eq!(again["participant_id"], patient_id.as_str());
    assert_eq!(again["state"], "admitted");

    // The provider mints a guest token: a guest of this room, waiting in the lobby.
    let (status, guest) = server
        .post(
            &format!("/api/v1/rooms/{visit_id}/guest-tokens"),
            Some(provider_token),
            json!({ "display_name": "Luis (son)", "role": "guest" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{guest}");
    let guest_token = guest["token"].as_str().unwrap();
    assert_eq!(guest["state"], "lobby");
    assert_eq!(claims(guest_token)["room"], visit_id);
    assert_eq!(grants(guest_token), ["chat", "publish", "subscribe"]);

    // Chat: the lobby guest writes to the clinic only; the admitted patient does not see it.
    let (status, _) = server
        .post(
            &format!("/api/v1/rooms/{visit_id}/chat"),
            Some(guest_token),
            json!({ "text": "I am in the car park" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = server
        .post(
            &format!("/api/v1/rooms/{visit_id}/chat"),
            Some(patient_token),
            json!({ "text": "Hello doctor" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, patient_chat) = server
        .get(
            &format!("/api/v1/rooms/{visit_id}/chat"),
            Some(patient_token),
        )
        .await;
    let texts: Vec<&str> = patient_chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["Hello doctor"]);
    let (_, staff_chat) = server
        .get(
            &format!("/api/v1/rooms/{visit_id}/chat"),
            Some(provider_token),
        )
        .await;
    assert_eq!(staff_chat["messages"].as_array().unwrap().len(), 2);

    // Running late, then end.
    let (status, late) = server
        .post(
            &format!("/api/v1/visits/{visit_id}/running-late"),
            Some(access),
            json!({ "minutes": 10 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(late["running_late_minutes"], 10);
    let (status, ended) = server
        .post(
            &format!("/api/v1/visits/{visit_id}/end"),
            Some(access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ended["state"], "ended");
    // No more room tokens for an ended visit, though the visit was read many times before.
    let (status, problem) = server
        .post(
            &format!("/api/v1/visits/{visit_id}/token"),
            Some(access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    // After the end the link no longer opens the visit.
    let (status, problem) = server.join(&code, None).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(problem["detail"].as_str().unwrap().contains("ended"));

    // Every step was audited, and the chain holds.
    let (ok, report) = server.audit_verify();
    assert!(ok, "{report}");
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        server.data_dir().join("rounds.db").display()
    ))
    .await
    .unwrap();
    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_log ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    for expected in [
        "login.succeeded",
        "token.issued",
        "visit.created",
        "visit.checked_in",
        "participant.admitted",
        "visit.running_late",
        "visit.ended",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "no {expected} in {actions:?}"
        );
    }
    let tokens_issued = actions.iter().filter(|a| *a == "token.issued").count();
    assert!(tokens_issued >= 5, "{tokens_issued} tokens audited");
    // Opening the link is recorded as the knock and then the token it got, side by side.
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT actor, action, detail FROM audit_log ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    let knocks: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].1 == "visit.checked_in" && !rows[i].2.contains("\"form\""))
        .collect();
    assert!(!knocks.is_empty(), "no join was audited: {rows:?}");
    for i in knocks {
        let (actor, action, _) = &rows[i + 1];
        assert_eq!(
            (actor, action.as_str()),
            (&rows[i].0, "token.issued"),
            "the join at row {i} is not followed by its token"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn denying_a_waiting_patient_ends_their_token_and_link() {
    let server = Server::start().await;
    let access = server.access_token().await;
    let (visit, code) = server.create_visit(&access, 10, "Sam Doe").await;
    let visit_id = visit["id"].as_str().unwrap();
    let (_, lobby) = server.join(&code, None).await;
    let token = lobby["token"].as_str().unwrap();
    let pid = lobby["participant_id"].as_str().unwrap();
    // In the lobby, the token works for the participant's own place.
    let (status, me) = server
        .get(&format!("/api/v1/rooms/{visit_id}/me"), Some(token))
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["state"], "lobby");

    let (status, denied) = server
        .post(
            &format!("/api/v1/visits/{visit_id}/deny/{pid}"),
            Some(&access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(denied["state"], "denied");

    let (status, problem) = server
        .get(&format!("/api/v1/rooms/{visit_id}/me"), Some(token))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("call the clinic")
    );
    let (status, _) = server.join(&code, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Admitting after a denial does not bring them back.
    let (status, _) = server
        .post(
            &format!("/api/v1/visits/{visit_id}/admit/{pid}"),
            Some(&access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_lists_the_day_in_the_clinic_time_zone() {
    let server = Server::start().await;
    let access = server.access_token().await;
    let (visit, _) = server.create_visit(&access, 60, "Ana").await;
    let (_, queue) = server.get(&Server::queue_path(&visit), Some(&access)).await;
    assert!(
        queue["visits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == visit["id"])
    );
    let (_, other) = server
        .get("/api/v1/visits?day=2020-01-01", Some(&access))
        .await;
    assert!(other["visits"].as_array().unwrap().is_empty());
    let (status, _) = server
        .get("/api/v1/visits?day=tomorrow", Some(&access))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_documents_every_route_and_health_endpoints_answer() {
    let server = Server::start().await;
    let (status, doc) = server.get("/api/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/visits",
        "/api/v1/visits/{id}",
        "/api/v1/visits/{id}/token",
        "/api/v1/visits/{id}/admit/{participant}",
        "/api/v1/visits/{id}/deny/{participant}",
        "/api/v1/visits/{id}/remove/{participant}",
        "/api/v1/visits/{id}/end",
        "/api/v1/visits/{id}/running-late",
        "/api/v1/visits/{id}/patient-link",
        "/api/v1/visits/{id}/invitations",
        "/api/v1/join/{code}",
        "/api/v1/rooms/{room}/guest-tokens",
        "/api/v1/rooms/{room}/me",
        "/api/v1/rooms/{room}/leave",
        "/api/v1/rooms/{room}/participants",
        "/api/v1/rooms/{room}/device-check",
        "/api/v1/rooms/{room}/chat",
        "/healthz",
        "/readyz",
        "/metrics",
        "/.well-known/jwks.json",
        "/api/v1/connectivity",
        "/join/{code}",
        "/api/v1/openapi.json",
    ] {
        assert!(paths.contains_key(path), "{path} missing from OpenAPI");
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());

    let (status, health) = server.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");
    let (status, _) = server.get("/readyz", None).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = server
        .http()
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("rounds_http_requests_total"), "{metrics}");
}
