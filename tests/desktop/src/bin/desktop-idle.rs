//! `desktop-idle`: how much the clinician app costs while it waits in the tray all day.
//!
//! It signs the release app in (a one-time link), quits it, then starts it the way login
//! does (`--hidden`: the tray, no window, signed back in from the keychain, the live queue
//! open) and samples the whole process tree's RSS and CPU once a second. Targets (issue):
//! at most 120 MB and 0.2 % CPU. Run `desktop-idle --help`; the README's test command runs
//! `--smoke`.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use rounds_desktop_tests::{Desktop, app_binary};

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

/// Linux reports CPU time in clock ticks of 1/100 s (`USER_HZ`).
const TICKS_PER_SECOND: f64 = 100.0;

/// The app and every process under it (WebKit's web and network processes).
fn tree(root: u32) -> Vec<u32> {
    let mut all = vec![root];
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    && let Some(rest) = stat.rsplit(") ").next()
                    && rest
                        .split_whitespace()
                        .nth(1)
                        .and_then(|p| p.parse::<u32>().ok())
                        == Some(parent)
                    && !all.contains(&pid)
                {
                    all.push(pid);
                }
            }
        }
        i += 1;
    }
    all
}

/// (RSS in KiB, CPU ticks) summed over the tree.
fn sample(root: u32) -> (u64, u64) {
    let mut rss = 0;
    let mut ticks = 0;
    for pid in tree(root) {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            rss += status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some(rest) = stat.rsplit(") ").next()
        {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
            ticks += f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            ticks += f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    (rss, ticks)
}

fn launch(desktop: &Desktop, args: &[&str]) -> Child {
    desktop
        .command(app_binary())
        .args(args)
        .env("ROUNDS_POLICY", desktop.path("policy.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rounds-desktop")
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let seconds = if args.smoke { 15 } else { args.seconds };
    let desktop = Desktop::start();
    std::fs::write(desktop.path("policy.toml"), "").expect("policy");

    // A real server with one clinician.
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut config = rounds_server::config::Config::default();
    config.server.listen = ([127, 0, 0, 1], port).into();
    config.server.public_url = format!("http://127.0.0.1:{port}");
    config.storage.data_dir = dir.path().join("data");
    config.media.udp_listen = ([127, 0, 0, 1], 0).into();
    let state = rounds_server::AppState::open(config)
        .await
        .expect("server state");
    let (email, password) = ("idle@bench.example", "idle benchmark password");
    rounds_server::visits::add_clinician(
        &state,
        "Bench Clinic",
        "UTC",
        email,
        "Dr. Idle",
        password,
    )
    .await
    .expect("clinician");
    let serving = state.clone();
    tokio::spawn(async move { rounds_server::serve(serving).await });
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url");
    let api = rounds_client::Api::new(url.clone()).expect("api");
    let access = loop {
        match api.login(email, password).await {
            Ok(s) => break s.access_token,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let ticket: rounds_proto::SignInTicket = reqwest::Client::new()
        .post(url.join("api/v1/auth/tickets").expect("url"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("ticket")
        .json()
        .await
        .expect("ticket body");
    let mut link = url::Url::parse("rounds://signin").expect("link");
    link.query_pairs_mut()
        .append_pair("server", url.as_str())
        .append_pair("ticket", &ticket.ticket);

    // Sign in once, so the keychain holds the session; then quit.
    let mut first = launch(&desktop, &[link.as_str()]);
    let account = format!("refresh-token@{}", url.as_str().trim_end_matches('/'));
    let deadline = Instant::now() + Duration::from_secs(90);
    while desktop
        .secret(&[("service", "rounds-desktop"), ("username", &account)])
        .is_none()
    {
        assert!(Instant::now() < deadline, "the app did not sign in");
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = first.kill();
    let _ = first.wait();

    // Start as login does: in the tray, no window.
    let mut app = launch(&desktop, &["--hidden"]);
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
