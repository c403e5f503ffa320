//! The Rounds load generator: N rooms × M participants of synthetic audio and video against a
//! running server, through the real signaling and SFU.
//!
//! It signs in as a clinician, creates N visits, joins each with the clinician (provider
//! token) and M-1 guests (admitted), lets media flow for the given time, and reports
//! forwarded packets per second (from the server's /metrics), loss, join times, and, with
//! `--server-pid`, the server's CPU per forwarded packet.

use std::time::{Duration, Instant};

use clap::Parser;
use rounds_bench::{ServerProcess, cpu_time, default_server_bin, machine, write_section};
use rounds_client::{Api, Client, ClientConfig, VideoSource};
use rounds_proto::{HostAction, Role};

#[derive(Parser, Clone)]
#[command(
    about = "Runs N rooms of M synthetic participants against a Rounds server and reports what the SFU forwarded."
)]
struct Args {
    /// A running server to load, e.g. http://127.0.0.1:8080. Without it, a release
    /// rounds-server is started on this machine for the run.
    #[arg(long)]
    server: Option<url::Url>,
    /// Clinician sign-in for --server.
    #[arg(long, default_value = "bench@rounds.example")]
    email: String,
    #[arg(
        long,
        env = "ROUNDS_BENCH_PASSWORD",
        default_value = "benchmark password 1"
    )]
    password: String,
    /// The server process to measure CPU of (when --server is given).
    #[arg(long)]
    server_pid: Option<u32>,
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    #[arg(long, default_value_t = 2)]
    participants: usize,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Video size and rate of every publisher: 720p (1280x720@24, 1200 kbps) or small
    /// (640x360@15, 400 kbps).
    #[arg(long, default_value = "720p", value_parser = ["720p", "small", "tiny"])]
    video: String,
    /// Decode received video with libvpx (costs client CPU; off counts reassembled frames).
    #[arg(long)]
    decode: bool,
    /// Write the results into this Markdown file's section named by --section.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
    #[arg(long, default_value = "sfu")]
    section: String,
    /// A tiny run that checks the load generator still works (for CI).
    #[arg(long)]
    smoke: bool,
}

fn video(kind: &str) -> VideoSource {
    match kind {
        "720p" => VideoSource::hd(),
        "small" => VideoSource::small(),
        _ => VideoSource::TestPattern {
            width: 320,
            height: 240,
            fps: 15,
            bitrate_kbps: 250,
        },
    }
}

async fn forwarded(http: &reqwest::Client, server: &url::Url) -> f64 {
    let Ok(r) = http.get(server.join("/metrics").expect("url")).send().await else {
        return 0.0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("rounds_sfu_forwarded_rtp_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.rooms = 1;
        args.participants = 2;
        args.seconds = 2;
        args.video = "tiny".into();
    }
    let _local;
    let (server, pid) = match &args.server {
        Some(url) => (url.clone(), args.server_pid),
        None => {
            let bin = default_server_bin();
            eprintln!("==> starting {}", bin.display());
            let (process, email, password) = ServerProcess::start(
                &bin,
                "[media]\nenabled = true\nudp_listen = \"127.0.0.1:0\"\n",
            )
            .await?;
            args.email = email;
            args.password = password;
            let url: url::Url = process.url.parse()?;
            let pid = process.child.id();
            _local = Some(process);
            (url, Some(pid))
        }
    };
    let api = Api::new(server.clone())?;
    let access = api.login(&args.email, &args.password).await?.access_token;
    let mut clients: Vec<Client> = Vec::new();
    let mut join_started = Vec::new();
    eprintln!(
        "==> joining {} rooms × {} participants",
        args.rooms, args.participants
    );
    for room in 0..args.rooms {
        let visit = api.create_visit_now(&access, 60, "Load Test").await?;
        let provider_token = api.provider_token(&access, &visit.visit.id).await?;
        let config = |token: &str, seed: u64| {
            let mut c = ClientConfig::new(server.clone(), token.to_owned());
            c.video = video(&args.video);
            c.decode_video = args.decode;
            c.decode_audio = args.decode;
            c.pattern_seed = seed;
            c
        };
        join_started.push(Instant::now());
        let provider = Client::join(config(&provider_token.token, (room * 10) as u64)).await?;
        for n in 1..args.participants {
            let guest = api
                .guest_token(
                    &provider_token.token,
                    &provider_token.room,
                    &format!("Load {n}"),
                    Role::Guest,
                )
                .await?;
            join_started.push(Instant::now());
            let client = Client::join(config(&guest.token, (room * 10 + n) as u64)).await?;
            provider
                .host(client.participant_id(), HostAction::Admit)
                .await?;
            client.wait_admitted(Duration::from_secs(15)).await?;
            clients.push(client);
        }
        clients.push(provider);
    }
    // Everyone sees everyone before measuring.
    for c in &clients {
        let others = args.participants - 1;
        c.wait_stats(Duration::from_secs(60), |s| {
            s.remote
                .values()
                .filter(|r| r.video_frames_received > 0)
                .count()
                >= others
        })
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "participant {} never received everyone's video",
                c.participant_id()
            )
        })?;
    }
    let http = reqwest::Client::new();
    let cpu_before = pid.map(cpu_time);
    let fwd_before = forwarded(&http, &server).await;
    let before: Vec<_> = clients.iter().map(|c| c.stats()).collect();
    let start = Instant::now();
    eprintln!("==> measuring for {} s", args.seconds);
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let wall = start.elapsed().as_secs_f64();
    let fwd = forwarded(&http, &server).await - fwd_before;
    let cpu = pid
        .zip(cpu_before)
        .map(|(p, b)| cpu_time(p).saturating_sub(b));
    let after: Vec<_> = clients.iter().map(|c| c.stats()).collect();

    let (mut received, mut lost, mut frames) = (0u64, 0u64, 0u64);
    let mut joins: Vec<f64> = Vec::new();
    for (b, a) in before.iter().zip(&after) {
        for (id, r) in &a.remote {
            let prior = b.remote.get(id).cloned().unwrap_or_default();
            received += r.rtp_packets - prior.rtp_packets;
            lost += r.video_packets_lost - prior.video_packets_lost;
            frames += r.video_frames_received - prior.video_frames_received;
        }
        if let Some(ms) = a.join_ms {
            joins.push(ms as f64);
        }
    }
    joins.sort_by(f64::total_cmp);
    let loss = if received + lost > 0 {
        lost as f64 / (received + lost) as f64 * 100.0
    } else {
        0.0
    };
    let expected_fps = match args.video.as_str() {
        "720p" => 24.0,
        "small" | "tiny" => 15.0,
        _ => 0.0,
    };
    let streams = (args.rooms * args.participants * (args.participants - 1)) as f64;
    let mut out = format!(
        "## SFU forwarding: {} room(s) × {} participants, {} video\n\nMachine: {}. Server and load generator on the same machine (they share its cores). {} s of steady state after every participant received everyone.\n\n| figure | value |\n|---|---:|\n",
        args.rooms,
        args.participants,
        args.video,
        machine(),
        args.seconds
    );
    out.push_str(&format!(
        "| RTP packets forwarded by the SFU per second | {:.0} |\n",
        fwd / wall
    ));
    out.push_str(&format!(
        "| RTP packets received by clients per second | {:.0} |\n",
        received as f64 / wall
    ));
    if let Some(cpu) = cpu {
        let cpu_s = cpu.as_secs_f64();
        out.push_str(&format!(
            "| server CPU (share of one core) | {:.1} % |\n",
            cpu_s / wall * 100.0
        ));
        if fwd > 0.0 {
            out.push_str(&format!(
                "| server CPU per forwarded packet | {:.1} µs |\n",
                cpu_s / fwd * 1e6
            ));
        }
    }
    out.push_str(&format!(
        "| video packet loss seen by clients | {loss:.3} % |\n"
    ));
    out.push_str(&format!(
        "| video frames received per stream per second (sent: {expected_fps:.0}) | {:.1} |\n",
        frames as f64 / wall / streams.max(1.0)
    ));
    out.push_str(&format!(
        "| join time p50 / max (signaling open to first remote frame) | {:.0} ms / {:.0} ms |\n",
        percentile(&joins, 0.5),
        joins.last().copied().unwrap_or(f64::NAN)
    ));
    out.push_str(&format!(
        "\nRerun: `cargo build --release -p rounds-server -p rounds-bench && $CARGO_TARGET_DIR/release/loadgen --rooms {} --participants {} --seconds {} --video {}`\n",
        args.rooms, args.participants, args.seconds, args.video
    ));
    println!("{out}");
    if received == 0 || fwd <= 0.0 {
        anyhow::bail!("no media flowed");
    }
    if let Some(path) = &args.report {
        write_section(path, &args.section, &out)?;
        eprintln!("==> wrote {}", path.display());
    }
    for c in clients {
        c.leave().await;
    }
    Ok(())
}
