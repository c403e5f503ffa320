//! kill -9 mid-flow loses nothing that was acknowledged, and the audit chain stays intact.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_flow_loses_nothing_acknowledged() {
    let mut server = Server::start().await;
    let session = server.login().await;
    let access = session["access_token"].as_str().unwrap().to_owned();
    let refresh = session["refresh_token"].as_str().unwrap().to_owned();
    let (visit, code) = server.create_visit(&access, 5, "Kim Park").await;
    let visit_id = visit["id"].as_str().unwrap().to_owned();
    let (_, lobby) = server.join(&code, None).await;
    let patient_token = lobby["token"].as_str().unwrap().to_owned();
    let patient_id = lobby["participant_id"].as_str().unwrap().to_owned();

    let base = server.url.clone();
    let http = reqwest::Client::new();
    // A few writes acknowledged for certain, so the check below can never be vacuous...
    let mut certain = Vec::new();
    for minutes in [31, 32, 33] {
        let (v, _) = server.create_visit(&access, minutes, "Acknowledged").await;
        certain.push(v["id"].as_str().unwrap().to_owned());
    }
    // ...then many more in flight when the process dies.
    let acknowledged = Arc::new(std::sync::Mutex::new(certain));
    let mut tasks = vec![];
    for i in 0..40 {
        let (http, base, access, acknowledged) = (
            http.clone(),
            base.clone(),
            access.clone(),
            acknowledged.clone(),
        );
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(i * 5)).await;
            let at = chrono::Utc::now() + chrono::Duration::minutes(30);
            let res = http
                .post(format!("{base}/api/v1/visits"))
                .bearer_auth(&access)
                .json(&json!({ "scheduled_at": at }))
                .send()
                .await;
            if let Ok(res) = res
                && res.status() == StatusCode::CREATED
                && let Ok(body) = res.json::<serde_json::Value>().await
            {
                acknowledged
                    .lock()
                    .unwrap()
                    .push(body["visit"]["id"].as_str().unwrap().to_owned());
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    server.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    // The audit chain is intact even with the process killed mid-write.
    let (ok, report) = server.audit_verify();
    assert!(ok, "after kill -9: {report}");

    server.spawn().await;

    // Everything acknowledged is there.
    for id in &acknowledged {
        let (status, _) = server
            .get(&format!("/api/v1/visits/{id}"), Some(&access))
            .await;
        assert_eq!(status, StatusCode::OK, "acknowledged visit {id} was lost");
    }
    // The earlier flow survives: same keys (tokens still verify), same participant, same session.
    let (status, me) = server
        .get(
            &format!("/api/v1/rooms/{visit_id}/me"),
            Some(&patient_token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], patient_id.as_str());
    let (status, v) = server
        .get(&format!("/api/v1/visits/{visit_id}"), Some(&access))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["state"], "waiting");
    let (status, _) = server
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": refresh }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // The flow continues where it stopped.
    let (status, _) = server
        .post(
            &format!("/api/v1/visits/{visit_id}/admit/{patient_id}"),
            Some(&access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (ok, report) = server.audit_verify();
    assert!(ok, "{report}");
}
