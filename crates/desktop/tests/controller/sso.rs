//! Signing in with the hospital's account: the controller opens the provider's page in a
//! scripted "system browser" (a real oidc-provider, `tests/sso/idp.mjs`), the browser signs
//! in and is redirected to the app's loopback listener, and the server finishes the
//! sign-in. The refresh token ends up in the keychain and sign-out revokes it.

use std::sync::Arc;

use rounds_desktop_core::secrets::refresh_token_name;
use rounds_desktop_core::{Browser, Connection, Policy, SecretStore, ServerApi};
use tokio::sync::mpsc;
use url::Url;

use super::app;
use crate::harness::TestServer;
use crate::idp::{self, Idp, Landing, Person, REYES};

/// A browser that follows the authorization page with a script. `tamper` changes the
/// authorization URL first (a forged `state`); `consent` is "confirm" or "abort".
struct ScriptedBrowser {
    who: &'static Person,
    consent: &'static str,
    tamper: Option<fn(&mut Url)>,
    /// The page the browser shows at the end: the app's loopback answer.
    pages: mpsc::UnboundedSender<String>,
}

impl Browser for ScriptedBrowser {
    fn open(&self, url: &Url) -> Result<(), String> {
        let mut url = url.clone();
        if let Some(tamper) = self.tamper {
            tamper(&mut url);
        }
        let (who, consent, pages) = (self.who, self.consent, self.pages.clone());
        tokio::spawn(async move {
            let mut browser = idp::Browser::new();
            browser.follow_loopback = true;
            let text = match browser.sign_in_and(url.as_str(), who, consent).await {
                Landing::Page(_, text) => text,
                Landing::Redirect(to) => format!("stopped at {to}"),
            };
            let _ = pages.send(text);
        });
        Ok(())
    }
}

fn browser(
    who: &'static Person,
    consent: &'static str,
    tamper: Option<fn(&mut Url)>,
) -> (Arc<ScriptedBrowser>, mpsc::UnboundedReceiver<String>) {
    let (pages, rx) = mpsc::unbounded_channel();
    let b = ScriptedBrowser {
        who,
        consent,
        tamper,
        pages,
    };
    (Arc::new(b), rx)
}

async fn server_with_sso(idp: &Idp) -> TestServer {
    let issuer = idp.issuer.clone();
    TestServer::start_with(move |config| {
        config.oidc = Some(
            toml::from_str(&format!(
                "issuer = \"{issuer}\"\nclient_id = \"{}\"\nprovisioning = \"auto\"\nauto_clinic = \"St. Mary's Clinic\"\n",
                idp::CLIENT_ID
            ))
            .unwrap(),
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn hospital_sign_in_keeps_the_refresh_token_in_the_keychain_and_sign_out_revokes_it() {
    let idp = Idp::start();
    let server = server_with_sso(&idp).await;
    let a = app(Policy::default());
    let options = a
        .controller
        .sso_options(Some(server.url.to_string()))
        .await
        .unwrap();
    assert!(options.available && options.password_login, "{options:?}");

    let (b, mut pages) = browser(&REYES, "confirm", None);
    a.controller.set_browser(b);
    let status = a
        .controller
        .sign_in_sso(Some(server.url.to_string()))
        .await
        .unwrap();
    assert_eq!(status.clinician.unwrap().email, REYES.email);
    let page = pages.recv().await.unwrap();
    assert!(
        page.contains("You can close this tab and return to Rounds"),
        "{page}"
    );

    let name = refresh_token_name(&server.url);
    let refresh = a
        .secrets
        .get(&name)
        .unwrap()
        .expect("the refresh token is in the keychain");
    for entry in std::fs::read_dir(a.dir.path()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains(&refresh), "a secret on disk: {text}");
    }

    a.controller.sign_out().await.unwrap();
    assert_eq!(a.secrets.get(&name).unwrap(), None);
    assert_eq!(a.controller.status().connection, Connection::SignedOut);
    let refused = ServerApi::new(server.url.clone())
        .unwrap()
        .refresh(&refresh)
        .await
        .unwrap_err();
    assert!(refused.is_unauthorized(), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_with_another_state_is_refused_in_the_app_and_the_tab() {
    let idp = Idp::start();
    let server = server_with_sso(&idp).await;
    let a = app(Policy::default());
    let forge: fn(&mut Url) = |url| {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "state" {
                    "forged".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    };
    let (b, mut pages) = browser(&REYES, "confirm", Some(forge));
    a.controller.set_browser(b);
    let e = a
        .controller
        .sign_in_sso(Some(server.url.to_string()))
        .await
        .unwrap_err();
    assert_eq!(e.code, "sso-wrong-state", "{e:?}");
    assert!(
        e.message.contains("does not belong to the sign-in"),
        "{}",
        e.message
    );
    let page = pages.recv().await.unwrap();
    assert!(
        page.contains("does not belong") && page.contains("close this tab"),
        "{page}"
    );
    assert_eq!(
        a.secrets.get(&refresh_token_name(&server.url)).unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn declining_at_the_provider_signs_nobody_in() {
    let idp = Idp::start();
    let server = server_with_sso(&idp).await;
    let a = app(Policy::default());
    let (b, mut pages) = browser(&REYES, "abort", None);
    a.controller.set_browser(b);
    let e = a
        .controller
        .sign_in_sso(Some(server.url.to_string()))
        .await
        .unwrap_err();
    assert_eq!(e.code, "sso-denied", "{e:?}");
    let page = pages.recv().await.unwrap();
    assert!(page.contains("declined"), "{page}");
    assert_eq!(
        a.secrets.get(&refresh_token_name(&server.url)).unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_it_policy_server_lock_holds_for_hospital_sign_in() {
    let idp = Idp::start();
    let server = server_with_sso(&idp).await;
    let a = app(Policy {
        server_url: Some(server.url.to_string()),
        ..Policy::default()
    });
    let (b, _pages) = browser(&REYES, "confirm", None);
    a.controller.set_browser(b);
    let e = a
        .controller
        .sign_in_sso(Some("https://rounds.elsewhere.example".into()))
        .await
        .unwrap_err();
    assert_eq!(e.code, "server-locked", "{e:?}");

    // A server without hospital sign-in offers the password form only.
    let plain = TestServer::start().await;
    let b = app(Policy::default());
    let options = b
        .controller
        .sso_options(Some(plain.url.to_string()))
        .await
        .unwrap();
    assert!(!options.available && options.password_login, "{options:?}");
}
