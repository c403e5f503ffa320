//! The reliability suite: the real `rounds-server` binary in its own network namespace, the
//! Rust WebRTC client in another, and real nftables rules, link cuts, faults and abuse
//! between them. Every test needs root; without it, it fails and says so.

mod abuse;
mod faults;
mod firewall;
mod loss;

use std::net::IpAddr;
use std::time::Duration;

use rounds_reliability::netns::{SERVER_IP, Topology};
use rounds_reliability::server::{ServerProcess, ServerSpec};

/// The HTTP port, as in production: pages, API, signaling and ICE-TCP.
pub const HTTP_PORT: u16 = 443;
/// The one media UDP port.
pub const UDP_PORT: u16 = 3478;

/// Namespaces plus a server started in the server one, ready to serve.
pub fn setup(tag: &str, extra_toml: &str) -> (Topology, ServerProcess) {
    setup_with(tag, |spec| spec.extra_toml = extra_toml.to_owned())
}

/// [`setup`], with the server's settings adjusted by `adjust` first.
pub fn setup_with(tag: &str, adjust: impl FnOnce(&mut ServerSpec)) -> (Topology, ServerProcess) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let topo = Topology::new(tag).expect("network namespaces (the reliability tests need root)");
    let mut spec = ServerSpec::new(
        Some(&topo.server_ns),
        IpAddr::V4(SERVER_IP),
        HTTP_PORT,
        UDP_PORT,
    );
    adjust(&mut spec);
    let server = ServerProcess::start(spec).expect("rounds-server starts");
    let url = server.url.clone();
    topo.in_client(move || async move {
        rounds_reliability::server::wait_ready(&url, Duration::from_secs(30)).await
    })
    .unwrap_or_else(|e| panic!("{e:#}\nserver log:\n{}", server.log()));
    (topo, server)
}
