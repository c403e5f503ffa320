//! Soak (measure 5): join/leave cycles with tracks against one Rounds server, sampling its
//! resident memory, open file descriptors and CPU every 100 cycles, then its idle CPU once
//! everyone has left.
//!
//! Each cycle a guest joins a room, is admitted, publishes audio and video (a pre-encoded
//! clip) over a real DTLS-SRTP connection, waits until media flows, says `leave` and closes.
//! One subscriber per room stays for the whole run, so every published track is forwarded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::future::join_all;
use rounds_bench::clip::Clip;
use rounds_bench::lean::{LeanPeer, Role, SharedStats};
use rounds_bench::sfu::RoundsSfu;
use rounds_bench::{
    ServerProcess, bench_ip, cpu_time, default_server_bin, machine, open_fds, pin_self, rss_kib,
    write_section,
};

#[derive(Parser)]
#[command(
    about = "Join/leave soak against a Rounds server: memory, file descriptors and idle CPU."
)]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    cycles: usize,
    /// Cycles run at once (spread over as many rooms).
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    #[arg(long, default_value_t = 100)]
    sample_every: usize,
    /// Core for the server and for this generator (taskset); negative leaves them unpinned.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    server_core: i64,
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    generator_core: i64,
    #[arg(long)]
    report: Option<std::path::PathBuf>,
    #[arg(long)]
    smoke: bool,
}

struct Sample {
    cycles: usize,
    rss_kib: u64,
    fds: usize,
    cpu: f64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.cycles = 40;
        args.sample_every = 20;
    }
    if args.generator_core >= 0 {
        pin_self(args.generator_core as usize)?;
    }
    let ip = bench_ip();
    let clip = Arc::new(Clip::encode(1, 320, 240, 24, 300)?);
    let bin = default_server_bin();
    let core = (args.server_core >= 0).then_some(args.server_core as usize);
    let (process, email, password) = ServerProcess::start_on(
        &bin,
        &format!("[media]\nenabled = true\nudp_listen = \"{ip}:0\"\n"),
        core,
    )
    .await?;
    let pid = process.child.id();
    let url: url::Url = process.url.parse()?;
    let rooms = args.parallel.max(1);
    let sfu = RoundsSfu::new(url, &email, &password, rooms).await?;
    let epoch = Instant::now();
    let stats = SharedStats::default();
    let mut watchers = Vec::new();
    for room in 0..rooms {
        let peer = LeanPeer::spawn(
            Role::Subscriber {
                stats: stats.clone(),
            },
            epoch,
            ip,
        )?;
        watchers.push(sfu.subscribe(room, peer, 100_000 + room).await?);
    }
    let mut samples = Vec::new();
    let sample = |cycles: usize, last: &mut (Instant, Duration)| {
        let now = Instant::now();
        let cpu = cpu_time(pid);
        let share = cpu.saturating_sub(last.1).as_secs_f64()
            / now
                .saturating_duration_since(last.0)
                .as_secs_f64()
                .max(1e-9);
        *last = (now, cpu);
        Sample {
            cycles,
            rss_kib: rss_kib(pid),
            fds: open_fds(pid),
            cpu: share,
        }
    };
    let mut last = (Instant::now(), cpu_time(pid));
    // Baseline after one warm-up round, so lazily built state (pools, caches) is in place.
    let mut done = 0;
    let mut failures = 0;
    let started = Instant::now();
    while done < args.cycles {
        let batch = rooms.min(args.cycles - done);
        let results = join_all((0..batch).map(|i| {
            let sfu = &sfu;
            let clip = clip.clone();
            async move {
                let peer = LeanPeer::spawn(Role::Publisher { clip, audio: true }, epoch, ip)?;
                let member = sfu.guest(i, peer, done + i, true).await?;
                member.peer.wait_connected(Duration::from_secs(20)).await?;
                // Media flows for a moment before leaving.
                tokio::time::sleep(Duration::from_millis(100)).await;
                member.leave().await;
                anyhow::Ok(())
            }
        }))
        .await;
        for r in results {
            if let Err(error) = r {
                failures += 1;
                eprintln!("cycle failed: {error:#}");
            }
        }
        let before = done;
        done += batch;
        if done == batch || done / args.sample_every != before / args.sample_every {
            let s = sample(done, &mut last);
            eprintln!(
                "{:>6} cycles  RSS {:>7} KiB  fds {:>4}  CPU {:>5.1} %",
                s.cycles,
                s.rss_kib,
                s.fds,
                s.cpu * 100.0
            );
            samples.push(s);
        }
    }
    let elapsed = started.elapsed();
    drop(watchers);
    // Idle: everyone gone, give the server 10 s, then measure 10 s.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_fds = open_fds(pid);
    let idle_rss = rss_kib(pid);
    let c0 = cpu_time(pid);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cpu = cpu_time(pid).saturating_sub(c0).as_secs_f64() / t0.elapsed().as_secs_f64();

    // The first sample (after one batch) is before warm-up; growth counts from the second.
    let first = samples.get(1).unwrap_or(&samples[0]);
    let lastsample = samples.last().unwrap_or(first);
    let per_cycle = |from: &Sample, to: &Sample| {
        (to.rss_kib as f64 - from.rss_kib as f64) * 1024.0
            / to.cycles.saturating_sub(from.cycles).max(1) as f64
    };
    let growth = per_cycle(first, lastsample);
    // The server's row caches and SQLite's page caches are bounded but fill over the first
    // thousands of cycles, so the whole-run figure mixes that warm-up with any leak. A leak
    // keeps growing: the second half of the run shows it on its own, and is what is judged.
    let middle = samples
        .iter()
        .find(|s| s.cycles >= lastsample.cycles / 2)
        .unwrap_or(first);
    let late_growth = per_cycle(middle, lastsample);
    let mut out = format!(
        "## Soak (measure 5)\n\nMachine: {}. {} join/leave cycles ({} at a time) against one release `rounds-server`{}; each cycle a guest joins, is admitted, publishes Opus + VP8 over DTLS-SRTP until connected and media flows, says `leave` and closes; one subscriber per room stays throughout. {} cycles failed. Took {:.0} s.\n\n",
        machine(),
        args.cycles,
        rooms,
        if core.is_some() {
            " pinned to one core"
        } else {
            ""
        },
        failures,
        elapsed.as_secs_f64()
    );
    out.push_str(&format!(
        "| figure | value | target |\n|---|---:|---:|\n\
         | memory growth per cycle, second half (RSS, cycle {} to {}) | {late_growth:.0} bytes | < 1024 bytes: **{}** |\n\
         | memory growth per cycle, whole run (RSS, second sample to last; warm-up included) | {growth:.0} bytes | |\n\
         | open fds: first sample / last sample / idle after | {} / {} / {idle_fds} | back to baseline: **{}** |\n\
         | idle CPU 10–20 s after the last leave | {:.2} % | < 1 %: **{}** |\n\
         | RSS first / last / idle | {} / {} / {idle_rss} KiB | |\n\n",
        middle.cycles,
        lastsample.cycles,
        if late_growth < 1024.0 { "met" } else { "missed" },
        first.fds,
        lastsample.fds,
        if idle_fds <= first.fds { "met" } else { "missed" },
        idle_cpu * 100.0,
        if idle_cpu < 0.01 { "met" } else { "missed" },
        first.rss_kib,
        lastsample.rss_kib,
    ));
    out.push_str("Samples:\n\n| cycles | RSS KiB | fds | server CPU |\n|---:|---:|---:|---:|\n");
    for s in &samples {
        out.push_str(&format!(
            "| {} | {} | {} | {:.1} % |\n",
            s.cycles,
            s.rss_kib,
            s.fds,
            s.cpu * 100.0
        ));
    }
    out.push_str(&format!(
        "\nRerun: `scripts/bench.sh soak` (`$CARGO_TARGET_DIR/release/soak --cycles {}`).\n",
        args.cycles
    ));
    println!("{out}");
    if args.smoke && failures > 0 {
        anyhow::bail!("{failures} cycles failed");
    }
    if let Some(path) = &args.report {
        write_section(path, "soak", &out)?;
    }
    Ok(())
}
