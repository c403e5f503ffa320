//! Loss and delay (issue 8 §2) on the clients' link.
//!
//! `tc netem` is used when the kernel has it (100 ms ± 30 ms delay and the loss rate, on
//! both ends of the link). This machine's kernel is built without `sch_netem`, so the loss
//! then comes from nftables instead (`numgen random`, dropping that share of the packets
//! arriving at each end), with no added delay; the test prints which one ran.

use std::net::IpAddr;
use std::time::Duration;

use rounds_reliability::call::{admitted_pair, both_ways, config, longest_freeze, new_visit};
use rounds_reliability::netns::{CLIENT_IF, CLIENT_IP, SERVER_IF, Topology, ns_run};

use crate::setup;

/// The bound on a freeze, from the receiver's frame times.
const FREEZE_BOUND: Duration = Duration::from_secs(1);

/// Applies `loss_pct` % loss to both directions of the link; returns how.
fn impair(topo: &Topology, loss_pct: u32) -> &'static str {
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
        return "tc netem: 100 ms ± 30 ms delay and loss, each direction";
    }
    for ns in [&topo.client_ns, &topo.server_ns] {
        topo.nft(
            ns,
            &format!(
                "table inet rounds_loss {{\n\
                 \x20   counter lost {{ }}\n\
                 \x20   chain input {{\n\
                 \x20       type filter hook input priority -20;\n\
                 \x20       iif \"lo\" accept\n\
                 \x20       numgen random mod 1000 < {} counter name \"lost\" drop\n\
                 \x20   }}\n\
                 }}\n",
                loss_pct * 10
            ),
        )
        .expect("loss rules");
    }
    "nftables random drop (no netem in this kernel, so no added delay)"
}

fn lossy_call(tag: &str, loss_pct: u32) {
    let (topo, server) = setup(tag, "");
    let url = server.url.clone();
    let how = impair(&topo, loss_pct);
    let lost = {
        let topo_client = topo.client_ns.clone();
        let topo_server = topo.server_ns.clone();
        move |t: &Topology| {
            [topo_client.as_str(), topo_server.as_str()]
                .iter()
                .map(|ns| t.counter(ns, "rounds_loss", "lost").map_or(0, |c| c.0))
                .sum::<u64>()
        }
    };
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
    println!(
        "{loss_pct} % loss via {how}; {} packets dropped",
        lost(&topo)
    );
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
    assert!(lost(&topo) > 0, "the link lost nothing");
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
        // the receiver's holes; what could not be repaired was asked for as a keyframe (PLI),
        // which reached the sender and was decoded.
        assert!(
            r.resend_requests > 0 && r.recovered > 0,
            "{who}: no NACK recovery (resend requests {}, recovered {})",
            r.resend_requests,
            r.recovered
        );
        if r.lost > 0 {
            assert!(
                r.plis > 0 && r.keyframe_requests > 0 && r.keyframes > 0,
                "{who}: {} packets given up but no keyframe recovery",
                r.lost
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
