//! Local servers and helpers shared by the test modules.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rounds_notify::{EmailConfig, SmtpTls};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A port nobody listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// `tests/fixtures/smtp_sink.py` running as a child process; killed on drop.
pub struct SmtpSink {
    pub port: u16,
    out: PathBuf,
    _child: Child,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let script = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
            .join("../../tests/fixtures/smtp_sink.py");
        let out =
            std::env::temp_dir().join(format!("rounds-smtp-sink-{}.jsonl", uuid::Uuid::new_v4()));
        let mut child = Command::new("/usr/bin/python3")
            .arg(&script)
            .args(["--port", "0", "--out"])
            .arg(&out)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("could not run /usr/bin/python3");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut port = None;
        let wait_ready = async {
            while let Some(line) = lines.next_line().await.expect("read smtp_sink.py stdout") {
                if let Some(p) = line.strip_prefix("port ") {
                    port = Some(
                        p.trim()
                            .parse::<u16>()
                            .expect("smtp_sink.py printed a bad port"),
                    );
                } else if line.trim() == "ready" {
                    return true;
                }
            }
            false
        };
        let ready = tokio::time::timeout(Duration::from_secs(30), wait_ready)
            .await
            .expect("smtp_sink.py did not get ready within 30 s");
        assert!(
            ready,
            "smtp_sink.py exited before it was ready (is python3-aiosmtpd installed? \
             apt-get install python3-aiosmtpd)"
        );
        Self {
            port: port.expect("smtp_sink.py did not print its port"),
            out,
            _child: child,
        }
    }

    pub fn config(&self) -> EmailConfig {
        local_email_config(self.port, 10)
    }

    /// Every message received so far, as written by the sink.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("smtp_sink.py wrote a bad JSON line"))
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.out);
    }
}

/// An email config for a server on `port` of this machine, without TLS.
pub fn local_email_config(port: u16, timeout_secs: u64) -> EmailConfig {
    EmailConfig {
        smtp_host: "127.0.0.1".into(),
        smtp_port: port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "Rounds <visits@clinic.example>".into(),
        timeout_secs,
    }
}

/// Asserts that neither `Display` nor `Debug` of `err` mentions `secret`.
pub fn assert_not_leaked(err: &rounds_notify::NotifyError, secret: &str) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(secret), "{shown:?} leaks {secret:?}");
    if let Some(digits) = secret.strip_prefix('+') {
        assert!(!shown.contains(digits), "{shown:?} leaks {digits:?}");
    }
}
