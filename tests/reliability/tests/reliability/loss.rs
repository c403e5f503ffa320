//! Loss and delay (issue 8 §2) on the clients' link: 100 ms ± 30 ms each way, and 5 % or
//! 10 % of packets lost each way.
//!
//! `tc netem` does it when the kernel has it, on both ends of the link. This machine's kernel
//! is built without `sch_netem`, so then the same impairment runs in userspace: every packet
//! crossing the client's veth goes through an NFQUEUE where it is dropped or held for its
//! delay (`rounds_reliability::impair`), reordered as netem would reorder it. The test prints
//! which one ran.

use std::net::IpAddr;
use std::time::Duration;

use rounds_reliability::call::{admitted_pair, both_ways, config, longest_freeze, new_visit};
use rounds_reliability::impair::{Impairment, NfQueueImpairment};
use rounds_reliability::netns::{CLIENT_IF, CLIENT_IP, SERVER_IF, Topology, ns_run};

use crate::setup;

/// The bound on a freeze, from the receiver's frame times.
const FREEZE_BOUND: Duration = Duration::from_secs(1);

/// How the link is impaired: by the kernel, or by our queue (kept alive with it).
enum Link {
    Netem,
    Queue(NfQueueImpairment),
}

impl Link {
    fn describe(&self) -> &'static str {
        match self {
            Link::Netem => "tc netem",
            Link::Queue(_) => "NFQUEUE in userspace (this kernel has no netem)",
        }
    }

    /// Packets dropped on purpose so far.
    fn dropped(&self, topo: &Topology) -> u64 {
        match self {
            Link::Queue(q) => q.stats().dropped,
            Link::Netem => [(&topo.client_ns, CLIENT_IF), (&topo.server_ns, SERVER_IF)]
                .iter()
                .filter_map(|(ns, dev)| ns_run(ns, &["tc", "-s", "qdisc", "show", "dev", dev]).ok())
                .filter_map(|out| {
                    let rest = out.split("dropped ").nth(1)?;
                    rest.split(|c: char| !c.is_ascii_digit())
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
                .sum(),
        }
    }
}

/// Applies 100 ms ± 30 ms and `loss_pct` % loss to both directions of the link.
fn impair(topo: &Topology, loss_pct: u32) -> Link {
    let netem = |ns: &str, dev: &str| {
        ns_run(
            ns,
            &[
                "tc",
                "qdisc",
                "add",
                "dev",
                dev,
                "root",
                "netem",
                "delay",
                "100ms",
                "30ms",
                "distribution",
                "normal",
                "loss",
                &format!("{loss_pct}%"),
            ],
        )
    };
    if netem(&topo.client_ns, CLIENT_IF).is_ok() && netem(&topo.server_ns, SERVER_IF).is_ok() {
        return Link::Netem;
    }
    let queue = NfQueueImpairment::start(
        &topo.client_ns,
        CLIENT_IF,
        7,
        Impairment::bad_network(loss_pct),
        u64::from(loss_pct),
    )
    .expect("the userspace impairment (iptables-legacy NFQUEUE)");
    Link::Queue(queue)
}

fn lossy_call(tag: &str, loss_pct: u32) {
    let (topo, server) = setup(tag, "");
    let url = server.url.clone();
    let link = impair(&topo, loss_pct);
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
        both_ways(&provider, &patient, 20, Duration::from_secs(60))
            .await
            .expect("media starts despite the loss");
        let (a, b) = (provider.stats(), patient.stats());
        let measure = Duration::from_secs(20);
        let every = Duration::from_millis(20);
        let (pf, qf) = tokio::join!(
            longest_freeze(&provider, patient.participant_id(), measure, every),
            longest_freeze(&patient, provider.participant_id(), measure, every),
        );
        let (a2, b2) = (provider.stats(), patient.stats());
        let from =
            |s: &rounds_client::ClientStats, id: &str| s.remote(id).cloned().unwrap_or_default();
        let (pid, qid) = (
            provider.participant_id().to_owned(),
            patient.participant_id().to_owned(),
        );
        // Each receiver's figures, with the sender's side of the same stream.
        let row = |who: &'static str,
                   (before, after): (rounds_client::RemoteStats, rounds_client::RemoteStats),
                   (freeze, frames): (Duration, u64),
                   (sent_before, sent_after): (
            &rounds_client::SentStats,
            &rounds_client::SentStats,
        )| {
            Receiver {
                who,
                freeze,
                frames,
                audio: after.audio_frames_decoded - before.audio_frames_decoded,
                lost: after.video_packets_lost - before.video_packets_lost,
                recovered: after.video_packets_recovered - before.video_packets_recovered,
                plis: after.plis_sent - before.plis_sent,
                keyframes: after.keyframes_decoded - before.keyframes_decoded,
                keyframe_requests: sent_after.keyframe_requests_received
                    - sent_before.keyframe_requests_received,
                resend_requests: sent_after.retransmissions_requested
                    - sent_before.retransmissions_requested,
            }
        };
        let out = [
            row(
                "provider",
                (from(&a, &qid), from(&a2, &qid)),
                pf,
                (&b.sent, &b2.sent),
            ),
            row(
                "patient",
                (from(&b, &pid), from(&b2, &pid)),
                qf,
                (&a.sent, &a2.sent),
            ),
        ];
        provider.leave().await;
        patient.leave().await;
        out
    });
    let dropped = link.dropped(&topo);
    match &link {
        Link::Queue(q) => {
            let s = q.stats();
            println!(
                "{loss_pct} % loss and 100 ms ± 30 ms via {}: {} packets, {dropped} dropped, \
                 mean delay {:.1} ms, {} arrived after a packet sent later",
                link.describe(),
                s.packets,
                s.delay_us_sum as f64 / (s.packets - s.dropped).max(1) as f64 / 1000.0,
                s.reordered,
            );
            assert!(q.is_running(), "the impairment's queue thread stopped");
        }
        Link::Netem => println!(
            "{loss_pct} % loss and 100 ms ± 30 ms via {}: {dropped} packets dropped",
            link.describe()
        ),
    }
    for r in &report {
        println!(
            "  {} receiving for 20 s: {} video frames decoded, longest freeze {} ms, {} audio \
             frames; {} video packets recovered by retransmission, {} given up, the sender was \
             asked to resend {} packets (NACK); {} PLIs sent, {} keyframe requests reached the \
             sender, {} keyframes decoded",
            r.who,
            r.frames,
            r.freeze.as_millis(),
            r.audio,
            r.recovered,
            r.lost,
            r.resend_requests,
            r.plis,
            r.keyframe_requests,
            r.keyframes,
        );
    }
    assert!(dropped > 0, "the link lost nothing");
    for r in &report {
        let who = r.who;
        assert!(
            r.frames > 20 * 15 / 3,
            "{who}: video stalled ({} frames)",
            r.frames
        );
        assert!(
            r.audio > 20 * 50 / 2,
            "{who}: audio stalled ({} frames)",
            r.audio
        );
        // Recovery: lost packets were asked for again (NACK) and the retransmissions filled
        // the receiver's holes. A hole given up on was skipped by a keyframe that was decoded
        // (one that came anyway, or one asked for with a PLI).
        assert!(
            r.resend_requests > 0 && r.recovered > 0,
            "{who}: no NACK recovery (resend requests {}, recovered {})",
            r.resend_requests,
            r.recovered
        );
        if r.lost > 0 {
            assert!(
                r.keyframes > 0,
                "{who}: {} packets given up but no keyframe decoded after",
                r.lost
            );
        }
        // A receiver that gave up on packets asks for a keyframe until one comes, so some
        // request reaches the sender. A lone PLI sent as a precaution, with nothing given up,
        // can itself be lost on a 10 % lossy link (twice: to the server, then on to the
        // sender) without anyone noticing.
        if r.plis > 0 && r.lost > 0 {
            assert!(
                r.keyframe_requests > 0,
                "{who}: {} packets given up and {} PLIs sent, but no keyframe request reached \
                 the sender",
                r.lost,
                r.plis
            );
        }
        assert!(
            r.freeze <= FREEZE_BOUND,
            "{who}: a freeze of {:?}",
            r.freeze
        );
    }
}

/// What one receiver saw during the measured 20 s.
struct Receiver {
    who: &'static str,
    freeze: Duration,
    frames: u64,
    audio: u64,
    lost: u64,
    recovered: u64,
    plis: u64,
    keyframes: u64,
    keyframe_requests: u64,
    resend_requests: u64,
}

#[test]
fn five_percent_loss_video_keeps_decoding() {
    lossy_call("loss5", 5);
}

#[test]
fn ten_percent_loss_video_keeps_decoding() {
    lossy_call("loss10", 10);
}
