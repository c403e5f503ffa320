//! The harness: start and stop the server binary, talk to it, read its logs.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_rounds-server");
pub const PASSWORD: &str = "correct horse battery staple";
pub const EMAIL: &str = "amara.okafor@stmarys.example";

/// The server package's folder, read at run time (cargo and nextest set it): a test binary
/// reused from another checkout of the same commit must use this checkout's files.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `rounds-server serve` with its own data directory.
pub struct Server {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub url: String,
    extra_config: String,
    server_keys: String,
    pub log_filter: String,
    http: reqwest::Client,
}

/// The script the UI fixture's page loads, to check that assets are served.
pub const FIXTURE_SCRIPT: &str = "assets/patient-abc123.js";

/// A stand-in for `npm run build`: the patient page and one hashed asset, so the server's
/// pages behave as in production without building the UI for every Rust test.
pub fn write_ui_fixture(dir: &Path) -> PathBuf {
    let ui = dir.join("ui");
    std::fs::create_dir_all(ui.join("assets")).unwrap();
    std::fs::write(
        ui.join("patient.html"),
        format!(
            "<!doctype html><div id=app></div><script type=module src=/{FIXTURE_SCRIPT}></script>"
        ),
    )
    .unwrap();
    std::fs::write(ui.join(FIXTURE_SCRIPT), "console.log('patient')").unwrap();
    ui
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with("", "info").await
    }

    /// Starts with extra TOML appended to the test configuration.
    pub async fn start_with(extra_config: &str, log_filter: &str) -> Server {
        Self::start_full("", extra_config, log_filter).await
    }

    /// Starts with extra `[server]` keys (lines of TOML) and extra sections.
    pub async fn start_full(server_keys: &str, extra_config: &str, log_filter: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut server = Server {
            child: None,
            dir,
            port,
            url: format!("http://127.0.0.1:{port}"),
            extra_config: extra_config.to_owned(),
            server_keys: server_keys.to_owned(),
            log_filter: log_filter.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        server.write_config();
        server.add_clinician("St. Mary's Clinic", EMAIL, "Dr. Amara Okafor");
        server.spawn().await;
        server
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("rounds.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn write_config(&self) {
        let has = |section: &str| self.extra_config.contains(&format!("[{section}]"));
        let ui = write_ui_fixture(self.dir.path());
        let mut config = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{url}\"\nui_dir = \"{ui}\"\n{keys}\n[storage]\ndata_dir = \"{data}\"\n\n",
            port = self.port,
            url = self.url,
            ui = ui.display(),
            keys = self.server_keys,
            data = self.data_dir().display()
        );
        if !has("limits") {
            config.push_str("[limits]\nlogin_per_minute = 1000\njoin_per_minute = 1000\ntoken_per_minute = 1000\n\n");
        }
        if !has("media") {
            config.push_str("[media]\nudp_listen = \"127.0.0.1:0\"\n\n");
        }
        if !has("visits") {
            config.push_str("[visits]\nreminder_poll_secs = 1\n\n");
        }
        config.push_str(&self.extra_config);
        std::fs::write(self.config_path(), config).unwrap();
    }

    /// Runs a CLI command against this server's configuration.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .env("ROUNDS_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn add_clinician(&self, clinic: &str, email: &str, name: &str) {
        let out = Command::new(BIN)
            .arg("--config")
            .arg(self.config_path())
            .args([
                "clinician",
                "add",
                "--clinic",
                clinic,
                "--time-zone",
                "America/Chicago",
                "--email",
                email,
                "--name",
                name,
            ])
            .env("ROUNDS_NEW_PASSWORD", PASSWORD)
            .env("ROUNDS_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "clinician add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn add_other_clinic_clinician(&self, email: &str) {
        self.add_clinician("Riverside Clinic", email, "Dr. Lee");
    }

    pub async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(BIN)
            .arg("--config")
            .arg(self.config_path())
            .arg("serve")
            .env("ROUNDS_LOG", &self.log_filter)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.url)).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("server exited with {status}:\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "server did not become ready:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown handlers run.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    child.kill().unwrap();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.wait();
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = format!("{}{}", self.url, path);
        let mut req = self.http.request(method.parse().unwrap(), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let content_type = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = res.text().await.unwrap();
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(
                content_type, "application/problem+json",
                "{method} {path} -> {status}: {text}"
            );
            let problem: Value = serde_json::from_str(&text).unwrap();
            assert!(
                problem["detail"].as_str().is_some_and(|d| d.len() > 10),
                "problem without a sentence: {text}"
            );
            assert_eq!(problem["status"], status.as_u16());
        }
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call("GET", path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, token, Some(body)).await
    }

    pub async fn login(&self) -> Value {
        let (status, body) = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({ "email": EMAIL, "password": PASSWORD }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn access_token(&self) -> String {
        self.login().await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates a visit starting in `minutes`, returns (visit json, patient link code).
    pub async fn create_visit(
        &self,
        token: &str,
        minutes: i64,
        patient_name: &str,
    ) -> (Value, String) {
        let at = chrono::Utc::now() + chrono::Duration::minutes(minutes);
        let (status, body) = self
            .post(
                "/api/v1/visits",
                Some(token),
                json!({ "scheduled_at": at, "duration_minutes": 30, "patient_name": patient_name }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let url = body["patient_link"]["url"].as_str().unwrap();
        assert!(url.starts_with(&format!("{}/join/", self.url)), "{url}");
        let code = url.rsplit('/').next().unwrap().to_owned();
        (body["visit"].clone(), code)
    }

    /// The queue path for the clinic day (America/Chicago) a visit falls on, so tests do not
    /// depend on the time of day they run at.
    pub fn queue_path(visit: &Value) -> String {
        let at: chrono::DateTime<chrono::Utc> =
            visit["scheduled_at"].as_str().unwrap().parse().unwrap();
        let tz: chrono_tz::Tz = "America/Chicago".parse().unwrap();
        format!(
            "/api/v1/visits?day={}",
            at.with_timezone(&tz).format("%Y-%m-%d")
        )
    }

    pub async fn join(&self, code: &str, name: Option<&str>) -> (StatusCode, Value) {
        let body = match name {
            Some(n) => json!({ "display_name": n }),
            None => json!({}),
        };
        self.post(&format!("/api/v1/join/{code}"), None, body).await
    }

    pub fn audit_verify(&self) -> (bool, String) {
        let out = self.cli(&["audit", "verify"]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// The server's signing keys, read from its data directory.
    pub fn keys(&self) -> rounds_auth::KeySet {
        let json = std::fs::read_to_string(self.data_dir().join("token-keys.json")).unwrap();
        rounds_auth::KeySet::from_json(&json).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The claims inside a JWT, without verifying it.
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

pub fn header(token: &str) -> Value {
    let h = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .unwrap(),
    )
    .unwrap()
}

pub fn grants(token: &str) -> Vec<String> {
    let mut g: Vec<String> = claims(token)["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    g.sort();
    g
}

/// A real SMTP server (Python's aiosmtpd) writing each message to a JSON-lines file.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    pub out: PathBuf,
}

impl SmtpSink {
    pub fn start(dir: &Path) -> SmtpSink {
        let port = free_port();
        let out = dir.join(format!("smtp-{port}.jsonl"));
        let script = manifest_dir().join("../tests/fixtures/smtp_sink.py");
        let python = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let mut child = Command::new(python)
            .arg(script)
            .arg("--port")
            .arg(port.to_string())
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd (scripts/install-deps.sh installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("ready"), "SMTP sink did not start: {line}");
        SmtpSink { child, port, out }
    }

    pub fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub async fn wait_for(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = self.messages();
            if m.len() >= count || Instant::now() > deadline {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
