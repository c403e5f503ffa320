//! The desktop app's release binary in a real desktop session (see `rounds_desktop_tests`):
//! sign-in from a `rounds://` link, the refresh token in the Secret Service and nowhere on
//! disk, an OS notification when a patient checks in, screenshots, a second launch handing
//! its link to the running app, closing the window releasing the web view, and clicking a
//! notification opening that visit. And the network check screen, opened by IT's link
//! before anyone has signed in.

#![allow(clippy::unwrap_used)]

#[path = "../../../crates/client/tests/e2e/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use harness::{TestServer, patient_checks_in, zero_crossing_hz};
use rounds_desktop_tests::{Desktop, app_binary, process_names};

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("desktop-artifacts")
}

struct App {
    child: Child,
    log: PathBuf,
}

impl App {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&mut self, needle: &str, timeout: Duration) {
        self.wait_log_count(needle, 1, timeout);
    }

    /// Waits until `needle` appears at least `count` times in the log.
    fn wait_log_count(&mut self, needle: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.log().matches(needle).count() < count {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the app exited ({status}) before logging {needle:?}:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the app did not log {needle:?} within {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn launch(desktop: &Desktop, args: &[&str], log_name: &str) -> App {
    launch_with_policy(
        desktop,
        "synthetic_media = true\nwait_alert_minutes = 10\n",
        args,
        log_name,
    )
}

fn launch_with_policy(desktop: &Desktop, policy_text: &str, args: &[&str], log_name: &str) -> App {
    let policy = desktop.path("policy.toml");
    std::fs::write(&policy, policy_text).unwrap();
    let log = desktop.path(log_name);
    let child = desktop
        .command(app_binary())
        .args(args)
        .env("ROUNDS_POLICY", &policy)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start rounds-desktop");
    App { child, log }
}

async fn sign_in_link(server: &TestServer) -> String {
    let access = server.access_token().await;
    let ticket: rounds_proto::SignInTicket = reqwest::Client::new()
        .post(server.url.join("api/v1/auth/tickets").unwrap())
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut link = url::Url::parse("rounds://signin").unwrap();
    link.query_pairs_mut()
        .append_pair("server", server.url.as_str())
        .append_pair("ticket", &ticket.ticket);
    link.to_string()
}

/// Every file under `dir` (but the Secret Service's own encrypted store) containing `needle`.
fn files_containing(dir: &Path, needle: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "keyrings") {
            continue;
        }
        if path.is_dir() {
            files_containing(&path, needle, out);
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        {
            out.push(path);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_release_app_in_a_real_desktop_session() {
    let desktop = Desktop::start();
    let server = TestServer::start().await;
    let shots = artifacts();

    // Sign in from a one-time link, as `scripts/run.sh` does for the demo.
    let link = sign_in_link(&server).await;
    let mut app = launch(&desktop, &[&link], "app.log");
    app.wait_log("signed in from a link", Duration::from_secs(90));

    // The refresh token is in the Secret Service...
    let server_name = server.url.as_str().trim_end_matches('/').to_owned();
    let account = format!("refresh-token@{server_name}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let refresh = loop {
        if let Some(s) = desktop.secret(&[("service", "rounds-desktop"), ("username", &account)]) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no refresh token in the keychain"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(refresh.len() >= 32, "a real token: {refresh}");
    // ... and in no file the app wrote.
    let mut leaks = Vec::new();
    for dir in ["home", "config", "data", "cache"] {
        files_containing(&desktop.path(dir), &refresh, &mut leaks);
    }
    assert!(
        leaks.is_empty(),
        "the refresh token is on disk in {leaks:?}"
    );
    assert!(
        !app.log().contains(&refresh),
        "the refresh token is in the app's log"
    );

    // A patient checks in: the app raises an OS notification through D-Bus.
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
    let call = desktop.wait_notification(
        &["\"Patient waiting\"", "checked in for the"],
        Duration::from_secs(20),
    );
    assert!(call.contains("\"Rounds\""), "sent as Rounds: {call}");
    assert!(
        !call.contains("Pat Example"),
        "no patient name by default: {call}"
    );
    app.wait_log("notification shown", Duration::from_secs(5));

    // The queue, on screen.
    std::thread::sleep(Duration::from_secs(3));
    let shot = desktop.screenshot(&shots, "queue.png");
    assert!(
        desktop.colours(&shot) > 50,
        "the queue screenshot looks blank: {}",
        shot.display()
    );

    // A second launch with a rounds:// link hands it to the running app, then exits.
    let visit_link = format!("rounds://visit/{}", visit.visit.id);
    let mut second = launch(&desktop, &[&visit_link], "second.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the second launch kept running:\n{}",
            second.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "second launch: {status}\n{}",
        second.log()
    );
    app.wait_log("second launch forwarded", Duration::from_secs(10));
    app.wait_log("link followed", Duration::from_secs(10));
    assert!(
        app.child.try_wait().unwrap().is_none(),
        "the first app is still running"
    );
    let shot = desktop.screenshot(&shots, "visit.png");
    assert!(desktop.colours(&shot) > 50, "blank: {}", shot.display());

    // Closing the window releases the web view: WebKit's web process goes away, the app
    // stays (in the tray).
    let pid = app.child.id();
    let web_process = |pid: u32| {
        process_names(pid)
            .iter()
            .any(|n| n.starts_with("WebKitWebProc"))
    };
    assert!(web_process(pid), "the open window has a web process");
    let opened = app.log().matches("window opened").count();
    assert!(
        desktop.close_window("Rounds") >= 1,
        "no window titled Rounds to close"
    );
    app.wait_log("window released", Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(30);
    while web_process(pid) {
        assert!(
            Instant::now() < deadline,
            "the web process outlived the window: {:?}",
            process_names(pid)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        app.child.try_wait().unwrap().is_none(),
        "the app keeps running in the tray"
    );

    // Another patient checks in; clicking the notification opens the window on that visit.
    let _ = desktop.command("dunstctl").arg("close-all").status();
    let second_visit = server
        .api
        .create_visit_now(&access, 45, "Sam Example")
        .await
        .unwrap();
    let second_code = rounds_client::link_code(&second_visit.patient_link.url)
        .unwrap()
        .to_owned();
    let notified_before = desktop
        .notifications()
        .matches("\"Patient waiting\"")
        .count();
    patient_checks_in(&server, &second_code).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while desktop
        .notifications()
        .matches("\"Patient waiting\"")
        .count()
        <= notified_before
    {
        assert!(
            Instant::now() < deadline,
            "no notification for the second patient"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    desktop.click_notification();
    app.wait_log("notification clicked", Duration::from_secs(10));
    // The controller logs "opening a visit" with the visit's id (not PHI).
    app.wait_log(
        &format!("visit={}", second_visit.visit.id),
        Duration::from_secs(10),
    );
    app.wait_log_count("window opened", opened + 1, Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !web_process(pid) {
        assert!(
            Instant::now() < deadline,
            "the window came back without a web process"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    let shot = desktop.screenshot(&shots, "reopened-from-notification.png");
    assert!(desktop.colours(&shot) > 50, "blank: {}", shot.display());

    // The EHR's "start visit": a link that opens the visit and joins its call. The app
    // captures PulseAudio's 440 Hz source with cpal as its microphone (no camera exists
    // here, so the policy's labelled test card stands in for one).
    let join_link = format!("rounds://visit/{}?join=1", visit.visit.id);
    let mut third = launch(&desktop, &[&join_link], "third.log");
    let _ = third.child.wait();
    app.wait_log("joined the call", Duration::from_secs(30));
    let media = app.log();
    assert!(
        media.contains("synthetic_camera=true") && media.contains("synthetic_microphone=false"),
        "the microphone is PulseAudio's, the camera the labelled card:\n{media}"
    );

    // The patient is in the lobby from check-in; they connect and are admitted.
    let patient_token = server
        .api
        .join_link(&code, Some("Pat Example"))
        .await
        .unwrap();
    let (audio_sink, mut heard) = rounds_client::AudioSink::channel(1024);
    let mut cfg = server.config(&patient_token, 3);
    cfg.audio_sink = Some(audio_sink);
    cfg.tone_hz = 660.0;
    let patient = rounds_client::Client::join(cfg).await.unwrap();
    server
        .api
        .admit(&access, &visit.visit.id, patient.participant_id())
        .await
        .unwrap();
    patient
        .wait_admitted(Duration::from_secs(10))
        .await
        .unwrap();
    patient
        .wait_stats(Duration::from_secs(30), |s| s.frames_decoded > 10)
        .await
        .expect("the patient decodes the app's video");

    // The microphone's tone reaches the patient as Opus, decoded at the frequency played.
    let mut samples: Vec<i16> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (hz, rms) = loop {
        match tokio::time::timeout_at(deadline, heard.recv()).await {
            Ok(Some((_, s))) => samples.extend(s),
            _ => panic!("the patient heard {} samples from the app", samples.len()),
        }
        // Judge the latest second once the stream runs (PulseAudio starts slowly).
        if samples.len() >= 48_000 * 3 {
            let last = &samples[samples.len() - 48_000..];
            let rms = (last.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / 48_000.0).sqrt();
            let hz = zero_crossing_hz(last);
            if rms > 300.0 && (hz - 440.0).abs() < 25.0 {
                break (hz, rms);
            }
            assert!(
                samples.len() < 48_000 * 25,
                "after 25 s the app's audio is at {hz:.0} Hz, RMS {rms:.0}"
            );
        }
    };
    eprintln!("microphone tone at the patient: {hz:.1} Hz, RMS {rms:.0}");

    // The call window: the patient's video drawn by the app, our labelled self-view.
    std::thread::sleep(Duration::from_secs(4));
    let shot = desktop.screenshot(&shots, "in-call.png");
    assert!(
        desktop.colours(&shot) > 200,
        "the call looks blank: {}",
        shot.display()
    );
    patient.leave().await;
    eprintln!("screenshots in {}", shots.display());
}

/// IT's `rounds://network-check` link on a computer where nobody has signed in yet: the
/// window opens on the network check, which runs against the server IT's policy names (one
/// whose UDP media port is off) and shows each path with pass or fail and, for UDP, what
/// to ask IT. The app logs each path's result, and the window marks when it painted them.
#[tokio::test(flavor = "multi_thread")]
async fn the_network_check_screen_shows_each_path() {
    let desktop = Desktop::start();
    let server = TestServer::start_with(|c| c.media.udp_enabled = false).await;
    let policy = format!("server_url = \"{}\"\n", server.url);
    let mut app = launch_with_policy(
        &desktop,
        &policy,
        &["rounds://network-check"],
        "netcheck.log",
    );
    app.wait_log("network check finished", Duration::from_secs(90));
    let log = app.log();
    for (path, status) in [
        ("web", "Pass"),
        ("signaling", "Pass"),
        ("media over UDP", "Fail"),
        ("media over TCP", "Pass"),
    ] {
        let line = format!("path=\"{path}\" status={status}");
        assert!(log.contains(&line), "no {line:?} in the app's log:\n{log}");
    }
    assert!(log.contains("verdict=TcpFallbackOnly"), "{log}");
    // The window received the results and painted them.
    app.wait_log("shown what=\"network-check\"", Duration::from_secs(30));
    assert!(
        !log.contains("signed in"),
        "the check needs nobody signed in:\n{log}"
    );
    std::thread::sleep(Duration::from_secs(1));
    // The link and the start both ask for the window: one is built, not a second one on
    // top showing the sign-in form.
    let log = app.log();
    assert_eq!(log.matches("window opened").count(), 1, "{log}");
    let shot = desktop.screenshot(&artifacts(), "network-check.png");
    assert!(
        desktop.colours(&shot) > 50,
        "the network check looks blank: {}",
        shot.display()
    );
}
