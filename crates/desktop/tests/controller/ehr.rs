//! A standalone SMART launch started from the app: the controller opens the Rounds
//! server's launch page in a scripted "system browser", which signs in at a real SMART EHR
//! (`tests/sso/ehr.mjs`), picks the patient there and lands on the handoff page. The
//! `rounds://visit/...` link on that page signs the app in and opens that patient's visit.

use std::sync::Arc;
use std::time::Duration;

use rounds_desktop_core::{Browser, Policy};
use rounds_server::config::EhrIssuer;
use tokio::sync::mpsc;
use url::Url;

use super::app;
use crate::ehr_process::{browse_launch, free_port, handoff_link, start_ehr};
use crate::harness::{EMAIL, TestServer};

/// Follows the launch through the EHR's sign-in and patient picker, as the clinician would,
/// and reports the page it ends on.
struct ScriptedBrowser {
    opened: mpsc::UnboundedSender<Url>,
    pages: mpsc::UnboundedSender<String>,
}

impl Browser for ScriptedBrowser {
    fn open(&self, url: &Url) -> Result<(), String> {
        let _ = self.opened.send(url.clone());
        let (start, pages) = (url.to_string(), self.pages.clone());
        tokio::spawn(async move {
            let _ = pages.send(browse_launch(&start).await);
        });
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standalone_launch_from_the_app_opens_the_chosen_patients_visit() {
    let (auth, fhir) = (free_port(), free_port());
    let iss = format!("http://127.0.0.1:{fhir}/4_0_0");
    let iss_for_config = iss.clone();
    let server = TestServer::start_with(move |c| {
        c.ehr.issuers.push(EhrIssuer {
            iss: iss_for_config,
            name: Some("Test EHR".into()),
            client_id: "rounds".into(),
            client_secret: "rounds-ehr-client-secret-for-tests-only".into(),
            clinicians: [("Practitioner/dr-okafor".to_owned(), EMAIL.to_owned())].into(),
            match_email: false,
        });
    })
    .await;
    let base = server.url.as_str().trim_end_matches('/').to_owned();
    let ehr = start_ehr(auth, fhir, &format!("{base}/ehr/callback"));
    assert!(ehr.issuer.contains(&auth.to_string()), "{}", ehr.issuer);

    // Not signed in: the launch signs the app in.
    let a = app(Policy::default());
    let (opened, mut opened_rx) = mpsc::unbounded_channel();
    let (pages, mut pages_rx) = mpsc::unbounded_channel();
    a.controller
        .set_browser(Arc::new(ScriptedBrowser { opened, pages }));

    let ehrs = a.controller.ehr_options(Some(base.clone())).await.unwrap();
    assert_eq!(ehrs.len(), 1);
    assert_eq!(ehrs[0].name, "Test EHR");

    // An EHR the server does not know is refused before any browser opens.
    let err = a
        .controller
        .start_ehr_launch(Some(base.clone()), "https://elsewhere.example/fhir".into())
        .await
        .unwrap_err();
    assert_eq!(err.code, "no-such-ehr");
    assert!(
        opened_rx.try_recv().is_err(),
        "no browser for an unknown EHR"
    );

    a.controller
        .start_ehr_launch(Some(base.clone()), iss.clone())
        .await
        .unwrap();
    let url = opened_rx.recv().await.unwrap();
    assert_eq!(
        url.origin(),
        server.url.origin(),
        "only the server's own page opens"
    );
    assert_eq!(url.path(), "/ehr/standalone");

    let page = tokio::time::timeout(Duration::from_secs(30), pages_rx.recv())
        .await
        .expect("the browser reached a page")
        .unwrap();
    let link = handoff_link(&page);

    // The browser hands the link to the app.
    let outcome = a.controller.open_link(link.clone()).await.unwrap();
    assert!(outcome.signed_in, "the link signed the app in");
    let visit_id = outcome.open_visit.expect("the link opens a visit");
    assert_eq!(
        Url::parse(&link).unwrap().path().trim_start_matches('/'),
        visit_id
    );
    let status = a.controller.status();
    assert_eq!(status.clinician.unwrap().email, EMAIL);
    // The visit is the patient the clinician picked in the EHR.
    let queue = a.controller.queue().await.unwrap();
    let visit = queue
        .visits
        .iter()
        .find(|v| v.id == visit_id)
        .expect("the launched visit is in today's queue");
    assert_eq!(
        visit.patient_name.as_ref().map(|n| n.expose().as_str()),
        Some("Theodore Vasquez-Lind")
    );
}
