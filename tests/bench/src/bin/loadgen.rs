//! The Rounds load generator: N rooms × M participants of synthetic audio and video against a
//! running server, through the real signaling and SFU.
//!
//! It signs in as a clinician, creates N visits, joins each with the clinician (provider
//! token) and M-1 guests (admitted), lets media flow for the given time, and reports
//! forwarded packets per second (from the server's /metrics), loss, join times, and, with
//! `--server-pid` or a server it started, the server's CPU and its resident memory sampled
//! over the run.
//!
//! Participants are either the Rust client (the default: each encodes its test pattern with
//! libvpx, live) or, with `--replay`, lean peers (`rounds_bench::lean`) that replay a clip
//! encoded once and count what they receive off the wire. A replaying participant is still a
//! whole one: a publisher and a subscriber connection on one signaling session, DTLS-SRTP,
//! admitted by its clinician. Only replay lets 50 visits × 3 run on two cores, where 150
//! live VP8 encoders cannot.
//!
//! With `--check` the run ends with a verdict, and fails unless the server is still up and
//! answering, its memory held steady after `--warm-up`, and loss stayed under `--max-loss`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::future::join_all;
use rounds_bench::clip::Clip;
use rounds_bench::lean::{LeanPeer, Role as LeanRole, SharedStats};
use rounds_bench::memory::{MemoryTrend, RssSample};
use rounds_bench::sfu::{Member, Peers, RoundsSfu};
use rounds_bench::{
    ServerProcess, bench_ip, cpu_time, default_server_bin, machine, rss_kib, write_section,
};
use rounds_client::{Api, Client, ClientConfig, VideoSource};
use rounds_proto::{HostAction, Role};

#[derive(Parser, Clone)]
#[command(
    about = "Runs N rooms of M synthetic participants against a Rounds server and reports what the SFU forwarded, loss and the server's memory."
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
    /// The server process to measure CPU and memory of (when --server is given).
    #[arg(long)]
    server_pid: Option<u32>,
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    #[arg(long, default_value_t = 2)]
    participants: usize,
    /// Seconds of load after everyone has joined (warm-up included).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Video size and rate of every publisher: 720p (1280x720@24, 1200 kbps), small
    /// (640x360@15, 400 kbps) or tiny (320x240@15, 250 kbps).
    #[arg(long, default_value = "720p", value_parser = ["720p", "small", "tiny"])]
    video: String,
    /// Participants replay a pre-encoded clip (lean peers) instead of encoding live.
    #[arg(long)]
    replay: bool,
    /// Decode received video with libvpx (live participants; costs client CPU; off counts
    /// reassembled frames).
    #[arg(long)]
    decode: bool,
    /// Seconds between samples of the server's resident memory.
    #[arg(long, default_value_t = 10)]
    sample_every: u64,
    /// Seconds of load before memory is expected to be steady.
    #[arg(long, default_value_t = 60)]
    warm_up: u64,
    /// Fail unless the server survived, its memory held steady and loss stayed low.
    #[arg(long)]
    check: bool,
    /// Loss limit for --check, percent of RTP packets.
    #[arg(long, default_value_t = 0.5)]
    max_loss: f64,
    /// Memory limit for --check: growth after warm-up, percent of the RSS at warm-up's end.
    #[arg(long, default_value_t = 10.0)]
    max_growth_pct: f64,
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

/// The replayed clip for a `--video` size, matching [`video`]'s live settings.
fn clip(kind: &str) -> anyhow::Result<Clip> {
    match kind {
        "720p" => Clip::encode(4, 1280, 720, 24, 1200),
        "small" => Clip::encode(4, 640, 360, 15, 400),
        _ => Clip::encode(4, 320, 240, 15, 250),
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

/// What every participant received so far, summed. Counters only grow.
#[derive(Debug, Default, Clone, Copy)]
struct Received {
    packets: u64,
    /// Packets that should have arrived (replay: from sequence numbers; live: received plus
    /// the video packets the clients gave up on).
    expected: u64,
    video_frames: u64,
}

impl Received {
    fn since(self, before: Received) -> Received {
        Received {
            packets: self.packets - before.packets,
            expected: self.expected - before.expected,
            video_frames: self.video_frames - before.video_frames,
        }
    }

    fn loss_pct(self) -> f64 {
        if self.expected == 0 {
            return 0.0;
        }
        self.expected.saturating_sub(self.packets) as f64 / self.expected as f64 * 100.0
    }
}

/// The participants of a run.
enum Load {
    Live(Vec<Client>),
    Replay {
        members: Vec<Member>,
        stats: SharedStats,
        clip_fps: u32,
    },
}

impl Load {
    fn received(&self) -> Received {
        match self {
            Load::Live(clients) => {
                let mut r = Received::default();
                for c in clients {
                    for remote in c.stats().remote.values() {
                        r.packets += remote.rtp_packets;
                        r.expected += remote.rtp_packets + remote.video_packets_lost;
                        r.video_frames += remote.video_frames_received;
                    }
                }
                r
            }
            Load::Replay { stats, .. } => {
                let s = stats.lock();
                Received {
                    packets: s.packets,
                    expected: s.expected,
                    video_frames: 0,
                }
            }
        }
    }

    fn join_times_ms(&self) -> Vec<f64> {
        match self {
            Load::Live(clients) => clients
                .iter()
                .filter_map(|c| c.stats().join_ms.map(|ms| ms as f64))
                .collect(),
            Load::Replay { .. } => Vec::new(),
        }
    }

    async fn leave(self) {
        match self {
            Load::Live(clients) => {
                for c in clients {
                    c.leave().await;
                }
            }
            Load::Replay { members, .. } => {
                join_all(members.into_iter().map(Member::leave)).await;
            }
        }
    }
}

async fn join_live(
    args: &Args,
    server: &url::Url,
    email: &str,
    password: &str,
) -> anyhow::Result<Load> {
    let api = Api::new(server.clone())?;
    let access = api.login(email, password).await?.access_token;
    let mut clients: Vec<Client> = Vec::new();
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
    Ok(Load::Live(clients))
}

/// Rooms whose participants join at the same time.
const JOIN_BATCH: usize = 10;

async fn join_replay(
    args: &Args,
    server: &url::Url,
    email: &str,
    password: &str,
) -> anyhow::Result<Load> {
    let clip = Arc::new(clip(&args.video)?);
    let ip = bench_ip();
    let epoch = Instant::now();
    let stats = SharedStats::default();
    let sfu = RoundsSfu::new(server.clone(), email, password, args.rooms).await?;
    let peers = || -> anyhow::Result<Peers> {
        Ok(Peers {
            publisher: Some(LeanPeer::spawn(
                LeanRole::Publisher {
                    clip: clip.clone(),
                    audio: true,
                },
                epoch,
                ip,
            )?),
            subscriber: Some(LeanPeer::spawn(
                LeanRole::Subscriber {
                    stats: stats.clone(),
                },
                epoch,
                ip,
            )?),
        })
    };
    let mut members = Vec::new();
    for batch in (0..args.rooms).collect::<Vec<_>>().chunks(JOIN_BATCH) {
        let joined = join_all(batch.iter().map(|&room| {
            let sfu = &sfu;
            let peers = &peers;
            async move {
                let mut room_members = vec![sfu.host(room, peers()?).await?];
                for n in 1..args.participants {
                    room_members.push(sfu.guest_with(room, peers()?, room * 10 + n).await?);
                }
                anyhow::Ok(room_members)
            }
        }))
        .await;
        for room in joined {
            members.extend(room?);
        }
    }
    for m in &members {
        m.wait_connected(Duration::from_secs(60)).await?;
    }
    let expected = (args.rooms * args.participants * (args.participants - 1)) as f64
        * clip.packets_per_second();
    // Everyone receives everyone before measuring: the subscribers' packet rate reaches
    // nine tenths of what the publishers send them.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p0 = stats.lock().packets;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rate = (stats.lock().packets - p0) as f64 / 2.0;
        if rate >= expected * 0.9 {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "participants receive {rate:.0} packets/s, expected about {expected:.0}: not \
                 everyone receives everyone"
            );
        }
    }
    Ok(Load::Replay {
        members,
        stats,
        clip_fps: clip.fps,
    })
}

/// Whether the server process is still running.
fn alive(local: &mut Option<ServerProcess>, pid: Option<u32>) -> bool {
    match (local.as_mut(), pid) {
        (Some(process), _) => matches!(process.child.try_wait(), Ok(None)),
        (None, Some(pid)) => std::path::Path::new(&format!("/proc/{pid}")).exists(),
        (None, None) => true,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.rooms = 1;
        args.participants = 2;
        args.seconds = 2;
        args.video = "tiny".into();
        args.sample_every = 1;
        args.warm_up = 0;
    }
    let mut local = None;
    let (server, pid) = match &args.server {
        Some(url) => (url.clone(), args.server_pid),
        None => {
            let bin = default_server_bin();
            eprintln!("==> starting {}", bin.display());
            let ip = if args.replay {
                bench_ip()
            } else {
                std::net::Ipv4Addr::LOCALHOST.into()
            };
            let (process, email, password) = ServerProcess::start(
                &bin,
                &format!("[media]\nenabled = true\nudp_listen = \"{ip}:0\"\n"),
            )
            .await?;
            args.email = email;
            args.password = password;
            let url: url::Url = process.url.parse()?;
            let pid = process.child.id();
            local = Some(process);
            (url, Some(pid))
        }
    };
    eprintln!(
        "==> joining {} rooms × {} participants ({})",
        args.rooms,
        args.participants,
        if args.replay {
            "replaying a clip"
        } else {
            "encoding live"
        }
    );
    let join_started = Instant::now();
    let load = if args.replay {
        join_replay(&args, &server, &args.email, &args.password).await?
    } else {
        join_live(&args, &server, &args.email, &args.password).await?
    };
    let joined_in = join_started.elapsed();
    let http = reqwest::Client::new();
    let cpu_before = pid.map(cpu_time);
    let fwd_before = forwarded(&http, &server).await;
    let before = load.received();
    let start = Instant::now();
    eprintln!(
        "==> everyone joined in {:.1} s; load for {} s",
        joined_in.as_secs_f64(),
        args.seconds
    );
    let mut samples = Vec::new();
    let mut crashed = false;
    let every = Duration::from_secs(args.sample_every.max(1));
    let end = start + Duration::from_secs(args.seconds);
    let mut last = before;
    loop {
        let now = Instant::now();
        if !alive(&mut local, pid) {
            crashed = true;
            eprintln!("==> the server is gone");
            break;
        }
        if let Some(pid) = pid {
            samples.push(RssSample {
                at: now - start,
                rss_kib: rss_kib(pid),
            });
        }
        let received = load.received();
        let step = received.since(last);
        last = received;
        eprintln!(
            "{:>6.0} s  RSS {:>7} KiB  received {:>8} packets  loss {:.3} %",
            (now - start).as_secs_f64(),
            samples.last().map_or(0, |s| s.rss_kib),
            step.packets,
            step.loss_pct(),
        );
        if now >= end {
            break;
        }
        tokio::time::sleep_until((now + every).min(end).into()).await;
    }
    let wall = start.elapsed().as_secs_f64();
    let fwd = forwarded(&http, &server).await - fwd_before;
    let cpu = pid
        .zip(cpu_before)
        .map(|(p, b)| cpu_time(p).saturating_sub(b));
    let received = load.received().since(before);
    let answering = http
        .get(server.join("/healthz")?)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    let survived = !crashed && alive(&mut local, pid) && answering;
    let mut joins = load.join_times_ms();
    joins.sort_by(f64::total_cmp);
    let loss = received.loss_pct();
    let trend = MemoryTrend::after(&samples, Duration::from_secs(args.warm_up));

    let participants = args.rooms * args.participants;
    let streams = (args.rooms * args.participants * (args.participants - 1)) as f64;
    let mut out = format!(
        "## Load: {} visit(s) × {} participants, {} video{}\n\nMachine: {}. Server and load generator on the same machine (they share its cores). {} participants joined in {:.0} s; then {} s of load{}.\n\n| figure | value |\n|---|---:|\n",
        args.rooms,
        args.participants,
        args.video,
        if args.replay {
            ", replayed from a pre-encoded clip"
        } else {
            ", encoded live"
        },
        machine(),
        participants,
        joined_in.as_secs_f64(),
        args.seconds,
        if samples.is_empty() {
            String::new()
        } else {
            format!(
                ", the server's resident memory sampled every {} s",
                every.as_secs()
            )
        },
    );
    out.push_str(&format!(
        "| server still up and answering at the end | {} |\n",
        if survived { "yes" } else { "**no**" }
    ));
    out.push_str(&format!(
        "| RTP packets forwarded by the SFU per second | {:.0} |\n",
        fwd / wall
    ));
    out.push_str(&format!(
        "| RTP packets received by participants per second | {:.0} |\n",
        received.packets as f64 / wall
    ));
    out.push_str(&format!(
        "| packet loss seen by participants ({} packets expected) | {loss:.3} % |\n",
        received.expected
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
    if let Some(t) = &trend {
        let mib = |kib: u64| kib as f64 / 1024.0;
        out.push_str(&format!(
            "| server RSS after {} s warm-up / at the end / peak after warm-up | {:.1} / {:.1} / {:.1} MiB |\n",
            args.warm_up,
            mib(t.baseline_kib),
            mib(t.end_kib),
            mib(t.peak_kib),
        ));
        out.push_str(&format!(
            "| growth after warm-up ({} samples) | {:+.1} MiB ({:+.1} %), trend {:+.0} KiB/min |\n",
            t.samples,
            t.growth_kib as f64 / 1024.0,
            t.growth_kib as f64 / t.baseline_kib.max(1) as f64 * 100.0,
            t.slope_kib_per_min,
        ));
    }
    match &load {
        Load::Live(_) => {
            let expected_fps = match args.video.as_str() {
                "720p" => 24.0,
                _ => 15.0,
            };
            out.push_str(&format!(
                "| video frames received per stream per second (sent: {expected_fps:.0}) | {:.1} |\n",
                received.video_frames as f64 / wall / streams.max(1.0)
            ));
            out.push_str(&format!(
                "| join time p50 / max (signaling open to first remote frame) | {:.0} ms / {:.0} ms |\n",
                percentile(&joins, 0.5),
                joins.last().copied().unwrap_or(f64::NAN)
            ));
        }
        Load::Replay { clip_fps, .. } => {
            out.push_str(&format!(
                "| streams received (video at {clip_fps} fps and audio, each) | {streams:.0} |\n"
            ));
        }
    }
    if samples.len() > 2 {
        // One row a minute (or every sample in a short run) keeps the table readable.
        let stride = (60 / every.as_secs().max(1)).max(1) as usize;
        let stride = if samples.len() <= 13 { 1 } else { stride };
        out.push_str("\nServer RSS over the run:\n\n| time | RSS |\n|---:|---:|\n");
        for (i, s) in samples.iter().enumerate() {
            if i % stride == 0 || i + 1 == samples.len() {
                out.push_str(&format!(
                    "| {} s | {:.1} MiB |\n",
                    s.at.as_secs(),
                    s.rss_kib as f64 / 1024.0
                ));
            }
        }
    }
    out.push_str(&format!(
        "\nRerun: `cargo build --release -p rounds-server -p rounds-bench && $CARGO_TARGET_DIR/release/loadgen --rooms {} --participants {} --seconds {} --video {}{}`\n",
        args.rooms,
        args.participants,
        args.seconds,
        args.video,
        if args.replay {
            format!(
                " --replay --warm-up {} --check",
                args.warm_up
            )
        } else {
            String::new()
        },
    ));
    let mut verdict = Vec::new();
    if args.check {
        if !survived {
            verdict.push("the server crashed or stopped answering".to_owned());
        }
        if loss >= args.max_loss {
            verdict.push(format!("loss {loss:.3} % is not under {} %", args.max_loss));
        }
        match &trend {
            None => verdict.push(format!(
                "too few memory samples after the {} s warm-up to judge",
                args.warm_up
            )),
            Some(t) if !t.is_steady(args.max_growth_pct) => verdict.push(format!(
                "server memory grew {:.1} MiB after warm-up, more than {} % of {:.1} MiB",
                t.growth_kib as f64 / 1024.0,
                args.max_growth_pct,
                t.baseline_kib as f64 / 1024.0
            )),
            Some(_) => {}
        }
        out.push_str(&format!(
            "\nVerdict: {}\n",
            if verdict.is_empty() {
                format!(
                    "**pass**: no crash, memory steady after warm-up (growth within {} %), loss under {} %.",
                    args.max_growth_pct, args.max_loss
                )
            } else {
                format!("**fail**: {}.", verdict.join("; "))
            }
        ));
    }
    println!("{out}");
    if received.packets == 0 || fwd <= 0.0 {
        anyhow::bail!("no media flowed");
    }
    if let Some(path) = &args.report {
        write_section(path, &args.section, &out)?;
        eprintln!("==> wrote {}", path.display());
    }
    load.leave().await;
    if !verdict.is_empty() {
        anyhow::bail!("{}", verdict.join("; "));
    }
    Ok(())
}
