//! Firewalls (issue 8 §1), built from what `rounds-server firewall --json` prints.
//!
//! a. The clients' network lets out only the manifest's TCP port and UDP port: the call
//!    works, over UDP.
//! b. Only the TCP port: the call works over ICE-TCP on that port.
//! c. Counters on the server's namespace see no packet, in or out, outside the manifest
//!    while calls run over both paths.
//!
//! Each case runs with the Rust client, and again with a patient in Debian's Chromium (the
//! patient pages, through device check, check-in and the waiting room) in a call with a Rust
//! clinician, both inside the clients' namespace behind the same rules.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use rounds_client::{Client, IceProtocol};
use rounds_reliability::call::{admitted_pair, both_ways, config, new_visit, wait_media};
use rounds_reliability::netns::{CLIENT_IP, SERVER_IP, Topology};
use rounds_reliability::server::FirewallRule;

use crate::{HTTP_PORT, UDP_PORT, setup};

/// An egress firewall on the clients' side, the way a hospital's would be: new connections
/// only to the given (protocol, host, port) rules, replies to them, nothing else. Dropped
/// packets are counted in `blocked_out`.
fn egress_ruleset(rules: &[&FirewallRule]) -> String {
    let mut allow = String::new();
    for r in rules {
        allow.push_str(&format!(
            "        ip daddr {} {} dport {} accept\n",
            r.host, r.protocol, r.port
        ));
    }
    format!(
        "table inet rounds_fw {{\n\
         \x20   counter blocked_out {{ }}\n\
         \x20   counter blocked_in {{ }}\n\
         \x20   chain output {{\n\
         \x20       type filter hook output priority 0; policy drop;\n\
         \x20       oif \"lo\" accept\n\
         \x20       ct state established,related accept\n\
         {allow}\
         \x20       counter name \"blocked_out\" drop\n\
         \x20   }}\n\
         \x20   chain input {{\n\
         \x20       type filter hook input priority 0; policy drop;\n\
         \x20       iif \"lo\" accept\n\
         \x20       ct state established,related accept\n\
         \x20       counter name \"blocked_in\" drop\n\
         \x20   }}\n\
         }}\n"
    )
}

fn inbound<'a>(rules: &'a [FirewallRule], protocol: &str) -> &'a FirewallRule {
    rules
        .iter()
        .find(|r| r.direction == "inbound" && r.protocol == protocol)
        .unwrap_or_else(|| panic!("the manifest has no inbound {protocol} rule: {rules:?}"))
}

/// The manifest of this configuration: the server's TCP port and UDP port, nothing outbound.
fn manifest(server: &rounds_reliability::server::ServerProcess) -> Vec<FirewallRule> {
    let rules = server.firewall().expect("firewall --json");
    let tcp = inbound(&rules, "tcp");
    let udp = inbound(&rules, "udp");
    assert_eq!(
        (tcp.host.as_str(), tcp.port),
        (SERVER_IP.to_string().as_str(), HTTP_PORT)
    );
    assert_eq!(
        (udp.host.as_str(), udp.port),
        (SERVER_IP.to_string().as_str(), UDP_PORT)
    );
    assert_eq!(
        rules.len(),
        2,
        "no email or SMS is configured, so nothing outbound: {rules:?}"
    );
    rules
}

/// Runs a visit from the client namespace and returns, per client and peer connection, the
/// selected candidate pair once both directions carry video and audio.
fn call(topo: &Topology, url: &url::Url, tcp_only: bool) -> Vec<(SocketAddr, IceProtocol)> {
    let url = url.clone();
    topo.in_client(move || async move {
        let api = rounds_client::Api::new(url.clone()).expect("api");
        let visit = new_visit(&api).await.expect("a visit");
        let bind = IpAddr::V4(CLIENT_IP);
        let mut p = config(&url, &visit.provider, 1, bind);
        let mut q = config(&url, &visit.patient, 2, bind);
        p.ice_tcp_only = tcp_only;
        q.ice_tcp_only = tcp_only;
        let (provider, patient) = admitted_pair(p, q).await.expect("admitted");
        both_ways(&provider, &patient, 30, Duration::from_secs(30))
            .await
            .expect("video and audio both ways");
        let pairs = selected_pairs(&provider)
            .await
            .into_iter()
            .chain(selected_pairs(&patient).await)
            .collect();
        provider.leave().await;
        patient.leave().await;
        pairs
    })
}

/// What the patient's Chromium reported once it decoded the clinician's video.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct BrowserReport {
    frames_decoded: u64,
    /// The transport of each connected peer connection's selected candidate pair.
    transports: Vec<String>,
}

/// A visit from the client namespace with the patient in Chromium (tests/e2e/tools/
/// patient-call.mjs) and the clinician a Rust client that admits them. Returns Chromium's
/// report and the clinician's selected pairs, once video flows both ways.
fn chromium_call(
    topo: &Topology,
    url: &url::Url,
    clinician_tcp_only: bool,
) -> (BrowserReport, Vec<(SocketAddr, IceProtocol)>) {
    let url = url.clone();
    topo.in_client(move || async move {
        let api = rounds_client::Api::new(url.clone()).expect("api");
        let access = api
            .login(
                rounds_reliability::server::EMAIL,
                rounds_reliability::server::PASSWORD,
            )
            .await
            .expect("sign in")
            .access_token;
        let visit = api
            .create_visit_now(&access, 60, "Pat Example")
            .await
            .expect("a visit");
        let token = api
            .provider_token(&access, &visit.visit.id)
            .await
            .expect("a provider token");
        let mut clinician = config(&url, &token, 1, IpAddr::V4(CLIENT_IP));
        clinician.ice_tcp_only = clinician_tcp_only;
        let provider = Client::join(clinician).await.expect("the clinician joins");
        // Started from this thread, the browser lives in the clients' namespace too.
        let e2e = rounds_reliability::server::manifest_dir().join("../e2e");
        let browser = tokio::process::Command::new("node")
            .arg("tools/patient-call.mjs")
            .arg(&visit.patient_link.url)
            .arg("15")
            .current_dir(&e2e)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs tests/e2e/tools/patient-call.mjs");
        provider
            .wait_until(Duration::from_secs(90), |c| !c.waiting().is_empty())
            .await
            .expect("the patient reaches the waiting room");
        let patient = provider.waiting()[0].id.clone();
        provider
            .host(&patient, rounds_proto::HostAction::Admit)
            .await
            .expect("admit");
        let from_patient = provider.stats();
        wait_media(
            &provider,
            &patient,
            &from_patient,
            30,
            30,
            Duration::from_secs(60),
        )
        .await
        .expect("the clinician decodes the patient's video and audio");
        let pairs = selected_pairs(&provider).await;
        let output = browser.wait_with_output().await.expect("the browser ends");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "the patient's browser failed: {stdout}"
        );
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("no report from the browser: {stdout}"));
        let report: BrowserReport = serde_json::from_str(line).expect("the browser's report");
        provider.leave().await;
        (report, pairs)
    })
}

async fn selected_pairs(client: &Client) -> Vec<(SocketAddr, IceProtocol)> {
    let s = client
        .wait_stats(Duration::from_secs(10), |s| {
            s.publisher.selected_pair.is_some() && s.subscriber.selected_pair.is_some()
        })
        .await
        .expect("both peer connections report their selected pair");
    [s.publisher, s.subscriber]
        .iter()
        .map(|pc| {
            let pair = pc.selected_pair.expect("pair");
            (pair.remote, pair.protocol)
        })
        .collect()
}

/// Sends one datagram to the media port from the client namespace (a probe that the rules
/// really block UDP, so case b cannot pass by accident).
fn udp_probe(topo: &Topology) {
    topo.in_client(|| async {
        let socket = UdpSocket::bind((CLIENT_IP, 0)).expect("bind");
        // A dropped datagram is still "sent" as far as the socket knows.
        let _ = socket.send_to(b"probe", (SERVER_IP, UDP_PORT));
    });
}

#[test]
fn a_tcp_and_udp_open_the_call_uses_udp() {
    let (topo, server) = setup("fwa", "");
    let rules = manifest(&server);
    topo.nft(
        &topo.client_ns,
        &egress_ruleset(&[inbound(&rules, "tcp"), inbound(&rules, "udp")]),
    )
    .expect("rules");
    let pairs = call(&topo, &server.url, false);
    for (remote, protocol) in &pairs {
        assert_eq!(*protocol, IceProtocol::Udp, "{pairs:?}");
        assert_eq!(*remote, SocketAddr::from((SERVER_IP, UDP_PORT)));
    }
    assert_eq!(pairs.len(), 4);
}

#[test]
fn a_chromium_tcp_and_udp_open_the_call_uses_udp() {
    let (topo, server) = setup("fwac", "");
    let rules = manifest(&server);
    topo.nft(
        &topo.client_ns,
        &egress_ruleset(&[inbound(&rules, "tcp"), inbound(&rules, "udp")]),
    )
    .expect("rules");
    let (browser, pairs) = chromium_call(&topo, &server.url, false);
    println!("Chromium: {browser:?}; the clinician: {pairs:?}");
    assert!(browser.frames_decoded > 10);
    assert!(
        !browser.transports.is_empty() && browser.transports.iter().all(|t| t == "udp"),
        "{browser:?}"
    );
    assert!(
        pairs.iter().all(|(_, p)| *p == IceProtocol::Udp),
        "{pairs:?}"
    );
}

#[test]
fn b_chromium_only_tcp_open_the_call_uses_ice_tcp() {
    let (topo, server) = setup("fwbc", "");
    let rules = manifest(&server);
    topo.nft(&topo.client_ns, &egress_ruleset(&[inbound(&rules, "tcp")]))
        .expect("rules");
    // The clinician's Rust client is told to use TCP; Chromium finds out by itself.
    let (browser, _) = chromium_call(&topo, &server.url, true);
    println!("Chromium: {browser:?}");
    assert!(browser.frames_decoded > 10);
    assert!(
        !browser.transports.is_empty() && browser.transports.iter().all(|t| t == "tcp"),
        "{browser:?}"
    );
    let (blocked, _) = topo
        .counter(&topo.client_ns, "rounds_fw", "blocked_out")
        .expect("counter");
    println!("the firewall dropped {blocked} packets Chromium tried to send outside it");
}

#[test]
fn b_only_tcp_open_the_call_uses_ice_tcp() {
    let (topo, server) = setup("fwb", "");
    let rules = manifest(&server);
    topo.nft(&topo.client_ns, &egress_ruleset(&[inbound(&rules, "tcp")]))
        .expect("rules");
    udp_probe(&topo);
    let (blocked, _) = topo
        .counter(&topo.client_ns, "rounds_fw", "blocked_out")
        .expect("counter");
    assert!(blocked >= 1, "the firewall did not block UDP");
    let pairs = call(&topo, &server.url, true);
    for (remote, protocol) in &pairs {
        assert_eq!(*protocol, IceProtocol::Tcp, "{pairs:?}");
        assert_eq!(*remote, SocketAddr::from((SERVER_IP, HTTP_PORT)));
    }
    assert_eq!(pairs.len(), 4);
}

/// Counters on the server's side: one per manifest rule and direction, and one for
/// everything else. Built from the manifest, so a port the server used without printing it
/// lands in `outside_*`.
fn audit_ruleset(rules: &[FirewallRule]) -> String {
    let mut inside_in = String::new();
    let mut inside_out = String::new();
    for (i, r) in rules
        .iter()
        .filter(|r| r.direction == "inbound")
        .enumerate()
    {
        inside_in.push_str(&format!(
            "        ip daddr {} {} dport {} counter name \"rule{i}_in\" accept\n",
            r.host, r.protocol, r.port
        ));
        inside_out.push_str(&format!(
            "        ip saddr {} {} sport {} counter name \"rule{i}_out\" accept\n",
            r.host, r.protocol, r.port
        ));
    }
    let counters: String = (0..rules.len())
        .flat_map(|i| [format!("rule{i}_in"), format!("rule{i}_out")])
        .map(|n| format!("    counter {n} {{ }}\n"))
        .collect();
    format!(
        "table inet rounds_audit {{\n\
         {counters}\
         \x20   counter related_in {{ }}\n\
         \x20   counter outside_in {{ }}\n\
         \x20   counter outside_out {{ }}\n\
         \x20   chain input {{\n\
         \x20       type filter hook input priority 0; policy accept;\n\
         \x20       iif \"lo\" accept\n\
         {inside_in}\
         \x20       meta l4proto {{ icmp, ipv6-icmp }} ct state related counter name \"related_in\" accept\n\
         \x20       counter name \"outside_in\"\n\
         \x20   }}\n\
         \x20   chain output {{\n\
         \x20       type filter hook output priority 0; policy accept;\n\
         \x20       oif \"lo\" accept\n\
         {inside_out}\
         \x20       counter name \"outside_out\"\n\
         \x20   }}\n\
         }}\n"
    )
}

#[test]
fn c_no_traffic_outside_the_manifest() {
    let (topo, server) = setup("fwc", "");
    let rules = manifest(&server);
    topo.nft(&topo.server_ns, &audit_ruleset(&rules))
        .expect("rules");
    let udp_pairs = call(&topo, &server.url, false);
    assert!(udp_pairs.iter().all(|(_, p)| *p == IceProtocol::Udp));
    let tcp_pairs = call(&topo, &server.url, true);
    assert!(tcp_pairs.iter().all(|(_, p)| *p == IceProtocol::Tcp));
    let (browser, _) = chromium_call(&topo, &server.url, false);
    assert!(browser.frames_decoded > 10, "{browser:?}");
    let read = |name: &str| {
        topo.counter(&topo.server_ns, "rounds_audit", name)
            .expect("counter")
    };
    let mut report = String::new();
    for (i, r) in rules.iter().enumerate() {
        let (pin, bin) = read(&format!("rule{i}_in"));
        let (pout, bout) = read(&format!("rule{i}_out"));
        report.push_str(&format!(
            "{}/{}: in {pin} packets ({bin} B), out {pout} packets ({bout} B)\n",
            r.protocol, r.port
        ));
        assert!(
            pin > 100 && pout > 100,
            "the calls used {}/{}: {report}",
            r.protocol,
            r.port
        );
    }
    let outside_in = read("outside_in");
    let outside_out = read("outside_out");
    // ICMP errors about a manifest flow (a closed browser tab's port answering "unreachable"
    // to the last media packets) belong to that flow; reported, not counted as outside.
    let related = read("related_in");
    println!(
        "{report}outside the manifest: in {outside_in:?}, out {outside_out:?}; ICMP errors \
         about manifest flows: {related:?}"
    );
    assert_eq!(outside_in.0, 0, "packets arrived outside the manifest");
    assert_eq!(outside_out.0, 0, "packets left outside the manifest");
}
