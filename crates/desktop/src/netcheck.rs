//! The network check screen's side of the controller: the connectivity self-test
//! (`rounds-netcheck`) run from this workstation against the server the app uses, on the
//! app's own route to it (the system proxy it read at start), with each path's result as it
//! comes in and the whole as text for a support ticket.
//!
//! This module owns the screen's data: [`NetworkCheck`] and how a netcheck report becomes
//! it. Running it, and the one-at-a-time rule, live in the controller.

use std::time::Duration;

use rounds_client::ProxyConfig;
use rounds_netcheck::{CheckResult, NoProxyRule, Path, Progress, ProxySettings, Status, Verdict};
use serde::Serialize;
use ts_rs::TS;

/// How long each web, signaling or TCP step may take. Shorter than `rounds-server check`'s
/// default: someone is watching the screen.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(8);

/// One of the ways a visit reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum CheckPath {
    Web,
    Signaling,
    MediaUdp,
    MediaTcp,
}

impl From<Path> for CheckPath {
    fn from(p: Path) -> Self {
        match p {
            Path::Web => CheckPath::Web,
            Path::Signaling => CheckPath::Signaling,
            Path::MediaUdp => CheckPath::MediaUdp,
            Path::MediaTcp => CheckPath::MediaTcp,
        }
    }
}

impl CheckPath {
    const ALL: [CheckPath; 4] = [
        CheckPath::Web,
        CheckPath::Signaling,
        CheckPath::MediaUdp,
        CheckPath::MediaTcp,
    ];

    /// What the path is, for a clinician and for IT.
    fn label(self) -> &'static str {
        match self {
            CheckPath::Web => "Web: the Rounds server",
            CheckPath::Signaling => "Signaling: setting up calls",
            CheckPath::MediaUdp => "Video and sound over UDP",
            CheckPath::MediaTcp => "Video and sound over TCP (the fallback)",
        }
    }

    /// The short name `rounds-server check` prints, so both reports read alike.
    fn short(self) -> &'static str {
        match self {
            CheckPath::Web => Path::Web.label(),
            CheckPath::Signaling => Path::Signaling.label(),
            CheckPath::MediaUdp => Path::MediaUdp.label(),
            CheckPath::MediaTcp => Path::MediaTcp.label(),
        }
    }
}

/// Where one path stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum PathState {
    /// Not started yet.
    Waiting,
    Checking,
    Pass,
    Fail,
    /// Could not be tried: an earlier check it depends on failed.
    NotChecked,
}

/// One path on the screen.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct PathCheck {
    pub path: CheckPath,
    pub label: String,
    pub state: PathState,
    /// What was tried (`http://rounds.example.org/healthz`, `udp 203.0.113.5:3478`).
    pub target: String,
    /// One round trip, when there was an answer.
    pub rtt_ms: Option<f64>,
    /// What happened, in a sentence.
    pub detail: String,
    /// On failure, what to ask IT to open or change.
    pub advice: Option<String>,
}

/// What the results mean for a visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum NetVerdict {
    /// Everything a visit needs works, media directly over UDP.
    Ready,
    /// Visits work, with media over the TCP fallback only.
    TcpFallbackOnly,
    /// Visits cannot work from here.
    Blocked,
}

impl From<Verdict> for NetVerdict {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Ready => NetVerdict::Ready,
            Verdict::TcpFallbackOnly => NetVerdict::TcpFallbackOnly,
            Verdict::Blocked => NetVerdict::Blocked,
        }
    }
}

/// The network check, running or done, as the screen shows it.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct NetworkCheck {
    /// The server checked.
    pub server: String,
    /// The proxy web and signaling went through, without its password; "none" when direct.
    pub proxy: String,
    /// When the check started, e.g. "2026-12-06 17:20 UTC".
    pub started: String,
    pub running: bool,
    /// Every path, in the order they are checked.
    pub paths: Vec<PathCheck>,
    /// Set once every path is done.
    pub verdict: Option<NetVerdict>,
    pub summary: Option<String>,
    /// The whole report as plain text, for "Copy the results".
    pub text: String,
}

impl NetworkCheck {
    /// A check about to start: every path waiting.
    pub fn starting(server: &url::Url, proxy: &ProxySettings, started: String) -> NetworkCheck {
        let mut check = NetworkCheck {
            server: server.to_string(),
            proxy: proxy_words(proxy, server),
            started,
            running: true,
            paths: CheckPath::ALL
                .iter()
                .map(|&path| PathCheck {
                    path,
                    label: path.label().to_owned(),
                    state: PathState::Waiting,
                    target: String::new(),
                    rtt_ms: None,
                    detail: String::new(),
                    advice: None,
                })
                .collect(),
            verdict: None,
            summary: None,
            text: String::new(),
        };
        check.text = check.to_text();
        check
    }

    /// Takes one step of progress.
    pub fn progress(&mut self, progress: Progress<'_>) {
        match progress {
            Progress::Checking(path) => {
                if let Some(p) = self.path_mut(path.into()) {
                    p.state = PathState::Checking;
                }
            }
            Progress::Done(result) => self.record(result),
        }
        self.text = self.to_text();
    }

    /// The check is over.
    pub fn finish(&mut self, verdict: Verdict, summary: &str) {
        self.running = false;
        self.verdict = Some(verdict.into());
        self.summary = Some(summary.to_owned());
        self.text = self.to_text();
    }

    fn path_mut(&mut self, path: CheckPath) -> Option<&mut PathCheck> {
        self.paths.iter_mut().find(|p| p.path == path)
    }

    fn record(&mut self, r: &CheckResult) {
        let Some(p) = self.path_mut(r.path.into()) else {
            return;
        };
        p.state = match r.status {
            Status::Pass => PathState::Pass,
            Status::Fail => PathState::Fail,
            Status::NotChecked => PathState::NotChecked,
        };
        p.target = r.target.clone();
        p.rtt_ms = r.rtt.map(|d| (d.as_secs_f64() * 10_000.0).round() / 10.0);
        p.detail = r.detail.clone();
        p.advice = r.advice.clone();
    }

    /// The report for a support ticket, laid out as `rounds-server check` prints it so IT
    /// reads both the same way.
    fn to_text(&self) -> String {
        let mut out = format!(
            "Rounds network check from the desktop app {}\nServer: {}\nProxy: {}\nStarted: {}\n\n",
            env!("CARGO_PKG_VERSION"),
            self.server,
            self.proxy,
            self.started
        );
        for p in &self.paths {
            let status = match p.state {
                PathState::Waiting | PathState::Checking => "....",
                PathState::Pass => "PASS",
                PathState::Fail => "FAIL",
                PathState::NotChecked => "SKIP",
            };
            let rtt = p
                .rtt_ms
                .map(|ms| format!("{ms:.1} ms"))
                .unwrap_or_else(|| "-".into());
            let line = format!("{status}  {:<15} {rtt:>9}  {}", p.path.short(), p.target);
            out.push_str(line.trim_end());
            out.push('\n');
            if matches!(p.state, PathState::Fail | PathState::NotChecked) {
                out.push_str(&format!("      {}\n", p.detail));
                if let Some(advice) = &p.advice {
                    out.push_str(&format!("      To fix: {advice}\n"));
                }
            }
        }
        match &self.summary {
            Some(summary) => out.push_str(&format!("\n{summary}\n")),
            None => out.push_str("\nThe check is still running.\n"),
        }
        out
    }
}

/// The proxy the web checks take to `server`, in words.
fn proxy_words(proxy: &ProxySettings, server: &url::Url) -> String {
    match proxy.for_url(server) {
        // Never its user name or password: the text goes into support tickets.
        Some(p) => format!(
            "{}://{}:{}",
            p.scheme(),
            p.host_str().unwrap_or("?"),
            p.port_or_known_default().unwrap_or(0)
        ),
        None => "none (direct)".into(),
    }
}

/// The app's proxy route, as the self-test takes it: the same proxies and the same
/// `no_proxy` list, so the check tests the way the app really goes.
pub fn proxy_settings(config: &ProxyConfig) -> ProxySettings {
    let mut no_proxy = Vec::new();
    if config.no_proxy.everything() {
        no_proxy.push(NoProxyRule::Everything);
    }
    no_proxy.extend(
        config
            .no_proxy
            .domains()
            .iter()
            .map(|d| NoProxyRule::Domain(d.clone())),
    );
    no_proxy.extend(config.no_proxy.networks().iter().map(|&(addr, bits)| {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        NoProxyRule::Network {
            addr,
            prefix: bits.min(max),
        }
    }));
    ProxySettings {
        https: config.https.clone(),
        http: config.http.clone(),
        no_proxy,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> ProxyConfig {
        ProxyConfig::from_vars(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
        .unwrap()
    }

    #[test]
    fn the_check_takes_the_same_proxy_route_as_the_app() {
        let app = config(&[
            (
                "https_proxy",
                "http://nurse:s3cret@proxy.hospital.example:3128",
            ),
            ("http_proxy", "proxy.hospital.example:8080"),
            (
                "no_proxy",
                "intranet.hospital.example,.lab.example,10.0.0.0/8,192.168.1.7,[::1],fd00::/8,172.16.0.0/99",
            ),
        ]);
        let check = proxy_settings(&app);
        for target in [
            "https://rounds.hospital.example/",
            "https://intranet.hospital.example/",
            "https://a.intranet.hospital.example/",
            "wss://x.lab.example/rtc",
            "https://lab.example/",
            "https://10.2.3.4/",
            "https://11.2.3.4/",
            "http://192.168.1.7:8080/",
            "http://192.168.1.8:8080/",
            "http://[::1]:8080/",
            "http://[fd00::5]/",
            "http://[fe80::5]/",
            "https://172.16.0.1/",
            "http://rounds.example.org/",
            "ws://rounds.example.org/rtc",
        ] {
            let url = url::Url::parse(target).unwrap();
            assert_eq!(
                check.for_url(&url),
                app.for_url(&url),
                "{target} takes another route"
            );
        }
        let everything = proxy_settings(&config(&[
            ("all_proxy", "http://proxy:3128"),
            ("no_proxy", "*"),
        ]));
        assert_eq!(
            everything.for_url(&url::Url::parse("https://rounds.example.org/").unwrap()),
            None
        );
    }

    #[test]
    fn the_text_names_the_proxy_without_its_password() {
        let proxy = proxy_settings(&config(&[(
            "https_proxy",
            "http://nurse:s3cret@proxy.hospital.example:3128",
        )]));
        let server = url::Url::parse("https://rounds.hospital.example/").unwrap();
        let check = NetworkCheck::starting(&server, &proxy, "now".into());
        assert_eq!(check.proxy, "http://proxy.hospital.example:3128");
        assert!(!check.text.contains("s3cret"), "{}", check.text);
        assert!(check.text.contains("still running"), "{}", check.text);
    }

    #[test]
    fn progress_fills_in_each_path_and_the_text() {
        let server = url::Url::parse("https://rounds.hospital.example/").unwrap();
        let mut check = NetworkCheck::starting(
            &server,
            &ProxySettings::direct(),
            "2026-12-06 17:20 UTC".into(),
        );
        assert!(check.paths.iter().all(|p| p.state == PathState::Waiting));
        check.progress(Progress::Checking(Path::MediaUdp));
        assert_eq!(check.paths[2].state, PathState::Checking);
        let failed = CheckResult {
            path: Path::MediaUdp,
            status: Status::Fail,
            target: "udp 203.0.113.5:3478".into(),
            rtt: None,
            detail: "No answer.".into(),
            advice: Some("Ask IT to allow outbound UDP port 3478 to 203.0.113.5.".into()),
        };
        check.progress(Progress::Done(&failed));
        let passed = CheckResult {
            path: Path::Web,
            status: Status::Pass,
            target: "https://rounds.hospital.example/healthz".into(),
            rtt: Some(Duration::from_micros(12_340)),
            detail: "The server answered.".into(),
            advice: None,
        };
        check.progress(Progress::Done(&passed));
        check.finish(Verdict::Blocked, Verdict::Blocked.summary());
        assert!(!check.running);
        assert_eq!(check.paths[0].rtt_ms, Some(12.3));
        assert_eq!(check.paths[2].state, PathState::Fail);
        assert_eq!(check.verdict, Some(NetVerdict::Blocked));
        assert!(
            check.text.contains(
                "PASS  web               12.3 ms  https://rounds.hospital.example/healthz\n"
            ),
            "{}",
            check.text
        );
        assert!(
            check.text.contains(
                "FAIL  media over UDP          -  udp 203.0.113.5:3478\n      No answer.\n      \
                 To fix: Ask IT to allow outbound UDP port 3478 to 203.0.113.5.\n"
            ),
            "{}",
            check.text
        );
        assert!(
            check.text.contains("Proxy: none (direct)"),
            "{}",
            check.text
        );
        assert!(
            check
                .text
                .ends_with(&format!("{}\n", Verdict::Blocked.summary()))
        );
    }
}
