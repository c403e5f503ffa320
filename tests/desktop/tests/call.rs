//! The app's call (its controller, without the window) in a real desktop session: screen
//! share on the X server (Xvfb), seen by a patient's Rust client, and the patient's shared
//! screen reaching the app's render path.
//!
//! The display is found through the environment, as in a clinician's session. So each test starts the session, then runs its body in a fresh copy of this test
//! binary inside it (the pattern of `crates/media/tests/native.rs`).

#![allow(clippy::unwrap_used)]

#[path = "../../../crates/client/tests/e2e/harness.rs"]
mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use harness::{EMAIL, PASSWORD, TestServer};
use rounds_desktop_core::{Controller, MemoryStore, Policy, SignInRequest};
use rounds_desktop_tests::Desktop;

/// The size `Desktop` gives its X screen.
const SCREEN: (u32, u32) = (1280, 800);

/// Set in the copy of this binary that runs a test's body inside the session.
const CHILD_ENV: &str = "ROUNDS_DESKTOP_SESSION_CHILD";

/// Runs `body` inside a desktop session: in the parent, starts the session and this test in
/// a child process within it; in that child, runs the body.
fn in_session<F: std::future::Future<Output = ()>>(name: &str, body: impl FnOnce() -> F) {
    if std::env::var_os(CHILD_ENV).is_none() {
        let desktop = Desktop::start();
        let out = desktop
            .command(std::env::current_exe().unwrap())
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the test failed in the desktop session:\n{stdout}\n{stderr}"
        );
        print!("{stdout}");
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(body());
}

/// A signed-in controller whose IT policy allows the labelled synthetic camera (none exists
/// here).
async fn signed_in(server: &TestServer) -> (Controller, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let controller = Controller::new(
        Policy {
            synthetic_media: Some(true),
            ..Policy::default()
        },
        dir.path().join("settings.json"),
        Arc::new(MemoryStore::default()),
    );
    controller
        .sign_in(SignInRequest {
            server_url: Some(server.url.to_string()),
            email: EMAIL.into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    (controller, dir)
}

#[test]
fn sharing_the_screen_reaches_the_patient_at_the_screen_size() {
    in_session(
        "sharing_the_screen_reaches_the_patient_at_the_screen_size",
        share,
    );
}

async fn share() {
    harness::init_tracing();
    let server = TestServer::start().await;
    // No camera exists here: the labelled test card is the camera, so the share is beside it.
    let (controller, _dir) = signed_in(&server).await;
    let access = server.access_token().await;
    let visit = server
        .api
        .create_visit_now(&access, 30, "Pat Example")
        .await
        .unwrap();
    let code = rounds_client::link_code(&visit.patient_link.url)
        .unwrap()
        .to_owned();

    // What the window would draw: which keys got frames, and the patient's screen's size.
    let (tx, mut drawn) = tokio::sync::mpsc::unbounded_channel::<(String, u32, u32)>();
    let render: rounds_desktop_core::call::RenderSink = Arc::new(move |who, f| {
        let _ = tx.send((who.to_owned(), f.width, f.height));
    });
    let state = controller
        .start_call(visit.visit.id.clone(), render)
        .await
        .unwrap();
    assert!(!state.sharing_screen);
    let me = state
        .participants
        .iter()
        .find(|p| p.me)
        .map(|p| p.id.clone())
        .unwrap();

    let token = server
        .api
        .join_link(&code, Some("Pat Example"))
        .await
        .unwrap();
    let patient = rounds_client::Client::join(server.config(&token, 5))
        .await
        .unwrap();
    let patient_id = patient.participant_id().to_owned();
    controller
        .admit(visit.visit.id.clone(), patient_id.clone())
        .await
        .unwrap();
    patient
        .wait_admitted(Duration::from_secs(10))
        .await
        .unwrap();
    patient
        .wait_stats(Duration::from_secs(30), |s| s.frames_decoded_from(&me) > 5)
        .await
        .expect("the patient sees the app's camera first");

    // Share: the patient decodes a second video, the size of the X screen, and the camera
    // goes on beside it.
    let state = controller.share_screen(true).await.unwrap();
    assert!(state.sharing_screen, "the window shows that we share");
    // Generous: the first screen keyframe waits for the renegotiations, and this machine may
    // be busy.
    let shared = match patient
        .wait_stats(Duration::from_secs(60), |s| {
            s.remote(&me).is_some_and(|r| r.screen_frames_decoded > 5)
        })
        .await
    {
        Ok(s) => s,
        Err(e) => panic!(
            "the patient did not decode the shared screen ({e}): {:#?}",
            patient.stats().remote(&me)
        ),
    };
    let r = shared.remote(&me).unwrap();
    assert_eq!(
        (r.screen_width, r.screen_height),
        SCREEN,
        "the shared video is the screen's size"
    );
    assert_eq!(
        (r.width, r.height),
        (1280, 720),
        "the camera keeps its own size"
    );
    // The camera goes on beside the share (slowly on a busy machine: this is a debug build
    // converting 1280x800 RGB and drawing the 720p test card on the same cores).
    let camera_before = r.frames_decoded;
    if let Err(e) = patient
        .wait_stats(Duration::from_secs(60), |s| {
            s.frames_decoded_from(&me) > camera_before + 5
        })
        .await
    {
        panic!(
            "the camera stopped while the screen is shared ({e}): {:#?}",
            patient.stats().remote(&me)
        );
    }
    assert!(
        patient.participants().iter().any(|p| p.id == me
            && p.tracks
                .iter()
                .any(|t| t.kind == rounds_proto::TrackKind::Screen)),
        "the room was told the app shares a screen"
    );

    // The patient shares a screen too (a test pattern stands in for it): the app's render
    // path gets it under its own key, apart from the patient's camera.
    let patient_screen = rounds_client::ExternalVideo::new(800, 600, 10, 600);
    let feeding = Arc::new(AtomicBool::new(true));
    let feeder = {
        let (source, feeding) = (patient_screen.clone(), feeding.clone());
        std::thread::spawn(move || {
            let mut pattern = rounds_media::TestPattern::with_seed(800, 600, 10, 9);
            while feeding.load(Ordering::Relaxed) {
                source.push(pattern.next_frame());
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    patient
        .share_screen(Some(patient_screen.clone()))
        .await
        .unwrap();
    let key = rounds_client::screen_key(&patient_id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (who, w, h) = tokio::time::timeout_at(deadline, drawn.recv())
            .await
            .expect("the patient's screen reaches the window")
            .unwrap();
        if who == key {
            assert!(w <= 800 && h <= 600, "drawn at most at its size: {w}x{h}");
            break;
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let state = controller.call_state().await.unwrap();
        if state
            .participants
            .iter()
            .any(|p| p.id == patient_id && p.screen)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call state never said the patient shares a screen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    patient.share_screen(None).await.unwrap();
    feeding.store(false, Ordering::Relaxed);
    feeder.join().unwrap();

    // Stop: the room hears the track is gone, and no more screen frames arrive.
    let state = controller.share_screen(false).await.unwrap();
    assert!(!state.sharing_screen);
    patient
        .wait_until(Duration::from_secs(10), |c| {
            c.participants().iter().any(|p| {
                p.id == me
                    && !p
                        .tracks
                        .iter()
                        .any(|t| t.kind == rounds_proto::TrackKind::Screen)
            })
        })
        .await
        .expect("the room was told the share stopped");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped = patient.stats().remote(&me).unwrap().screen_frames_decoded;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        patient.stats().remote(&me).unwrap().screen_frames_decoded,
        stopped,
        "screen frames stop with the share"
    );

    // Sharing again works on the same connection.
    controller.share_screen(true).await.unwrap();
    patient
        .wait_stats(Duration::from_secs(60), |s| {
            s.remote(&me)
                .is_some_and(|r| r.screen_frames_decoded > stopped + 5)
        })
        .await
        .expect("a second share reaches the patient");

    controller.leave_call().await.unwrap();
    patient.leave().await;
}
