//! The four checks, each a few sockets deep. Every outcome, good or bad, becomes a
//! [`CheckResult`]; nothing here returns an error.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rounds_proto::{
    ClientMessage, Connectivity, ErrorCode, Health, PROTOCOL_VERSION, ServerMessage,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;
use url::Url;

use crate::failure::{self, Failure};
use crate::stun::{self, Answer};
use crate::{CheckResult, MediaAddresses, Options, Path, Status, Tls, proxy};

/// The token a signaling check joins with: never valid, so the server's typed refusal is the
/// answer we expect.
const PROBE_TOKEN: &str = "rounds-netcheck";
/// Longest ICE-TCP answer we read: a binding response is 32 or 44 bytes.
const MAX_TCP_ANSWER: usize = 1024;
/// When the UDP request is sent again, after the first, if no answer came (RFC 8489 starts
/// at 500 ms and doubles).
const UDP_RESENDS: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_millis(1500),
    Duration::from_millis(3500),
];

/// rustls with the ring provider and the operating system's trust store, chosen explicitly
/// so a process that links several rustls providers need not install a default one.
pub(crate) fn tls_config() -> Tls {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A certificate the store cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports rustls's default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn host_port(url: &Url) -> (String, u16) {
    (
        url.host_str().unwrap_or_default().to_owned(),
        url.port_or_known_default().unwrap_or(443),
    )
}

fn pass(path: Path, target: String, rtt: Duration, detail: String) -> CheckResult {
    CheckResult {
        path,
        status: Status::Pass,
        target,
        rtt: Some(rtt),
        detail,
        advice: None,
    }
}

fn fail(path: Path, target: String, detail: String, advice: String) -> CheckResult {
    CheckResult {
        path,
        status: Status::Fail,
        target,
        rtt: None,
        detail,
        advice: Some(advice),
    }
}

pub(crate) fn not_checked(path: Path) -> CheckResult {
    CheckResult {
        path,
        status: Status::NotChecked,
        target: String::new(),
        rtt: None,
        detail: "Not checked: the server's media addresses come from the web check, which failed."
            .into(),
        advice: None,
    }
}

// ---- web ---------------------------------------------------------------------------------

fn http_client(options: &Options, tls: Tls) -> Result<reqwest::Client, reqwest::Error> {
    let proxy = options.proxy.clone();
    reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .no_proxy()
        .proxy(reqwest::Proxy::custom(move |url| {
            proxy.for_url(url).cloned()
        }))
        .timeout(options.timeout)
        .connect_timeout(options.timeout)
        .user_agent(concat!("rounds-netcheck/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// `GET /healthz` twice (the second is the round trip, on an open connection), then the
/// media addresses.
pub(crate) async fn web(
    server: &Url,
    options: &Options,
    tls: Tls,
) -> (CheckResult, Option<Connectivity>) {
    let Ok(health_url) = server.join("healthz") else {
        return (
            fail(
                Path::Web,
                server.to_string(),
                "The server address cannot be used.".into(),
                "Check the server address.".into(),
            ),
            None,
        );
    };
    let target = health_url.to_string();
    let (host, port) = host_port(server);
    let scheme = if server.scheme() == "https" {
        "HTTPS"
    } else {
        "HTTP"
    };
    let proxy = options.proxy.for_url(server).map(proxy::proxy_display);
    let opening = match &proxy {
        Some(p) => format!(
            "{} (through the proxy at {p}, which must allow it)",
            failure::port_phrase("TCP", &host, port)
        ),
        None => failure::port_phrase("TCP", &host, port),
    };
    let client = match http_client(options, tls) {
        Ok(c) => c,
        Err(e) => {
            return (
                fail(
                    Path::Web,
                    target,
                    format!("Could not set up {scheme}: {}.", failure::root_message(&e)),
                    "Check this computer's proxy settings.".into(),
                ),
                None,
            );
        }
    };
    let get_health = || async {
        let response = client.get(health_url.clone()).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, body))
    };
    // Through a proxy, a connection that fails is the one to the proxy: the proxy answers
    // for the server with an HTTP status otherwise.
    let what = match &proxy {
        Some(p) => format!("the proxy at {p}"),
        None => format!("{host}:{port}"),
    };
    // A request that got no HTTP answer at all: the path to `what` is the trouble.
    let unreachable = |e: &reqwest::Error| {
        let kind = failure::classify(e);
        fail(
            Path::Web,
            target.clone(),
            failure::detail(kind, &what, &failure::root_message(e)),
            failure::advice(kind, &opening),
        )
    };
    let (status, body) = match get_health().await {
        Ok(answer) => answer,
        Err(e) => return (unreachable(&e), None),
    };
    let healthy = status.is_success()
        && serde_json::from_slice::<Health>(&body).is_ok_and(|h| h.status == "ok");
    if !healthy {
        let via = proxy
            .as_ref()
            .map(|p| format!(" (through the proxy at {p})"))
            .unwrap_or_default();
        return (
            fail(
                Path::Web,
                target.clone(),
                format!("{host}:{port} answered{via}, but not as a Rounds server (HTTP {}).", status.as_u16()),
                "Check the server address. If it is right, a proxy or filter on this network may be answering in its place: ask IT to let it through unchanged.".into(),
            ),
            None,
        );
    }
    // A proxy may close a kept-alive connection just as it is reused: such a request fails
    // without saying anything about the path, so the timed one gets a second try.
    let mut start = Instant::now();
    let mut timed = get_health().await;
    if timed.is_err() {
        start = Instant::now();
        timed = get_health().await;
    }
    let rtt = match timed {
        Ok(_) => start.elapsed(),
        Err(e) => return (unreachable(&e), None),
    };
    let get_connectivity = || async {
        let url = server.join("api/v1/connectivity").ok()?;
        match client.get(url).send().await {
            Ok(r) if r.status().is_success() => r.json::<Connectivity>().await.ok(),
            _ => None,
        }
    };
    let connectivity = match get_connectivity().await {
        Some(c) => Some(c),
        None => get_connectivity().await,
    };
    let mut detail = format!("The server answered over {scheme}");
    if let Some(p) = &proxy {
        detail.push_str(&format!(" through the proxy at {p}"));
    }
    detail.push('.');
    if connectivity.is_none() {
        detail.push_str(" It did not say where it takes media (GET /api/v1/connectivity), so media is not checked: the server may be older than this check.");
    }
    (pass(Path::Web, target, rtt, detail), connectivity)
}

/// The media addresses as this machine will reach them. A server that advertises the
/// unspecified address (it listens everywhere and was not told its public one) is taken to
/// be at the host of its URL.
pub(crate) async fn media_addresses(server: &Url, c: &Connectivity) -> MediaAddresses {
    let mut unreadable = None;
    let mut parse = |s: &Option<String>| -> Option<SocketAddr> {
        let s = s.as_deref()?;
        match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                unreadable = Some(s.to_owned());
                None
            }
        }
    };
    let (mut udp, mut tcp) = (parse(&c.udp), parse(&c.ice_tcp));
    if [udp, tcp].iter().flatten().any(|a| a.ip().is_unspecified()) {
        let host = server
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']']);
        let resolved = tokio::net::lookup_host((host, 0))
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .map(|a| a.ip());
        for addr in [&mut udp, &mut tcp].into_iter().flatten() {
            if addr.ip().is_unspecified()
                && let Some(ip) = resolved
            {
                addr.set_ip(ip);
            }
        }
    }
    MediaAddresses {
        udp,
        tcp,
        unreadable,
    }
}

// ---- signaling -----------------------------------------------------------------------------

/// Opens `/rtc`, sends a `join` with a token that cannot be valid, and expects a typed answer.
pub(crate) async fn signaling(
    server: &Url,
    path: &str,
    options: &Options,
    tls: Tls,
) -> CheckResult {
    let mut url = server.clone();
    let _ = url.set_scheme(if server.scheme() == "https" {
        "wss"
    } else {
        "ws"
    });
    url.set_path(path);
    let target = url.to_string();
    let (host, port) = host_port(server);
    let what = format!("{host}:{port}");
    let proxy = options.proxy.for_url(&url).cloned();
    let opening = match &proxy {
        Some(p) => format!(
            "{} (through the proxy at {}, which must allow CONNECT and WebSocket upgrades)",
            failure::port_phrase("TCP", &host, port),
            proxy::proxy_display(p)
        ),
        None => format!(
            "{}, with WebSocket upgrades to {path}",
            failure::port_phrase("TCP", &host, port)
        ),
    };
    let connect = async {
        match &proxy {
            Some(p) => proxy::connect_via(p, &host, port, options.timeout)
                .await
                .map_err(|e| match e {
                    proxy::ProxyError::Unreachable { source, .. } => source,
                    other => std::io::Error::other(other.to_string()),
                }),
            None => {
                tokio::time::timeout(options.timeout, TcpStream::connect((host.as_str(), port)))
                    .await
                    .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
            }
        }
    };
    let stream = match connect.await {
        Ok(s) => s,
        Err(e) => {
            let kind = failure::classify(&e);
            return fail(
                Path::Signaling,
                target,
                failure::detail(kind, &what, &failure::root_message(&e)),
                failure::advice(kind, &opening),
            );
        }
    };
    let connector = tokio_tungstenite::Connector::Rustls(tls);
    let handshake = tokio::time::timeout(
        options.timeout,
        tokio_tungstenite::client_async_tls_with_config(
            url.as_str(),
            stream,
            None,
            Some(connector),
        ),
    )
    .await;
    let mut ws = match handshake {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
            return fail(
                Path::Signaling,
                target,
                format!(
                    "The WebSocket upgrade was refused with HTTP {}.",
                    response.status().as_u16()
                ),
                format!(
                    "If a proxy or filter sits between this computer and the server, ask IT to allow WebSocket upgrades to {path} on {host}."
                ),
            );
        }
        Ok(Err(e)) => {
            let kind = failure::classify(&e);
            return fail(
                Path::Signaling,
                target,
                failure::detail(kind, &what, &failure::root_message(&e)),
                failure::advice(kind, &opening),
            );
        }
        Err(_) => {
            return fail(
                Path::Signaling,
                target,
                failure::detail(Failure::Timeout, &what, ""),
                failure::advice(Failure::Timeout, &opening),
            );
        }
    };
    let join = ClientMessage::Join {
        v: PROTOCOL_VERSION,
        token: PROBE_TOKEN.into(),
        resume: None,
        prepare_media: false,
    };
    let Ok(text) = serde_json::to_string(&join) else {
        return fail(
            Path::Signaling,
            target,
            "Could not write the test message.".into(),
            "Report this to the Rounds team.".into(),
        );
    };
    let start = Instant::now();
    let exchange = async {
        ws.send(Message::Text(text.into())).await.ok()?;
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Text(text) = message {
                return serde_json::from_str::<ServerMessage>(&text)
                    .ok()
                    .map(|m| (m, start.elapsed()));
            }
            if let Message::Close(_) = message {
                return None;
            }
        }
        None
    };
    let answer = tokio::time::timeout(options.timeout, exchange)
        .await
        .ok()
        .flatten();
    let _ = ws.close(None).await;
    match answer {
        Some((ServerMessage::Error { code: ErrorCode::Unauthorized, .. }, rtt)) => pass(
            Path::Signaling,
            target,
            rtt,
            "The WebSocket opened and the server refused a test join with a typed answer, as it should.".into(),
        ),
        Some((_, rtt)) => pass(Path::Signaling, target, rtt, "The WebSocket opened and the server answered.".into()),
        None => fail(
            Path::Signaling,
            target,
            "The WebSocket opened, but no answer came back: something between this computer and the server may be cutting WebSocket traffic.".into(),
            format!("Ask IT to let WebSocket traffic to {path} on {host} through unchanged (no buffering or inspection that holds messages)."),
        ),
    }
}

// ---- media ---------------------------------------------------------------------------------

fn udp_fallback_note(addrs: &MediaAddresses) -> String {
    match addrs.tcp {
        Some(tcp) => format!(
            " Until then media falls back to TCP port {}, which works but copes less well with a weak connection.",
            tcp.port()
        ),
        None => String::new(),
    }
}

/// A STUN binding request to the media UDP port, repeated while no answer comes.
pub(crate) async fn udp(addrs: &MediaAddresses, options: &Options) -> CheckResult {
    let Some(addr) = addrs.udp else {
        let detail = match &addrs.unreadable {
            Some(s) => format!("The server gave a media address that cannot be read ({s})."),
            None => {
                "This server does not take media over UDP (its media.udp_enabled setting is off)."
                    .into()
            }
        };
        let advice = match addrs.tcp {
            Some(tcp) => format!(
                "Nothing to open for UDP on this network: media uses TCP port {} instead. For smoother video, the server's administrator can turn UDP media on, and IT then allows that port.",
                tcp.port()
            ),
            None => "Ask the server's administrator to turn media on.".into(),
        };
        return fail(Path::MediaUdp, String::new(), detail, advice);
    };
    let target = format!("udp {addr}");
    let opening = failure::port_phrase("UDP", &addr.ip().to_string(), addr.port());
    let bind: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => {
            return fail(
                Path::MediaUdp,
                target,
                format!("Could not open a UDP socket on this computer: {e}."),
                "Check this computer's firewall software.".into(),
            );
        }
    };
    // Connected, so an ICMP "port unreachable" comes back as an error instead of silence.
    if let Err(e) = socket.connect(addr).await {
        let kind = failure::classify(&e);
        return fail(
            Path::MediaUdp,
            target,
            failure::detail(kind, &addr.to_string(), &e.to_string()),
            failure::advice(kind, &opening),
        );
    }
    // Each send is its own transaction, so the round trip is timed from the send answered.
    let mut sent: Vec<(stun::TransactionId, Instant)> = Vec::new();
    let started = Instant::now();
    let deadline = started + options.udp_timeout;
    let mut resends = UDP_RESENDS
        .iter()
        .map(|d| started + *d)
        .filter(|t| *t < deadline);
    let mut next_send = Some(started);
    let mut buf = [0u8; 1500];
    let outcome: Result<(SocketAddr, Option<SocketAddr>, Duration), Failure> = loop {
        let now = Instant::now();
        if next_send.is_some_and(|t| t <= now) {
            let txid = stun::new_transaction();
            if let Err(e) = socket.send(&stun::binding_request(&txid)).await {
                break Err(failure::classify(&e));
            }
            sent.push((txid, now));
            next_send = resends.next();
        }
        if now >= deadline {
            break Err(Failure::Timeout);
        }
        let wake = next_send.map_or(deadline, |t| t.min(deadline));
        match tokio::time::timeout_at(wake.into(), socket.recv(&mut buf)).await {
            Err(_) => continue,
            Ok(Err(e)) => break Err(failure::classify(&e)),
            Ok(Ok(n)) => {
                let answered = sent.iter().find_map(|(txid, at)| {
                    stun::read_answer(&buf[..n], txid).map(|a| (a, at.elapsed()))
                });
                match answered {
                    Some((Answer::Mapped(mapped), rtt)) => break Ok((addr, mapped, rtt)),
                    Some((Answer::Refused, _)) => break Err(Failure::Other),
                    None => continue,
                }
            }
        }
    };
    match outcome {
        Ok((addr, mapped, rtt)) => {
            let seen = mapped
                .map(|m| format!("; it sees this computer as {m}"))
                .unwrap_or_default();
            pass(
                Path::MediaUdp,
                target,
                rtt,
                format!("The media port {addr} answered over UDP{seen}."),
            )
        }
        Err(Failure::Timeout) => fail(
            Path::MediaUdp,
            target,
            format!(
                "No answer from UDP {addr} in {} s: a firewall is probably dropping it.",
                options.udp_timeout.as_secs_f32()
            ),
            format!(
                "Ask IT to allow outbound {opening}, and its replies.{}",
                udp_fallback_note(addrs)
            ),
        ),
        Err(Failure::Refused) => fail(
            Path::MediaUdp,
            target,
            format!("UDP {addr} was refused: nothing listens there, or a firewall rejected it."),
            format!(
                "Check that the server's media port is {} and open on the server; then ask IT to allow outbound {opening}.{}",
                addr.port(),
                udp_fallback_note(addrs)
            ),
        ),
        Err(kind) => fail(
            Path::MediaUdp,
            target,
            failure::detail(
                kind,
                &format!("UDP {addr}"),
                "the answer was not a STUN success",
            ),
            format!(
                "{}{}",
                failure::advice(kind, &opening),
                udp_fallback_note(addrs)
            ),
        ),
    }
}

/// An RFC 4571-framed STUN binding request on the ICE-TCP port.
pub(crate) async fn ice_tcp(addrs: &MediaAddresses, options: &Options) -> CheckResult {
    let Some(addr) = addrs.tcp else {
        return fail(
            Path::MediaTcp,
            String::new(),
            "This server does not take media over TCP (its media.ice_tcp setting is off).".into(),
            "Nothing to open: on networks that block UDP, media will not work until the server's administrator turns media.ice_tcp on.".into(),
        );
    };
    let target = format!("tcp {addr}");
    let opening = failure::port_phrase("TCP", &addr.ip().to_string(), addr.port());
    let no_proxy = if options.proxy.https.is_some() || options.proxy.http.is_some() {
        " Media cannot go through a web proxy: the firewall must allow it directly."
    } else {
        ""
    };
    let connected = tokio::time::timeout(options.timeout, TcpStream::connect(addr))
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
    let mut stream = match connected {
        Ok(s) => s,
        Err(e) => {
            let kind = failure::classify(&e);
            return fail(
                Path::MediaTcp,
                target,
                failure::detail(kind, &format!("TCP {addr}"), &e.to_string()),
                format!("{}{no_proxy}", failure::advice(kind, &opening)),
            );
        }
    };
    let _ = stream.set_nodelay(true);
    let txid = stun::new_transaction();
    let exchange = async {
        let sent_at = Instant::now();
        stream
            .write_all(&stun::frame(&stun::binding_request(&txid)))
            .await?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let len = usize::from(u16::from_be_bytes(len));
        if len == 0 || len > MAX_TCP_ANSWER {
            return Ok(None);
        }
        let mut frame = vec![0u8; len];
        stream.read_exact(&mut frame).await?;
        Ok::<_, std::io::Error>(stun::read_answer(&frame, &txid).map(|a| (a, sent_at.elapsed())))
    };
    let answer = tokio::time::timeout(options.timeout, exchange).await;
    match answer {
        Ok(Ok(Some((Answer::Mapped(mapped), rtt)))) => {
            let seen = mapped
                .map(|m| format!("; it sees this computer as {m}"))
                .unwrap_or_default();
            pass(
                Path::MediaTcp,
                target,
                rtt,
                format!("The media fallback {addr} answered over TCP{seen}."),
            )
        }
        Ok(Ok(_)) | Ok(Err(_)) => fail(
            Path::MediaTcp,
            target,
            format!(
                "TCP {addr} accepted the connection but did not answer as Rounds media: a proxy or another server may sit on that address."
            ),
            format!(
                "Ask IT to let {opening} reach the Rounds server directly, without a proxy or TLS inspection in between.{no_proxy}"
            ),
        ),
        Err(_) => fail(
            Path::MediaTcp,
            target,
            format!("TCP {addr} accepted the connection but sent nothing back in time."),
            format!(
                "Ask IT to let {opening} reach the Rounds server directly, without inspection that holds the traffic.{no_proxy}"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(udp: Option<SocketAddr>, tcp: Option<SocketAddr>) -> MediaAddresses {
        MediaAddresses {
            udp,
            tcp,
            unreadable: None,
        }
    }

    fn quick() -> Options {
        Options {
            timeout: Duration::from_secs(2),
            udp_timeout: Duration::from_millis(1200),
            ..Options::default()
        }
    }

    /// A minimal STUN responder on a real socket, answering like the SFU does.
    async fn stun_responder() -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let request = &buf[..n];
                let mut reply = vec![0x01, 0x01, 0, 12];
                reply.extend_from_slice(&request[4..20]);
                reply.extend_from_slice(&[0x00, 0x20, 0, 8, 0, 1]);
                reply.extend_from_slice(&(from.port() ^ 0x2112).to_be_bytes());
                let std::net::IpAddr::V4(v4) = from.ip() else {
                    continue;
                };
                reply.extend(v4.octets().iter().zip(&request[4..8]).map(|(a, k)| a ^ k));
                let _ = socket.send_to(&reply, from).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn udp_passes_when_answered_and_says_where_we_were_seen() {
        let server = stun_responder().await;
        let r = udp(&addresses(Some(server), None), &quick()).await;
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert!(r.rtt.is_some());
        assert!(
            r.detail.contains("sees this computer as 127.0.0.1:"),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn a_silent_udp_port_fails_with_what_to_open_and_the_fallback() {
        // Bound, so no "port unreachable" comes back: silence, as behind a dropping firewall.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = silent.local_addr().expect("addr");
        let tcp: SocketAddr = "127.0.0.1:8443".parse().expect("addr");
        let r = udp(&addresses(Some(addr), Some(tcp)), &quick()).await;
        assert_eq!(r.status, Status::Fail, "{r:?}");
        let advice = r.advice.expect("advice");
        assert!(
            advice.contains(&format!("outbound UDP port {} to 127.0.0.1", addr.port())),
            "{advice}"
        );
        assert!(advice.contains("TCP port 8443"), "{advice}");
        // It asked more than once, as packets get lost.
        let mut buf = [0u8; 64];
        silent.set_nonblocking(true).expect("nonblocking");
        let mut requests = 0;
        while silent.recv_from(&mut buf).is_ok() {
            requests += 1;
        }
        assert!(requests >= 2, "{requests} requests");
    }

    #[tokio::test]
    async fn a_closed_udp_port_is_reported_as_refused() {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let r = udp(&addresses(Some(addr), None), &quick()).await;
        assert_eq!(r.status, Status::Fail, "{r:?}");
        assert!(r.detail.contains("refused"), "{r:?}");
    }

    #[tokio::test]
    async fn a_tcp_port_that_is_not_rounds_fails_clearly() {
        // Accepts and says nothing, like a proxy waiting for a request line.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let r = ice_tcp(&addresses(None, Some(addr)), &quick()).await;
        assert_eq!(r.status, Status::Fail, "{r:?}");
        assert!(r.detail.contains("sent nothing back"), "{r:?}");
        assert!(r.advice.expect("advice").contains("directly"));
    }

    #[tokio::test]
    async fn a_certificate_this_computer_does_not_trust_is_named() {
        // HTTPS with a self-signed certificate, as behind a proxy that inspects TLS with a
        // certificate the computer lacks.
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
        let key =
            rustls::pki_types::PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key.into())
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = acceptor.accept(stream).await;
                });
            }
        });
        let server = Url::parse(&format!("https://localhost:{port}/")).expect("url");
        let (r, media) = web(&server, &quick(), tls_config()).await;
        assert_eq!(r.status, Status::Fail, "{r:?}");
        assert!(media.is_none());
        assert!(r.detail.starts_with("The secure connection to"), "{r:?}");
        assert!(
            r.advice.expect("advice").contains("certificate store"),
            "says where the missing certificate belongs"
        );
    }

    #[tokio::test]
    async fn a_server_without_udp_media_fails_udp_but_names_the_tcp_port() {
        let tcp: SocketAddr = "127.0.0.1:8443".parse().expect("addr");
        let r = udp(&addresses(None, Some(tcp)), &quick()).await;
        assert_eq!(r.status, Status::Fail);
        assert!(r.detail.contains("media.udp_enabled"), "{r:?}");
        assert!(r.advice.expect("advice").contains("TCP port 8443"));
    }
}
