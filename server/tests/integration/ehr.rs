//! SMART App Launch against a real EHR: `tests/sso/ehr.mjs` runs oidc-provider with a SMART
//! layer and node-fhir-server-core; the test is the clinician's browser (a cookie jar that
//! follows redirects by hand) and checks what Rounds hands to the desktop app.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use serde_json::{Value, json};

use crate::common::{Server, free_port};

/// The EHR fixture: its authorization server and FHIR server.
pub struct Ehr {
    child: Child,
    pub issuer: String,
    /// The FHIR base URL: the `iss` of launches.
    pub fhir: String,
    /// The same FHIR server by another name, allow-listed too: a launch from it sends an
    /// `aud` the authorization server does not accept.
    pub fhir_alias: String,
    http: reqwest::Client,
}

impl Drop for Ehr {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fixture() -> PathBuf {
    crate::common::manifest_dir().join("../tests/sso/ehr.mjs")
}

/// Ports for the EHR, known before Rounds starts so its configuration can name them.
pub struct EhrPorts {
    auth: u16,
    fhir: u16,
}

impl EhrPorts {
    pub fn pick() -> Self {
        Self {
            auth: free_port(),
            fhir: free_port(),
        }
    }

    pub fn fhir_base(&self) -> String {
        format!("http://127.0.0.1:{}/4_0_0", self.fhir)
    }

    /// The `[ehr]` configuration that allow-lists this EHR (and its alias).
    pub fn config(&self, extra: &str) -> String {
        let issuer = |iss: String| {
            format!(
                "[[ehr.issuers]]\niss = \"{iss}\"\nclient_id = \"rounds\"\nclient_secret = \"rounds-ehr-client-secret-for-tests-only\"\n\
                 clinicians = {{ \"Practitioner/dr-okafor\" = \"{}\" }}\n\n",
                crate::common::EMAIL
            )
        };
        format!(
            "[ehr]\nlaunch_ttl_secs = 120\n{extra}\n{}{}",
            issuer(self.fhir_base()),
            issuer(format!("http://localhost:{}/4_0_0", self.fhir))
        )
    }

    pub fn start(self, redirect_uri: &str) -> Ehr {
        let mut child = Command::new("node")
            .arg(fixture())
            .args(["--auth-port", &self.auth.to_string()])
            .args(["--fhir-port", &self.fhir.to_string()])
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
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the EHR fixture did not start ({e}): {line}"));
        Ehr {
            child,
            issuer: ready["issuer"].as_str().unwrap().to_owned(),
            fhir: ready["fhir"].as_str().unwrap().to_owned(),
            fhir_alias: format!("http://localhost:{}/4_0_0", self.fhir),
            http: reqwest::Client::new(),
        }
    }
}

impl Ehr {
    async fn knob(&self, url: String, body: Value) -> Value {
        let r = self.http.post(url).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "knob: {}", r.status());
        r.json().await.unwrap()
    }

    /// What the EHR does before it opens Rounds from the chart.
    pub async fn new_launch(&self, patient: &str, encounter: Option<&str>) -> String {
        let v = self
            .knob(
                format!("{}/test/launch", self.issuer),
                json!({ "patient": patient, "encounter": encounter }),
            )
            .await;
        v["launch"].as_str().unwrap().to_owned()
    }

    pub async fn code_ttl(&self, seconds: u64) {
        self.knob(
            format!("{}/test/code-ttl", self.issuer),
            json!({ "seconds": seconds }),
        )
        .await;
    }

    pub async fn tamper_next_id_token(&self, body: Value) {
        self.knob(format!("{}/test/id-token", self.issuer), body)
            .await;
    }

    pub async fn fhir_fails_with(&self, status: u16) {
        let origin = self.fhir.trim_end_matches("/4_0_0");
        self.knob(format!("{origin}/test/fail"), json!({ "status": status }))
            .await;
    }

    pub async fn encounter(&self, id: &str) -> Value {
        let origin = self.fhir.trim_end_matches("/4_0_0");
        self.http
            .get(format!("{origin}/test/encounter/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Rounds and the EHR, wired to each other.
pub async fn start(extra_ehr_config: &str) -> (Server, Ehr) {
    let ports = EhrPorts::pick();
    let server = Server::start_with(&ports.config(extra_ehr_config), "info").await;
    let ehr = ports.start(&format!("{}/ehr/callback", server.url));
    (server, ehr)
}

/// The clinician's browser: one cookie jar, redirects followed by hand.
pub struct Browser {
    http: reqwest::Client,
}

/// Where the EHR sent the browser back to Rounds, not yet opened.
pub struct Callback(pub String);

impl Browser {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.unwrap()
    }

    fn location(r: &reqwest::Response) -> String {
        let base = r.url().clone();
        let loc = r
            .headers()
            .get(LOCATION)
            .unwrap_or_else(|| panic!("no redirect from {base}: {}", r.status()))
            .to_str()
            .unwrap();
        base.join(loc).unwrap().to_string()
    }

    /// Opens a Rounds launch URL: the redirect to the EHR's authorize endpoint.
    pub async fn launch(&self, url: &str) -> String {
        let r = self.get(url).await;
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "{url}: {}",
            r.text().await.unwrap()
        );
        Self::location(&r)
    }

    /// From the authorize URL through the EHR's sign-in and consent screen, to the redirect
    /// back to Rounds. `practitioner` signs in and allows; `None` denies.
    pub async fn authorize(&self, authorize_url: &str, practitioner: Option<&str>) -> Callback {
        let mut url = authorize_url.to_owned();
        loop {
            if url.contains("/ehr/callback") {
                return Callback(url);
            }
            let r = if url.contains("/interaction/") && !url.ends_with("/confirm") {
                // The EHR's sign-in page, then the clinician's choice.
                let page = self.get(&url).await;
                assert_eq!(page.status(), StatusCode::OK, "{url}");
                match practitioner {
                    Some(p) => self
                        .http
                        .post(format!("{url}/confirm"))
                        .form(&[("practitioner", p)])
                        .send()
                        .await
                        .unwrap(),
                    None => self.http.post(format!("{url}/abort")).send().await.unwrap(),
                }
            } else {
                self.get(&url).await
            };
            assert!(
                r.status().is_redirection(),
                "{url}: {} {}",
                r.status(),
                r.text().await.unwrap()
            );
            url = Self::location(&r);
        }
    }

    /// Opens the callback on Rounds: the page the clinician sees.
    pub async fn finish(&self, cb: &Callback) -> (StatusCode, String) {
        let r = self.get(&cb.0).await;
        let status = r.status();
        let ct = r
            .headers()
            .get(CONTENT_TYPE)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(ct.starts_with("text/html"), "{ct}");
        (status, r.text().await.unwrap())
    }

    /// A whole EHR launch from the chart, signing in as dr-okafor.
    pub async fn ehr_launch(
        &self,
        server: &Server,
        iss: &str,
        launch: &str,
    ) -> (StatusCode, String) {
        let authorize = self.launch(&launch_url(&server.url, iss, launch)).await;
        let cb = self.authorize(&authorize, Some("dr-okafor")).await;
        self.finish(&cb).await
    }
}

/// What the EHR opens from the chart: Rounds' launch endpoint with `iss` and `launch`.
pub fn launch_url(server_url: &str, iss: &str, launch: &str) -> String {
    format!(
        "{server_url}/ehr/launch?iss={}&launch={launch}",
        urlencode(iss)
    )
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The `rounds://visit/{id}?ticket=...&server=...` link of a handoff page.
pub fn handoff_link(page: &str) -> (String, String, String) {
    let start = page
        .find("href=\"rounds://visit/")
        .expect("a rounds://visit link")
        + 6;
    let end = start + page[start..].find('"').unwrap();
    let link = page[start..end].replace("&amp;", "&");
    let url = url::Url::parse(&link).unwrap();
    assert_eq!(url.scheme(), "rounds");
    assert_eq!(url.host_str(), Some("visit"));
    let id = url.path().trim_start_matches('/').to_owned();
    let q = |k: &str| {
        url.query_pairs()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("{k} in {link}"))
    };
    (id, q("ticket"), q("server"))
}

/// Redeems a ticket like the desktop app does, and reads the visit with that session.
async fn open_as_app(server: &Server, visit_id: &str, ticket: &str) -> Value {
    let (status, session) = server
        .post("/api/v1/auth/ticket", None, json!({ "ticket": ticket }))
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let token = session["access_token"].as_str().unwrap();
    let (status, visit) = server
        .get(&format!("/api/v1/visits/{visit_id}"), Some(token))
        .await;
    assert_eq!(status, StatusCode::OK, "{visit}");
    visit
}

fn assert_page(status: StatusCode, page: &str, want_status: StatusCode, sentence: &str) {
    assert_eq!(status, want_status, "{page}");
    assert!(
        page.contains(sentence),
        "expected \u{201c}{sentence}\u{201d} in:\n{page}"
    );
    assert!(page.contains("What to do:"), "{page}");
    assert!(!page.to_lowercase().contains("panicked"), "{page}");
}

#[tokio::test]
async fn ehr_launch_opens_the_encounters_visit_in_the_app() {
    let (server, ehr) = start("").await;
    let browser = Browser::new();
    let launch = ehr.new_launch("pat-1001", Some("enc-2001")).await;

    // The authorization request Rounds sends: PKCE S256, aud = iss, the SMART scopes, a long state.
    let authorize = browser
        .launch(&launch_url(&server.url, &ehr.fhir, &launch))
        .await;
    let q: std::collections::HashMap<String, String> = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert!(authorize.starts_with(&ehr.issuer), "{authorize}");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "rounds");
    assert_eq!(q["redirect_uri"], format!("{}/ehr/callback", server.url));
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert_eq!(q["aud"], ehr.fhir);
    assert_eq!(q["launch"], launch);
    assert_eq!(
        q["scope"],
        "launch openid fhirUser patient/Patient.rs patient/Encounter.rs"
    );
    assert!(
        q["state"].len() >= 43,
        "state carries at least 256 bits: {}",
        q["state"]
    );

    let cb = browser.authorize(&authorize, Some("dr-okafor")).await;
    let (status, page) = browser.finish(&cb).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Open in Rounds"), "{page}");
    assert!(page.contains("http-equiv=\"refresh\""), "{page}");
    let (visit_id, ticket, server_url) = handoff_link(&page);
    assert_eq!(server_url, server.url);

    let visit = open_as_app(&server, &visit_id, &ticket).await;
    assert_eq!(visit["id"], visit_id);
    assert_eq!(visit["patient_name"], "Rosalind Quintero");
    // The ticket worked once.
    let (status, _) = server
        .post("/api/v1/auth/ticket", None, json!({ "ticket": ticket }))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // One room per encounter: launching it again opens the same visit.
    let again = ehr.new_launch("pat-1001", Some("enc-2001")).await;
    let (status, page) = Browser::new().ehr_launch(&server, &ehr.fhir, &again).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(handoff_link(&page).0, visit_id);
    // Another encounter of the same patient is another visit.
    let other = ehr.new_launch("pat-1001", Some("enc-2002")).await;
    let (_, page) = Browser::new().ehr_launch(&server, &ehr.fhir, &other).await;
    assert_ne!(handoff_link(&page).0, visit_id);

    // Nothing about the patient, or the EHR's ids for them, reached the logs.
    let logs = server.logs();
    for phi in [
        "Quintero",
        "Rosalind",
        "MRN-447120",
        "1958-03-14",
        "pat-1001",
        "enc-2001",
    ] {
        assert!(!logs.contains(phi), "{phi} is in the server log");
    }
    assert!(
        logs.contains("EHR launch handed to the desktop app"),
        "{logs}"
    );
}

#[tokio::test]
async fn standalone_launch_lets_the_ehr_pick_the_patient() {
    let (server, ehr) = start("").await;
    // The app learns which EHRs it can start from, and the page that starts each.
    let options: Value = reqwest::get(format!("{}/api/v1/ehr", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ehrs = options["ehrs"].as_array().unwrap();
    assert_eq!(ehrs.len(), 2, "{options}");
    let choice = ehrs.iter().find(|e| e["iss"] == ehr.fhir.as_str()).unwrap();
    assert_eq!(
        choice["name"], "127.0.0.1",
        "unnamed EHRs are shown by host"
    );
    let browser = Browser::new();
    let authorize = browser
        .launch(choice["standalone_url"].as_str().unwrap())
        .await;
    assert!(authorize.contains("launch%2Fpatient"), "{authorize}");
    assert!(!authorize.contains("launch="), "{authorize}");
    let cb = browser.authorize(&authorize, Some("dr-okafor")).await;
    let (status, page) = browser.finish(&cb).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (visit_id, ticket, _) = handoff_link(&page);
    let visit = open_as_app(&server, &visit_id, &ticket).await;
    assert_eq!(visit["patient_name"], "Theodore Vasquez-Lind");
}

#[tokio::test]
async fn launches_that_go_wrong_end_on_a_clear_page() {
    let (server, ehr) = start("").await;

    // A state Rounds never issued.
    let (status, page) = Browser::new()
        .finish(&Callback(format!(
            "{}/ehr/callback?code=abc&state=forged",
            server.url
        )))
        .await;
    assert_page(
        status,
        &page,
        StatusCode::BAD_REQUEST,
        "does not belong to a launch Rounds started",
    );
    // ...and as a problem document to a client that asks for JSON.
    let r = reqwest::Client::new()
        .get(format!("{}/ehr/callback?code=abc&state=forged", server.url))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[CONTENT_TYPE], "application/problem+json");

    // The consent screen, denied.
    let browser = Browser::new();
    let launch = ehr.new_launch("pat-1001", Some("enc-2001")).await;
    let authorize = browser
        .launch(&launch_url(&server.url, &ehr.fhir, &launch))
        .await;
    let cb = browser.authorize(&authorize, None).await;
    let (status, page) = browser.finish(&cb).await;
    assert_page(
        status,
        &page,
        StatusCode::FORBIDDEN,
        "You chose not to let Rounds see this patient",
    );

    // A used state does not work twice: replaying a successful callback.
    let launch = ehr.new_launch("pat-1001", Some("enc-2001")).await;
    let browser = Browser::new();
    let authorize = browser
        .launch(&launch_url(&server.url, &ehr.fhir, &launch))
        .await;
    let cb = browser.authorize(&authorize, Some("dr-okafor")).await;
    let (status, _) = browser.finish(&cb).await;
    assert_eq!(status, StatusCode::OK);
    let (status, page) = browser.finish(&cb).await;
    assert_page(status, &page, StatusCode::BAD_REQUEST, "already used");

    // A replayed code: the EHR refuses it under a fresh state as well.
    let code = url::Url::parse(&cb.0)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let launch = ehr.new_launch("pat-1001", Some("enc-2001")).await;
    let authorize = browser
        .launch(&launch_url(&server.url, &ehr.fhir, &launch))
        .await;
    let fresh_state = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let (status, page) = browser
        .finish(&Callback(format!(
            "{}/ehr/callback?code={}&state={}",
            server.url,
            urlencode(&code),
            urlencode(&fresh_state)
        )))
        .await;
    assert_page(
        status,
        &page,
        StatusCode::BAD_REQUEST,
        "had expired or had already been used",
    );

    // An expired code.
    ehr.code_ttl(1).await;
    let launch = ehr.new_launch("pat-1001", Some("enc-2001")).await;
    let browser = Browser::new();
    let authorize = browser
        .launch(&launch_url(&server.url, &ehr.fhir, &launch))
        .await;
    let cb = browser.authorize(&authorize, Some("dr-okafor")).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, page) = browser.finish(&cb).await;
    assert_page(
        status,
        &page,
        StatusCode::BAD_REQUEST,
        "had expired or had already been used",
    );
    ehr.code_ttl(60).await;

    // The wrong aud: launched under another name for the FHIR server, Rounds sends that name
    // as aud and the EHR refuses it.
    let launch = ehr.new_launch("pat-1001", Some("enc-2001")).await;
    let browser = Browser::new();
    let authorize = browser
        .launch(&launch_url(&server.url, &ehr.fhir_alias, &launch))
        .await;
    assert!(
        authorize.contains(&format!("aud={}", urlencode(&ehr.fhir_alias))),
        "{authorize}"
    );
    let cb = browser.authorize(&authorize, Some("dr-okafor")).await;
    assert!(cb.0.contains("error=invalid_request"), "{}", cb.0);
    let (status, page) = browser.finish(&cb).await;
    assert_page(
        status,
        &page,
        StatusCode::BAD_REQUEST,
        "Your EHR refused Rounds",
    );
    assert!(
        page.contains("aud must be"),
        "the EHR's reason is shown: {page}"
    );

    // An id_token for someone else, and one with another launch's nonce.
    for tamper in [
        json!({ "aud": "another-app" }),
        json!({ "nonce": "not-this-launchs-nonce" }),
    ] {
        ehr.tamper_next_id_token(tamper.clone()).await;
        let launch = ehr.new_launch("pat-1001", Some("enc-2001")).await;
        let (status, page) = Browser::new().ehr_launch(&server, &ehr.fhir, &launch).await;
        assert_page(
            status,
            &page,
            StatusCode::BAD_REQUEST,
            "Rounds could not confirm who you are",
        );
        assert!(!page.contains("rounds://"), "{tamper}: {page}");
    }

    // No encounter in the launch context.
    let launch = ehr.new_launch("pat-1001", None).await;
    let (status, page) = Browser::new().ehr_launch(&server, &ehr.fhir, &launch).await;
    assert_page(
        status,
        &page,
        StatusCode::BAD_REQUEST,
        "did not tell Rounds which patient and encounter",
    );

    // An EHR user with no Rounds account.
    let launch = ehr.new_launch("pat-1001", Some("enc-2001")).await;
    let browser = Browser::new();
    let authorize = browser
        .launch(&launch_url(&server.url, &ehr.fhir, &launch))
        .await;
    let cb = browser.authorize(&authorize, Some("dr-nobody")).await;
    let (status, page) = browser.finish(&cb).await;
    assert_page(
        status,
        &page,
        StatusCode::FORBIDDEN,
        "not linked to a Rounds clinician account",
    );

    // An EHR that is not on the allow-list, and a launch link missing its launch id.
    let (status, page) = Browser::new()
        .finish(&Callback(format!(
            "{}/ehr/launch?iss={}&launch=x",
            server.url,
            urlencode("https://ehr.attacker.example/fhir")
        )))
        .await;
    assert_page(
        status,
        &page,
        StatusCode::FORBIDDEN,
        "not on the list of EHRs",
    );
    let (status, page) = Browser::new()
        .finish(&Callback(format!(
            "{}/ehr/launch?iss={}",
            server.url,
            urlencode(&ehr.fhir)
        )))
        .await;
    assert_page(status, &page, StatusCode::BAD_REQUEST, "incomplete");

    // Every failure is in the audit log, by reason.
    let logs = server.logs();
    for reason in [
        "ehr-bad-state",
        "ehr-consent-denied",
        "ehr-code-rejected",
        "ehr-authorization-refused",
        "ehr-id-token-invalid",
        "ehr-missing-context",
        "ehr-unknown-clinician",
        "ehr-unknown-issuer",
    ] {
        assert!(logs.contains(reason), "{reason} was not logged");
    }
    assert!(!logs.contains("Quintero"));
}

#[tokio::test]
async fn the_ehr_requires_pkce_and_rounds_always_sends_it() {
    let (server, ehr) = start("").await;
    let launch = ehr.new_launch("pat-1001", Some("enc-2001")).await;
    // Straight to the EHR without a code challenge: refused before any sign-in.
    let r = Browser::new()
        .get(&format!(
            "{}/auth?response_type=code&client_id=rounds&redirect_uri={}&scope=openid%20launch&state=s&aud={}&launch={launch}",
            ehr.issuer,
            urlencode(&format!("{}/ehr/callback", server.url)),
            urlencode(&ehr.fhir)
        ))
        .await;
    let loc = r.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(
        loc.contains("error=invalid_request") && loc.contains("PKCE"),
        "{loc}"
    );
    // Followed into Rounds, that answer is a clear page (the state is not one of ours).
    let (status, page) = Browser::new().finish(&Callback(loc)).await;
    assert_page(
        status,
        &page,
        StatusCode::BAD_REQUEST,
        "Your EHR refused Rounds",
    );
    // Rounds' own requests always carry S256.
    for _ in 0..3 {
        let authorize = Browser::new()
            .launch(&launch_url(&server.url, &ehr.fhir, &launch))
            .await;
        assert!(
            authorize.contains("code_challenge_method=S256"),
            "{authorize}"
        );
        assert!(authorize.contains("code_challenge="), "{authorize}");
    }
}

#[tokio::test]
async fn fhir_server_failures_end_on_a_clear_page() {
    let (server, ehr) = start("").await;
    for (status_from_fhir, sentence) in [
        (401, "refused Rounds access to this chart"),
        (500, "had a problem answering Rounds"),
    ] {
        ehr.fhir_fails_with(status_from_fhir).await;
        let launch = ehr.new_launch("pat-1001", Some("enc-2001")).await;
        let (status, page) = Browser::new().ehr_launch(&server, &ehr.fhir, &launch).await;
        assert_page(status, &page, StatusCode::BAD_GATEWAY, sentence);
        assert!(!page.contains("rounds://"), "{page}");
    }
    ehr.fhir_fails_with(0).await;
    let launch = ehr.new_launch("pat-1001", Some("enc-2001")).await;
    let (status, page) = Browser::new().ehr_launch(&server, &ehr.fhir, &launch).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "works again once the FHIR server does: {page}"
    );
    let logs = server.logs();
    assert!(
        logs.contains("ehr-fhir-unauthorized") && logs.contains("ehr-fhir-failed"),
        "{logs}"
    );
}

#[tokio::test]
async fn an_unreachable_ehr_ends_on_a_clear_page() {
    let ports = EhrPorts::pick();
    // Configured, but nothing listens there.
    let server = Server::start_with(&ports.config(""), "info").await;
    let (status, page) = Browser::new()
        .finish(&Callback(format!(
            "{}/ehr/launch?iss={}&launch=x",
            server.url,
            urlencode(&ports.fhir_base())
        )))
        .await;
    assert_page(
        status,
        &page,
        StatusCode::BAD_GATEWAY,
        "could not reach your EHR",
    );
}

#[tokio::test]
async fn ending_a_launched_visit_writes_back_the_encounter_status() {
    let (server, ehr) = start("write_back_encounter_status = true").await;
    let launch = ehr.new_launch("pat-1001", Some("enc-2002")).await;
    let browser = Browser::new();
    let authorize = browser
        .launch(&launch_url(&server.url, &ehr.fhir, &launch))
        .await;
    assert!(
        authorize.contains("patient%2FEncounter.u"),
        "asks to update the Encounter: {authorize}"
    );
    let cb = browser.authorize(&authorize, Some("dr-okafor")).await;
    let (status, page) = browser.finish(&cb).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (visit_id, ticket, _) = handoff_link(&page);
    let (_, session) = server
        .post("/api/v1/auth/ticket", None, json!({ "ticket": ticket }))
        .await;
    let token = session["access_token"].as_str().unwrap();
    assert_eq!(ehr.encounter("enc-2002").await["status"], "planned");
    let (status, body) = server
        .post(
            &format!("/api/v1/visits/{visit_id}/end"),
            Some(token),
            json!({}),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if ehr.encounter("enc-2002").await["status"] == "finished" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the Encounter was not updated:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
