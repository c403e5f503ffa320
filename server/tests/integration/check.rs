//! `rounds-server check <url>`, the real binary against a real server: every path passes; a
//! server with UDP media off fails UDP but passes the TCP fallback (exit 3); an unreachable
//! server gets a sentence and exit 1; and web and signaling go through a real HTTP proxy
//! (Debian's tinyproxy) when `HTTP_PROXY` says so.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

fn check(url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    // Generous: a loaded machine must not turn a slow answer into a failure.
    cmd.arg("check")
        .arg(url)
        .args(args)
        .args(["--timeout", "30"]);
    // Only what the test says: no proxy from the machine running the tests.
    for var in ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"] {
        cmd.env_remove(var).env_remove(var.to_ascii_lowercase());
    }
    cmd.envs(env.iter().copied())
        .env("ROUNDS_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn line<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        // "PASS  label ...": the status, two spaces, then the path's label.
        .find(|l| {
            ["PASS  ", "FAIL  ", "SKIP  "].iter().any(|status| {
                l.strip_prefix(status)
                    .is_some_and(|rest| rest.starts_with(label))
            })
        })
        .unwrap_or_else(|| panic!("no line for {label} in:\n{stdout}"))
}

async fn metrics_text(server: &Server) -> String {
    reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn metric(body: &str, name: &str, labels: &[&str]) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|lab| l.contains(lab)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_path_passes_against_a_running_server() {
    let server = Server::start().await;
    // Where media goes, for anyone to ask.
    let (status, media) = server.get("/api/v1/connectivity", None).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert!(
        media["udp"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{media}"
    );
    assert_eq!(media["ice_tcp"], format!("127.0.0.1:{}", server.port));
    assert_eq!(media["signaling_path"], "/rtc");
    let metrics_before = metrics_text(&server).await;
    let out = check(&server.url, &[], &[]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for label in ["web", "signaling", "media over UDP", "media over TCP"] {
        let l = line(&stdout, label);
        assert!(l.starts_with("PASS"), "{report}");
        assert!(l.contains(" ms"), "a round-trip time: {l}");
    }
    assert!(
        stdout.contains("Video visits will work from this network"),
        "{report}"
    );
    // The server answered the probes itself and counted them.
    let metrics = metrics_text(&server).await;
    for transport in ["udp", "tcp"] {
        let labels = [
            &format!("transport=\"{transport}\"")[..],
            "outcome=\"answered\"",
        ];
        let answered = metric(&metrics, "rounds_sfu_stun_probes_total", &labels)
            - metric(&metrics_before, "rounds_sfu_stun_probes_total", &labels);
        assert!(
            answered >= 1.0,
            "{transport} probes answered: {answered}\n{metrics}"
        );
    }

    // The same as JSON, for scripts; progress goes to standard error. No server
    // configuration is read, so a missing one does not matter.
    let out = check(
        &server.url,
        &["--json"],
        &[("ROUNDS_CONFIG", "/nonexistent/rounds.toml")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(json["verdict"], "ready");
    let results = json["results"].as_array().expect("results");
    let paths: Vec<&str> = results
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["web", "signaling", "media_udp", "media_tcp"]);
    for r in results {
        assert_eq!(r["status"], "pass", "{r}");
        assert!(r["rtt_ms"].as_f64().is_some(), "{r}");
        assert!(r["advice"].is_null(), "{r}");
    }
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("PASS"))
            .count(),
        4,
        "progress on stderr: {}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_udp_media_off_udp_fails_and_the_tcp_fallback_passes() {
    let server = Server::start_with(
        "[media]\nudp_listen = \"127.0.0.1:0\"\nudp_enabled = false\n\n",
        "info",
    )
    .await;
    let (_, media) = server.get("/api/v1/connectivity", None).await;
    assert!(media["udp"].is_null(), "{media}");
    assert_eq!(media["ice_tcp"], format!("127.0.0.1:{}", server.port));
    let out = check(&server.url, &[], &[]);
    let report = text(&out);
    assert_eq!(
        out.status.code(),
        Some(3),
        "works only through the fallback: {report}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        line(&stdout, "media over UDP").starts_with("FAIL"),
        "{report}"
    );
    assert!(
        line(&stdout, "media over TCP").starts_with("PASS"),
        "{report}"
    );
    assert!(line(&stdout, "web").starts_with("PASS"), "{report}");
    assert!(line(&stdout, "signaling").starts_with("PASS"), "{report}");
    assert!(
        stdout.contains(&format!("media uses TCP port {} instead", server.port)),
        "{report}"
    );
    assert!(stdout.contains("takes the TCP fallback"), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_server_gets_a_clear_sentence() {
    let port = free_port();
    let out = check(&format!("http://127.0.0.1:{port}"), &[], &[]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(line(&stdout, "web").starts_with("FAIL"), "{report}");
    assert!(
        stdout.contains(&format!("127.0.0.1:{port} refused the connection")),
        "{report}"
    );
    assert!(
        stdout.contains(&format!("allow outbound TCP port {port} to 127.0.0.1")),
        "{report}"
    );
    assert!(
        line(&stdout, "media over UDP").starts_with("SKIP"),
        "{report}"
    );
    assert!(
        stdout.contains("will not work from this network"),
        "{report}"
    );

    // Something that is not an address at all is a usage error.
    let out = check("ftp://example.org", &[], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a server address"));
}

/// Debian's tinyproxy on a free loopback port, logging every request it relays.
struct Tinyproxy {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    async fn start() -> Tinyproxy {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("tinyproxy.log");
        let config = dir.path().join("tinyproxy.conf");
        // No ConnectPort lines: CONNECT is allowed to any port (the server's is not 443).
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Info\nMaxClients 20\nAllow 127.0.0.1\n",
                log.display()
            ),
        )
        .unwrap();
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy runs (scripts/install-deps.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "tinyproxy did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Tinyproxy {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn web_and_signaling_go_through_the_proxy_unless_no_proxy_says_otherwise() {
    let server = Server::start().await;
    let proxy = Tinyproxy::start().await;
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);

    let out = check(&server.url, &[], &[("HTTP_PROXY", &proxy_url)]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}\n{}", proxy.log());
    let log = proxy.log();
    // tinyproxy logs each relayed request: the web check's GETs, and the WebSocket's CONNECT.
    assert!(
        log.contains("GET http://127.0.0.1"),
        "no GET through the proxy:\n{log}"
    );
    assert!(
        log.contains(&format!("CONNECT 127.0.0.1:{}", server.port)),
        "no CONNECT through the proxy:\n{log}"
    );
    let json_out = check(&server.url, &["--json"], &[("http_proxy", &proxy_url)]);
    let json: Value = serde_json::from_slice(&json_out.stdout).expect("JSON");
    let web = json["results"][0]["detail"].as_str().unwrap();
    assert!(
        web.contains(&format!("through the proxy at 127.0.0.1:{}", proxy.port)),
        "{}\n{}",
        text(&json_out),
        proxy.log()
    );

    // A proxy that is not there: the web check fails and says which proxy...
    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = check(&server.url, &[], &[("HTTP_PROXY", &dead)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("through the proxy at"),
        "{}",
        text(&out)
    );
    // ...unless NO_PROXY names the server.
    let out = check(
        &server.url,
        &[],
        &[("HTTP_PROXY", &dead), ("NO_PROXY", "127.0.0.1")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
