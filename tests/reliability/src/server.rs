//! The real `rounds-server` binary, started as a child process (inside a network namespace
//! when given one) with its own data folder, and stopped, killed and restarted by the tests.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;

/// The clinician every test signs in as.
pub const EMAIL: &str = "reliability@rounds.example";
pub const PASSWORD: &str = "reliability password 1";

/// Where the server binary is: `ROUNDS_SERVER_BIN`, or built once per test process with
/// `cargo build -p rounds-server` into this build's target folder and profile, so a test
/// never runs a stale server.
/// This package's folder, read at run time (cargo and nextest set it): a test binary reused
/// from another checkout of the same commit must build and read this checkout.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

pub fn server_binary() -> anyhow::Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| build_server().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build_server() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("ROUNDS_SERVER_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().context("no folder")?.to_owned();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let release = dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "-q",
        "-p",
        "rounds-server",
        "--bin",
        "rounds-server",
    ]);
    if release {
        cmd.arg("--release");
    }
    if let Some(target) = dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    cmd.current_dir(manifest_dir());
    let status = cmd
        .status()
        .context("running cargo to build rounds-server")?;
    if !status.success() {
        bail!("building rounds-server failed");
    }
    let bin = dir.join("rounds-server");
    if !bin.exists() {
        bail!("{} was not built", bin.display());
    }
    Ok(bin)
}

/// One line of `rounds-server firewall --json`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct FirewallRule {
    pub direction: String,
    pub host: String,
    pub port: u16,
    pub protocol: String,
    pub purpose: String,
}

/// Where the server listens and what it may use.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// Run inside this network namespace (`ip netns exec`); `None`: this one.
    pub namespace: Option<String>,
    /// The HTTP (and ICE-TCP) listener.
    pub http: SocketAddr,
    /// The media UDP port.
    pub udp: SocketAddr,
    /// More TOML, appended to the generated file (e.g. `[limits]` settings).
    pub extra_toml: String,
    /// Put the data folder here instead of a fresh temporary one (a small filesystem, say).
    pub data_dir: Option<PathBuf>,
}

impl ServerSpec {
    pub fn new(namespace: Option<&str>, ip: IpAddr, http_port: u16, udp_port: u16) -> Self {
        ServerSpec {
            namespace: namespace.map(str::to_owned),
            http: SocketAddr::new(ip, http_port),
            udp: SocketAddr::new(ip, udp_port),
            extra_toml: String::new(),
            data_dir: None,
        }
    }
}

/// A `rounds-server` process and its files. Killed on drop.
pub struct ServerProcess {
    pub spec: ServerSpec,
    pub url: url::Url,
    bin: PathBuf,
    config: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Writes the configuration, creates the clinician, and starts the server. Call
    /// [`wait_ready`] from a place that can reach it.
    pub fn start(spec: ServerSpec) -> anyhow::Result<ServerProcess> {
        let bin = server_binary()?;
        let dir = tempfile::tempdir()?;
        let data_dir = spec
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        let url: url::Url = format!("http://{}", spec.http).parse()?;
        let config = dir.path().join("rounds.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"{http}\"\npublic_url = \"{url_str}\"\nui_dir = \"{ui}\"\n\
                 [storage]\ndata_dir = \"{data}\"\nsynchronous = \"full\"\n\
                 [limits]\nlogin_per_minute = 100000\njoin_per_minute = 100000\ntoken_per_minute = 100000\n\
                 [media]\nenabled = true\nudp_listen = \"{udp}\"\n{extra}\n",
                http = spec.http,
                url_str = url.as_str().trim_end_matches('/'),
                ui = manifest_dir().join("../../ui/dist").display(),
                data = data_dir.display(),
                udp = spec.udp,
                extra = spec.extra_toml,
            ),
        )?;
        let mut server = ServerProcess {
            url,
            bin,
            config,
            data_dir,
            log: dir.path().join("server.log"),
            child: None,
            spec,
            _dir: dir,
        };
        let out = server
            .command()
            .args([
                "clinician",
                "add",
                "--clinic",
                "Reliability Clinic",
                "--email",
                EMAIL,
                "--name",
                "Dr. Reliability",
            ])
            .env("ROUNDS_NEW_PASSWORD", PASSWORD)
            .output()?;
        if !out.status.success() {
            bail!(
                "creating the clinician failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        server.spawn()?;
        Ok(server)
    }

    /// `rounds-server --config <ours>`, inside the namespace if there is one.
    fn command(&self) -> Command {
        let mut cmd = match &self.spec.namespace {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]);
                c.arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        cmd.arg("--config").arg(&self.config);
        // `ROUNDS_RELIABILITY_SERVER_LOG` widens the server's log when a failure needs its
        // DTLS or ICE detail; the default keeps the log short.
        let filter = std::env::var("ROUNDS_RELIABILITY_SERVER_LOG")
            .unwrap_or_else(|_| "warn,rounds_server=info".to_owned());
        cmd.env("ROUNDS_LOG", filter);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Starts (or restarts) the server process on the same data folder and ports.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("the server is already running");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = self
            .command()
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting rounds-server")?;
        self.child = Some(child);
        Ok(())
    }

    /// The server's process id (`ip netns exec` execs the server, so it is the same process).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `true` while the process is alive.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL: no shutdown code runs, as when the machine loses the process.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        let mut child = self.child.take().context("the server is not running")?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Resident memory of the server process, in KiB (`VmRSS` in `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        rss_kib(self.pid())
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server's log so far (it holds no personal data: see DESIGN §8).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `rounds-server firewall --json` for this configuration.
    pub fn firewall(&self) -> anyhow::Result<Vec<FirewallRule>> {
        let out = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .args(["firewall", "--json"])
            .output()?;
        if !out.status.success() {
            bail!("firewall --json failed");
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// `rounds-server audit verify`: `Ok(summary)` if the chain is intact.
    pub fn audit_verify(&self) -> anyhow::Result<String> {
        let out = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .args(["audit", "verify"])
            .env("ROUNDS_LOG", "warn")
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "audit verify failed: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(text.trim().to_owned())
    }

    /// Runs `sqlite3 <db> <sql>` on the server's database (read-only checks).
    pub fn sqlite(&self, sql: &str) -> anyhow::Result<String> {
        let db = self.data_dir.join("rounds.db");
        crate::netns::run("sqlite3", &[&db.to_string_lossy(), sql])
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("--- the last lines of the server's log ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        // `ROUNDS_RELIABILITY_KEEP_LOGS=<dir>` keeps every server log whole, for reading after.
        if let Ok(dir) = std::env::var("ROUNDS_RELIABILITY_KEEP_LOGS") {
            let name = format!("server-{}.log", std::process::id());
            let to = Path::new(&dir).join(name);
            match std::fs::copy(&self.log, &to) {
                Ok(_) => eprintln!("the server's log is kept in {}", to.display()),
                Err(error) => eprintln!("could not keep the server's log: {error}"),
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is gone"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

/// Polls `GET /readyz` until it answers 200. Call it from where the server is reachable (the
/// client namespace).
pub async fn wait_ready(url: &url::Url, timeout: Duration) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = Instant::now() + timeout;
    let ready = url.join("/readyz")?;
    loop {
        if let Ok(r) = http.get(ready.clone()).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("rounds-server at {url} was not ready within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One value from the server's Prometheus `/metrics` (summed over its labels), 0 if absent.
pub async fn metric(url: &url::Url, name: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(url.join("/metrics")?).await?.text().await?;
    Ok(metric_in(&text, name))
}

/// Sums every sample of `name` in a Prometheus text exposition.
pub fn metric_in(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_summed_over_labels_and_names_match_exactly() {
        let text = "# HELP x\nrounds_a_total{kind=\"x\"} 2\nrounds_a_total{kind=\"y\"} 3\n\
                    rounds_a_total_other 100\nrounds_b 7\n";
        assert_eq!(metric_in(text, "rounds_a_total"), 5.0);
        assert_eq!(metric_in(text, "rounds_b"), 7.0);
        assert_eq!(metric_in(text, "rounds_c"), 0.0);
    }
}
