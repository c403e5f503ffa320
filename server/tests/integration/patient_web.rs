//! The patient pages' server side: serving the built app, the clinic's check-in content, the
//! check-in form (intake as PHI, consent), the estimated wait, the network test and the survey.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

const CONTENT: &str = r#"
[clinics."St. Mary's Clinic"]
phone = "+1 555 0100"
[clinics."St. Mary's Clinic".consent]
version = "smc-2"
title = { en = "Consent", es = "Consentimiento" }
paragraphs = { en = ["Video visits are private."], es = ["Las consultas por video son privadas."] }
checkbox = { en = "I agree", es = "Acepto" }
[[clinics."St. Mary's Clinic".intake]]
id = "reason"
kind = "long_text"
required = true
label = { en = "Why are you visiting?", es = "¿Por qué nos visita?" }
[[clinics."St. Mary's Clinic".intake]]
id = "kind"
kind = "choice"
label = { en = "Kind of visit", es = "Tipo de consulta" }
choices = { en = ["New problem", "Follow-up"], es = ["Problema nuevo", "Seguimiento"] }
[[clinics."St. Mary's Clinic".waiting]]
kind = "video"
title = { en = "Breathing exercise" }
video = "breathing.webm"
captions = "breathing.vtt"
"#;

/// A server with the clinic content above (the UI fixture comes with every test server).
/// The content folder lives as long as the returned guard.
async fn start() -> (Server, tempfile::TempDir) {
    let content = tempfile::tempdir().unwrap();
    std::fs::write(content.path().join("clinic.toml"), CONTENT).unwrap();
    std::fs::write(
        content.path().join("breathing.webm"),
        (0u8..=255).cycle().take(5000).collect::<Vec<u8>>(),
    )
    .unwrap();
    let keys = format!(
        "clinic_content = \"{}\"\n",
        content.path().join("clinic.toml").display()
    );
    (Server::start_full(&keys, "", "debug").await, content)
}

/// Signs in and creates a visit 20 minutes from now: (access token, visit id, link code).
async fn setup(server: &Server) -> (String, String, String) {
    let access = server.access_token().await;
    let (visit, code) = server.create_visit(&access, 20, "Maria Lopez").await;
    (access, visit["id"].as_str().unwrap().to_owned(), code)
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_the_built_app_its_assets_and_clinic_videos() {
    let (server, _content) = start().await;
    let page = reqwest::get(format!("{}/join/anything", server.url))
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.text()
            .await
            .unwrap()
            .contains(&format!("/{FIXTURE_SCRIPT}"))
    );

    let js = reqwest::get(format!("{}/{FIXTURE_SCRIPT}", server.url))
        .await
        .unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(
        js.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    for bad in [
        "/assets/nope.js",
        "/assets/..%2Fpatient.html",
        "/content/..%2Fclinic.toml",
        "/content/clinic.toml.bak",
    ] {
        let r = reqwest::get(format!("{}{bad}", server.url)).await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{bad}");
    }

    // Videos seek with byte ranges.
    let client = reqwest::Client::new();
    let part = client
        .get(format!("{}/content/breathing.webm", server.url))
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.headers()["content-range"], "bytes 100-199/5000");
    assert_eq!(part.headers()["content-type"], "video/webm");
    assert_eq!(part.bytes().await.unwrap().len(), 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_in_stores_intake_as_phi_and_the_consent() {
    let (server, _content) = start().await;
    let (access, visit, code) = setup(&server).await;

    let (status, content) = server
        .call(
            "GET",
            &format!("/api/v1/join/{code}/content?lang=es-MX"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{content}");
    assert_eq!(content["lang"], "es");
    assert_eq!(content["clinic_phone"], "+1 555 0100");
    assert_eq!(content["consent"]["version"], "smc-2");
    assert_eq!(content["intake"][0]["label"], "¿Por qué nos visita?");
    assert_eq!(
        content["intake"][1]["choices"],
        json!(["Problema nuevo", "Seguimiento"])
    );
    assert_eq!(content["waiting"][0]["src"], "/content/breathing.webm");

    let (_, token) = server
        .call(
            "POST",
            &format!("/api/v1/join/{code}"),
            None,
            Some(json!({ "display_name": "Maria Lopez" })),
        )
        .await;
    let token = token["token"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/rooms/{visit}/check-in");
    let form = |answers: Value, version: &str, accepted: bool| json!({ "answers": answers, "consent_version": version, "consent_accepted": accepted, "lang": "es" });
    let (status, problem) = server
        .call(
            "POST",
            &path,
            Some(&token),
            Some(form(json!([]), "smc-2", true)),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("¿Por qué nos visita?"),
        "{problem}"
    );
    let (status, _) = server
        .call(
            "POST",
            &path,
            Some(&token),
            Some(form(
                json!([{ "question_id": "reason", "answer": "tos" }]),
                "smc-1",
                true,
            )),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = server
        .call(
            "POST",
            &path,
            Some(&token),
            Some(form(
                json!([{ "question_id": "reason", "answer": "tos" }]),
                "smc-2",
                false,
            )),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let answers = json!([{ "question_id": "reason", "answer": "Tos persistente de grajilla" }, { "question_id": "kind", "answer": "Seguimiento" }]);
    let (status, body) = server
        .call(
            "POST",
            &path,
            Some(&token),
            Some(form(answers, "smc-2", true)),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // The clinician reads the answers, choices in the clinic's language.
    let (status, record) = server
        .call(
            "GET",
            &format!("/api/v1/visits/{visit}/check-in"),
            Some(&access),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["intake"][0]["answer"], "Tos persistente de grajilla");
    assert_eq!(record["intake"][1]["answer"], "Follow-up");
    assert_eq!(record["intake"][1]["label"], "Kind of visit");
    assert_eq!(record["consents"][0]["version"], "smc-2");
    assert_eq!(record["consents"][0]["lang"], "es");
    // A patient cannot read it back, and it never reaches the logs.
    let (status, _) = server
        .call(
            "GET",
            &format!("/api/v1/visits/{visit}/check-in"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A word of the answer no id, port or timestamp can contain by chance.
    let logs = server.logs();
    assert!(
        !logs.contains("grajilla"),
        "intake answer in the logs:\n{}",
        lines_with(&logs, "grajilla")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_estimate_network_test_and_survey() {
    let (server, _content) = start().await;
    let (access, visit, code) = setup(&server).await;
    let (_, token) = server
        .call(
            "POST",
            &format!("/api/v1/join/{code}"),
            None,
            Some(json!({})),
        )
        .await;
    let token = token["token"].as_str().unwrap().to_owned();

    let (status, wait) = server
        .call(
            "GET",
            &format!("/api/v1/rooms/{visit}/wait"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{wait}");
    let minutes = wait["minutes"].as_u64().unwrap();
    assert!((19..=21).contains(&minutes), "{wait}");
    server
        .call(
            "POST",
            &format!("/api/v1/visits/{visit}/running-late"),
            Some(&access),
            Some(json!({ "minutes": 15 })),
        )
        .await;
    let (_, wait) = server
        .call(
            "GET",
            &format!("/api/v1/rooms/{visit}/wait"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(wait["running_late_minutes"], 15);
    assert!(wait["minutes"].as_u64().unwrap() >= 34, "{wait}");

    let (status, info) = server
        .call(
            "GET",
            &format!("/api/v1/join/{code}/network-test"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        info["udp"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{info}"
    );
    assert_eq!(info["ice_tcp"], true);
    let down = reqwest::get(format!(
        "{}/api/v1/join/{code}/network-test/download?bytes=100000",
        server.url
    ))
    .await
    .unwrap();
    assert_eq!(down.status(), StatusCode::OK);
    assert_eq!(down.bytes().await.unwrap().len(), 100_000);
    let (status, _) = server
        .call(
            "GET",
            &format!("/api/v1/join/{code}/network-test/download?bytes=99999999"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let up = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/join/{code}/network-test/upload",
            server.url
        ))
        .body(vec![7u8; 30_000])
        .send()
        .await
        .unwrap();
    assert_eq!(up.json::<Value>().await.unwrap()["bytes"], 30_000);
    let (status, _) = server
        .call(
            "GET",
            "/api/v1/join/00000000000000000000000000/network-test",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let survey = format!("/api/v1/rooms/{visit}/survey");
    let (status, _) = server
        .call("POST", &survey, Some(&token), Some(json!({ "rating": 9 })))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    server
        .call(
            "POST",
            &format!("/api/v1/visits/{visit}/end"),
            Some(&access),
            None,
        )
        .await;
    // The survey comes after the visit: the token still works for it.
    let (status, body) = server
        .call(
            "POST",
            &survey,
            Some(&token),
            Some(json!({ "rating": 4, "comment": "Good, the kestrel nurse was kind" })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, record) = server
        .call(
            "GET",
            &format!("/api/v1/visits/{visit}/check-in"),
            Some(&access),
            None,
        )
        .await;
    assert_eq!(record["surveys"][0]["rating"], 4);
    assert_eq!(
        record["surveys"][0]["comment"],
        "Good, the kestrel nurse was kind"
    );
    let logs = server.logs();
    assert!(
        !logs.contains("kestrel"),
        "survey comment in the logs:\n{}",
        lines_with(&logs, "kestrel")
    );
}

fn lines_with(logs: &str, needle: &str) -> String {
    logs.lines()
        .filter(|l| l.contains(needle))
        .collect::<Vec<_>>()
        .join("\n")
}
