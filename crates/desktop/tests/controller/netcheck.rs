//! The network check screen's controller side, against a real server: every path passes
//! (through the hospital proxy the app uses, before anyone has signed in), and a server with
//! its UDP media port off shows UDP failing, with what to ask IT, and the TCP fallback
//! passing; a closed port fails the web with the port to open, and a silent one times out.
//! Progress arrives as each path is checked; one check runs at a time; a
//! `rounds://network-check` link asks the window to show it.

use std::sync::Arc;

use rounds_desktop_core::netcheck::{CheckPath, NetVerdict, NetworkCheck, PathState};
use rounds_desktop_core::{AppEvent, Controller, MemoryStore, Policy};
use tokio::sync::broadcast;

use crate::harness::TestServer;
use crate::proxy::{Tinyproxy, app_through, env_proxy};
use crate::{app, next_matching, sign_in_request};

fn state(check: &NetworkCheck, path: CheckPath) -> PathState {
    check
        .paths
        .iter()
        .find(|p| p.path == path)
        .map(|p| p.state)
        .expect("every path is listed")
}

/// Every `NetworkCheck` event until the finished one.
async fn progress_until_done(events: &mut broadcast::Receiver<AppEvent>) -> Vec<NetworkCheck> {
    let mut seen = Vec::new();
    loop {
        let check = next_matching(events, "network check progress", |e| match e {
            AppEvent::NetworkCheck { check } => Some(check.clone()),
            _ => None,
        })
        .await;
        let done = !check.running;
        seen.push(check);
        if done {
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_path_passes_through_the_apps_proxy_before_sign_in() {
    let server = TestServer::start().await;
    let proxy = Tinyproxy::start();
    let (controller, _dir) = app_through(env_proxy(&[("http_proxy", proxy.url())]));

    // IT's link, before anyone has signed in: the window is asked to show the check.
    let mut events = controller.subscribe();
    let outcome = controller
        .open_link("rounds://network-check".into())
        .await
        .unwrap();
    assert!(!outcome.signed_in && outcome.open_visit.is_none());
    next_matching(&mut events, "the request to show it", |e| {
        matches!(e, AppEvent::ShowNetworkCheck).then_some(())
    })
    .await;
    assert!(controller.take_pending_network_check());
    assert!(!controller.take_pending_network_check(), "taken once");

    // The sign-in screen passes the address typed there.
    let check = controller
        .network_check(Some(server.url.to_string()))
        .await
        .unwrap();
    let progress = progress_until_done(&mut events).await;

    assert_eq!(check.verdict, Some(NetVerdict::Ready), "{}", check.text);
    for p in &check.paths {
        assert_eq!(p.state, PathState::Pass, "{}", check.text);
        assert!(p.rtt_ms.is_some(), "{p:?}");
        assert!(p.advice.is_none(), "{p:?}");
    }
    assert!(!check.running);

    // Progress came path by path, in order: the web passed while media was still to come.
    assert!(progress.len() >= 5, "{} updates", progress.len());
    assert!(
        progress
            .iter()
            .any(|c| state(c, CheckPath::Web) == PathState::Checking),
        "the window saw the first path being checked"
    );
    assert!(
        progress
            .iter()
            .any(|c| state(c, CheckPath::Web) == PathState::Pass
                && state(c, CheckPath::MediaTcp) == PathState::Waiting),
        "the window saw a result before the check ended"
    );
    assert_eq!(progress.last(), Some(&check));

    // Web and signaling took the proxy; the report says which, for IT.
    let seen = proxy.requests();
    let host = format!("127.0.0.1:{}", server.http_port);
    assert!(
        seen.iter()
            .any(|r| r.starts_with("GET http://") && r.contains(&format!("{host}/healthz"))),
        "the web check went through the proxy: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|r| r.starts_with(&format!("CONNECT {host}"))),
        "signaling was tunnelled through the proxy: {seen:?}"
    );
    assert_eq!(check.proxy, proxy.url());
    assert_text_has(&check, &format!("Proxy: {}", proxy.url()));
    assert_text_has(&check, "PASS  media over UDP");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_udp_media_off_udp_fails_with_a_sentence_for_it_and_tcp_passes() {
    let server = TestServer::start_with(|c| c.media.udp_enabled = false).await;
    let a = app(Policy::default());
    a.controller
        .sign_in(sign_in_request(&server))
        .await
        .unwrap();

    // Signed in, the window passes no address: the app's own server is checked.
    let check = a.controller.network_check(None).await.unwrap();

    assert_eq!(
        check.server,
        server.url.to_string(),
        "the signed-in server is the one checked"
    );
    assert_eq!(
        state(&check, CheckPath::Web),
        PathState::Pass,
        "{}",
        check.text
    );
    assert_eq!(
        state(&check, CheckPath::Signaling),
        PathState::Pass,
        "{}",
        check.text
    );
    assert_eq!(
        state(&check, CheckPath::MediaTcp),
        PathState::Pass,
        "{}",
        check.text
    );
    let udp = check
        .paths
        .iter()
        .find(|p| p.path == CheckPath::MediaUdp)
        .unwrap();
    assert_eq!(udp.state, PathState::Fail, "{}", check.text);
    assert!(udp.rtt_ms.is_none());
    let advice = udp.advice.as_deref().expect("a sentence for IT");
    assert!(advice.contains("UDP"), "{advice}");
    assert_eq!(check.verdict, Some(NetVerdict::TcpFallbackOnly));
    assert!(
        check.summary.as_deref().unwrap().contains("TCP fallback"),
        "{:?}",
        check.summary
    );
    assert_text_has(&check, "FAIL  media over UDP");
    assert_text_has(&check, &format!("      To fix: {advice}"));
    assert_text_has(&check, "Proxy: none (direct)");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_port_fails_the_web_with_the_port_to_open_and_blocks_visits() {
    // A port nothing listens on: taken, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a = app(Policy::default());
    let check = a
        .controller
        .network_check(Some(format!("http://127.0.0.1:{port}")))
        .await
        .unwrap();

    assert_eq!(check.verdict, Some(NetVerdict::Blocked), "{}", check.text);
    assert!(!check.running);
    let web = check
        .paths
        .iter()
        .find(|p| p.path == CheckPath::Web)
        .unwrap();
    assert_eq!(web.state, PathState::Fail, "{}", check.text);
    assert!(web.rtt_ms.is_none());
    assert!(
        web.detail.contains("refused the connection"),
        "{}",
        web.detail
    );
    let advice = web.advice.as_deref().expect("a sentence for IT");
    assert!(
        advice.contains(&format!("port {port} to 127.0.0.1")),
        "the advice names the port to open: {advice}"
    );
    // Nothing after the web can be tried, and the screen says so rather than passing it.
    for p in &check.paths {
        assert_ne!(p.state, PathState::Pass, "{}", check.text);
    }
    assert!(
        check.summary.as_deref().unwrap().contains("will not work"),
        "{:?}",
        check.summary
    );
    assert!(check.text.contains("FAIL  web"), "{}", check.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_answers_times_out_and_a_second_check_waits_its_turn() {
    // A port that takes connections (the kernel's backlog) and never answers them, as
    // behind a firewall that lets the handshake through: the web check waits its full time.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let a = app(Policy::default());
    let mut events = a.controller.subscribe();
    let controller = a.controller.clone();
    let first = tokio::spawn(async move {
        controller
            .network_check(Some(format!("http://127.0.0.1:{port}")))
            .await
    });
    next_matching(&mut events, "the web check starting", |e| match e {
        AppEvent::NetworkCheck { check } => {
            (state(check, CheckPath::Web) == PathState::Checking).then_some(())
        }
        _ => None,
    })
    .await;

    // A second check while one runs is refused in words, not started twice.
    let busy = a
        .controller
        .network_check(Some(format!("http://127.0.0.1:{port}")))
        .await
        .unwrap_err();
    assert_eq!(busy.code, "busy");
    assert!(busy.message.contains("already running"), "{}", busy.message);

    let check = first.await.unwrap().unwrap();
    assert_eq!(check.verdict, Some(NetVerdict::Blocked), "{}", check.text);
    let web = check
        .paths
        .iter()
        .find(|p| p.path == CheckPath::Web)
        .unwrap();
    assert_eq!(web.state, PathState::Fail, "{}", check.text);
    assert!(web.detail.contains("No answer"), "{}", web.detail);
    let advice = web.advice.as_deref().expect("a sentence for IT");
    assert!(
        advice.contains(&format!(
            "Ask IT to allow outbound TCP port {port} to 127.0.0.1"
        )),
        "{advice}"
    );
    drop(silent);

    // Once it is over, the next check runs.
    let again = a
        .controller
        .network_check(Some(format!("http://127.0.0.1:{port}")))
        .await
        .unwrap();
    assert!(!again.running);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_server_the_check_asks_for_one() {
    let dir = tempfile::tempdir().unwrap();
    let controller = Controller::new(
        Policy::default(),
        dir.path().join("settings.json"),
        Arc::new(MemoryStore::default()),
    );
    let e = controller.network_check(None).await.unwrap_err();
    assert_eq!(e.code, "no-server");
    assert!(e.message.contains("server's address"), "{}", e.message);
}

/// The copyable report IT gets holds `needle`.
fn assert_text_has(check: &NetworkCheck, needle: &str) {
    assert!(check.text.contains(needle), "{}", check.text);
}
