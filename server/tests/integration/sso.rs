//! Clinician sign-in with the hospital's identity provider: a real oidc-provider
//! (`tests/sso/idp.mjs`), a scripted browser on its pages, and the real server binary
//! finishing the sign-in at `POST /api/v1/auth/oidc/token`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{EMAIL, PASSWORD, Server};
use crate::idp::{Attempt, Browser, Idp, Landing, OKAFOR, Person, REYES, param};

const SCOPE: &str = "openid email profile fhirUser";
const REDIRECT: &str = "http://127.0.0.1:53682/callback";

/// Accounts created on first sign-in, in the fixture clinic.
const AUTO: &str = "provisioning = \"auto\"\nauto_clinic = \"St. Mary's Clinic\"";

async fn server_for(idp: &Idp, extra: &str) -> Server {
    Server::start_with(&idp.server_config(extra), "info").await
}

/// Runs the browser part of a sign-in, as the app would, and returns the code.
async fn authorize(idp: &Idp, who: &Person, attempt: &Attempt) -> String {
    let landing = Browser::new()
        .sign_in(&attempt.authorization_url(idp, SCOPE), who)
        .await;
    let Landing::Redirect(to) = landing else {
        panic!("the provider did not redirect back to the app");
    };
    assert_eq!(param(&to, "state").as_deref(), Some(attempt.state.as_str()));
    param(&to, "code").expect("a code in the redirect")
}

fn token_request(code: &str, attempt: &Attempt) -> Value {
    json!({
        "code": code,
        "code_verifier": attempt.verifier,
        "redirect_uri": attempt.redirect_uri,
        "nonce": attempt.nonce,
    })
}

/// The app's call that finishes a sign-in.
async fn exchange(server: &Server, body: Value) -> (StatusCode, Value) {
    server.post("/api/v1/auth/oidc/token", None, body).await
}

async fn sign_in(server: &Server, idp: &Idp, who: &Person) -> (StatusCode, Value) {
    let attempt = Attempt::new(REDIRECT);
    let code = authorize(idp, who, &attempt).await;
    exchange(server, token_request(&code, &attempt)).await
}

/// The problem's sentence says `words`.
fn assert_detail(problem: &Value, words: &str) {
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(words),
        "{problem}"
    );
}

/// `(actor, action, detail)` of every audit row.
async fn audit(server: &Server) -> Vec<(String, String, Value)> {
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=ro",
        server.data_dir().join("rounds.db").display()
    ))
    .await
    .unwrap();
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT actor, action, detail FROM audit_log ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(a, b, c)| (a, b, serde_json::from_str(&c).unwrap_or(Value::Null)))
        .collect()
}

async fn refused_for(server: &Server, reason: &str) -> bool {
    audit(server).await.iter().any(|(_, action, detail)| {
        action == "login.failed" && detail["method"] == "oidc" && detail["reason"] == reason
    })
}

fn assert_no_phi(server: &Server, who: &Person) {
    let logs = server.logs();
    for secret in [who.email, who.name, who.password] {
        assert!(!logs.contains(secret), "{secret:?} reached the server log");
    }
}

#[tokio::test]
async fn the_app_learns_how_to_start_and_unconfigured_servers_say_so() {
    let idp = Idp::start();
    let server = server_for(&idp, "").await;
    let (status, info) = server.get("/api/v1/auth/oidc", None).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["issuer"], idp.issuer.as_str());
    assert_eq!(
        info["authorization_endpoint"],
        format!("{}/auth", idp.issuer)
    );
    assert_eq!(info["client_id"], "rounds-desktop");
    assert_eq!(
        info["scopes"],
        json!(["openid", "email", "profile", "fhirUser"])
    );
    assert_eq!(info["password_login"], true);

    let plain = Server::start().await;
    let (status, problem) = plain.get("/api/v1/auth/oidc", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_detail(&problem, "no hospital sign-in");
}

#[tokio::test]
async fn auto_provisioning_creates_the_account_and_the_session_works_like_any_other() {
    let idp = Idp::start();
    let server = server_for(
        &idp,
        "provisioning = \"auto\"\nauto_clinic = \"St. Mary's Clinic\"\nmatch_claim = \"fhir_user\"",
    )
    .await;

    let (status, first) = sign_in(&server, &idp, &REYES).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["clinician"]["email"], REYES.email);
    assert_eq!(first["clinician"]["display_name"], REYES.name);
    assert_eq!(first["clinician"]["clinic_name"], "St. Mary's Clinic");
    let id = first["clinician"]["id"].as_str().unwrap().to_owned();
    let access = first["access_token"].as_str().unwrap();
    let (status, queue) = server.get("/api/v1/visits", Some(access)).await;
    assert_eq!(status, StatusCode::OK, "{queue}");

    // The next sign-in finds the same account through its link to the provider.
    let (status, second) = sign_in(&server, &idp, &REYES).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["clinician"]["id"], id.as_str());

    // Refresh and sign-out work as for a password session: signing out ends it.
    let refresh = second["refresh_token"].as_str().unwrap();
    let (status, rotated) = server
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": refresh }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let refresh = rotated["refresh_token"].as_str().unwrap();
    let (status, _) = server
        .post(
            "/api/v1/auth/logout",
            None,
            json!({ "refresh_token": refresh }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": refresh }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let log = audit(&server).await;
    let actor = format!("clinician:{id}");
    let provisioned: Vec<_> = log
        .iter()
        .filter(|(a, action, _)| *a == actor && action == "account.provisioned")
        .collect();
    assert_eq!(provisioned.len(), 1, "{log:?}");
    assert!(
        log.iter()
            .filter(|(a, action, d)| *a == actor
                && action == "login.succeeded"
                && d["method"] == "oidc")
            .count()
            == 2,
        "{log:?}"
    );
    let text = format!("{log:?}");
    assert!(
        !text.contains(REYES.email) && !text.contains(REYES.name),
        "PHI in the audit log: {text}"
    );
    assert_no_phi(&server, &REYES);
}

#[tokio::test]
async fn registered_mode_links_known_clinicians_and_refuses_strangers() {
    let idp = Idp::start();
    let server = server_for(
        &idp,
        "provisioning = \"registered\"\npassword_login = false",
    )
    .await;
    let (_, info) = server.get("/api/v1/auth/oidc", None).await;
    assert_eq!(info["password_login"], false);

    // The harness's clinician has a Rounds account with the same email.
    let (status, session) = sign_in(&server, &idp, &OKAFOR).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["clinician"]["email"], EMAIL);
    let log = audit(&server).await;
    assert!(
        log.iter().any(|(_, action, _)| action == "account.linked"),
        "{log:?}"
    );

    let (status, problem) = sign_in(&server, &idp, &REYES).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("not registered for Rounds"), "{detail}");
    assert!(
        detail.contains("IT team") && detail.contains("email address"),
        "{detail}"
    );
    assert!(refused_for(&server, "not-registered").await);
    assert_no_phi(&server, &REYES);

    // With hospital sign-in only, the password form is refused with a pointer to it.
    let (status, problem) = server
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": EMAIL, "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_detail(&problem, "hospital account");
}

#[tokio::test]
async fn an_id_token_for_another_application_is_refused() {
    let idp = Idp::start_with(json!({ "tamper": { "aud": "some-other-app" } }));
    let server = server_for(&idp, AUTO).await;
    let (status, problem) = sign_in(&server, &idp, &REYES).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert_eq!(
        problem["type"],
        "https://rounds.health/problems/sso-token-invalid"
    );
    assert_detail(&problem, "issued for a different application");
    assert!(refused_for(&server, "id-token-audience").await);
}

#[tokio::test]
async fn an_id_token_with_another_nonce_is_refused() {
    let idp = Idp::start();
    let server = server_for(&idp, AUTO).await;
    let attempt = Attempt::new(REDIRECT);
    let code = authorize(&idp, &REYES, &attempt).await;
    let mut body = token_request(&code, &attempt);
    body["nonce"] = json!("a-nonce-from-another-sign-in");
    let (status, problem) = exchange(&server, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert_detail(&problem, "does not belong to this sign-in");
    assert!(refused_for(&server, "id-token-nonce").await);
}

#[tokio::test]
async fn a_code_works_once() {
    let idp = Idp::start();
    let server = server_for(&idp, AUTO).await;
    let attempt = Attempt::new(REDIRECT);
    let code = authorize(&idp, &REYES, &attempt).await;
    let (status, first) = exchange(&server, token_request(&code, &attempt)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, problem) = exchange(&server, token_request(&code, &attempt)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert_eq!(
        problem["type"],
        "https://rounds.health/problems/sso-code-rejected"
    );
    assert_detail(&problem, "already used");
    assert!(refused_for(&server, "code-rejected").await);
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let idp = Idp::start_with(json!({ "codeTtlSecs": 1 }));
    let server = server_for(&idp, AUTO).await;
    let attempt = Attempt::new(REDIRECT);
    let code = authorize(&idp, &REYES, &attempt).await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (status, problem) = exchange(&server, token_request(&code, &attempt)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert_detail(&problem, "expired");
    assert!(refused_for(&server, "code-rejected").await);
}

#[tokio::test]
async fn pkce_is_required_and_checked() {
    let idp = Idp::start();
    let server = server_for(&idp, AUTO).await;
    let attempt = Attempt::new(REDIRECT);
    let code = authorize(&idp, &REYES, &attempt).await;

    let mut body = token_request(&code, &attempt);
    body["code_verifier"] = json!("");
    let (status, problem) = exchange(&server, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_detail(&problem, "PKCE");
    assert!(refused_for(&server, "pkce-missing").await);

    // A verifier that is not the one behind the challenge: the provider refuses the code.
    let mut body = token_request(&code, &attempt);
    body["code_verifier"] = json!(Attempt::new(REDIRECT).verifier);
    let (status, problem) = exchange(&server, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert_eq!(
        problem["type"],
        "https://rounds.health/problems/sso-code-rejected"
    );

    // Only the app's loopback redirect is finished here.
    let mut body = token_request(&code, &attempt);
    body["redirect_uri"] = json!("https://elsewhere.example/callback");
    let (status, problem) = exchange(&server, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_detail(&problem, "127.0.0.1");
}

#[tokio::test]
async fn an_unreachable_identity_provider_is_a_clear_503() {
    let mut idp = Idp::start();
    let server = server_for(&idp, AUTO).await;
    let attempt = Attempt::new(REDIRECT);
    let code = authorize(&idp, &REYES, &attempt).await;
    idp.stop();

    let (status, problem) = server.get("/api/v1/auth/oidc", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_detail(&problem, "cannot reach your hospital's sign-in service");
    let (status, problem) = exchange(&server, token_request(&code, &attempt)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(
        problem["type"],
        "https://rounds.health/problems/idp-unreachable"
    );
    assert!(refused_for(&server, "idp-unreachable").await);
}

#[tokio::test]
async fn the_provider_going_down_after_discovery_is_a_clear_503_too() {
    let mut idp = Idp::start();
    let server = server_for(&idp, AUTO).await;
    let (status, _) = server.get("/api/v1/auth/oidc", None).await;
    assert_eq!(status, StatusCode::OK);
    let attempt = Attempt::new(REDIRECT);
    let code = authorize(&idp, &REYES, &attempt).await;
    idp.stop();
    let (status, problem) = exchange(&server, token_request(&code, &attempt)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(
        problem["type"],
        "https://rounds.health/problems/idp-unreachable"
    );
}

#[tokio::test]
async fn registered_accounts_can_be_found_by_fhir_user() {
    let idp = Idp::start();
    let server = server_for(
        &idp,
        "provisioning = \"registered\"\nmatch_claim = \"fhir_user\"",
    )
    .await;
    // IT registers the clinician under another email, with the EHR's practitioner id.
    let password_file = server.dir.path().join("password");
    std::fs::write(&password_file, "a long enough password").unwrap();
    let out = server.cli(&[
        "clinician",
        "add",
        "--clinic",
        "St. Mary's Clinic",
        "--email",
        "reyes@rounds.stmarys.example",
        "--name",
        "Dr. Reyes",
        "--password-file",
        password_file.to_str().unwrap(),
        "--fhir-user",
        REYES.fhir_user,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (status, session) = sign_in(&server, &idp, &REYES).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(
        session["clinician"]["email"],
        "reyes@rounds.stmarys.example"
    );

    // The harness's clinician has a matching email but no FHIR user: not registered here.
    let (status, problem) = sign_in(&server, &idp, &OKAFOR).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_detail(&problem, "fhirUser");
}
