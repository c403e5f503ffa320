//! The live queue comes back by itself after the network goes away: a relay between the
//! controller and the server stands for the network, and is cut and restored while the app
//! runs. Nobody calls the controller meanwhile; a patient who checks in after the network
//! returns still raises an alert.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rounds_desktop_core::{AlertKind, AppEvent, Connection, Policy, SignInRequest};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::harness::{EMAIL, PASSWORD, TestServer, patient_checks_in};
use crate::{app, next_matching};

/// A TCP relay to the server that can be cut (every connection dropped, new ones refused)
/// and restored.
struct Network {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Network {
    async fn to(target: SocketAddr) -> Network {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (is_up, all) = (up.clone(), links.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !is_up.load(Ordering::SeqCst) {
                    // Down: the connection is reset at once, as an unreachable network is.
                    drop(inbound);
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                all.lock().unwrap().push(link);
            }
        });
        Network {
            addr,
            up,
            links,
            accept,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_live_queue_comes_back_by_itself_after_a_network_loss() {
    let server = TestServer::start().await;
    let network = Network::to(SocketAddr::from(([127, 0, 0, 1], server.http_port))).await;
    let a = app(Policy::default());
    let mut events = a.controller.subscribe();
    a.controller
        .sign_in(SignInRequest {
            server_url: Some(format!("http://{}", network.addr)),
            email: EMAIL.into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    let online = |e: &AppEvent| match e {
        AppEvent::Status { status } if status.connection == Connection::Online => Some(()),
        _ => None,
    };
    next_matching(&mut events, "online", online).await;

    // The network goes: the app notices and says it is retrying.
    network.cut();
    let retry = next_matching(&mut events, "reconnecting", |e| match e {
        AppEvent::Status { status } => match &status.connection {
            Connection::Reconnecting { retry_in_secs, .. } => Some(*retry_in_secs),
            _ => None,
        },
        _ => None,
    })
    .await;
    assert!(retry >= 1, "it waits before retrying");
    // A few failed attempts while it is down.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        matches!(
            a.controller.status().connection,
            Connection::Reconnecting { .. }
        ),
        "still offline while the network is down: {:?}",
        a.controller.status().connection
    );

    // The network returns; the app reconnects on its own (the backoff is at most a few
    // seconds this early).
    network.restore();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(e)) if online(&e).is_some() => break,
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            other => panic!(
                "the live queue did not come back within 40 s ({other:?}); now {:?}",
                a.controller.status().connection
            ),
        }
    }

    // And it is live again: a patient checking in now raises an alert.
    let access = server.access_token().await;
    let visit = server
        .api
        .create_visit_now(&access, 30, "Pat Example")
        .await
        .unwrap();
    let code = rounds_client::link_code(&visit.patient_link.url)
        .unwrap()
        .to_owned();
    patient_checks_in(&server, &code).await;
    let alert = next_matching(&mut events, "an alert after reconnecting", |e| match e {
        AppEvent::Alert { alert } => Some(alert.clone()),
        _ => None,
    })
    .await;
    assert_eq!(alert.kind, AlertKind::PatientWaiting);
    assert_eq!(alert.visit_id, visit.visit.id);
}
