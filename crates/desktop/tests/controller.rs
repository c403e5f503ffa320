//! The desktop app's controller, without Tauri, against a real rounds-server in this
//! process: sign-in and the keychain, the live queue and its alerts (and its reconnects),
//! sign-in links, sign-out, the route through an HTTP proxy, and the network check.

#![allow(clippy::unwrap_used)]

#[path = "controller/ehr.rs"]
mod ehr;
#[path = "../../../tests/sso/ehr_process.rs"]
mod ehr_process;
#[path = "../../client/tests/e2e/harness.rs"]
mod harness;
#[path = "../../../server/tests/integration/idp.rs"]
mod idp;
#[path = "controller/netcheck.rs"]
mod netcheck;
#[path = "controller/proxy.rs"]
mod proxy;
#[path = "controller/reconnect.rs"]
mod reconnect;
#[path = "controller/sso.rs"]
mod sso;

use std::sync::Arc;
use std::time::Duration;

use harness::{EMAIL, PASSWORD, TestServer, patient_checks_in, zero_crossing_hz};
use rounds_desktop_core::secrets::refresh_token_name;
use rounds_desktop_core::{
    AlertKind, AppEvent, Connection, Controller, MemoryStore, Policy, SecretStore, SignInRequest,
};
use tokio::sync::broadcast;

struct App {
    controller: Controller,
    secrets: Arc<MemoryStore>,
    dir: tempfile::TempDir,
}

fn app(policy: Policy) -> App {
    let dir = tempfile::tempdir().unwrap();
    let secrets = Arc::new(MemoryStore::default());
    let controller = Controller::new(policy, dir.path().join("settings.json"), secrets.clone());
    App {
        controller,
        secrets,
        dir,
    }
}

fn sign_in_request(server: &TestServer) -> SignInRequest {
    SignInRequest {
        server_url: Some(server.url.to_string()),
        email: EMAIL.into(),
        password: PASSWORD.into(),
    }
}

async fn next_matching<T>(
    rx: &mut broadcast::Receiver<AppEvent>,
    what: &str,
    mut pick: impl FnMut(&AppEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(event)) => {
                if let Some(v) = pick(&event) {
                    return v;
                }
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(e)) => panic!("events closed while waiting for {what}: {e}"),
            Err(_) => panic!("no {what} within 15 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_keeps_the_refresh_token_only_in_the_keychain() {
    let server = TestServer::start().await;
    let a = app(Policy::default());
    let status = a
        .controller
        .sign_in(sign_in_request(&server))
        .await
        .unwrap();
    assert_eq!(status.clinician.unwrap().email, EMAIL);

    let name = refresh_token_name(&server.url);
    let refresh = a
        .secrets
        .get(&name)
        .unwrap()
        .expect("refresh token in the keychain");
    // The data folder holds settings, and no secret.
    for entry in std::fs::read_dir(a.dir.path()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains(&refresh), "a secret on disk: {text}");
        assert!(!text.contains(PASSWORD), "the password on disk: {text}");
    }

    // A restart signs back in from the keychain, and the refresh token rotates.
    let again = Controller::new(
        Policy::default(),
        a.dir.path().join("settings.json"),
        a.secrets.clone(),
    );
    assert!(again.restore().await.unwrap());
    assert!(again.status().clinician.is_some());
    let rotated = a.secrets.get(&name).unwrap().unwrap();
    assert_ne!(rotated, refresh, "refresh tokens are single-use");

    // Signing out ends the session on the server and empties the keychain.
    again.sign_out().await.unwrap();
    assert_eq!(a.secrets.get(&name).unwrap(), None);
    assert_eq!(again.status().connection, Connection::SignedOut);
    let reuse = rounds_desktop_core::ServerApi::new(server.url.clone())
        .unwrap()
        .refresh(&rotated)
        .await
        .unwrap_err();
    assert!(reuse.is_unauthorized(), "{reuse:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_a_sentence_and_stores_nothing() {
    let server = TestServer::start().await;
    let a = app(Policy::default());
    let mut req = sign_in_request(&server);
    req.password = "not it".into();
    let e = a.controller.sign_in(req).await.unwrap_err();
    assert!(e.is_unauthorized());
    assert!(e.message.contains("do not match"), "{}", e.message);
    assert_eq!(
        a.secrets.get(&refresh_token_name(&server.url)).unwrap(),
        None
    );

    let mut req = sign_in_request(&server);
    req.server_url = Some("http://127.0.0.1:9".into());
    let e = a.controller.sign_in(req).await.unwrap_err();
    assert!(e.is_unreachable(), "{e:?}");
    assert!(e.message.contains("Cannot reach"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checked_in_patient_raises_an_alert_and_the_waiting_count() {
    let server = TestServer::start().await;
    let a = app(Policy::default());
    let mut events = a.controller.subscribe();
    a.controller
        .sign_in(sign_in_request(&server))
        .await
        .unwrap();
    next_matching(&mut events, "online", |e| match e {
        AppEvent::Status { status } if status.connection == Connection::Online => Some(()),
        _ => None,
    })
    .await;

    let access = server.access_token().await;
    let visit = server
        .api
        .create_visit_now(&access, 30, "Pat Example")
        .await
        .unwrap();
    let code = rounds_client::link_code(&visit.patient_link.url)
        .unwrap()
        .to_owned();
    patient_checks_in(&server, &code).await;

    let alert = next_matching(&mut events, "an alert", |e| match e {
        AppEvent::Alert { alert } => Some(alert.clone()),
        _ => None,
    })
    .await;
    assert_eq!(alert.kind, AlertKind::PatientWaiting);
    assert_eq!(alert.visit_id, visit.visit.id);
    assert_eq!(alert.title, "Patient waiting");
    assert!(
        !alert.body.contains("Pat"),
        "no name by default: {}",
        alert.body
    );

    // The lobby is visible to the clinician, who admits the patient.
    let people = a
        .controller
        .participants(visit.visit.id.clone())
        .await
        .unwrap();
    let patient = people
        .iter()
        .find(|p| p.role == rounds_proto::Role::Patient)
        .expect("the patient is listed");
    let admitted = a
        .controller
        .admit(visit.visit.id.clone(), patient.id.clone())
        .await
        .unwrap();
    assert_eq!(admitted.state, rounds_proto::ParticipantState::Admitted);
    let queue = a.controller.queue().await.unwrap();
    let v = queue
        .visits
        .iter()
        .find(|v| v.id == visit.visit.id)
        .unwrap();
    assert_eq!(v.state, rounds_proto::VisitState::InProgress);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_link_works_once_and_opens_its_visit() {
    let server = TestServer::start().await;
    let access = server.access_token().await;
    let visit = server
        .api
        .create_visit_now(&access, 30, "Pat Example")
        .await
        .unwrap();
    let ticket: rounds_proto::SignInTicket = reqwest::Client::new()
        .post(server.url.join("api/v1/auth/tickets").unwrap())
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut link = url::Url::parse(&format!("rounds://visit/{}", visit.visit.id)).unwrap();
    link.query_pairs_mut()
        .append_pair("server", server.url.as_str())
        .append_pair("ticket", &ticket.ticket);

    let a = app(Policy::default());
    let mut events = a.controller.subscribe();
    let outcome = a.controller.open_link(link.to_string()).await.unwrap();
    assert!(outcome.signed_in);
    assert_eq!(outcome.open_visit.as_deref(), Some(visit.visit.id.as_str()));
    let opened = next_matching(&mut events, "open visit", |e| match e {
        AppEvent::OpenVisit { visit_id, join } => {
            assert!(!join);
            Some(visit_id.clone())
        }
        _ => None,
    })
    .await;
    assert_eq!(opened, visit.visit.id);
    let pending = a.controller.take_pending_open().unwrap();
    assert_eq!(
        (pending.visit_id.as_str(), pending.join),
        (visit.visit.id.as_str(), false)
    );
    assert_eq!(a.controller.take_pending_open(), None, "taken once");
    assert!(
        a.secrets
            .get(&refresh_token_name(&server.url))
            .unwrap()
            .is_some()
    );

    // The same ticket again, in another app: refused, in words.
    let b = app(Policy::default());
    let e = b.controller.open_link(link.to_string()).await.unwrap_err();
    assert!(e.is_unauthorized());
    assert!(e.message.contains("already used"), "{}", e.message);

    // Malformed links are refused before anything is sent.
    for bad in [
        "https://evil.example/visit/1",
        "rounds://visit/",
        "rounds://elsewhere/x",
        "rounds://visit/a%2F..%2Fb",
    ] {
        let e = b.controller.open_link(bad.into()).await.unwrap_err();
        assert_eq!(e.code, "bad-link", "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn it_policy_fixes_the_server() {
    let server = TestServer::start().await;
    let a = app(Policy {
        server_url: Some(server.url.to_string()),
        ..Policy::default()
    });
    assert!(a.controller.status().server_locked);
    // The form's server is ignored in favour of IT's; a link to another server is refused.
    let mut req = sign_in_request(&server);
    req.server_url = None;
    a.controller.sign_in(req).await.unwrap();
    let e = a
        .controller
        .open_link("rounds://signin?server=https://other.example&ticket=abc".into())
        .await
        .unwrap_err();
    assert_eq!(e.code, "server-locked");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_call_sends_labelled_synthetic_media_and_renders_at_display_size() {
    harness::init_tracing();
    let server = TestServer::start().await;
    // No camera exists here: IT's policy allows the labelled synthetic source.
    let a = app(Policy {
        synthetic_media: Some(true),
        ..Policy::default()
    });
    a.controller
        .sign_in(sign_in_request(&server))
        .await
        .unwrap();
    let access = server.access_token().await;
    let visit = server
        .api
        .create_visit_now(&access, 30, "Pat Example")
        .await
        .unwrap();
    let code = rounds_client::link_code(&visit.patient_link.url)
        .unwrap()
        .to_owned();

    // Every frame the window would draw, by participant, with its size.
    let (tx, mut frames) = tokio::sync::mpsc::unbounded_channel::<(String, u32, u32)>();
    let render: rounds_desktop_core::call::RenderSink = std::sync::Arc::new(move |who, f| {
        let _ = tx.send((who.to_owned(), f.width, f.height));
    });
    let state = a
        .controller
        .start_call(visit.visit.id.clone(), render)
        .await
        .unwrap();
    assert!(
        state.synthetic_camera,
        "no camera here: the synthetic card, labelled"
    );
    assert_eq!(state.camera_label, "Synthetic test card");
    assert!(
        state.synthetic_microphone,
        "no microphone here: {}",
        state.microphone_label
    );

    // The patient joins with a plain client (it publishes a 660 Hz tone and a test card) and
    // collects the app's audio.
    let token = server
        .api
        .join_link(&code, Some("Pat Example"))
        .await
        .unwrap();
    let (audio_sink, mut heard) = rounds_client::AudioSink::channel(512);
    let mut cfg = server.config(&token, 7);
    cfg.tone_hz = 660.0;
    cfg.audio_sink = Some(audio_sink);
    let patient = rounds_client::Client::join(cfg).await.unwrap();
    let patient_id = patient.participant_id().to_owned();
    a.controller
        .admit(visit.visit.id.clone(), patient_id.clone())
        .await
        .unwrap();
    patient
        .wait_admitted(Duration::from_secs(10))
        .await
        .unwrap();

    // App → SFU → patient: VP8 frames decode, and the app's tone arrives as a tone.
    patient
        .wait_stats(Duration::from_secs(20), |s| s.frames_decoded > 10)
        .await
        .expect("the patient decodes the app's video");
    let mut samples = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while samples.len() < 48_000 {
        match tokio::time::timeout_at(deadline, heard.recv()).await {
            Ok(Some((_, s))) => samples.extend(s),
            _ => panic!("the patient heard {} samples of the app", samples.len()),
        }
    }
    let hz = zero_crossing_hz(&samples[24_000..]);
    assert!(
        (hz - 440.0).abs() < 10.0,
        "the app's tone arrived at {hz} Hz"
    );

    // Patient → SFU → app: frames reach the render path, scaled to the size the window draws.
    a.controller
        .set_render_size(patient_id.clone(), 320, 180)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (who, w, h) = tokio::time::timeout_at(deadline, frames.recv())
            .await
            .expect("frames from the patient")
            .unwrap();
        if who == patient_id && w <= 320 && h <= 180 {
            break;
        }
        if who == rounds_desktop_core::call::LOCAL {
            assert!(w <= 320 && h <= 180, "the self-view is small: {w}x{h}");
        }
    }

    // The call's state names who is here; mute is the clinician's own.
    let state = a.controller.call_state().await.unwrap();
    assert!(state.participants.iter().any(|p| p.id == patient_id));
    let muted = a.controller.set_mic_muted(true).await.unwrap();
    assert!(muted.mic_muted);
    a.controller.leave_call().await.unwrap();
    assert!(a.controller.call_state().await.is_none());
    patient.leave().await;
}
