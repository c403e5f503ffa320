//! Network namespaces joined by a veth pair: one for the server, one for its clients.
//!
//! The server process starts inside its namespace with `ip netns exec`. Clients run in this
//! test process, on a thread that has entered the client namespace with `setns(2)`: every
//! socket that thread (and the runtime threads it spawns) opens lives in that namespace. So
//! firewall rules, packet loss and link cuts applied there are real kernel behaviour seen by
//! real sockets.
//!
//! Everything here needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN). Without it,
//! [`Topology::new`] fails with a sentence saying so; no test passes by skipping.

use std::future::Future;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, bail};

/// The server's address on the link: a documentation range (RFC 5737), not a private one,
/// so browsers treat the server the way they treat one on the internet (Chromium refuses
/// ICE-TCP to port 443 at a private address).
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The clients' address on the link.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The client side of the veth pair, inside the client namespace.
pub const CLIENT_IF: &str = "veth-c";
/// The server side of the veth pair, inside the server namespace.
pub const SERVER_IF: &str = "veth-s";

/// Runs a command and returns its standard output; fails with its standard error.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command inside a namespace.
pub fn ns_run(ns: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["netns", "exec", ns];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// Two namespaces, `server` and `client`, joined by one veth pair, with IPv6 off so the link
/// carries only what the test and Rounds send. Deleted on drop.
#[derive(Debug)]
pub struct Topology {
    pub server_ns: String,
    pub client_ns: String,
}

impl Topology {
    /// Creates the namespaces. `tag` keeps names apart when several tests run at once.
    pub fn new(tag: &str) -> anyhow::Result<Topology> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let id = format!("{tag}-{}-{n}", std::process::id());
        let topo = Topology {
            server_ns: format!("rr-s-{id}"),
            client_ns: format!("rr-c-{id}"),
        };
        for ns in [&topo.server_ns, &topo.client_ns] {
            let _ = run("ip", &["netns", "del", ns]);
            run("ip", &["netns", "add", ns]).context(
                "creating a network namespace needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and the \
                 `ip` tool from iproute2; run the reliability tests as root",
            )?;
        }
        run(
            "ip",
            &[
                "link",
                "add",
                CLIENT_IF,
                "netns",
                &topo.client_ns,
                "type",
                "veth",
                "peer",
                "name",
                SERVER_IF,
                "netns",
                &topo.server_ns,
            ],
        )?;
        for (ns, dev, ip) in [
            (&topo.server_ns, SERVER_IF, SERVER_IP),
            (&topo.client_ns, CLIENT_IF, CLIENT_IP),
        ] {
            ns_run(
                ns,
                &[
                    "sh",
                    "-c",
                    "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && \
                     echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
                ],
            )?;
            ns_run(ns, &["ip", "addr", "add", &format!("{ip}/24"), "dev", dev])?;
            ns_run(ns, &["ip", "link", "set", dev, "up"])?;
            ns_run(ns, &["ip", "link", "set", "lo", "up"])?;
        }
        // Like any real network, the clients have a default route. Without one, the WebRTC
        // stack's mDNS socket cannot join its multicast group (ENODEV) and no peer
        // connection is built.
        ns_run(
            &topo.client_ns,
            &[
                "ip",
                "route",
                "add",
                "default",
                "via",
                &SERVER_IP.to_string(),
            ],
        )?;
        Ok(topo)
    }

    /// Applies an nftables ruleset (the text `nft -f` reads) inside a namespace.
    pub fn nft(&self, ns: &str, ruleset: &str) -> anyhow::Result<()> {
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), ruleset)?;
        let path = file.path().to_string_lossy().into_owned();
        ns_run(ns, &["nft", "-f", &path])
            .context("applying nftables rules (is the `nftables` package installed?)")?;
        Ok(())
    }

    /// Reads a named nftables counter: (packets, bytes).
    pub fn counter(&self, ns: &str, table: &str, name: &str) -> anyhow::Result<(u64, u64)> {
        let out = ns_run(ns, &["nft", "list", "counter", "inet", table, name])?;
        let number_after = |word: &str| -> anyhow::Result<u64> {
            let rest = out
                .split(word)
                .nth(1)
                .with_context(|| format!("no `{word}` in: {out}"))?;
            let digits: String = rest
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            Ok(digits.parse()?)
        };
        Ok((number_after("packets")?, number_after("bytes")?))
    }

    /// Takes the client's link down (`false`) or up (`true`): a cut cable or lost Wi-Fi.
    pub fn set_client_link(&self, up: bool) -> anyhow::Result<()> {
        let state = if up { "up" } else { "down" };
        ns_run(&self.client_ns, &["ip", "link", "set", CLIENT_IF, state])?;
        Ok(())
    }

    /// Runs `f`'s future to completion on a new thread inside the client namespace, with a
    /// multi-threaded runtime whose threads all inherit that namespace. Panics propagate.
    pub fn in_client<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        in_namespace(&self.client_ns, f)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

/// Runs a future on a thread that has entered the named network namespace.
pub fn in_namespace<F, Fut, T>(ns: &str, f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let path = format!("/run/netns/{ns}");
    let thread = std::thread::Builder::new()
        .name(format!("netns {ns}"))
        .spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("entering the namespace {path}: {e}"));
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(f())
        })
        .expect("a thread");
    match thread.join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
