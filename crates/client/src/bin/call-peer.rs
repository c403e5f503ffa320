//! `call-peer`: one Rust client in a visit's call, for benchmarks that need the same other
//! party in every run. `desktop-call-cpu` (tests/desktop) puts it opposite the desktop app,
//! then opposite Chromium on the patient page, and compares the two.
//!
//! ```text
//! ROUNDS_PEER_TOKEN=<room token> call-peer SERVER_URL [SECONDS]
//! ```
//!
//! It joins with the token (from the environment, so it never shows in a process list),
//! prints `{"participant_id": …}`, waits to be admitted, then sends the 1280x720, 24 fps test
//! pattern and a tone, decodes what it receives, and prints one line of totals a second:
//! `{"frames_decoded": n, "sent_video_frames": n, "width": w, "height": h}` (the largest
//! picture decoded). It leaves after SECONDS (default 600) or when its standard input closes.
//! Build it with `--release` for measurements: a debug build cannot keep up 24 fps.

use std::io::{BufRead, Write};
use std::time::Duration;

use rounds_client::{Client, ClientConfig, VideoSource};

fn usage() -> ! {
    eprintln!("usage: ROUNDS_PEER_TOKEN=<room token> call-peer SERVER_URL [SECONDS]");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let server = args
        .next()
        .and_then(|s| url::Url::parse(&s).ok())
        .unwrap_or_else(|| usage());
    let seconds: u64 = match args.next() {
        Some(s) => s.parse().unwrap_or_else(|_| usage()),
        None => 600,
    };
    let Ok(token) = std::env::var("ROUNDS_PEER_TOKEN") else {
        usage();
    };

    let mut cfg = ClientConfig::new(server, token);
    cfg.video = VideoSource::hd();
    let client = match Client::join(cfg).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("call-peer: cannot join: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "{}",
        serde_json::json!({ "participant_id": client.participant_id() })
    );
    let _ = std::io::stdout().flush();
    if let Err(e) = client.wait_admitted(Duration::from_secs(120)).await {
        eprintln!("call-peer: not admitted: {e}");
        std::process::exit(1);
    }

    // Standard input closing (the benchmark ending, or dying) ends the call.
    let (closed_tx, mut closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
        }
        let _ = closed_tx.send(());
    });

    let until = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut closed => break,
            _ = tokio::time::sleep_until(until) => break,
        }
        let s = client.stats();
        let (width, height) = s
            .remote
            .values()
            .map(|r| (r.width, r.height))
            .max()
            .unwrap_or_default();
        println!(
            "{}",
            serde_json::json!({
                "frames_decoded": s.frames_decoded,
                "sent_video_frames": s.sent.video_frames,
                "width": width,
                "height": height,
            })
        );
        let _ = std::io::stdout().flush();
    }
    client.leave().await;
}
