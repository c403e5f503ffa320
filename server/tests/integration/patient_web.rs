//! The patient pages' server side: serving the built app, the clinic's check-in content, the
//! check-in form (intake as PHI, consent), the estimated wait, the network test and the survey.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

/// A server with a hand-made UI folder and clinic content file (the common harness has no way
/// to set `[server]` keys).
struct PagesServer {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
}

impl Drop for PagesServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

impl PagesServer {
    async fn start() -> PagesServer {
        let dir = tempfile::tempdir().unwrap();
        let ui = dir.path().join("ui");
        std::fs::create_dir_all(ui.join("assets")).unwrap();
        std::fs::write(ui.join("patient.html"), "<!doctype html><div id=app></div><script type=module src=/assets/patient-abc123.js></script>").unwrap();
        std::fs::write(
            ui.join("assets/patient-abc123.js"),
            "console.log('patient')",
        )
        .unwrap();
        let content = dir.path().join("content");
        std::fs::create_dir_all(&content).unwrap();
        std::fs::write(content.join("clinic.toml"), CONTENT).unwrap();
        std::fs::write(
            content.join("breathing.webm"),
            (0u8..=255).cycle().take(5000).collect::<Vec<u8>>(),
        )
        .unwrap();
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let config = dir.path().join("rounds.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{url}\"\nui_dir = \"{ui}\"\nclinic_content = \"{content}\"\n\n\
                 [storage]\ndata_dir = \"{data}\"\n\n[limits]\njoin_per_minute = 1000\ntoken_per_minute = 1000\nlogin_per_minute = 1000\n\n\
                 [media]\nudp_listen = \"127.0.0.1:0\"\n",
                ui = ui.display(),
                content = content.join("clinic.toml").display(),
                data = dir.path().join("data").display()
            ),
        )
        .unwrap();
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args([
                "clinician",
                "add",
                "--clinic",
                "St. Mary's Clinic",
                "--time-zone",
                "America/Chicago",
                "--email",
                EMAIL,
                "--name",
                "Dr. Amara Okafor",
            ])
            .env("ROUNDS_NEW_PASSWORD", PASSWORD)
            .env("ROUNDS_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env("ROUNDS_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = PagesServer { child, dir, url };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !reqwest::get(format!("{}/readyz", server.url))
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
        {
            assert!(
                Instant::now() < deadline,
                "server did not start: {}",
                server.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req =
            reqwest::Client::new().request(method.parse().unwrap(), format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn setup(&self) -> (String, String, String) {
        let (_, session) = self
            .call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({ "email": EMAIL, "password": PASSWORD })),
            )
            .await;
        let access = session["access_token"].as_str().unwrap().to_owned();
        let at = chrono::Utc::now() + chrono::Duration::minutes(20);
        let (status, created) = self
            .call("POST", "/api/v1/visits", Some(&access), Some(json!({ "scheduled_at": at, "duration_minutes": 20, "patient_name": "Maria Lopez" })))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let code = created["patient_link"]["url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        (
            access,
            created["visit"]["id"].as_str().unwrap().to_owned(),
            code,
        )
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_the_built_app_its_assets_and_clinic_videos() {
    let server = PagesServer::start().await;
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
            .contains("/assets/patient-abc123.js")
    );

    let js = reqwest::get(format!("{}/assets/patient-abc123.js", server.url))
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
    let server = PagesServer::start().await;
    let (access, visit, code) = server.setup().await;

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
    let answers = json!([{ "question_id": "reason", "answer": "Tos persistente 7431" }, { "question_id": "kind", "answer": "Seguimiento" }]);
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
    assert_eq!(record["intake"][0]["answer"], "Tos persistente 7431");
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
    assert!(!server.logs().contains("7431"), "intake answer in the logs");
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_estimate_network_test_and_survey() {
    let server = PagesServer::start().await;
    let (access, visit, code) = server.setup().await;
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
            Some(json!({ "rating": 4, "comment": "Good 8812" })),
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
    assert_eq!(record["surveys"][0]["comment"], "Good 8812");
    assert!(
        !server.logs().contains("8812"),
        "survey comment in the logs"
    );
}
