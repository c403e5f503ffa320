//! Forwarding capacity per server core, Rounds against Janus (measure 1), and the latency
//! the SFU adds at a fraction of that capacity (measure 3).
//!
//! The SFU runs pinned to one core and this generator to another. Each room has one
//! publisher replaying a pre-encoded 720p VP8 + Opus clip; subscribers join in steps, each
//! receiving its room's publisher and only counting (see `rounds_bench::lean`). After each
//! step settles, a window measures what subscribers received, the loss from sequence gaps, the
//! delay from RTP timestamps, and the SFU's CPU time. The ramp stops when loss exceeds 0.5 %
//! or p99 delay exceeds 10 ms; the capacity is the last step within both limits, reported as
//! forwarded packets and megabits per second of server CPU.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use futures_util::future::join_all;
use rounds_bench::clip::Clip;
use rounds_bench::lean::{LeanPeer, Role, SharedStats};
use rounds_bench::sfu::{JanusProcess, JanusSfu, Member, RoundsSfu};
use rounds_bench::{
    ServerProcess, bench_ip, cpu_time, default_server_bin, machine, percentile, pin_self,
    write_section,
};

#[derive(Parser, Clone)]
#[command(
    about = "Forwarding capacity per server core: Rounds against Janus, same load, same method."
)]
struct Args {
    /// Which SFUs to measure: rounds, janus, or both (side by side).
    #[arg(long, default_value = "both", value_parser = ["rounds", "janus", "both"])]
    sfu: String,
    /// Rooms, one publisher each.
    #[arg(long, default_value_t = 4)]
    rooms: usize,
    /// Subscribers added per step.
    #[arg(long, default_value_t = 20)]
    step: usize,
    /// Stop adding subscribers here even if the limits hold.
    #[arg(long, default_value_t = 600)]
    max_subscribers: usize,
    /// Seconds to let each step settle before measuring.
    #[arg(long, default_value_t = 3)]
    settle: u64,
    /// Seconds measured per step.
    #[arg(long, default_value_t = 5)]
    window: u64,
    /// Core for the SFU (taskset); a negative value leaves it unpinned.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    server_core: i64,
    /// Core for this generator (taskset); a negative value leaves it unpinned.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    generator_core: i64,
    /// Loss limit, percent.
    #[arg(long, default_value_t = 0.5)]
    max_loss: f64,
    /// p99 delay limit, milliseconds.
    #[arg(long, default_value_t = 10.0)]
    max_p99_ms: f64,
    /// The address media runs over (default: this machine's first global IPv4 address).
    #[arg(long, default_value_t = bench_ip())]
    ip: std::net::IpAddr,
    /// Skip the ramp: take this many subscribers as the capacity found earlier and only
    /// measure the latency at 50 % and 80 % of it (Rounds).
    #[arg(long)]
    capacity_subscribers: Option<usize>,
    /// Write results into this Markdown file (sections `capacity` and `latency`).
    #[arg(long)]
    report: Option<std::path::PathBuf>,
    /// A tiny run that checks everything still works (for CI).
    #[arg(long)]
    smoke: bool,
}

#[derive(Clone, Debug, Default)]
struct Step {
    subscribers: usize,
    pps: f64,
    mbps: f64,
    loss_pct: f64,
    p50_ms: f64,
    p99_ms: f64,
    server_cpu: f64,
    generator_cpu: f64,
    /// Rounds' own counter of forwarded packets, per second.
    forwarded_pps: Option<f64>,
    sfu_delay: Option<SfuDelay>,
}

/// The server's own ingress-to-egress histogram (Rounds only), over one window.
#[derive(Clone, Copy, Debug)]
struct SfuDelay {
    p50_us: f64,
    p99_us: f64,
}

impl Step {
    fn within(&self, args: &Args) -> bool {
        self.loss_pct <= args.max_loss && self.p99_ms <= args.max_p99_ms
    }
    fn per_core_pps(&self) -> f64 {
        self.pps / self.server_cpu.max(1e-9)
    }
    fn per_core_mbps(&self) -> f64 {
        self.mbps / self.server_cpu.max(1e-9)
    }
}

enum Sfu {
    Rounds {
        sfu: Box<RoundsSfu>,
        _process: ServerProcess,
        metrics: url::Url,
    },
    Janus {
        sfu: JanusSfu,
        _process: JanusProcess,
    },
}

impl Sfu {
    fn name(&self) -> &'static str {
        match self {
            Sfu::Rounds { .. } => "Rounds",
            Sfu::Janus { .. } => "Janus",
        }
    }

    async fn publish(&self, room: usize, peer: LeanPeer) -> anyhow::Result<Member> {
        match self {
            Sfu::Rounds { sfu, .. } => sfu.publish(room, peer).await,
            Sfu::Janus { sfu, .. } => sfu.publish(room, peer).await,
        }
    }

    async fn subscribe(&self, room: usize, peer: LeanPeer, n: usize) -> anyhow::Result<Member> {
        match self {
            Sfu::Rounds { sfu, .. } => sfu.subscribe(room, peer, n).await,
            Sfu::Janus { sfu, .. } => sfu.subscribe(room, peer, n).await,
        }
    }
}

/// Prometheus text: the value of a sample line starting with `name`.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
}

/// Cumulative histogram buckets `(le, count)` of `name`.
fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut out: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect();
    // The exporter orders series by label text, not by bound.
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The `p` quantile from the difference of two cumulative bucket sets, interpolated inside
/// the bucket.
fn bucket_quantile(before: &[(f64, f64)], after: &[(f64, f64)], p: f64) -> f64 {
    let diff: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, c)| {
            let b = before
                .iter()
                .find(|(l, _)| l == le)
                .map(|(_, c)| *c)
                .unwrap_or(0.0);
            (*le, c - b)
        })
        .collect();
    let total = diff.last().map(|(_, c)| *c).unwrap_or(0.0);
    if total <= 0.0 {
        return f64::NAN;
    }
    let target = total * p;
    let mut prev = (0.0, 0.0);
    for (le, c) in diff {
        if c >= target {
            if le.is_infinite() {
                return prev.0;
            }
            let span = (c - prev.1).max(1e-9);
            return prev.0 + (le - prev.0) * (target - prev.1) / span;
        }
        prev = (le, c);
    }
    prev.0
}

async fn scrape(http: &reqwest::Client, url: &url::Url) -> String {
    match http.get(url.clone()).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

const DELAY_METRIC: &str = "rounds_sfu_forward_delay_seconds";

struct Run {
    sfu: Sfu,
    pid: u32,
    stats: SharedStats,
    epoch: Instant,
    publishers: Vec<Member>,
    subscribers: Vec<Member>,
    rooms: usize,
    ip: std::net::IpAddr,
}

impl Run {
    async fn start(which: &str, args: &Args, clip: Arc<Clip>) -> anyhow::Result<Run> {
        let epoch = Instant::now();
        let (sfu, pid) = match which {
            "rounds" => {
                let bin = default_server_bin();
                let (process, email, password) = ServerProcess::start_on(
                    &bin,
                    &format!("[media]\nenabled = true\nudp_listen = \"{}:0\"\n", args.ip),
                    (args.server_core >= 0).then_some(args.server_core as usize),
                )
                .await?;
                let url: url::Url = process.url.parse()?;
                let pid = process.child.id();
                let sfu = RoundsSfu::new(url.clone(), &email, &password, args.rooms).await?;
                (
                    Sfu::Rounds {
                        sfu: Box::new(sfu),
                        _process: process,
                        metrics: url.join("/metrics")?,
                    },
                    pid,
                )
            }
            _ => {
                let process = JanusProcess::start(
                    (args.server_core >= 0).then_some(args.server_core as usize),
                    args.ip,
                )
                .await?;
                let pid = process.child.id();
                let sfu = JanusSfu::new(process.url.clone(), args.rooms).await?;
                (
                    Sfu::Janus {
                        sfu,
                        _process: process,
                    },
                    pid,
                )
            }
        };
        let mut run = Run {
            sfu,
            pid,
            stats: SharedStats::default(),
            epoch,
            publishers: Vec::new(),
            subscribers: Vec::new(),
            rooms: args.rooms,
            ip: args.ip,
        };
        for room in 0..args.rooms {
            let peer = LeanPeer::spawn(
                Role::Publisher {
                    clip: clip.clone(),
                    audio: true,
                },
                run.epoch,
                args.ip,
            )?;
            let member = run
                .sfu
                .publish(room, peer)
                .await
                .with_context(|| format!("{} publisher {room}", run.sfu.name()))?;
            member.peer.wait_connected(Duration::from_secs(20)).await?;
            run.publishers.push(member);
        }
        Ok(run)
    }

    async fn add_subscribers(&mut self, count: usize) -> anyhow::Result<()> {
        let base = self.subscribers.len();
        let joins = (0..count).map(|i| {
            let n = base + i;
            let stats = self.stats.clone();
            let epoch = self.epoch;
            let sfu = &self.sfu;
            let room = n % self.rooms;
            let ip = self.ip;
            async move {
                let peer = LeanPeer::spawn(Role::Subscriber { stats }, epoch, ip)?;
                let member = sfu.subscribe(room, peer, n).await?;
                member.peer.wait_connected(Duration::from_secs(30)).await?;
                anyhow::Ok(member)
            }
        });
        // Joins in batches, so signaling does not disturb the measure more than it must.
        let results = join_all(joins).await;
        for r in results {
            self.subscribers.push(r?);
        }
        Ok(())
    }

    async fn measure(&mut self, settle: u64, window: u64) -> Step {
        tokio::time::sleep(Duration::from_secs(settle)).await;
        let http = reqwest::Client::new();
        let metrics_url = match &self.sfu {
            Sfu::Rounds { metrics, .. } => Some(metrics.clone()),
            Sfu::Janus { .. } => None,
        };
        let scrape_before = match &metrics_url {
            Some(u) => scrape(&http, u).await,
            None => String::new(),
        };
        let (p0, b0, e0) = {
            let mut s = self.stats.lock();
            s.take_delays();
            (s.packets, s.bytes, s.expected)
        };
        let cpu0 = cpu_time(self.pid);
        let gen0 = cpu_time(std::process::id());
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(window)).await;
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_time(self.pid).saturating_sub(cpu0).as_secs_f64() / wall;
        let generator = cpu_time(std::process::id())
            .saturating_sub(gen0)
            .as_secs_f64()
            / wall;
        let scrape_after = match &metrics_url {
            Some(u) => scrape(&http, u).await,
            None => String::new(),
        };
        let (packets, bytes, expected, mut delays) = {
            let mut s = self.stats.lock();
            (
                s.packets - p0,
                s.bytes - b0,
                s.expected - e0,
                s.take_delays(),
            )
        };
        delays.sort_unstable();
        let sorted: Vec<f64> = delays.iter().map(|&d| f64::from(d) / 1000.0).collect();
        let loss = if expected > 0 {
            expected.saturating_sub(packets) as f64 / expected as f64 * 100.0
        } else {
            100.0
        };
        let forwarded_pps = metrics_url.as_ref().map(|_| {
            (metric(&scrape_after, "rounds_sfu_forwarded_rtp_total").unwrap_or(0.0)
                - metric(&scrape_before, "rounds_sfu_forwarded_rtp_total").unwrap_or(0.0))
                / wall
        });
        let (b, a) = (
            buckets(&scrape_before, DELAY_METRIC),
            buckets(&scrape_after, DELAY_METRIC),
        );
        let sfu_delay = (!a.is_empty()).then(|| SfuDelay {
            p50_us: bucket_quantile(&b, &a, 0.5) * 1e6,
            p99_us: bucket_quantile(&b, &a, 0.99) * 1e6,
        });
        Step {
            subscribers: self.subscribers.len(),
            pps: packets as f64 / wall,
            mbps: bytes as f64 * 8.0 / wall / 1e6,
            loss_pct: loss,
            p50_ms: percentile(&sorted, 0.5),
            p99_ms: percentile(&sorted, 0.99),
            server_cpu: cpu,
            generator_cpu: generator,
            forwarded_pps,
            sfu_delay,
        }
    }
}

fn print_step(name: &str, s: &Step) {
    eprintln!(
        "{name:>6} subs {:>4}  recv {:>7.0} pkt/s {:>6.1} Mbit/s  loss {:>6.3} %  delay p50 {:>6.2} ms p99 {:>6.2} ms  server cpu {:>5.1} %  gen cpu {:>5.1} %{}{}",
        s.subscribers,
        s.pps,
        s.mbps,
        s.loss_pct,
        s.p50_ms,
        s.p99_ms,
        s.server_cpu * 100.0,
        s.generator_cpu * 100.0,
        s.forwarded_pps
            .map(|f| format!("  (server counted {f:.0} fwd/s)"))
            .unwrap_or_default(),
        s.sfu_delay
            .map(|d| format!("  in-server p50 {:.0} µs p99 {:.0} µs", d.p50_us, d.p99_us))
            .unwrap_or_default(),
    );
}

struct Outcome {
    name: &'static str,
    steps: Vec<Step>,
    best: Option<Step>,
    stop: String,
    latency: Vec<(f64, Step)>,
}

async fn ramp(which: &str, args: &Args, clip: Arc<Clip>) -> anyhow::Result<Outcome> {
    if let Some(subscribers) = args.capacity_subscribers {
        let best = Step {
            subscribers,
            ..Step::default()
        };
        return Ok(Outcome {
            name: if which == "rounds" { "Rounds" } else { "Janus" },
            steps: Vec::new(),
            latency: latency(which, args, clip, &best).await?,
            best: Some(best),
            stop: "given".into(),
        });
    }
    let mut run = Run::start(which, args, clip.clone()).await?;
    let name = run.sfu.name();
    eprintln!("==> {name}: {} publishers connected; ramping", args.rooms);
    let mut steps: Vec<Step> = Vec::new();
    let stop;
    loop {
        if let Err(error) = run.add_subscribers(args.step).await {
            stop = format!("subscribers could not join: {error:#}");
            break;
        }
        let step = run.measure(args.settle, args.window).await;
        print_step(name, &step);
        let ok = step.within(args);
        steps.push(step.clone());
        if !ok {
            stop = format!(
                "loss {:.3} % / p99 {:.2} ms beyond the limits at {} subscribers",
                step.loss_pct, step.p99_ms, step.subscribers
            );
            break;
        }
        if run.subscribers.len() + args.step > args.max_subscribers {
            stop = format!(
                "reached --max-subscribers {} within the limits",
                args.max_subscribers
            );
            break;
        }
    }
    drop(run);
    let best = steps.iter().rev().find(|s| s.within(args)).cloned();
    let latency = match &best {
        Some(best) if which == "rounds" => latency(which, args, clip, best).await?,
        _ => Vec::new(),
    };
    Ok(Outcome {
        name,
        steps,
        best,
        stop,
        latency,
    })
}

/// Measure 3: the latency the SFU adds, at 50 % and 80 % of the capacity found.
async fn latency(
    which: &str,
    args: &Args,
    clip: Arc<Clip>,
    best: &Step,
) -> anyhow::Result<Vec<(f64, Step)>> {
    let mut out = Vec::new();
    for fraction in [0.5, 0.8] {
        let subs = ((best.subscribers as f64 * fraction).round() as usize).max(1);
        let mut run = Run::start(which, args, clip.clone()).await?;
        run.add_subscribers(subs).await?;
        let step = run.measure(args.settle, args.window * 2).await;
        eprintln!("==> at {:.0} % of capacity:", fraction * 100.0);
        print_step(run.sfu.name(), &step);
        out.push((fraction, step));
    }
    Ok(out)
}

fn report(args: &Args, clip: &Clip, outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    out.push_str("## Forwarding capacity per server core (measure 1)\n\n");
    out.push_str(&format!(
        "Machine: {}. The SFU pinned to core {} (`taskset`), the load generator to core {}. \
         {} rooms, each with one publisher replaying a pre-encoded {}x{} VP8 clip at {} fps \
         ({:.0} kbit/s of payload) plus 20 ms Opus packets ({:.0} packets/s per publisher); \
         subscribers join {} at a time, spread over the rooms, and only count (RTP headers read \
         off the wire, loss from sequence gaps, delay from RTP timestamps stamped at send time). \
         Each step settles {} s and is measured over {} s. The ramp stops when loss exceeds \
         {} % or p99 delay exceeds {} ms; capacity is the last step within both, divided by the \
         SFU's CPU time (user + system, all threads). Janus {}: VideoRoom plugin, WebSocket \
         transport on loopback, nothing else loaded, started with a configuration written at \
         run time.\n\n",
        machine(),
        args.server_core,
        args.generator_core,
        args.rooms,
        clip.width,
        clip.height,
        clip.fps,
        clip.video_kbps(),
        clip.packets_per_second(),
        args.step,
        args.settle,
        args.window,
        args.max_loss,
        args.max_p99_ms,
        JanusProcess::version(),
    ));
    out.push_str("| SFU | subscribers | packets/s | Mbit/s | loss | delay p50 / p99 | SFU CPU | packets/s per core | Mbit/s per core | stopped because |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for o in outcomes {
        match &o.best {
            Some(s) => out.push_str(&format!(
                "| {} | {} | {:.0} | {:.1} | {:.3} % | {:.2} / {:.2} ms | {:.0} % | **{:.0}** | **{:.1}** | {} |\n",
                o.name,
                s.subscribers,
                s.pps,
                s.mbps,
                s.loss_pct,
                s.p50_ms,
                s.p99_ms,
                s.server_cpu * 100.0,
                s.per_core_pps(),
                s.per_core_mbps(),
                o.stop
            )),
            None => out.push_str(&format!(
                "| {} | – | – | – | – | – | – | – | – | {} |\n",
                o.name, o.stop
            )),
        }
    }
    let rounds = outcomes.iter().find(|o| o.name == "Rounds");
    let janus = outcomes.iter().find(|o| o.name == "Janus");
    if let Some(r) = rounds.and_then(|o| o.best.as_ref()) {
        let target = 60_000.0;
        out.push_str(&format!(
            "\nRounds: {:.0} packets/s per core, target ≥ {target:.0}: **{}**.\n",
            r.per_core_pps(),
            if r.per_core_pps() >= target {
                "met"
            } else {
                "missed"
            }
        ));
        if let Some(j) = janus.and_then(|o| o.best.as_ref()) {
            let ratio = r.per_core_pps() / j.per_core_pps().max(1e-9);
            let sustained = r.pps / j.pps.max(1e-9);
            out.push_str(&format!(
                "Rounds ÷ Janus, packets/s per core: **{ratio:.2}×**, target ≥ 3×: **{}**. \
                 Highest load within the limits, Rounds ÷ Janus: {sustained:.2}×.\n",
                if ratio >= 3.0 { "met" } else { "missed" }
            ));
        }
    }
    out.push_str("\nEvery step:\n\n| SFU | subscribers | packets/s | loss | delay p50 / p99 | SFU CPU | generator CPU |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for o in outcomes {
        for s in &o.steps {
            out.push_str(&format!(
                "| {} | {} | {:.0} | {:.3} % | {:.2} / {:.2} ms | {:.0} % | {:.0} % |\n",
                o.name,
                s.subscribers,
                s.pps,
                s.loss_pct,
                s.p50_ms,
                s.p99_ms,
                s.server_cpu * 100.0,
                s.generator_cpu * 100.0
            ));
        }
    }
    out.push_str(&format!(
        "\nRerun: `scripts/bench.sh capacity` (or `$CARGO_TARGET_DIR/release/capacity --rooms {} --step {} --report docs/benchmarks.md`).\n",
        args.rooms, args.step
    ));
    out
}

fn latency_report(args: &Args, outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let latency: Vec<&(f64, Step)> = outcomes.iter().flat_map(|o| o.latency.iter()).collect();
    if !latency.is_empty() {
        out.push_str("## Latency the SFU adds (measure 3)\n\nInside the server: from the moment a datagram is read off the socket to the moment each forwarded copy is handed to the kernel (histogram `rounds_sfu_forward_delay_seconds`, read from /metrics before and after the window). Same load as above at 50 % and 80 % of the Rounds capacity found; the end-to-end delay seen by subscribers (relative, see above) is shown beside it.\n\n| load | subscribers | packets/s | in-server p50 | in-server p99 | target p50 / p99 | end-to-end p50 / p99 |\n|---|---:|---:|---:|---:|---:|---:|\n");
        for (fraction, s) in latency {
            let (p50, p99) = s
                .sfu_delay
                .map(|d| (d.p50_us / 1000.0, d.p99_us / 1000.0))
                .unwrap_or((f64::NAN, f64::NAN));
            let verdict = if p50 < 0.5 && p99 < 2.0 {
                "met"
            } else {
                "missed"
            };
            out.push_str(&format!(
                "| {:.0} % | {} | {:.0} | {:.3} ms | {:.3} ms | < 0.5 / < 2 ms: **{verdict}** | {:.2} / {:.2} ms |\n",
                fraction * 100.0,
                s.subscribers,
                s.pps,
                p50,
                p99,
                s.p50_ms,
                s.p99_ms
            ));
        }
    }
    out.push_str(&format!(
        "\nRerun: `scripts/bench.sh capacity` (or, with the capacity in subscribers from the table above, `$CARGO_TARGET_DIR/release/capacity --sfu rounds --rooms {} --capacity-subscribers N --report docs/benchmarks.md`).\n",
        args.rooms
    ));
    out
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.rooms = 1;
        args.step = 2;
        args.max_subscribers = 2;
        args.settle = 1;
        args.window = 2;
        // CI machines may have one core.
        args.server_core = -1;
        args.generator_core = -1;
        // Smoke runs check that the pieces work, not the limits.
        args.max_loss = 100.0;
        args.max_p99_ms = f64::INFINITY;
    }
    if args.generator_core >= 0 {
        pin_self(args.generator_core as usize)?;
    }
    eprintln!("==> encoding the clip once");
    let clip = Arc::new(if args.smoke {
        Clip::encode(1, 320, 240, 24, 300)?
    } else {
        Clip::hd()?
    });
    eprintln!(
        "==> clip: {} frames, {:.0} kbit/s video, {:.0} packets/s per publisher",
        clip.frames.len(),
        clip.video_kbps(),
        clip.packets_per_second()
    );
    let which: Vec<&str> = match args.sfu.as_str() {
        "both" => vec!["rounds", "janus"],
        one => vec![one],
    };
    let mut outcomes = Vec::new();
    for w in which {
        outcomes.push(ramp(w, &args, clip.clone()).await?);
    }
    let text = report(&args, &clip, &outcomes);
    let latency_text = latency_report(&args, &outcomes);
    println!("{text}\n{latency_text}");
    if args.smoke {
        for o in &outcomes {
            let Some(step) = o.steps.last() else {
                bail!("{}: no step measured ({})", o.name, o.stop);
            };
            if step.pps <= 0.0 {
                bail!("{}: no media reached the subscribers", o.name);
            }
        }
    }
    if let Some(path) = &args.report {
        if args.capacity_subscribers.is_none() {
            write_section(path, "capacity", &text)?;
        }
        if !latency_text.is_empty() {
            write_section(path, "latency", &latency_text)?;
        }
        eprintln!("==> wrote {}", path.display());
    }
    Ok(())
}
