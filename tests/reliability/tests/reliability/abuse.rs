//! Abuse (issue 8 §5): garbage to the media ports during a call, tokenless WebSockets, and
//! slowloris clients. The counts are CI-sized by default; `scripts/reliability.sh` sets
//! the full ones through the environment (see `docs/reliability.md`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rand::{Rng, RngCore, SeedableRng};
use rounds_reliability::call::{admitted_pair, both_ways, config, new_visit};
use rounds_reliability::netns::{CLIENT_IP, SERVER_IP};
use rounds_reliability::server::{metric, rss_kib};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::{HTTP_PORT, UDP_PORT, setup};

/// A count from the environment (the long runs), or the CI default.
fn count(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Samples a process's resident memory until `stop`; returns the peak in KiB.
fn watch_rss(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            if let Ok(kib) = rss_kib(pid) {
                peak = peak.max(kib);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        peak
    })
}

/// One garbage datagram: random bytes, with a first byte that steers it into each branch of
/// the demultiplexer (STUN, DTLS, RTP/RTCP, unknown), some shaped like a STUN binding
/// request with a random username.
fn garbage_datagram(rng: &mut impl Rng, buf: &mut Vec<u8>) {
    let len = match rng.gen_range(0..10) {
        0 => rng.gen_range(0..20),
        1..=7 => rng.gen_range(20..300),
        _ => rng.gen_range(300..1400),
    };
    buf.resize(len, 0);
    rng.fill_bytes(buf);
    if let Some(first) = buf.first_mut() {
        *first = match rng.gen_range(0..5) {
            0 => 0x00,                  // STUN
            1 => rng.gen_range(20..64), // DTLS
            2 => 0x80,                  // RTP / RTCP
            3 => rng.gen_range(128..192),
            _ => *first,
        };
    }
    if len >= 20 && buf[0] == 0x00 && rng.gen_bool(0.5) {
        // A STUN header: binding request, magic cookie, then random attributes.
        buf[1] = 0x01;
        let body = (len - 20) as u16;
        buf[2..4].copy_from_slice(&body.to_be_bytes());
        buf[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
    }
}

/// During a call: `ROUNDS_GARBAGE_DATAGRAMS` (default 100 000; the full run 1 000 000)
/// random datagrams to the media port from many source ports, and
/// `ROUNDS_GARBAGE_TCP` (default 200) connections to the TCP port that send random bytes
/// or random RFC 4571 frames. The server does not crash, the call keeps flowing both ways,
/// and the server's memory stays bounded.
#[test]
fn garbage_to_the_media_ports_during_a_call() {
    let datagrams = count("ROUNDS_GARBAGE_DATAGRAMS", 100_000);
    let connections = count("ROUNDS_GARBAGE_TCP", 200);
    let (topo, mut server) = setup("garbage", "");
    let url = server.url.clone();
    let pid = server.pid();
    let report = topo.in_client(move || async move {
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
            .expect("media before the flood");
        let rss_before = rss_kib(pid).expect("rss");
        let dropped_before = metric(&url, "rounds_sfu_dropped_datagrams_total")
            .await
            .unwrap_or(0.0);
        let stop = Arc::new(AtomicBool::new(false));
        let peak = watch_rss(pid, stop.clone());
        let started = Instant::now();

        // UDP: from 16 sockets, as fast as the kernel takes them.
        let target = SocketAddr::from((SERVER_IP, UDP_PORT));
        let sent = Arc::new(AtomicU64::new(0));
        let mut senders = Vec::new();
        for s in 0..16u64 {
            let sent = sent.clone();
            let share = datagrams / 16 + u64::from(s < datagrams % 16);
            senders.push(tokio::spawn(async move {
                let socket = UdpSocket::bind((CLIENT_IP, 0)).await.expect("bind");
                let mut rng = rand::rngs::StdRng::seed_from_u64(s);
                let mut buf = Vec::with_capacity(1500);
                for _ in 0..share {
                    garbage_datagram(&mut rng, &mut buf);
                    if socket.send_to(&buf, target).await.is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        // TCP: garbage connections, 50 at a time.
        let tcp_target = SocketAddr::from((SERVER_IP, HTTP_PORT));
        let tcp = tokio::spawn(async move {
            let mut accepted = 0u64;
            let mut rng = rand::rngs::StdRng::seed_from_u64(99);
            let mut batch = Vec::new();
            for n in 0..connections {
                let mut bytes = vec![0u8; rng.gen_range(1..4096)];
                rng.fill_bytes(&mut bytes);
                if n % 2 == 0 {
                    // RFC 4571 framing with random lengths and contents.
                    bytes[0] = rng.gen_range(0..8);
                } else if bytes[0].is_ascii_alphabetic() || bytes[0] == 0x16 {
                    bytes[0] = 0xff;
                }
                batch.push(tokio::spawn(async move {
                    let Ok(mut stream) = TcpStream::connect(tcp_target).await else {
                        return false;
                    };
                    let _ = stream.write_all(&bytes).await;
                    let mut sink = [0u8; 512];
                    let _ =
                        tokio::time::timeout(Duration::from_secs(2), stream.read(&mut sink)).await;
                    true
                }));
                if batch.len() == 50 {
                    for t in batch.drain(..) {
                        accepted += u64::from(t.await.unwrap_or(false));
                    }
                }
            }
            for t in batch {
                accepted += u64::from(t.await.unwrap_or(false));
            }
            accepted
        });
        // The call must keep flowing while the flood runs.
        both_ways(&provider, &patient, 30, Duration::from_secs(60))
            .await
            .expect("media during the flood");
        for s in senders {
            s.await.expect("sender");
        }
        let tcp_connected = tcp.await.expect("tcp");
        let flood = started.elapsed();
        both_ways(&provider, &patient, 30, Duration::from_secs(30))
            .await
            .expect("media after the flood");
        stop.store(true, Ordering::Relaxed);
        let peak = peak.join().expect("watcher");
        let rss_after = rss_kib(pid).expect("the server is alive");
        let dropped = metric(&url, "rounds_sfu_dropped_datagrams_total")
            .await
            .unwrap_or(0.0)
            - dropped_before;
        provider.leave().await;
        patient.leave().await;
        (
            sent.load(Ordering::Relaxed),
            tcp_connected,
            flood,
            rss_before,
            peak,
            rss_after,
            dropped,
        )
    });
    let (sent, tcp_connected, flood, before, peak, after, dropped) = report;
    println!(
        "garbage: {sent} datagrams and {tcp_connected} TCP connections in {:.1} s; server RSS \
         {before} KiB before, {peak} KiB peak, {after} KiB after; {dropped} datagrams counted \
         as dropped by the SFU",
        flood.as_secs_f64()
    );
    assert!(server.is_running(), "the server survived");
    assert!(sent >= datagrams * 9 / 10, "only {sent} datagrams went out");
    // Bounded: the flood may cost buffers, not memory per datagram or per connection.
    assert!(
        peak < before + 64 * 1024,
        "the server grew from {before} KiB to {peak} KiB under garbage"
    );
}

/// `ROUNDS_TOKENLESS_WS` (default 1000) WebSocket connections to `/rtc` at once, none with
/// a token: half never send anything, half send a `join` with a forged token. All are
/// closed by the server (refused, or at the join deadline), the server stays small, and a
/// real client can still join meanwhile.
#[test]
fn tokenless_websockets_are_rejected_cheaply() {
    let total = count("ROUNDS_TOKENLESS_WS", 1000);
    let (topo, mut server) = setup("ws", "");
    let url = server.url.clone();
    let pid = server.pid();
    let (closed, elapsed, before, peak, real_join) = topo.in_client(move || async move {
        let rss_before = rss_kib(pid).expect("rss");
        let stop = Arc::new(AtomicBool::new(false));
        let peak = watch_rss(pid, stop.clone());
        let ws_url = format!("ws://{SERVER_IP}:{HTTP_PORT}/rtc");
        let started = Instant::now();
        let mut tasks = Vec::new();
        for n in 0..total {
            let ws_url = ws_url.clone();
            tasks.push(tokio::spawn(async move {
                let Ok((mut ws, _)) = tokio_tungstenite::connect_async(ws_url).await else {
                    // Refused before the upgrade also counts as rejected.
                    return true;
                };
                if n % 2 == 1 {
                    let join = serde_json::json!({"type": "join", "token": "eyJub3QiOiJhIHRva2VuIn0.e30.AAAA"});
                    let _ = ws
                        .send(tokio_tungstenite::tungstenite::Message::Text(
                            join.to_string().into(),
                        ))
                        .await;
                }
                // The server must close it: read until the end, at most 30 s.
                let end = tokio::time::timeout(Duration::from_secs(30), async {
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
                end.is_ok()
            }));
        }
        // Meanwhile a real participant joins.
        let api = rounds_client::Api::new(url.clone()).expect("api");
        let visit = new_visit(&api).await.expect("a visit during the flood");
        let cfg = config(&url, &visit.provider, 1, IpAddr::V4(CLIENT_IP)).receive_only();
        let join_started = Instant::now();
        let client = rounds_client::Client::join(cfg)
            .await
            .expect("a real client joins during the flood");
        let real_join = join_started.elapsed();
        let mut closed = 0u64;
        for t in tasks {
            closed += u64::from(t.await.unwrap_or(false));
        }
        let elapsed = started.elapsed();
        client.leave().await;
        stop.store(true, Ordering::Relaxed);
        let peak = peak.join().expect("watcher");
        (closed, elapsed, rss_before, peak, real_join)
    });
    println!(
        "{closed} of {total} tokenless WebSockets closed by the server within {:.1} s; a real \
         join took {} ms meanwhile; server RSS {before} KiB before, {peak} KiB peak",
        elapsed.as_secs_f64(),
        real_join.as_millis()
    );
    assert!(server.is_running());
    assert_eq!(
        closed, total,
        "every tokenless socket was closed by the server"
    );
    assert!(
        peak < before + 64 * 1024,
        "{total} tokenless sockets grew the server from {before} KiB to {peak} KiB"
    );
}

/// `ROUNDS_SLOWLORIS` (default 200) clients that send a request line and then one header
/// byte every 2 s: the server closes each of them at its header deadline (15 s), and
/// serves a normal request meanwhile.
#[test]
fn slowloris_clients_time_out() {
    let total = count("ROUNDS_SLOWLORIS", 200);
    let (topo, mut server) = setup("slow", "");
    let url = server.url.clone();
    let (closed, longest, healthy) = topo.in_client(move || async move {
        let target = SocketAddr::from((SERVER_IP, HTTP_PORT));
        let mut tasks = Vec::new();
        for _ in 0..total {
            tasks.push(tokio::spawn(async move {
                let mut stream = TcpStream::connect(target).await.expect("connect");
                let start = Instant::now();
                stream
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: rounds\r\nX-Slow: ")
                    .await
                    .expect("request line");
                // Trickle until the server gives up on us, for at most 60 s.
                while start.elapsed() < Duration::from_secs(60) {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    if stream.write_all(b"a").await.is_err() {
                        return Some(start.elapsed());
                    }
                    let mut buf = [0u8; 256];
                    match tokio::time::timeout(Duration::from_millis(10), stream.read(&mut buf))
                        .await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
                        Ok(Ok(_)) => {
                            // A 408 or similar: the server answered and will close.
                            return Some(start.elapsed());
                        }
                        Err(_) => {}
                    }
                }
                None
            }));
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let healthy = reqwest::get(url.join("/healthz").expect("url"))
            .await
            .is_ok_and(|r| r.status().is_success());
        let mut closed = 0u64;
        let mut longest = Duration::ZERO;
        for t in tasks {
            if let Ok(Some(after)) = t.await {
                closed += 1;
                longest = longest.max(after);
            }
        }
        (closed, longest, healthy)
    });
    println!(
        "{closed} of {total} slowloris clients cut off by the server, the last after {:.1} s; \
         /healthz answered meanwhile: {healthy}",
        longest.as_secs_f64()
    );
    assert!(server.is_running());
    assert!(
        healthy,
        "the server served a normal request during the attack"
    );
    assert_eq!(closed, total, "every slow client was cut off");
    // The header deadline is 15 s; the trickle interval and scheduling add a few.
    assert!(longest <= Duration::from_secs(25), "{longest:?}");
}
