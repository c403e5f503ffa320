//! `desktop-cold-start`: how long the clinician app takes from being started to showing
//! today's queue, signed in from the keychain as it is after a login. Target (issue): 1 s.
//!
//! Each run starts the release app with its window, waits for the window to report that it
//! painted the queue (the app logs "shown" with `what=queue`), and quits it. It prints the
//! time from starting the process to that line (measured here, polling the log every 5 ms)
//! and the app's own figure (from its first line of Rust). The first run is the coldest:
//! the binary and WebKit may not be in the page cache yet. Run `desktop-cold-start --help`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use rounds_desktop_tests::{BenchServer, Desktop, launch_app};

#[derive(Parser)]
#[command(about = "Measure the desktop app's start until the queue is shown")]
struct Args {
    /// How many starts to time.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// One start, to check the benchmark still works.
    #[arg(long)]
    smoke: bool,
    /// Append the result as a Markdown table row to this file.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// The app's own figure from a log line `... shown what="queue" since_start_ms=123`.
fn app_figure(log: &str) -> Option<u64> {
    let line = log
        .lines()
        .find(|l| l.contains("shown") && l.contains("queue"))?;
    let rest = line.split("since_start_ms=").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let runs = if args.smoke { 1 } else { args.runs.max(1) };
    let desktop = Desktop::start();
    let server = BenchServer::start().await;
    server.sign_in_app(&desktop).await;

    let mut outside = Vec::new();
    let mut inside = Vec::new();
    for run in 1..=runs {
        let log = desktop.path(&format!("cold-start-{run}.log"));
        let started = Instant::now();
        let mut app = launch_app(&desktop, &[], Some(&log));
        let deadline = started + Duration::from_secs(60);
        let ms = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(own) = app_figure(&text) {
                inside.push(own);
                break started.elapsed().as_secs_f64() * 1000.0;
            }
            if let Some(status) = app.try_wait().expect("wait") {
                panic!("the app exited ({status}) before showing the queue:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "the queue was not shown within 60 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        println!(
            "start {run}: queue shown after {ms:.0} ms (the app's own figure {} ms)",
            inside.last().copied().unwrap_or(0)
        );
        outside.push(ms);
        let _ = app.kill();
        let _ = app.wait();
        // Let the web processes go before the next start.
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut sorted = outside.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let (first, worst) = (outside[0], sorted[sorted.len() - 1]);
    println!(
        "cold start to the queue, {runs} starts: median {median:.0} ms, first {first:.0} ms, worst {worst:.0} ms (target ≤ 1000 ms)"
    );
    if let Some(path) = args.report {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("report");
        let _ = writeln!(
            f,
            "| desktop app cold start until the queue is shown ({runs} starts) | median {median:.0} ms, first {first:.0} ms, worst {worst:.0} ms | ≤ 1000 ms |"
        );
    }
}
