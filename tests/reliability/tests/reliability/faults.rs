//! Faults (issue 8 §3): the server killed mid-visit, a client's network cut, a full disk.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use rounds_client::{Client, ClientStats};
use rounds_proto::{ClientMessage, ParticipantState, Phi};
use rounds_reliability::call::{admitted_pair, both_ways, config, new_visit};
use rounds_reliability::netns::{CLIENT_IP, ns_run};
use rounds_reliability::server::{ServerProcess, wait_ready};

use crate::setup;

/// The bound: clients are back within 5 s of the server's return.
const RETURN_BOUND: Duration = Duration::from_secs(5);

/// Waits until `client` has reconnected its signaling more times than in `before`, and is
/// connected and admitted. Returns how long that took.
async fn rejoined(client: &Client, before: &ClientStats, timeout: Duration) -> Duration {
    let start = Instant::now();
    let reconnects = before.signaling_reconnects;
    client
        .wait_until(timeout, |c| {
            c.stats().signaling_reconnects > reconnects
                && c.signaling_state() == rounds_client::SignalingState::Connected
                && c.state() == ParticipantState::Admitted
        })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{} did not rejoin within {timeout:?}: {e} (signaling {:?}, state {:?})",
                client.participant_id(),
                client.signaling_state(),
                client.state()
            )
        });
    start.elapsed()
}

async fn chat(client: &Client, text: &str) {
    client
        .send(ClientMessage::Chat {
            text: Phi::new(text.to_owned()),
            to: None,
        })
        .await
        .expect("chat sent");
}

fn count(server: &ServerProcess, sql: &str) -> u64 {
    server
        .sqlite(sql)
        .expect("sqlite3")
        .trim()
        .parse()
        .expect("a count")
}

/// kill -9 mid-visit, restart on the same data: both clients come back by themselves within
/// 5 s of the server answering again, media flows both ways again, and the visit, its chat
/// and the audit chain are all intact.
#[test]
fn server_killed_mid_visit_clients_return_and_nothing_is_lost() {
    let (topo, server) = setup("kill", "");
    let url = server.url.clone();
    let (server, visit_id, timings) = topo.in_client(move || async move {
        let mut server = server;
        let api = rounds_client::Api::new(url.clone()).expect("api");
        let visit = new_visit(&api).await.expect("a visit");
        let bind = IpAddr::V4(CLIENT_IP);
        let (provider, patient) = admitted_pair(
            config(&url, &visit.provider, 1, bind),
            config(&url, &visit.patient, 2, bind),
        )
        .await
        .expect("admitted");
        both_ways(&provider, &patient, 20, Duration::from_secs(30))
            .await
            .expect("media before the kill");
        chat(&provider, "reliability check: before the crash").await;
        chat(&patient, "reliability check: reply before the crash").await;
        // Chat is stored before it is relayed; give the relay a moment to reach the store.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = (provider.stats(), patient.stats());

        server.kill9().expect("kill -9");
        tokio::time::sleep(Duration::from_secs(3)).await;
        server.spawn().expect("restart");
        wait_ready(&server.url, Duration::from_secs(30))
            .await
            .expect("ready again");
        let back = Instant::now();
        let (p, q) = tokio::join!(
            rejoined(&provider, &before.0, Duration::from_secs(30)),
            rejoined(&patient, &before.1, Duration::from_secs(30)),
        );
        let signaling = p.max(q);
        both_ways(&provider, &patient, 20, Duration::from_secs(30))
            .await
            .expect("media after the restart");
        let media = back.elapsed();
        chat(&patient, "reliability check: after the restart").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        provider.leave().await;
        patient.leave().await;
        (server, visit.id, (signaling, media))
    });
    let (signaling, media) = timings;
    println!(
        "after kill -9 and restart: both clients rejoined {} ms, and media flowed both ways {} ms, \
         after the server answered again",
        signaling.as_millis(),
        media.as_millis()
    );
    assert!(
        signaling <= RETURN_BOUND,
        "the clients took {signaling:?} to rejoin"
    );
    assert!(
        media <= RETURN_BOUND,
        "media took {media:?} to flow both ways again"
    );
    let visits = count(
        &server,
        &format!("SELECT count(*) FROM visits WHERE id = '{visit_id}'"),
    );
    assert_eq!(visits, 1, "the visit survived");
    let chats = count(
        &server,
        &format!("SELECT count(*) FROM chat_messages WHERE visit_id = '{visit_id}'"),
    );
    assert_eq!(chats, 3, "two messages before the crash and one after");
    let integrity = server.sqlite("PRAGMA integrity_check").expect("sqlite3");
    assert_eq!(integrity.trim(), "ok");
    let audit = server.audit_verify().expect("the audit chain is intact");
    println!("{audit}");
}

/// A client's network vanishes for 10 s (every packet dropped, no error to either side),
/// then returns: the client rejoins by itself, still admitted, and media flows both ways.
#[test]
fn client_network_cut_for_10s_rejoins() {
    let (topo, server) = setup("cut", "");
    let url = server.url.clone();
    let client_ns = topo.client_ns.clone();
    let server_ns = topo.server_ns.clone();
    let timings = topo.in_client(move || async move {
        let api = rounds_client::Api::new(url.clone()).expect("api");
        let visit = new_visit(&api).await.expect("a visit");
        let bind = IpAddr::V4(CLIENT_IP);
        let (provider, patient) = admitted_pair(
            config(&url, &visit.provider, 1, bind),
            config(&url, &visit.patient, 2, bind),
        )
        .await
        .expect("admitted");
        both_ways(&provider, &patient, 20, Duration::from_secs(30))
            .await
            .expect("media before the cut");
        // Dropped on arrival at both ends, so nothing errors locally: the packets just
        // vanish, as when a link in between fails.
        let cut = "add table inet rounds_cut; \
                   add chain inet rounds_cut in { type filter hook input priority -10; }; \
                   add rule inet rounds_cut in ip saddr { 198.51.100.1, 198.51.100.2 } drop";
        for ns in [&client_ns, &server_ns] {
            ns_run(ns, &["nft", cut]).expect("cut");
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        let cut = (provider.stats(), patient.stats());
        for ns in [&client_ns, &server_ns] {
            ns_run(ns, &["nft", "delete table inet rounds_cut"]).expect("restore");
        }
        let back = Instant::now();
        both_ways(&provider, &patient, 20, Duration::from_secs(60))
            .await
            .expect("media after the cut");
        let media = back.elapsed();
        // Whether signaling had to reconnect depends on where its heartbeat was; either
        // way, both are connected and admitted now.
        for c in [&provider, &patient] {
            assert_eq!(c.state(), ParticipantState::Admitted);
            assert_eq!(
                c.signaling_state(),
                rounds_client::SignalingState::Connected
            );
        }
        let reconnects = (
            provider.stats().signaling_reconnects - cut.0.signaling_reconnects,
            patient.stats().signaling_reconnects - cut.1.signaling_reconnects,
        );
        provider.leave().await;
        patient.leave().await;
        (media, reconnects)
    });
    println!(
        "after a 10 s cut: media both ways {} ms after the network returned; signaling reconnects \
         (provider, patient): {:?}",
        timings.0.as_millis(),
        timings.1
    );
    drop(server);
}

/// A small tmpfs for the data folder, unmounted on drop.
struct TinyDisk {
    dir: tempfile::TempDir,
}

impl TinyDisk {
    fn new(size: &str) -> TinyDisk {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_string_lossy().into_owned();
        rounds_reliability::netns::run(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &path],
        )
        .expect("mounting a tmpfs needs root");
        TinyDisk { dir }
    }

    /// Writes a file until the filesystem is full; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = rounds_reliability::netns::run("umount", &[&self.dir.path().to_string_lossy()]);
    }
}

/// The data folder's disk fills up mid-service: writes fail with a clear error (a 503 problem
/// response, a log line naming the cause), the server stays up, and once space returns it
/// works again with the database and the audit chain intact.
#[test]
fn full_disk_gives_a_clear_error_and_no_corruption() {
    let disk = TinyDisk::new("8m");
    let data = disk.dir.path().join("data");
    let (topo, mut server) = crate::setup_with("disk", |spec| spec.data_dir = Some(data));
    let url = server.url.clone();
    let api = move || rounds_client::Api::new(url.clone()).expect("api");
    let url = server.url.clone();
    // One visit while there is room.
    let first = topo.in_client(move || async move { new_visit(&api()).await.map(|v| v.id) });
    first.expect("a visit while the disk has room");
    let filler = disk.fill();
    let (failures, statuses) = topo.in_client({
        let url = url.clone();
        move || async move {
            let http = reqwest::Client::new();
            let mut statuses = Vec::new();
            let mut failures = 0;
            let login = http
                .post(url.join("/api/v1/auth/login").expect("url"))
                .json(&serde_json::json!({
                    "email": rounds_reliability::server::EMAIL,
                    "password": rounds_reliability::server::PASSWORD,
                }))
                .send()
                .await
                .expect("the server answers");
            if !login.status().is_success() {
                // Sign-in writes too (a refresh token and an audit row).
                let status = login.status();
                let kind = content_type(&login);
                let body = login.text().await.unwrap_or_default();
                return (1, vec![format!("login: {status} {kind} {body}")]);
            }
            let access: serde_json::Value = login.json().await.expect("session");
            let access = access["access_token"].as_str().expect("token").to_owned();
            for n in 0..20 {
                let r = http
                    .post(url.join("/api/v1/visits").expect("url"))
                    .bearer_auth(&access)
                    .json(&serde_json::json!({
                        "patient_name": format!("Disk Test {n}"),
                        "scheduled_at": chrono_now(),
                        "duration_minutes": 20,
                    }))
                    .send()
                    .await
                    .expect("the server answers");
                let status = r.status();
                let kind = content_type(&r);
                let body = r.text().await.unwrap_or_default();
                if !status.is_success() {
                    failures += 1;
                    statuses.push(format!("{status} {kind} {body}"));
                }
            }
            (failures, statuses)
        }
    });
    println!("with a full disk: {failures} of 20 visit creations refused: {statuses:?}");
    assert!(failures > 0, "nothing failed: the disk was not full");
    assert!(
        statuses
            .iter()
            .all(|s| s.contains("application/problem+json")),
        "every refusal is a problem document: {statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| s.contains("503 Service Unavailable") && s.contains("storage is full")),
        "every refusal says the storage is full (503), not a generic failure: {statuses:?}"
    );
    assert!(server.is_running(), "the server survived a full disk");
    let log = server.log();
    let cause = log
        .lines()
        .find(|l| l.contains("disk is full") || l.contains("No space left"));
    println!("the server's log says: {cause:?}");
    assert!(cause.is_some(), "the log names the cause:\n{log}");
    std::fs::remove_file(filler).expect("free the space");
    let url = server.url.clone();
    let again = topo.in_client(move || async move {
        new_visit(&rounds_client::Api::new(url).expect("api"))
            .await
            .map(|v| v.id)
    });
    again.expect("a visit once space is back");
    assert_eq!(
        server
            .sqlite("PRAGMA integrity_check")
            .expect("sqlite3")
            .trim(),
        "ok"
    );
    println!(
        "{}",
        server.audit_verify().expect("the audit chain is intact")
    );
    drop(server);
    drop(topo);
}

fn content_type(r: &reqwest::Response) -> String {
    r.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

fn chrono_now() -> String {
    // RFC 3339 in UTC, as the API expects.
    let out = rounds_reliability::netns::run("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).expect("date");
    out.trim().to_owned()
}
