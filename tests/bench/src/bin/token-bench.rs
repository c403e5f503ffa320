//! Token issuance over HTTP, per second and per server core, and the cost of one verify.
//!
//! Starts a real `rounds-server` (release build recommended), signs in, creates a visit, then
//! keeps N concurrent clients minting tokens for D seconds. Tokens per server-CPU-second is
//! the per-core figure: it does not depend on how many cores the server got.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use rounds_auth::{KeySet, RoomGrant};
use rounds_bench::{ServerProcess, default_server_bin, machine, write_section};
use rounds_proto::{ROOM_AUDIENCE, Role, RoomClaims, grants_for};
use serde_json::json;

const TARGET_PER_CORE: f64 = 20_000.0;

#[derive(Parser)]
#[command(about = "Measures token issuance over HTTP and the cost of verifying a token.")]
struct Args {
    /// The rounds-server binary [default: next to this one].
    #[arg(long)]
    server_bin: Option<std::path::PathBuf>,
    /// Seconds per measure.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// A one-second run that checks every measure still works (for CI).
    #[arg(long)]
    smoke: bool,
    /// Write the results into this Markdown file's `tokens` section.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

struct Measure {
    name: &'static str,
    tokens: u64,
    errors: u64,
    wall: Duration,
    server_cpu: Duration,
}

impl Measure {
    fn per_sec(&self) -> f64 {
        self.tokens as f64 / self.wall.as_secs_f64()
    }
    fn per_core(&self) -> f64 {
        self.tokens as f64 / self.server_cpu.as_secs_f64().max(1e-6)
    }
}

async fn hammer(
    server: &ServerProcess,
    name: &'static str,
    url: String,
    bearer: Option<String>,
    seconds: u64,
    concurrency: usize,
) -> anyhow::Result<Measure> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu_before = server.cpu_time();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, url, bearer, ok, errors) = (
            http.clone(),
            url.clone(),
            bearer.clone(),
            ok.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let mut req = http.post(&url).json(&json!({}));
                if let Some(b) = &bearer {
                    req = req.bearer_auth(b);
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let wall = start.elapsed();
    Ok(Measure {
        name,
        tokens: ok.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        wall,
        server_cpu: server.cpu_time().saturating_sub(cpu_before),
    })
}

fn verify_cost(iterations: u32) -> (Duration, Duration) {
    let now = chrono::Utc::now().timestamp();
    let keys = KeySet::generate(now);
    let grant = || RoomGrant {
        participant: "p",
        name: "Patient",
        room: "r",
        role: Role::Patient,
        grants: grants_for(Role::Patient),
    };
    let start = Instant::now();
    let mut token = String::new();
    for _ in 0..iterations {
        token = keys
            .mint_room("https://rounds.example", grant(), now, 3600)
            .0;
    }
    let mint = start.elapsed() / iterations;
    let start = Instant::now();
    for _ in 0..iterations {
        let _ = std::hint::black_box(keys.verify::<RoomClaims>(&token, ROOM_AUDIENCE, now, 5));
    }
    (mint, start.elapsed() / iterations)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let seconds = if args.smoke { 1 } else { args.seconds };
    let concurrency = if args.smoke { 4 } else { args.concurrency };
    let bin = args.server_bin.clone().unwrap_or_else(default_server_bin);
    eprintln!("==> starting {}", bin.display());
    let (server, email, password) = ServerProcess::start(&bin, "").await?;
    let http = reqwest::Client::new();
    let session: serde_json::Value = http
        .post(format!("{}/api/v1/auth/login", server.url))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let access = session["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let created: serde_json::Value = http
        .post(format!("{}/api/v1/visits", server.url))
        .bearer_auth(&access)
        .json(&json!({ "scheduled_at": chrono::Utc::now() + chrono::Duration::minutes(30), "duration_minutes": 240 }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let visit = created["visit"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let code = created["patient_link"]["url"]
        .as_str()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();

    eprintln!("==> provider tokens: {concurrency} clients for {seconds} s");
    let provider = hammer(
        &server,
        "provider room token (POST /api/v1/visits/{id}/token)",
        format!("{}/api/v1/visits/{visit}/token", server.url),
        Some(access.clone()),
        seconds,
        concurrency,
    )
    .await?;
    eprintln!("==> patient check-ins: {concurrency} clients for {seconds} s");
    let patient = hammer(
        &server,
        "patient check-in token (POST /api/v1/join/{code})",
        format!("{}/api/v1/join/{code}", server.url),
        None,
        seconds,
        concurrency,
    )
    .await?;
    let (mint, verify) = verify_cost(if args.smoke { 2_000 } else { 50_000 });

    let verdict = |m: &Measure| {
        if m.per_core() >= TARGET_PER_CORE {
            "meets"
        } else {
            "below"
        }
    };
    let mut out = String::new();
    out.push_str("## Token issuance\n\n");
    out.push_str(&format!(
        "Machine: {}. `rounds-server` {} ({}), SQLite with `synchronous = full`; every token issued is written to the hash-chained audit log before the response. {concurrency} concurrent HTTP/1.1 clients on the same machine for {seconds} s per measure. Per core = tokens / server CPU seconds (user + system, from /proc).\n\n",
        machine(),
        env!("CARGO_PKG_VERSION"),
        if bin.to_string_lossy().contains("/release/") { "release build" } else { "debug build" },
    ));
    out.push_str("| measure | tokens/s | tokens per server-CPU-second (per core) | target per core | errors |\n|---|---:|---:|---:|---:|\n");
    for m in [&provider, &patient] {
        out.push_str(&format!(
            "| {} | {:.0} | {:.0} ({}) | {:.0} | {} |\n",
            m.name,
            m.per_sec(),
            m.per_core(),
            verdict(m),
            TARGET_PER_CORE,
            m.errors
        ));
    }
    out.push_str(&format!(
        "\nIn-process, one core: minting a room token takes {:.1} µs, verifying one {:.1} µs (Ed25519).\n\nRerun: `cargo build --release -p rounds-server -p rounds-bench && $CARGO_TARGET_DIR/release/token-bench --report docs/benchmarks.md`\n",
        mint.as_secs_f64() * 1e6,
        verify.as_secs_f64() * 1e6
    ));
    println!("{out}");
    for m in [&provider, &patient] {
        println!(
            "{}: {:.0} tokens per server core-second (target {TARGET_PER_CORE:.0})",
            m.name,
            m.per_core()
        );
        if m.tokens == 0 {
            anyhow::bail!("{} issued no tokens", m.name);
        }
    }
    if let Some(path) = &args.report {
        write_section(path, "tokens", &out)?;
        eprintln!("==> wrote {}", path.display());
    }
    Ok(())
}
