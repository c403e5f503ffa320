//! An EHR launch all the way into the desktop app: the EHR (`tests/sso/ehr.mjs`, a real
//! oidc-provider SMART server and FHIR server) launches Rounds, the clinician's browser
//! follows it to the handoff page, and the `rounds://visit/{id}?ticket=...` link it carries
//! signs the release app in and opens that encounter's visit.
//!
//! The app reaches the server through a small TCP relay that records each request line, so
//! the test sees which visit the app opened (it asks for that visit's participants).

#![allow(clippy::unwrap_used)]

#[path = "../../sso/ehr_process.rs"]
mod ehr_process;
#[path = "../../../crates/client/tests/e2e/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ehr_process::{browse_launch, free_port, handoff_link, start_ehr};
use harness::TestServer;
use reqwest::StatusCode;
use rounds_desktop_tests::{Desktop, app_binary};
use rounds_server::config::EhrIssuer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Relays TCP from `listen` to `upstream`, keeping the request lines clients send.
async fn relay(listen: u16, upstream: u16) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", listen))
        .await
        .unwrap();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let text = String::from_utf8_lossy(&buf[..n]);
                        for line in text.lines() {
                            if line.starts_with("GET /") || line.starts_with("POST /") {
                                log.lock().unwrap().push(line.to_owned());
                            }
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = sw.shutdown().await;
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    let _ = cw.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    seen
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("desktop-artifacts")
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ehr_launch_opens_the_encounters_visit_in_the_app() {
    let desktop = Desktop::start();
    let (auth_port, fhir_port, relay_port) = (free_port(), free_port(), free_port());
    let iss = format!("http://127.0.0.1:{fhir_port}/4_0_0");
    let public = format!("http://127.0.0.1:{relay_port}");
    let iss_for_config = iss.clone();
    let public_for_config = public.clone();
    let server = TestServer::start_with(move |c| {
        c.server.public_url = public_for_config;
        c.ehr.issuers.push(EhrIssuer {
            iss: iss_for_config,
            name: None,
            client_id: "rounds".into(),
            client_secret: "rounds-ehr-client-secret-for-tests-only".into(),
            clinicians: [(
                "Practitioner/dr-okafor".to_owned(),
                harness::EMAIL.to_owned(),
            )]
            .into(),
            match_email: false,
        });
    })
    .await;
    let requests = relay(relay_port, server.url.port().unwrap()).await;
    let ehr = start_ehr(auth_port, fhir_port, &format!("{public}/ehr/callback"));

    // The EHR starts a launch for an encounter and opens Rounds' launch URL.
    let launch: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/test/launch", ehr.issuer))
        .json(&serde_json::json!({ "patient": "pat-1001", "encounter": "enc-2001" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let page = browse_launch(&format!(
        "{public}/ehr/launch?iss={}&launch={}",
        enc(&iss),
        launch["launch"].as_str().unwrap()
    ))
    .await;
    let link = handoff_link(&page);
    let visit_id = url::Url::parse(&link)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_owned();

    // What the browser does with the link: start the app with it.
    let policy = desktop.path("policy.toml");
    std::fs::write(&policy, "synthetic_media = true\n").unwrap();
    let log = desktop.path("ehr-app.log");
    let mut app = desktop
        .command(app_binary())
        .arg(&link)
        .env("ROUNDS_POLICY", &policy)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start rounds-desktop");
    let opened = format!("GET /api/v1/rooms/{visit_id}/participants");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let seen = requests.lock().unwrap().clone();
        if seen.iter().any(|l| l.starts_with(&opened)) {
            assert!(
                seen.iter()
                    .any(|l| l.starts_with("POST /api/v1/auth/ticket ")),
                "the app signed in with the ticket: {seen:?}"
            );
            break;
        }
        if let Some(status) = app.try_wait().unwrap() {
            panic!(
                "the app exited ({status}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the app did not open visit {visit_id}; it asked for {seen:?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let app_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(app_log.contains("signed in from a link"), "{app_log}");
    let shot = desktop.screenshot(&artifacts(), "ehr-launch.png");
    assert!(desktop.colours(&shot) > 50, "blank: {}", shot.display());
    // The ticket in the link is spent.
    let r = reqwest::Client::new()
        .post(server.url.join("api/v1/auth/ticket").unwrap())
        .json(&serde_json::json!({ "ticket": url::Url::parse(&link).unwrap().query_pairs().find(|(k, _)| k == "ticket").unwrap().1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let _ = app.kill();
    let _ = app.wait();
    drop(ehr);
}
