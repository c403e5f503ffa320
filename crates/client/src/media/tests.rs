//! The media path without a server: our publisher connection offers straight to our
//! subscriber connection on loopback, so encoding, packetizing, SRTP, reassembly, decoding,
//! keyframe requests and the counters are exercised end to end with real `webrtc` stacks.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use rounds_proto::TrackKind;
use tokio::sync::mpsc;

use super::pc::{MediaEvent, NetOptions};
use super::publisher::{PublishOptions, Publisher};
use super::subscriber::{ReceiveContext, Subscriber};
use crate::config::VideoParams;
use crate::stats::{PcState, StatsHub};
use webrtc::peer_connection::RTCPeerConnectionState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_to_subscriber_over_udp() {
    loopback(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_to_subscriber_over_ice_tcp() {
    loopback(true).await;
}

async fn loopback(tcp_only: bool) {
    let net = NetOptions {
        bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        tcp_only,
    };
    let sent = Arc::new(StatsHub::default());
    let received = Arc::new(StatsHub::default());
    let (pub_events, mut pub_rx) = mpsc::unbounded_channel();
    let (sub_events, mut sub_rx) = mpsc::unbounded_channel();
    let opts = PublishOptions {
        net,
        audio: true,
        video: true,
        video_params: VideoParams {
            width: 320,
            height: 240,
            fps: 15,
            bitrate_kbps: 300,
        },
        tone_hz: 440.0,
        tone_dbfs: -10.0,
        seed: 7,
        stream_id: "alice".into(),
        external_video: None,
        external_audio: None,
        screen: None,
        simulcast: false,
    };
    let (mut publisher, offer, tracks) = Publisher::create(1, opts, pub_events, sent.clone())
        .await
        .expect("publisher");
    assert_eq!(tracks.len(), 2);
    assert!(tracks.iter().all(|t| t.mid.is_some()), "{tracks:?}");
    assert!(
        tracks.iter().any(|t| t.kind == TrackKind::Video)
            && tracks.iter().any(|t| t.kind == TrackKind::Audio)
    );

    let receive = Arc::new(ReceiveContext::new(
        received.clone(),
        true,
        true,
        Arc::new(|s: &str, _: &str| (s.to_owned(), false)),
    ));
    let mut subscriber = Subscriber::create(2, net, sub_events, receive)
        .await
        .expect("subscriber");
    let answer = subscriber.answer(offer).await.expect("answer");
    publisher.apply_answer(answer).await.expect("apply answer");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stats = received.snapshot();
        let alice = stats.remote("alice").cloned().unwrap_or_default();
        if alice.frames_decoded >= 10 && alice.audio_frames_decoded >= 25 {
            break;
        }
        tokio::select! {
            Some(event) = pub_rx.recv() => match event {
                MediaEvent::LocalCandidate { candidate, .. } => subscriber.add_remote_candidate(candidate).await,
                MediaEvent::State { state: RTCPeerConnectionState::Connected, .. } => publisher.on_connected().await,
                _ => {}
            },
            Some(event) = sub_rx.recv() => {
                if let MediaEvent::LocalCandidate { candidate, .. } = event {
                    publisher.add_remote_candidate(candidate).await;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = tokio::time::sleep_until(deadline) => panic!("no media after 30 s: {stats:?}"),
        }
    }

    let stats = received.snapshot();
    let alice = stats.remote("alice").expect("alice");
    assert_eq!((alice.width, alice.height), (320, 240));
    assert!(alice.keyframes_decoded >= 1);
    assert_eq!(alice.decode_errors, 0);
    assert_eq!(alice.tracks, 2);
    // The tone at -10 dBFS is about 13 dBov (a full-scale sine is 3); Opus keeps it close.
    let level = alice.audio_level_dbov.expect("audio level");
    assert!((8..=18).contains(&level), "level {level}");
    assert!(stats.join_ms.is_none(), "no join was sent here");

    let out = sent.snapshot().sent;
    assert!(out.video_frames >= 10 && out.audio_frames >= 25, "{out:?}");
    assert!(
        out.audio_level_negotiated,
        "audio level extension negotiated"
    );
    assert_eq!(
        (out.video_width, out.video_height, out.video_fps),
        (320, 240, 15)
    );
    // The subscriber asked for a keyframe while it waited for the first one, and our tap
    // delivered that PLI to the publisher's track.
    assert!(alice.plis_sent >= 1);
    let asked = tokio::time::timeout(Duration::from_secs(5), async {
        while sent.snapshot().sent.keyframe_requests_received == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(asked.is_ok(), "the PLI did not reach the publisher");

    let pair = super::pc::selected_pair(publisher.pc())
        .await
        .expect("selected pair");
    assert!(pair.remote.ip().is_loopback());
    let expected = if tcp_only {
        crate::IceProtocol::Tcp
    } else {
        crate::IceProtocol::Udp
    };
    assert_eq!(pair.protocol, expected);

    // The server lowers the video (a `video_constraints`): the encoder restarts at the new
    // size with a keyframe and the receiver follows.
    publisher.set_video_params(VideoParams {
        width: 160,
        height: 120,
        fps: 10,
        bitrate_kbps: 100,
    });
    let resized = tokio::time::timeout(Duration::from_secs(10), async {
        while received
            .snapshot()
            .remote("alice")
            .map(|a| (a.width, a.height))
            != Some((160, 120))
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(resized.is_ok(), "the receiver never saw 160x120");
    let out = sent.snapshot().sent;
    assert_eq!(
        (
            out.video_width,
            out.video_height,
            out.video_fps,
            out.video_bitrate_kbps
        ),
        (160, 120, 10, 100)
    );

    // Muting audio: near silence arrives (Opus may leave a trace of noise).
    publisher.set_muted(false, true);
    let silent = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if received
                .snapshot()
                .remote("alice")
                .and_then(|a| a.audio_level_dbov)
                .is_some_and(|l| l > 60)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(silent.is_ok(), "muted audio did not turn silent");

    publisher.close().await;
    subscriber.close().await;
    assert_ne!(
        sent.pc_state(rounds_proto::PcKind::Publisher),
        PcState::Failed
    );
}

/// A publisher rebuilt while the signaling connection was already dead sent its offer into
/// the void. On the next signaling connection it is replaced, and the answer to the new
/// offer is applied, not thrown away as the lost offer's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_lost_with_the_signaling_connection_is_not_waited_for() {
    let mut media = offline_media();
    let lost = media.publish().await.expect("publish");
    assert!(
        lost.iter()
            .any(|m| matches!(m, super::ClientMessage::Offer { .. }))
    );
    assert!(media.is_publishing());

    media.signaling_restarted().await;
    assert!(
        !media.is_publishing(),
        "the publisher waiting for an answer on the old connection is replaced"
    );

    let (offer, offer_id) = offer_in(media.publish().await.expect("publish again"));
    let mut answerer = answer_and_check(&mut media, offer, offer_id, "the new publisher").await;
    answerer.close().await;
    media.close().await;
}

/// A publisher rebuilt while its first offer was still out: the answers may come in either
/// order, and only the one naming the current offer is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_to_a_replaced_offer_is_told_apart_by_its_number() {
    let mut media = offline_media();
    let (old_offer, old_id) = offer_in(media.publish().await.expect("publish"));
    media.close_publisher().await;
    let (offer, offer_id) = offer_in(media.publish().await.expect("publish again"));
    assert!(old_id.is_some() && offer_id.is_some() && old_id != offer_id);

    // The answer to the current offer, arriving first, is taken.
    let mut answerer = answer_and_check(&mut media, offer, offer_id, "the current publisher").await;

    // The late answer to the replaced offer changes nothing and is no error.
    let mut late = answerer_for(3).await;
    let stale = late.answer(old_offer).await.expect("answer");
    let follow_up = media
        .on_answer(rounds_proto::PcKind::Publisher, stale, old_id)
        .await
        .expect("a late answer is ignored, not an error");
    assert!(follow_up.is_empty());
    assert!(media.is_publishing());
    late.close().await;
    answerer.close().await;
    media.close().await;
}

fn offline_media() -> super::Media {
    let mut cfg =
        super::ClientConfig::new(url::Url::parse("http://127.0.0.1:9").expect("url"), "token");
    cfg.bind_ip = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let (events, _events_rx) = mpsc::unbounded_channel();
    super::Media::new(
        cfg,
        "alice".into(),
        Arc::new(StatsHub::default()),
        Arc::new(|s: &str, _: &str| (s.to_owned(), false)),
        events,
    )
}

/// The publisher offer among the messages `publish` returned, with its number.
fn offer_in(sent: Vec<super::ClientMessage>) -> (String, Option<u32>) {
    sent.into_iter()
        .find_map(|m| match m {
            super::ClientMessage::Offer { sdp, offer_id, .. } => Some((sdp, offer_id)),
            _ => None,
        })
        .expect("an offer")
}

/// Answers `offer` as the server would, gives `media` the answer under `offer_id`, and checks
/// that its publisher (`who`) took it. Returns the answering peer, to close.
async fn answer_and_check(
    media: &mut super::Media,
    offer: String,
    offer_id: Option<u32>,
    who: &str,
) -> Subscriber {
    let mut answerer = answerer_for(2).await;
    let answer = answerer.answer(offer).await.expect("answer");
    media
        .on_answer(rounds_proto::PcKind::Publisher, answer, offer_id)
        .await
        .expect("the answer applies");
    assert!(
        media
            .publisher
            .as_ref()
            .is_some_and(|p| !p.awaiting_answer()),
        "{who} took its answer"
    );
    answerer
}

async fn answerer_for(generation: u64) -> Subscriber {
    let (sub_events, _sub_rx) = mpsc::unbounded_channel();
    let receive = Arc::new(ReceiveContext::new(
        Arc::new(StatsHub::default()),
        false,
        false,
        Arc::new(|s: &str, _: &str| (s.to_owned(), false)),
    ));
    let net = NetOptions {
        bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        tcp_only: false,
    };
    Subscriber::create(generation, net, sub_events, receive)
        .await
        .expect("answerer")
}
