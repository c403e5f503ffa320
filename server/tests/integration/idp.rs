//! The hospital's identity provider for SSO tests (`tests/sso/idp.mjs`, oidc-provider) and a
//! scripted system browser that signs in on its pages.
//!
//! Self-contained (reqwest, serde_json, tokio, base64, sha2, rand), so other crates' tests
//! can include it with `#[path = ".../server/tests/integration/idp.rs"] mod idp;`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use sha2::Digest;

/// The client the provider registers for Rounds by default.
pub const CLIENT_ID: &str = "rounds-desktop";

/// Fixture accounts of `tests/sso/fixtures/clinicians.json`.
pub struct Person {
    pub login: &'static str,
    pub password: &'static str,
    pub email: &'static str,
    pub name: &'static str,
    pub fhir_user: &'static str,
}

/// Has a Rounds account in the test server (the harness's clinician).
pub const OKAFOR: Person = Person {
    login: "aokafor",
    password: "hospital-password-1",
    email: "amara.okafor@stmarys.example",
    name: "Dr. Amara Okafor",
    fhir_user: "Practitioner/okafor",
};

/// Known to the hospital only.
pub const REYES: Person = Person {
    login: "jreyes",
    password: "hospital-password-2",
    email: "jamie.reyes@stmarys.example",
    name: "Dr. Jamie Reyes",
    fhir_user: "Practitioner/reyes",
};

/// `tests/sso`, found from any crate of the workspace.
pub fn sso_dir() -> PathBuf {
    // Read at run time: a test binary reused from another checkout must use this one.
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let mut dir = start.clone();
    loop {
        let candidate = dir.join("tests/sso");
        if candidate.join("idp.mjs").exists() {
            return candidate;
        }
        assert!(
            dir.pop(),
            "tests/sso/idp.mjs not found above {}",
            start.display()
        );
    }
}

/// A running `node tests/sso/idp.mjs`.
pub struct Idp {
    child: Option<Child>,
    pub issuer: String,
    pub port: u16,
}

impl Idp {
    pub fn start() -> Idp {
        Self::start_with(serde_json::json!({}))
    }

    /// Starts with an idp.mjs config (`clients`, `accounts`, `codeTtlSecs`, `tamper`).
    pub fn start_with(config: Value) -> Idp {
        let dir = sso_dir();
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "run `npm ci --ignore-scripts` in {}",
            dir.display()
        );
        let mut child = Command::new("node")
            .arg(dir.join("idp.mjs"))
            .args(["--port", "0", "--config", &config.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs tests/sso/idp.mjs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the identity provider says it is ready");
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("idp.mjs printed {line:?} ({e})"));
        Idp {
            child: Some(child),
            issuer: ready["issuer"].as_str().expect("issuer").to_owned(),
            port: ready["port"].as_u64().expect("port") as u16,
        }
    }

    /// The `[oidc]` section of a Rounds server configuration for this provider.
    pub fn server_config(&self, extra: &str) -> String {
        format!(
            "[oidc]\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nscopes = [\"openid\", \"email\", \"profile\", \"fhirUser\"]\n{extra}\n",
            self.issuer
        )
    }

    /// Stops the provider, as an outage would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the app puts into an authorization request and keeps for the token request.
pub struct Attempt {
    pub verifier: String,
    pub state: String,
    pub nonce: String,
    pub redirect_uri: String,
}

impl Attempt {
    pub fn new(redirect_uri: &str) -> Attempt {
        let random =
            || base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        Attempt {
            verifier: random(),
            state: random(),
            nonce: random(),
            redirect_uri: redirect_uri.to_owned(),
        }
    }

    pub fn authorization_url(&self, idp: &Idp, scope: &str) -> String {
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(self.verifier.as_bytes()));
        let mut url = reqwest::Url::parse(&format!("{}/auth", idp.issuer)).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", CLIENT_ID)
            .append_pair("response_type", "code")
            .append_pair("scope", scope)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("state", &self.state)
            .append_pair("nonce", &self.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        url.to_string()
    }
}

/// A system browser driven by a script: it keeps cookies, follows redirects, fills in the
/// provider's login form and answers its consent page. It stops at the loopback redirect
/// unless told to follow it (when an app is listening there).
pub struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
    pub follow_loopback: bool,
}

/// Where the browser ended up.
pub enum Landing {
    /// The provider redirected to the loopback address; the browser did not go there.
    Redirect(reqwest::Url),
    /// A page, with its final address and text.
    Page(reqwest::Url, String),
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
            follow_loopback: false,
        }
    }

    /// Opens `url` and follows redirects; a `form` is posted to the first address.
    pub async fn visit(&mut self, url: &str, form: Option<&[(&str, &str)]>) -> Landing {
        let mut url = reqwest::Url::parse(url).unwrap();
        let mut form = form.map(|f| f.to_vec());
        for _ in 0..20 {
            let loopback_callback =
                url.host_str() == Some("127.0.0.1") && url.path() == "/callback";
            if loopback_callback && !self.follow_loopback {
                return Landing::Redirect(url);
            }
            let mut req = match form.take() {
                Some(f) => self.http.post(url.clone()).form(&f),
                None => self.http.get(url.clone()),
            };
            if !self.cookies.is_empty() {
                let jar: Vec<String> = self
                    .cookies
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                req = req.header("cookie", jar.join("; "));
            }
            let res = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("browser: {url}: {e}"));
            for value in res.headers().get_all("set-cookie") {
                let pair = value.to_str().unwrap().split(';').next().unwrap();
                if let Some((k, v)) = pair.split_once('=') {
                    self.cookies.insert(k.trim().to_owned(), v.to_owned());
                }
            }
            if res.status().is_redirection() {
                let location = res.headers()["location"].to_str().unwrap().to_owned();
                url = url.join(&location).unwrap();
                continue;
            }
            let text = res.text().await.unwrap();
            return Landing::Page(url, text);
        }
        panic!("the browser followed too many redirects");
    }

    /// Signs in on the provider's form and allows Rounds on its consent page (when asked),
    /// starting from the authorization URL.
    pub async fn sign_in(&mut self, authorization_url: &str, who: &Person) -> Landing {
        self.sign_in_and(authorization_url, who, "confirm").await
    }

    /// The same, but `consent` is `"confirm"` (Allow) or `"abort"` (Deny).
    pub async fn sign_in_and(
        &mut self,
        authorization_url: &str,
        who: &Person,
        consent: &str,
    ) -> Landing {
        let mut landing = self.visit(authorization_url, None).await;
        let mut submitted_login = false;
        loop {
            let Landing::Page(at, page) = &landing else {
                return landing;
            };
            if !submitted_login && let Some(action) = form_action(page, "/login") {
                submitted_login = true;
                let target = at.join(&action).unwrap();
                landing = self
                    .visit(
                        target.as_str(),
                        Some(&[("login", who.login), ("password", who.password)]),
                    )
                    .await;
            } else if let Some(action) = form_action(page, &format!("/{consent}")) {
                let target = at.join(&action).unwrap();
                landing = self.visit(target.as_str(), Some(&[])).await;
            } else {
                return landing;
            }
        }
    }
}

/// The `action` of the page's form whose action ends with `suffix`.
fn form_action(page: &str, suffix: &str) -> Option<String> {
    page.split("action=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|action| action.ends_with(suffix))
        .map(str::to_owned)
}

/// A query parameter of a URL.
pub fn param(url: &reqwest::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
