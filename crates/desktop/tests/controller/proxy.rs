//! The route to the server through a hospital's HTTP proxy: a real one (tinyproxy) between
//! the controller and the server. REST and the live queue are forwarded by it, and the
//! call's signaling WebSocket goes through it as a `CONNECT` tunnel; a host in `no_proxy`
//! is reached directly.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rounds_client::ProxyConfig;
use rounds_desktop_core::{AppEvent, Connection, Controller, MemoryStore, Policy};

use crate::harness::TestServer;
use crate::{next_matching, sign_in_request};

/// tinyproxy on a loopback port, logging every request it handles.
pub(crate) struct Tinyproxy {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    pub(crate) fn start() -> Tinyproxy {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.path().join("tinyproxy.log");
        let conf = dir.path().join("tinyproxy.conf");
        // No ConnectPort line: CONNECT to any port (the test server's is not 443).
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 600\nLogFile \"{}\"\nLogLevel Connect\nMaxClients 50\nAllow 127.0.0.1\n",
                log.display()
            ),
        )
        .unwrap();
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy is missing: install the Debian package tinyproxy-bin (scripts/install-deps.sh does)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tinyproxy did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Tinyproxy {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The request lines it handled ("GET http://… HTTP/1.1", "CONNECT host:port HTTP/1.1").
    pub(crate) fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once("): ").filter(|_| l.contains("Request (")))
            .map(|(_, r)| r.to_owned())
            .collect()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn app_through(proxy: ProxyConfig) -> (Controller, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let controller = Controller::with_proxy(
        Policy {
            synthetic_media: Some(true),
            ..Policy::default()
        },
        dir.path().join("settings.json"),
        Arc::new(MemoryStore::default()),
        proxy,
    );
    (controller, dir)
}

/// Proxy settings as the environment would give them.
pub(crate) fn env_proxy(pairs: &[(&str, String)]) -> ProxyConfig {
    ProxyConfig::from_vars(|name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_the_live_queue_and_the_call_go_through_the_proxy() {
    let server = TestServer::start().await;
    let mut proxy = Tinyproxy::start();
    // The server is plain http on loopback, so http_proxy is the one that applies.
    let (controller, _dir) = app_through(env_proxy(&[("http_proxy", proxy.url())]));
    let mut events = controller.subscribe();
    controller.sign_in(sign_in_request(&server)).await.unwrap();
    next_matching(&mut events, "online", |e| match e {
        AppEvent::Status { status } if status.connection == Connection::Online => Some(()),
        _ => None,
    })
    .await;
    let access = server.access_token().await;
    let visit = server
        .api
        .create_visit_now(&access, 30, "Pat Example")
        .await
        .unwrap();
    let render: rounds_desktop_core::call::RenderSink = Arc::new(|_, _| {});
    controller
        .start_call(visit.visit.id.clone(), render)
        .await
        .expect("the call's signaling is open");

    let host = format!("127.0.0.1:{}", server.http_port);
    let requests = proxy.requests();
    let saw = |needle: &str| requests.iter().any(|r| r.starts_with(needle));
    assert!(
        saw(&format!("POST http://{host}/api/v1/auth/login ")),
        "sign-in went through the proxy: {requests:#?}"
    );
    assert!(
        saw(&format!("GET http://{host}/api/v1/events ")),
        "the live queue went through the proxy: {requests:#?}"
    );
    assert!(
        saw(&format!("GET http://{host}/api/v1/visits")),
        "the queue went through the proxy: {requests:#?}"
    );
    assert!(
        saw(&format!("CONNECT {host} ")),
        "the call's signaling tunnelled through the proxy: {requests:#?}"
    );
    controller.leave_call().await.unwrap();

    // Take the proxy away: the live queue, which lived on it, is lost.
    proxy.stop();
    next_matching(&mut events, "the feed lost with the proxy", |e| match e {
        AppEvent::Status { status }
            if matches!(status.connection, Connection::Reconnecting { .. }) =>
        {
            Some(())
        }
        _ => None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hosts_in_no_proxy_are_reached_directly() {
    let server = TestServer::start().await;
    let proxy = Tinyproxy::start();
    let (controller, _dir) = app_through(env_proxy(&[
        ("HTTP_PROXY", proxy.url()),
        ("NO_PROXY", "localhost,127.0.0.1".into()),
    ]));
    let mut events = controller.subscribe();
    controller.sign_in(sign_in_request(&server)).await.unwrap();
    next_matching(&mut events, "online", |e| match e {
        AppEvent::Status { status } if status.connection == Connection::Online => Some(()),
        _ => None,
    })
    .await;
    let access = server.access_token().await;
    let visit = server
        .api
        .create_visit_now(&access, 30, "Pat Example")
        .await
        .unwrap();
    let render: rounds_desktop_core::call::RenderSink = Arc::new(|_, _| {});
    controller
        .start_call(visit.visit.id.clone(), render)
        .await
        .unwrap();
    controller.leave_call().await.unwrap();
    assert_eq!(
        proxy.requests(),
        Vec::<String>::new(),
        "nothing for a no_proxy host goes through the proxy"
    );
}
