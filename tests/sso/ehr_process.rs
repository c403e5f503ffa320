//! Starts the test EHR (`tests/sso/ehr.mjs`: a SMART authorization server and a FHIR R4
//! server) for Rust tests, which include this file with `#[path]`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The running EHR; stopped when dropped.
pub struct EhrProcess {
    child: Child,
    /// Its authorization server's issuer (`/test/...` knobs live under it).
    pub issuer: String,
}

impl Drop for EhrProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts it with its authorization server on `auth`, FHIR on `fhir` (base
/// `http://127.0.0.1:{fhir}/4_0_0`), and Rounds registered with `redirect_uri`.
pub fn start_ehr(auth: u16, fhir: u16, redirect_uri: &str) -> EhrProcess {
    let script = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .ancestors()
        .find(|dir| dir.join("tests/sso/ehr.mjs").is_file())
        .expect("the repository root")
        .join("tests/sso/ehr.mjs");
    let mut child = Command::new("node")
        .arg(script)
        .args(["--auth-port", &auth.to_string()])
        .args(["--fhir-port", &fhir.to_string()])
        .args(["--redirect-uri", redirect_uri])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs tests/sso/ehr.mjs (npm ci --ignore-scripts in tests/sso)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("the test EHR did not start ({e}): {line}"));
    EhrProcess {
        child,
        issuer: ready["issuer"].as_str().unwrap().to_owned(),
    }
}

/// The clinician's browser, from a Rounds launch URL (`/ehr/launch` or `/ehr/standalone`)
/// through the EHR's sign-in and patient picker (as dr-okafor) to the page it ends on.
pub async fn browse_launch(launch_url: &str) -> String {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut url = launch_url.to_owned();
    for _ in 0..12 {
        let r = if url.contains("/interaction/") {
            let page = http.get(&url).send().await.unwrap();
            assert_eq!(page.status(), reqwest::StatusCode::OK, "{url}");
            http.post(format!("{url}/confirm"))
                .form(&[("practitioner", "dr-okafor")])
                .send()
                .await
                .unwrap()
        } else {
            http.get(&url).send().await.unwrap()
        };
        if !r.status().is_redirection() {
            let status = r.status();
            let page = r.text().await.unwrap();
            assert_eq!(status, reqwest::StatusCode::OK, "{url}: {page}");
            return page;
        }
        let base = r.url().clone();
        url = base
            .join(r.headers()[reqwest::header::LOCATION].to_str().unwrap())
            .unwrap()
            .to_string();
    }
    panic!("too many redirects from {launch_url}");
}

/// The `rounds://visit/{id}?ticket=...` link on the handoff page.
pub fn handoff_link(page: &str) -> String {
    let start = page
        .find("href=\"rounds://visit/")
        .unwrap_or_else(|| panic!("no handoff link on the page: {page}"))
        + 6;
    page[start..start + page[start..].find('"').unwrap()].replace("&amp;", "&")
}
