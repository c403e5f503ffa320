//! Join time (measure 4), Rounds against Janus: from the click on "Join the visit" to the first
//! remote frame, in headless Chromium, over N joins of each flow.
//!
//! This binary owns the Janus process (started exactly as the capacity measure starts it) and
//! the report; the browsers are driven by `tests/e2e/bench/join-to-first-frame.mjs`, which
//! alternates the flows join by join so they share the machine's load, and hands back every
//! sample as JSON.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::Parser;
use rounds_bench::sfu::JanusProcess;
use rounds_bench::{bench_ip, default_server_bin, machine, percentile, write_section};
use serde_json::Value;

/// The issue's target for Rounds: p50 at most this.
const TARGET_P50_MS: f64 = 250.0;

#[derive(Parser)]
#[command(about = "Join time in Chromium, Rounds' patient pages against Janus' VideoRoom.")]
struct Args {
    /// Joins per flow and per delay.
    #[arg(long, default_value_t = 100)]
    joins: usize,
    /// How long after "ready" appears the click comes, in ms; each is its own run.
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 0])]
    delays: Vec<u64>,
    /// The rounds-server binary (default: next to this one, so release with release).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Address media runs over (default: this machine's first global IPv4 address).
    #[arg(long)]
    ip: Option<std::net::IpAddr>,
    #[arg(long)]
    report: Option<PathBuf>,
    /// Two joins of each flow at 0 ms; writes nothing, fails on any failed join.
    #[arg(long)]
    smoke: bool,
}

/// One flow's samples at one delay, as the browser script reports them.
#[derive(Debug, Clone, PartialEq)]
struct FlowResult {
    flow: String,
    delay_ms: u64,
    samples_ms: Vec<f64>,
    failed: usize,
    /// Per successful join, where its time went (see `Stages`).
    stages: Vec<Stages>,
}

/// Where one join's time went, from the page's own stamps.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stages {
    /// "Join" appearing to the connection that carries the remote video reaching "connected".
    ready_to_connected_ms: Option<f64>,
    /// The click to the remote video being in its tile with a frame; the rest of the join is
    /// the wait for the next frame to be presented.
    click_to_shown_ms: Option<f64>,
    /// The received video's frame rate as Chromium reported it at the first frame.
    received_fps: Option<f64>,
}

impl FlowResult {
    fn sorted(&self) -> Vec<f64> {
        let mut s = self.samples_ms.clone();
        s.sort_by(f64::total_cmp);
        s
    }
    fn p(&self, q: f64) -> f64 {
        percentile(&self.sorted(), q)
    }
    /// The median of one stage over the joins that have it.
    fn stage_p50(&self, stage: impl Fn(&Stages) -> Option<f64>) -> f64 {
        let mut v: Vec<f64> = self.stages.iter().filter_map(stage).collect();
        v.sort_by(f64::total_cmp);
        percentile(&v, 0.5)
    }
}

/// The flows each delay runs. Subscribing at the click does not depend on the delay (nothing
/// happens before it), so it runs once, at 0 ms.
fn flows_for(delay_ms: u64) -> &'static str {
    if delay_ms == 0 {
        "rounds,janus,janus-click"
    } else {
        "rounds,janus"
    }
}

fn flow_name(flow: &str) -> &'static str {
    match flow {
        "rounds" => "Rounds: patient pages, rounds-server",
        "janus" => "Janus: the same page flow (subscribed at admission)",
        "janus-click" => "Janus: subscribing at the click (its VideoRoom demo's flow)",
        _ => "unknown flow",
    }
}

/// The report's order of flows: Rounds first.
const FLOW_ORDER: [&str; 3] = ["rounds", "janus", "janus-click"];

fn parse(delay_ms: u64, json: &Value) -> anyhow::Result<Vec<FlowResult>> {
    let flows = json["flows"]
        .as_object()
        .context("no flows in the result")?;
    let mut names: Vec<&String> = flows.keys().collect();
    names.sort_by_key(|f| FLOW_ORDER.iter().position(|o| o == f).unwrap_or(usize::MAX));
    names
        .into_iter()
        .map(|flow| {
            let r = &flows[flow];
            Ok(FlowResult {
                flow: flow.clone(),
                delay_ms,
                samples_ms: r["samples_ms"]
                    .as_array()
                    .context("no samples")?
                    .iter()
                    .filter_map(Value::as_f64)
                    .collect(),
                failed: r["failed"].as_u64().unwrap_or(0) as usize,
                stages: r["stages"]
                    .as_array()
                    .map(|stages| {
                        stages
                            .iter()
                            .map(|s| Stages {
                                ready_to_connected_ms: s["ready_to_connected_ms"].as_f64(),
                                click_to_shown_ms: s["click_to_shown_ms"].as_f64(),
                                received_fps: s["received_fps"].as_f64(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// A figure rounded to a whole number with its unit, or a dash where no join had it.
fn or_dash(value: f64, unit: &str) -> String {
    if value.is_nan() {
        "–".into()
    } else {
        format!("{value:.0}{unit}")
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

struct RunInfo {
    machine: String,
    versions: String,
    load: String,
    joins: usize,
    rerun: String,
}

/// The report section: one row per flow and delay, Rounds' target, and Rounds ÷ Janus.
fn section(results: &[FlowResult], cx: &RunInfo) -> String {
    let mut out = format!(
        "## Join time against Janus (measure 4)\n\n\
         Machine: {}. {}. Load average (1 min) at the start / end of the run: {}; the machine \
         is shared, so other processes' load is in every figure.\n\n\
         From the click on \"Join the visit\" to the first remote frame decoded and presented \
         (the remote tile's `<video>` has a size and a current frame, then its next \
         `requestVideoFrameCallback`), timed inside the page, {} joins per row, each in a fresh \
         browser context and a new visit or room. The flows alternate join by join. Every \
         flow: one participant already in the room, sending 1280x720 VP8 at 24 fps and Opus \
         from a Chromium with fake devices, before the joiner is admitted; the joiner in a \
         second Chromium with the same flags, its camera and microphone (the capture the \
         patient pages ask for on the machine) open before admission, publishing them after \
         the click. Rounds: the patient pages (check-in, \
         waiting room, admitted by the clinician's REST call). Janus: `tests/e2e/bench/janus/` \
         on Janus' own `janus.js`, \"admitted\" by the benchmark; with the same page flow it \
         subscribes when admitted and plays the video out of sight, as the patient pages do.\n\n\
         Where the time went (medians over each row's joins, from the page's own stamps): \
         \"ready → connected\" is from \"Join\" appearing to the connection carrying the \
         remote video reaching `connected` (ICE and DTLS done; negative where it was up \
         before, as the patient pages prepare it in the waiting room); \"click → in tile\" is from the \
         click to the remote video standing in its tile with a frame, the rest of each join \
         being the wait for the next frame to be presented; \"fps\" is the received video's \
         frame rate as Chromium reports it then (only where the video had been playing out of \
         sight before the click: at 0 ms it has no steady rate yet).\n\n\
         | click after \"ready\" appears | flow | joins | p50 | p95 | max | failed | ready → connected | click → in tile | fps |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        cx.machine, cx.versions, cx.load, cx.joins
    );
    for r in results {
        let s = r.sorted();
        out.push_str(&format!(
            "| {} ms | {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {} | {} | {} | {} |\n",
            r.delay_ms,
            flow_name(&r.flow),
            s.len(),
            r.p(0.5),
            r.p(0.95),
            s.last().copied().unwrap_or(f64::NAN),
            r.failed,
            or_dash(r.stage_p50(|s| s.ready_to_connected_ms), " ms"),
            or_dash(r.stage_p50(|s| s.click_to_shown_ms), " ms"),
            if r.delay_ms > 0 {
                or_dash(r.stage_p50(|s| s.received_fps), "")
            } else {
                or_dash(f64::NAN, "")
            },
        ));
    }
    out.push('\n');
    let find = |flow: &str, delay: u64| {
        results
            .iter()
            .find(|r| r.flow == flow && r.delay_ms == delay && !r.samples_ms.is_empty())
    };
    let mut delays: Vec<u64> = results.iter().map(|r| r.delay_ms).collect();
    delays.dedup();
    for delay in delays {
        let Some(ours) = find("rounds", delay) else {
            continue;
        };
        let p50 = ours.p(0.5);
        out.push_str(&format!(
            "Click {delay} ms after \"ready\": Rounds p50 {p50:.0} ms, target ≤ {TARGET_P50_MS:.0} ms: **{}**.",
            verdict(p50 <= TARGET_P50_MS)
        ));
        for (flow, what) in [
            ("janus", "the same page flow"),
            ("janus-click", "subscribing at the click"),
        ] {
            if let Some(janus) = find(flow, delay) {
                out.push_str(&format!(
                    " Rounds ÷ Janus ({what}): p50 {:.2}×, p95 {:.2}×.",
                    p50 / janus.p(0.5),
                    ours.p(0.95) / janus.p(0.95)
                ));
            }
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "(Below 1× Rounds is faster.)\n\nRerun: {}.\n",
        cx.rerun
    ));
    out
}

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".into())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// The checkout to run the pages from: the one the command runs in (`scripts/bench.sh` runs
/// from the root), else the one this binary was built from. A binary from a shared target
/// folder may have been built in another clone that no longer exists.
fn repo_root() -> PathBuf {
    let is_root = |dir: &Path| {
        dir.join("tests/e2e/bench/join-to-first-frame.mjs")
            .is_file()
    };
    std::env::current_dir()
        .ok()
        .and_then(|cwd| cwd.ancestors().find(|d| is_root(d)).map(Path::to_path_buf))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

fn preflight(root: &Path, server: &Path) -> anyhow::Result<()> {
    if !server.exists() {
        bail!(
            "{} does not exist: build it with `cargo build --release -p rounds-server` (or pass --server-bin)",
            server.display()
        );
    }
    if !root.join("ui/dist/patient.html").exists() {
        bail!("the patient pages are not built: run `npm ci && npm run build` in ui/");
    }
    if !root.join("tests/e2e/node_modules/playwright-core").exists() {
        bail!("the browser tests' packages are missing: run `npm ci` in tests/e2e/");
    }
    if Command::new("node").arg("--version").output().is_err() {
        bail!("node is not installed (scripts/install-deps.sh installs it)");
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.joins = 2;
        args.delays = vec![0];
    }
    let root = repo_root();
    let server = args.server_bin.clone().unwrap_or_else(default_server_bin);
    preflight(&root, &server)?;
    let ip = args.ip.unwrap_or_else(bench_ip);
    let load_start = load_average();
    let janus = JanusProcess::start(None, ip).await?;
    // Every sample and its stages stay in tests/e2e/artifacts/ (ignored by git) for a look
    // at where the time went.
    let out_dir = root.join("tests/e2e/artifacts");
    std::fs::create_dir_all(&out_dir)?;
    let mut results = Vec::new();
    for &delay in &args.delays {
        let out = out_dir.join(format!("join-time-{delay}.json"));
        eprintln!(
            "==> {} joins per flow, click {delay} ms after ready",
            args.joins
        );
        let status = Command::new("node")
            .current_dir(root.join("tests/e2e"))
            .arg("bench/join-to-first-frame.mjs")
            .arg(args.joins.to_string())
            .arg(delay.to_string())
            .args(["--janus", &janus.url, "--flows", flows_for(delay)])
            .args(["--media-ip", &ip.to_string(), "--out"])
            .arg(&out)
            .env("ROUNDS_SERVER_BIN", &server)
            .status()
            .context("running node")?;
        if !status.success() {
            bail!("the browser benchmark failed ({status})");
        }
        let json: Value = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
        results.extend(parse(delay, &json)?);
    }
    drop(janus);
    let release = server.components().any(|c| c.as_os_str() == "release");
    let cx = RunInfo {
        machine: machine(),
        versions: format!(
            "`rounds-server` {} ({} build); Janus {} (Debian `janus`: VideoRoom plugin and \
             WebSocket transport only, configured as for measure 1); both SFUs' media on {ip} with \
             `janus.js` {} (Debian `libjs-janus-gateway`, from `janus-demos`); {}, headless, \
             no GPU, fake camera and microphone (`tests/e2e/lib/browser.mjs`); Node {}",
            env!("CARGO_PKG_VERSION"),
            if release { "release" } else { "debug" },
            JanusProcess::version(),
            first_line(
                "dpkg-query",
                &["-W", "-f", "${Version}\n", "libjs-janus-gateway"]
            ),
            first_line("chromium", &["--version"]),
            first_line("node", &["--version"]),
        ),
        load: format!("{load_start} / {}", load_average()),
        joins: args.joins,
        rerun: format!(
            "`scripts/bench.sh join` (`$CARGO_TARGET_DIR/release/join-time --joins {} --report docs/benchmarks.md`)",
            args.joins
        ),
    };
    let text = section(&results, &cx);
    println!("{text}");
    let failed: usize = results.iter().map(|r| r.failed).sum();
    if args.smoke {
        if failed > 0 || results.iter().any(|r| r.samples_ms.is_empty()) {
            bail!("{failed} joins failed");
        }
        return Ok(());
    }
    if let Some(path) = &args.report {
        write_section(path, "join-time", &text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> RunInfo {
        RunInfo {
            machine: "m".into(),
            versions: "v".into(),
            load: "1 / 1".into(),
            joins: 4,
            rerun: "r".into(),
        }
    }

    #[test]
    fn the_report_judges_rounds_against_its_target_and_against_janus() {
        let stage = |connected: f64, shown: f64| serde_json::json!({"ready_to_connected_ms": connected, "click_to_shown_ms": shown, "received_fps": 20.0});
        let json = serde_json::json!({"flows": {
            "janus": {"samples_ms": [200.0, 400.0, 600.0, 800.0], "failed": 1,
                      "stages": [stage(10.0, 1.0), stage(30.0, 3.0), stage(50.0, 5.0), stage(70.0, 7.0)]},
            "rounds": {"samples_ms": [100.0, 200.0, 300.0, 400.0], "failed": 0},
        }});
        let text = section(&parse(1000, &json).unwrap(), &cx());
        assert!(
            text.contains("Rounds p50 300 ms, target ≤ 250 ms: **missed**"),
            "{text}"
        );
        assert!(text.contains("p50 0.50×, p95 0.50×"), "{text}");
        assert!(text.contains("| 1000 ms | Janus: the same page flow (subscribed at admission) | 4 | 600 ms | 800 ms | 800 ms | 1 | 50 ms | 5 ms | 20 |"), "{text}");
        // Rounds' row first, and a flow without stages says so rather than inventing them.
        let rounds_row = text.find("| 1000 ms | Rounds").unwrap();
        assert!(
            rounds_row < text.find("| 1000 ms | Janus").unwrap(),
            "{text}"
        );
        assert!(text.contains("| 400 ms | 0 | – | – | – |"), "{text}");
        // At 0 ms the video has no steady frame rate yet, so none is reported.
        let at_once = section(&parse(0, &json).unwrap(), &cx());
        assert!(at_once.contains("| 1 | 50 ms | 5 ms | – |"), "{at_once}");
    }

    #[test]
    fn a_flow_with_no_successful_join_gets_no_ratio() {
        let json = serde_json::json!({"flows": {
            "rounds": {"samples_ms": [80.0], "failed": 0},
            "janus": {"samples_ms": [], "failed": 2},
        }});
        let text = section(&parse(1000, &json).unwrap(), &cx());
        assert!(
            text.contains("Rounds p50 80 ms, target ≤ 250 ms: **met**."),
            "{text}"
        );
        assert!(
            !text.contains("Rounds ÷ Janus (the same page flow)"),
            "{text}"
        );
    }
}
