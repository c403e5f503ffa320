//! Three parties in one visit: the patient and a guest in Chromium, going through the real
//! patient pages from their own links (`tests/e2e/tools/patient-call.mjs`), and the clinician
//! as this crate's client. Everyone must decode everyone else's video.
//!
//! Needs what the patient end-to-end tests need: Debian's Chromium, `npm ci` in `tests/e2e`
//! and the built pages (`npm run build` in `ui/`); `scripts/test.sh` does all three first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rounds_client::Client;
use rounds_proto::{HostAction, Role};
use serde::Deserialize;
use tokio::process::{Child, Command};

use crate::harness::{TestServer, init_tracing};

/// What `patient-call.mjs` prints once it decodes video.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BrowserReport {
    frames_decoded: u64,
    /// Decoded video frames per sending participant id.
    by_sender: BTreeMap<String, u64>,
}

fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../..")
}

fn browser(link: &str, guest: bool, name: &str) -> Child {
    let mut cmd = Command::new("node");
    // Long enough in the call, after decoding both others, for the others to decode this one.
    cmd.arg("tools/patient-call.mjs")
        .arg(link)
        .arg("15")
        .args(["--senders", "2", "--name", name]);
    if guest {
        cmd.arg("--guest");
    }
    cmd.current_dir(repo().join("tests/e2e"))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs tests/e2e/tools/patient-call.mjs (npm ci in tests/e2e)")
}

async fn report(child: Child, who: &str) -> BrowserReport {
    let output = child.wait_with_output().await.expect("the browser ends");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the {who}'s browser failed: {stdout}"
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no report from the {who}'s browser: {stdout}"));
    serde_json::from_str(line).expect("the browser's report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_and_guest_in_chromium_with_a_rust_clinician() {
    init_tracing();
    let ui = repo().join("ui/dist");
    assert!(
        ui.join("patient.html").exists(),
        "{} has no build of the patient pages: run `npm ci && npm run build` in ui/",
        ui.display()
    );
    tokio::time::timeout(Duration::from_secs(240), async {
        let server = TestServer::start_with(|c| c.server.ui_dir = ui.clone()).await;
        let access = server.access_token().await;
        let visit = server
            .api
            .create_visit_now(&access, 30, "Maria Lopez")
            .await
            .expect("visit");
        let invitation: serde_json::Value = reqwest::Client::new()
            .post(
                server
                    .url
                    .join(&format!("api/v1/visits/{}/invitations", visit.visit.id))
                    .expect("url"),
            )
            .bearer_auth(&access)
            .json(&serde_json::json!({"channel": "copy", "invitee": "guest"}))
            .send()
            .await
            .expect("invite")
            .json()
            .await
            .expect("invitation");
        let guest_link = invitation["link"].as_str().expect("a guest link").to_owned();
        let provider_token = server
            .api
            .provider_token(&access, &visit.visit.id)
            .await
            .expect("provider token");
        let clinician = Client::join(server.config(&provider_token, 1))
            .await
            .expect("the clinician joins");

        let patient_browser = browser(&visit.patient_link.url, false, "Maria Lopez");
        let guest_browser = browser(&guest_link, true, "Rosa Lopez");

        // Admit each as they arrive: a browser waits for admission only so long.
        let mut admitted: HashMap<Role, String> = HashMap::new();
        while admitted.len() < 2 {
            clinician
                .wait_until(Duration::from_secs(120), |c| {
                    c.waiting().iter().any(|p| !admitted.values().any(|a| *a == p.id))
                })
                .await
                .expect("the patient and the guest reach the waiting room");
            for p in clinician.waiting() {
                if admitted.values().any(|a| *a == p.id) {
                    continue;
                }
                clinician.host(&p.id, HostAction::Admit).await.expect("admit");
                admitted.insert(p.role, p.id.clone());
            }
        }
        let patient_id = admitted.get(&Role::Patient).expect("the patient waited").clone();
        let guest_id = admitted.get(&Role::Guest).expect("the guest waited").clone();

        let stats = clinician
            .wait_stats(Duration::from_secs(90), |s| {
                s.frames_decoded_from(&patient_id) > 10 && s.frames_decoded_from(&guest_id) > 10
            })
            .await
            .unwrap_or_else(|_| {
                panic!("the clinician did not decode both browsers: {:#?}", clinician.stats())
            });
        for id in [&patient_id, &guest_id] {
            let remote = stats.remote(id).expect("remote stats");
            assert_eq!(remote.decode_errors, 0, "{remote:?}");
        }

        let me = clinician.participant_id().to_owned();
        let seen_by_patient = report(patient_browser, "patient").await;
        let seen_by_guest = report(guest_browser, "guest").await;
        println!(
            "patient decoded {:?}, guest decoded {:?}, the clinician decoded {} from the patient and {} from the guest",
            seen_by_patient.by_sender,
            seen_by_guest.by_sender,
            stats.frames_decoded_from(&patient_id),
            stats.frames_decoded_from(&guest_id)
        );
        for (report, others) in [
            (&seen_by_patient, [&me, &guest_id]),
            (&seen_by_guest, [&me, &patient_id]),
        ] {
            assert!(report.frames_decoded > 10, "{report:?}");
            let decoded: BTreeSet<&String> = report
                .by_sender
                .iter()
                .filter(|(_, frames)| **frames > 10)
                .map(|(id, _)| id)
                .collect();
            for other in others {
                assert!(decoded.contains(other), "{other} missing from {report:?}");
            }
        }
        clinician.leave().await;
    })
    .await
    .expect("the three-party visit finished in time");
}
