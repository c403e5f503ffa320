//! Shared pieces of the Rounds benchmarks: starting a real server process, measuring its CPU
//! time, and writing results into `docs/benchmarks.md`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub mod clip;
pub mod lean;
pub mod memory;
pub mod sfu;

/// A `rounds-server` process with its own data directory.
pub struct ServerProcess {
    pub child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
    pub bin: PathBuf,
}

/// Finds `rounds-server` next to this executable (the same target directory and profile).
pub fn default_server_bin() -> PathBuf {
    let me = std::env::current_exe().unwrap_or_default();
    let dir = me.parent().map(Path::to_path_buf).unwrap_or_default();
    let direct = dir.join("rounds-server");
    if direct.exists() {
        return direct;
    }
    dir.parent()
        .map(|p| p.join("rounds-server"))
        .unwrap_or(direct)
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl ServerProcess {
    /// Starts the server with `extra` TOML appended, and a clinician to sign in as.
    pub async fn start(bin: &Path, extra: &str) -> anyhow::Result<(Self, String, String)> {
        Self::start_on(bin, extra, None).await
    }

    /// Like [`ServerProcess::start`], pinned to one CPU core with `taskset` when `core` is
    /// given.
    pub async fn start_on(
        bin: &Path,
        extra: &str,
        core: Option<usize>,
    ) -> anyhow::Result<(Self, String, String)> {
        if !bin.exists() {
            bail!(
                "{} does not exist; build it with `cargo build --release -p rounds-server`",
                bin.display()
            );
        }
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let config = dir.path().join("rounds.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{url}\"\n[storage]\ndata_dir = \"{}\"\n\
                 {media}[limits]\nlogin_per_minute = 1000000\njoin_per_minute = 1000000\ntoken_per_minute = 1000000\n{extra}",
                dir.path().join("data").display(),
                media = if extra.contains("[media]") {
                    ""
                } else {
                    "[media]\nenabled = false\n"
                },
            ),
        )?;
        let email = "bench@rounds.example";
        let password = "benchmark password 1";
        let status = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .args([
                "clinician",
                "add",
                "--clinic",
                "Bench Clinic",
                "--email",
                email,
                "--name",
                "Dr. Bench",
            ])
            .env("ROUNDS_NEW_PASSWORD", password)
            .env("ROUNDS_LOG", "warn")
            .status()?;
        if !status.success() {
            bail!("could not create the benchmark clinician");
        }
        let mut command = match core {
            Some(core) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(core.to_string()).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = command
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env("ROUNDS_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting rounds-server")?;
        let server = Self {
            child,
            url,
            dir,
            bin: bin.to_owned(),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while http
            .get(format!("{}/readyz", server.url))
            .send()
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("rounds-server did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok((server, email.into(), password.into()))
    }

    /// User + system CPU time the server process has used so far.
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.child.id())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU time of a process, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
    // Linux reports in USER_HZ, which is 100 on every mainstream distribution.
    Duration::from_millis(ticks * 10)
}

/// A short description of this machine, for reports.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    // Counted from /proc/cpuinfo: a pinned process sees only its own core.
    let cores = std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(1)
        .max(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {mem} RAM")
}

/// Replaces the section between `<!-- begin NAME -->` and `<!-- end NAME -->` in `path`
/// (appending it if absent).
pub fn write_section(path: &Path, name: &str, body: &str) -> anyhow::Result<()> {
    let begin = format!("<!-- begin {name} -->");
    let end = format!("<!-- end {name} -->");
    let current = std::fs::read_to_string(path).unwrap_or_else(|_| "# Rounds benchmarks\n".into());
    let section = format!("{begin}\n{}\n{end}", body.trim_end());
    let updated = match (current.find(&begin), current.find(&end)) {
        (Some(b), Some(e)) if e > b => {
            format!("{}{}{}", &current[..b], section, &current[e + end.len()..])
        }
        _ => format!("{}\n{}\n", current.trim_end(), section),
    };
    std::fs::write(path, updated)?;
    Ok(())
}

/// Pins this process (every thread, present and future) to one core with `taskset`.
pub fn pin_self(core: usize) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &core.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .context("running taskset")?;
    if !status.success() {
        bail!("taskset could not pin the load generator to core {core}");
    }
    Ok(())
}

/// The `p` quantile (0..=1) of sorted values; NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Resident memory of a process in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Open file descriptors of a process.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The address media runs over in benchmarks: this machine's first global IPv4 address, or
/// loopback. Janus does not gather candidates on loopback, so both SFUs and the load
/// generator use this address (traffic to it still never leaves the kernel).
pub fn bench_ip() -> std::net::IpAddr {
    Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
                l.split_whitespace()
                    .skip_while(|w| *w != "inet")
                    .nth(1)
                    .and_then(|cidr| cidr.split('/').next())
                    .and_then(|ip| ip.parse().ok())
            })
        })
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
}
