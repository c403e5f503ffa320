//! `rounds-server check <url>`: the connectivity self-test ([`rounds_netcheck`]) for IT, run
//! from the network people will use. This module only words and prints; the checks live in
//! the library, which the desktop app shares.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use rounds_netcheck::{CheckResult, Options, Progress, ProxySettings, Report, Status, Verdict};

/// Width of the path column, so the lines align.
const LABEL_WIDTH: usize = 15;

/// One line per result: status, path, round trip, target; on failure, what happened and what
/// to ask for on the lines below.
pub fn result_lines(r: &CheckResult) -> String {
    let status = match r.status {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::NotChecked => "SKIP",
    };
    let rtt = r
        .rtt
        .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
        .unwrap_or_else(|| "-".into());
    let mut out = format!(
        "{status}  {:<LABEL_WIDTH$} {rtt:>9}  {}",
        r.path.label(),
        r.target
    )
    .trim_end()
    .to_owned();
    out.push('\n');
    if r.status != Status::Pass {
        out.push_str(&format!("      {}\n", r.detail));
        if let Some(advice) = &r.advice {
            out.push_str(&format!("      To fix: {advice}\n"));
        }
    }
    out
}

/// The exit status for a verdict; see `rounds-server check --help`.
pub fn exit_status(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Ready => 0,
        Verdict::Blocked => 1,
        Verdict::TcpFallbackOnly => 3,
    }
}

/// Runs the check and prints it. `proxy_var` reads the proxy variables (the environment, in
/// the binary).
pub async fn run(
    url: &str,
    json: bool,
    timeout: Duration,
    proxy_var: impl Fn(&str) -> Option<String>,
) -> ExitCode {
    let server = match rounds_netcheck::server_url(url) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("rounds-server check: {e}");
            return ExitCode::from(2);
        }
    };
    let proxy = match ProxySettings::from_vars(proxy_var) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rounds-server check: {e}");
            return ExitCode::from(2);
        }
    };
    let options = Options {
        timeout,
        proxy,
        ..Options::default()
    };
    let interactive = std::io::stderr().is_terminal();
    if !json {
        println!("Checking {server} from this computer:\n");
    }
    let report: Report = rounds_netcheck::run(&server, &options, |event| match event {
        Progress::Checking(path) => {
            if interactive {
                eprint!("      checking {}…", path.label());
                let _ = std::io::stderr().flush();
            }
        }
        Progress::Done(result) => {
            if interactive {
                // Clear the "checking" line before the result takes its place.
                eprint!("\r\x1b[K");
            }
            let lines = result_lines(result);
            if json {
                eprint!("{lines}");
            } else {
                print!("{lines}");
                let _ = std::io::stdout().flush();
            }
        }
    })
    .await;
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("rounds-server check: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        println!("\n{}", report.summary);
    }
    ExitCode::from(exit_status(report.verdict))
}

#[cfg(test)]
mod tests {
    use rounds_netcheck::Path;

    use super::*;

    #[test]
    fn a_pass_is_one_line_and_a_failure_says_what_to_open() {
        let pass = CheckResult {
            path: Path::Web,
            status: Status::Pass,
            target: "https://rounds.example.org/healthz".into(),
            rtt: Some(Duration::from_micros(12_340)),
            detail: "The server answered over HTTPS.".into(),
            advice: None,
        };
        assert_eq!(
            result_lines(&pass),
            "PASS  web               12.3 ms  https://rounds.example.org/healthz\n"
        );
        let fail = CheckResult {
            path: Path::MediaUdp,
            status: Status::Fail,
            target: "udp 203.0.113.5:3478".into(),
            rtt: None,
            detail: "No answer.".into(),
            advice: Some("Ask IT to allow outbound UDP port 3478 to 203.0.113.5.".into()),
        };
        assert_eq!(
            result_lines(&fail),
            "FAIL  media over UDP          -  udp 203.0.113.5:3478\n      No answer.\n      \
             To fix: Ask IT to allow outbound UDP port 3478 to 203.0.113.5.\n"
        );
    }

    #[test]
    fn only_a_blocked_visit_fails_hard() {
        assert_eq!(exit_status(Verdict::Ready), 0);
        assert_eq!(exit_status(Verdict::Blocked), 1);
        assert_eq!(exit_status(Verdict::TcpFallbackOnly), 3);
    }
}
