//! `desktop-call-cpu`: the clinician app's CPU during a two-person 720p call at 24 fps.
//!
//! The release app joins a visit's call from a `rounds://` link (its camera is the labelled
//! 1280x720, 24 fps test card, since no camera exists here; its microphone PulseAudio's sine
//! source). The patient is a Rust client sending a 1280x720, 24 fps test pattern and a tone.
//! Once both decode each other, the app's whole process tree (WebKit included) is sampled.
//! The target compares this with Chromium on the patient page in the same call (at
//! most 0.7x); that half is not measured yet (docs/benchmarks.md).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use rounds_desktop_tests::{BenchServer, Desktop, TICKS_PER_SECOND, launch_app, tree_usage};

#[derive(Parser)]
#[command(about = "Measure the desktop app's CPU during a 2-party 720p call")]
struct Args {
    /// How long to sample, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// A 10-second run, to check the benchmark still works.
    #[arg(long)]
    smoke: bool,
    /// Append the result as a Markdown table row to this file.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let seconds = if args.smoke { 10 } else { args.seconds };
    let desktop = Desktop::start();
    std::fs::write(desktop.path("policy.toml"), "synthetic_media = true\n").expect("policy");
    let server = BenchServer::start().await;
    let access = server.access_token().await;
    let visit = server
        .api
        .create_visit_now(&access, 30, "Bench Patient")
        .await
        .expect("visit");

    // The app signs in from the link and joins the visit's call at once.
    let sign_in = url::Url::parse(&server.sign_in_link().await).expect("link");
    let mut link = url::Url::parse(&format!("rounds://visit/{}", visit.visit.id)).expect("link");
    link.query_pairs_mut()
        .extend_pairs(sign_in.query_pairs())
        .append_pair("join", "1");
    let log = desktop.path("call-cpu.log");
    let mut app = launch_app(&desktop, &[link.as_str()], Some(&log));
    let deadline = Instant::now() + Duration::from_secs(90);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("joined the call")
    {
        assert!(Instant::now() < deadline, "the app did not join the call");
        assert!(app.try_wait().expect("wait").is_none(), "the app exited");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The patient: 720p at 24 fps and a tone, decoding what the app sends.
    let code = rounds_client::link_code(&visit.patient_link.url)
        .expect("code")
        .to_owned();
    let token = server
        .api
        .join_link(&code, Some("Bench Patient"))
        .await
        .expect("patient token");
    let mut cfg = rounds_client::ClientConfig::new(server.url.clone(), token.token);
    cfg.video = rounds_client::VideoSource::hd();
    let patient = rounds_client::Client::join(cfg)
        .await
        .expect("patient joins");
    server
        .api
        .admit(&access, &visit.visit.id, patient.participant_id())
        .await
        .expect("admit");
    let warm = patient
        .wait_stats(Duration::from_secs(60), |s| s.frames_decoded > 24)
        .await
        .expect("the patient decodes the app's video");
    let (w, h) = warm
        .remote
        .values()
        .map(|r| (r.width, r.height))
        .max()
        .unwrap_or_default();
    println!("call up: the patient decodes the app at {w}x{h}; warming up 5 s");
    std::thread::sleep(Duration::from_secs(5));

    let pid = app.id();
    let before = patient.stats();
    let (_, start_ticks) = tree_usage(pid);
    let started = Instant::now();
    let mut peak_kib = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        peak_kib = peak_kib.max(tree_usage(pid).0);
        assert!(app.try_wait().expect("wait").is_none(), "the app exited");
    }
    let (_, end_ticks) = tree_usage(pid);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (end_ticks - start_ticks) as f64 / TICKS_PER_SECOND / elapsed * 100.0;
    let after = patient.stats();
    let fps_out = (after.frames_decoded - before.frames_decoded) as f64 / elapsed;
    let sent = (after.sent.video_frames - before.sent.video_frames) as f64 / elapsed;
    println!(
        "2-party call, {seconds} s: the app's process tree used {cpu:.0} % of one core (peak RSS {:.0} MB); \
         the app sent {fps_out:.1} frames/s at {w}x{h} and received {sent:.1} frames/s from the patient",
        peak_kib as f64 / 1024.0
    );
    patient.leave().await;
    let _ = app.kill();
    let _ = app.wait();
    if let Some(path) = args.report {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("report");
        let _ = writeln!(
            f,
            "| desktop app in a 2-party 720p call ({seconds} s) | {cpu:.0} % of one core | sends {fps_out:.1} fps at {w}x{h}, receives {sent:.1} fps |"
        );
    }
}
