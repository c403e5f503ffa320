//! The Rounds connectivity self-test: from where it runs, can a visit reach a Rounds server?
//!
//! [`run`] checks, in order, each path a visit uses and says for each whether it works, how
//! long a round trip took, and, when it fails, what to ask IT to open:
//! - **web**: `GET /healthz` over HTTPS (HTTP for a demo server), then the server's media
//!   addresses from the public `GET /api/v1/connectivity`;
//! - **signaling**: the `/rtc` WebSocket opens, and answers a `join` with a made-up token
//!   with a typed refusal, as a live server does;
//! - **media over UDP**: a STUN Binding request to the media UDP port, answered with the
//!   address the server saw;
//! - **media over TCP**: the same request framed as ICE-TCP (RFC 4571) on the web port, the
//!   fallback media takes when UDP is blocked.
//!
//! Web and signaling go through the HTTP proxy the caller describes ([`ProxySettings`],
//! usually from the environment; the WebSocket via `CONNECT`) and trust the operating
//! system's certificate store. Media never goes through a web proxy, so its checks connect
//! directly, as browsers and the desktop app do.
//!
//! Nothing here reads the environment or prints: the caller passes [`Options`] and receives
//! [`Progress`] as each check starts and ends, then the [`Report`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use url::Url;

mod checks;
mod failure;
pub mod proxy;
pub mod stun;

pub use proxy::{NoProxyRule, ProxyError, ProxySettings};

/// One of the ways a visit reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Path {
    /// Pages and the REST API over HTTPS.
    Web,
    /// The `/rtc` WebSocket.
    Signaling,
    /// Audio and video over the media UDP port.
    MediaUdp,
    /// Audio and video over ICE-TCP on the web port, when UDP is blocked.
    MediaTcp,
}

impl Path {
    /// A short name for people.
    pub fn label(self) -> &'static str {
        match self {
            Path::Web => "web",
            Path::Signaling => "signaling",
            Path::MediaUdp => "media over UDP",
            Path::MediaTcp => "media over TCP",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    /// Could not be tried because an earlier check failed.
    NotChecked,
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub path: Path,
    pub status: Status,
    /// What was tried, e.g. `https://rounds.example.org/healthz` or `udp 203.0.113.5:3478`.
    pub target: String,
    /// One round trip, when the check got an answer.
    #[serde(rename = "rtt_ms", serialize_with = "millis")]
    pub rtt: Option<Duration>,
    /// What happened, in a sentence.
    pub detail: String,
    /// On failure, what to ask IT to open or change, in a sentence.
    pub advice: Option<String>,
}

fn millis<S: serde::Serializer>(rtt: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match rtt {
        Some(d) => s.serialize_f64((d.as_secs_f64() * 10_000.0).round() / 10.0),
        None => s.serialize_none(),
    }
}

/// What the results mean for a visit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Web, signaling and media over UDP all work.
    Ready,
    /// Visits work, but media only through the TCP fallback (UDP failed).
    TcpFallbackOnly,
    /// Visits cannot work: the web, signaling or both media paths failed.
    Blocked,
}

impl Verdict {
    /// Decides from the results alone.
    pub fn from_results(results: &[CheckResult]) -> Verdict {
        let passed = |path| {
            results
                .iter()
                .any(|r| r.path == path && r.status == Status::Pass)
        };
        if !passed(Path::Web) || !passed(Path::Signaling) {
            Verdict::Blocked
        } else if passed(Path::MediaUdp) {
            Verdict::Ready
        } else if passed(Path::MediaTcp) {
            Verdict::TcpFallbackOnly
        } else {
            Verdict::Blocked
        }
    }

    pub fn summary(self) -> &'static str {
        match self {
            Verdict::Ready => {
                "Video visits will work from this network, with media directly over UDP."
            }
            Verdict::TcpFallbackOnly => {
                "Video visits will work from this network, but media takes the TCP fallback: \
                 opening the UDP port above makes video smoother on a weak connection."
            }
            Verdict::Blocked => {
                "Video visits will not work from this network until the failed paths above are \
                 opened."
            }
        }
    }
}

/// Everything [`run`] found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The server checked.
    pub server: String,
    pub verdict: Verdict,
    pub summary: String,
    /// One per [`Path`], in the order checked.
    pub results: Vec<CheckResult>,
}

/// How to run the checks.
#[derive(Clone, Debug)]
pub struct Options {
    /// How long each web, signaling or TCP step may take.
    pub timeout: Duration,
    /// How long to wait for the UDP answer (the request is repeated meanwhile, as packets
    /// get lost).
    pub udp_timeout: Duration,
    /// The HTTP proxy for web and signaling.
    pub proxy: ProxySettings,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(10),
            udp_timeout: Duration::from_secs(3),
            proxy: ProxySettings::direct(),
        }
    }
}

/// What [`run`] reports as it goes.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// A check is starting.
    Checking(Path),
    /// A check finished.
    Done(&'a CheckResult),
}

#[derive(Debug, thiserror::Error)]
pub enum NetcheckError {
    #[error("{0:?} is not a server address: give its URL, such as https://rounds.example.org")]
    BadUrl(String),
}

/// Parses what a person typed as a server address: a full `https://` or `http://` URL, or a
/// bare host name (then HTTPS).
pub fn server_url(input: &str) -> Result<Url, NetcheckError> {
    let input = input.trim();
    let with_scheme = if input.contains("://") {
        input.to_owned()
    } else {
        format!("https://{input}")
    };
    let mut url = Url::parse(&with_scheme).map_err(|_| NetcheckError::BadUrl(input.to_owned()))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(NetcheckError::BadUrl(input.to_owned()));
    }
    // Paths below the server's root are resolved against it.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// Runs every check against `server` (see [`server_url`]), calling `progress` as each starts
/// and ends. Never fails: what could not be done is in the report.
pub async fn run(
    server: &Url,
    options: &Options,
    mut progress: impl FnMut(Progress<'_>),
) -> Report {
    let mut results = Vec::with_capacity(4);
    let step = |result: CheckResult,
                results: &mut Vec<CheckResult>,
                progress: &mut dyn FnMut(Progress<'_>)| {
        progress(Progress::Done(&result));
        results.push(result);
    };
    let tls = checks::tls_config();

    progress(Progress::Checking(Path::Web));
    let (web, media) = checks::web(server, options, tls.clone()).await;
    step(web, &mut results, &mut progress);

    progress(Progress::Checking(Path::Signaling));
    let path = media
        .as_ref()
        .map_or("/rtc", |m| m.signaling_path.as_str())
        .to_owned();
    let signaling = checks::signaling(server, &path, options, tls).await;
    step(signaling, &mut results, &mut progress);

    let addresses = match &media {
        Some(m) => Some(checks::media_addresses(server, m).await),
        None => None,
    };
    progress(Progress::Checking(Path::MediaUdp));
    let udp = match &addresses {
        Some(a) => checks::udp(a, options).await,
        None => checks::not_checked(Path::MediaUdp),
    };
    step(udp, &mut results, &mut progress);

    progress(Progress::Checking(Path::MediaTcp));
    let tcp = match &addresses {
        Some(a) => checks::ice_tcp(a, options).await,
        None => checks::not_checked(Path::MediaTcp),
    };
    step(tcp, &mut results, &mut progress);

    let verdict = Verdict::from_results(&results);
    Report {
        server: server.to_string(),
        verdict,
        summary: verdict.summary().to_owned(),
        results,
    }
}

/// Where the server said media goes, resolved to addresses this machine can send to.
#[derive(Clone, Debug)]
pub(crate) struct MediaAddresses {
    pub(crate) udp: Option<SocketAddr>,
    pub(crate) tcp: Option<SocketAddr>,
    /// Set when the server's answer could not be read as addresses.
    pub(crate) unreadable: Option<String>,
}

pub(crate) type Tls = Arc<rustls::ClientConfig>;

#[cfg(test)]
mod tests {
    use super::*;

    fn result(path: Path, status: Status) -> CheckResult {
        CheckResult {
            path,
            status,
            target: String::new(),
            rtt: None,
            detail: String::new(),
            advice: None,
        }
    }

    #[test]
    fn the_verdict_follows_the_paths_media_needs() {
        use Status::*;
        let all = |web, sig, udp, tcp| {
            Verdict::from_results(&[
                result(Path::Web, web),
                result(Path::Signaling, sig),
                result(Path::MediaUdp, udp),
                result(Path::MediaTcp, tcp),
            ])
        };
        assert_eq!(all(Pass, Pass, Pass, Pass), Verdict::Ready);
        assert_eq!(all(Pass, Pass, Pass, Fail), Verdict::Ready);
        assert_eq!(all(Pass, Pass, Fail, Pass), Verdict::TcpFallbackOnly);
        assert_eq!(all(Pass, Pass, Fail, Fail), Verdict::Blocked);
        assert_eq!(all(Pass, Fail, Pass, Pass), Verdict::Blocked);
        assert_eq!(all(Fail, Pass, NotChecked, NotChecked), Verdict::Blocked);
    }

    #[test]
    fn server_addresses_as_people_type_them() {
        let u = server_url("rounds.example.org").expect("bare host");
        assert_eq!(u.as_str(), "https://rounds.example.org/");
        let u = server_url("http://127.0.0.1:8080").expect("demo");
        assert_eq!(u.as_str(), "http://127.0.0.1:8080/");
        let u = server_url("https://h.example/rounds?x=1").expect("under a path");
        assert_eq!(
            u.join("healthz").expect("join").as_str(),
            "https://h.example/rounds/healthz"
        );
        assert!(server_url("ftp://h.example").is_err());
        assert!(server_url("https://").is_err());
    }

    /// The desktop app runs the check on a spawned task, reporting progress to its window.
    #[test]
    fn the_check_can_run_on_a_spawned_task() {
        fn spawnable<T: std::future::Future + Send + 'static>(_: &T) {}
        let server = server_url("http://127.0.0.1:9").expect("url");
        let (tx, _rx) = std::sync::mpsc::channel::<String>();
        let check = async move {
            let options = Options::default();
            run(&server, &options, move |p| {
                let _ = tx.send(format!("{p:?}"));
            })
            .await
        };
        spawnable(&check);
    }

    #[test]
    fn round_trips_are_reported_in_milliseconds() {
        let mut r = result(Path::Web, Status::Pass);
        r.rtt = Some(Duration::from_micros(12_345));
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["rtt_ms"], 12.3);
        assert_eq!(json["path"], "web");
        assert_eq!(json["status"], "pass");
    }
}
