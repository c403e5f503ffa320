//! `desktop-idle`: how much the clinician app costs while it waits in the tray all day.
//!
//! It signs the release app in (a one-time link), quits it, then starts it the way login
//! does (`--hidden`: the tray, no window, signed back in from the keychain, the live queue
//! open) and samples the whole process tree's RSS and CPU once a second. Targets (issue):
//! at most 120 MB and 0.2 % CPU. Run `desktop-idle --help`; the README's test command runs
//! `--smoke`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use rounds_desktop_tests::{BenchServer, Desktop, TICKS_PER_SECOND, launch_app, tree_usage};

#[derive(Parser)]
#[command(about = "Measure the desktop app idle in the tray: RSS and CPU of its process tree")]
struct Args {
    /// How long to sample, in seconds.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// A 15-second run, to check the benchmark still works.
    #[arg(long)]
    smoke: bool,
    /// Append the result as a Markdown table row to this file.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// (RSS in KiB, CPU ticks) summed over the app's process tree.
fn sample(root: u32) -> (u64, u64) {
    tree_usage(root)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let seconds = if args.smoke { 15 } else { args.seconds };
    let desktop = Desktop::start();

    // A real server with one clinician, signed in once so the keychain holds the session.
    let server = BenchServer::start().await;
    server.sign_in_app(&desktop).await;

    // Start as login does: in the tray, no window.
    let mut app = launch_app(&desktop, &["--hidden"], None);
    let pid = app.id();
    println!("warming up 5 s, then sampling for {seconds} s");
    std::thread::sleep(Duration::from_secs(5));
    let (_, start_ticks) = sample(pid);
    let started = Instant::now();
    let mut peak_kib = 0;
    let mut last_kib = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        let (kib, _) = sample(pid);
        peak_kib = peak_kib.max(kib);
        last_kib = kib;
        if let Some(status) = app.try_wait().expect("wait") {
            panic!("the app exited while idle: {status}");
        }
    }
    let (_, end_ticks) = sample(pid);
    let cpu = (end_ticks - start_ticks) as f64 / TICKS_PER_SECOND / started.elapsed().as_secs_f64()
        * 100.0;
    let _ = app.kill();
    let _ = app.wait();
    let (rss_mb, peak_mb) = (last_kib as f64 / 1024.0, peak_kib as f64 / 1024.0);
    println!(
        "idle in the tray, {seconds} s: RSS {rss_mb:.0} MB (peak {peak_mb:.0} MB; target ≤ 120 MB), CPU {cpu:.2} % of one core (target ≤ 0.2 %)"
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
            "| desktop app idle in the tray ({seconds} s) | RSS {rss_mb:.0} MB, peak {peak_mb:.0} MB | ≤ 120 MB | CPU {cpu:.2} % | ≤ 0.2 % |"
        );
    }
}
