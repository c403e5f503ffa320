//! SDP handling: every offer and answer a client sends goes to the SFU's negotiation
//! (`Sfu::publisher_answer`, `Sfu::subscriber_answer`) and every trickled candidate to
//! `Sfu::add_ice_candidate`. Any text must be answered or refused with an error, never panic,
//! and the SFU must go on answering.
//!
//! The input is split on NUL bytes into a publisher offer, a subscriber answer and a candidate;
//! the last two are optional.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use rounds_fuzz::{block_on, sfu};
use rounds_server::sfu::{PcKind, PeerId};

static NEXT_PEER: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let text = |part: &[u8]| String::from_utf8_lossy(part).into_owned();
    let mut parts = data.splitn(3, |b| *b == 0);
    let offer = text(parts.next().unwrap_or_default());
    // A subscriber connection (a certificate, an ICE agent, an offer) is only built when the
    // input carries an answer for it, and a candidate only sent when there is one: inputs
    // that stop early cost less, so the fuzzer gets through more of them.
    let answer = parts.next().map(text);
    let candidate = parts.next().map(text);
    let peer: PeerId = format!("fuzz-{}", NEXT_PEER.fetch_add(1, Ordering::Relaxed));
    block_on(async {
        let sfu = sfu();
        let _ = sfu.publisher_answer(&peer, offer).await;
        if let Some(answer) = answer
            && sfu.subscriber_offer(&peer).await.is_ok()
        {
            let _ = sfu.subscriber_answer(&peer, answer).await;
        }
        if let Some(candidate) = candidate {
            let _ = sfu
                .add_ice_candidate(&peer, PcKind::Publisher, candidate, Some("0".into()), None)
                .await;
        }
        sfu.remove_peer(&peer).await;
    });
});
