//! Engine tests, simulation style: a fake clock (`t0` plus milliseconds), scripted inputs, and
//! checks on what the engine decides.

use std::collections::BTreeMap;

use super::Layer::*;
use super::*;

fn peer(name: &str) -> PeerId {
    PeerId::from(name)
}

fn mic() -> TrackId {
    TrackId::from("mic")
}

fn cam() -> TrackId {
    TrackId::from("cam")
}

fn screen() -> TrackId {
    TrackId::from("screen")
}

struct Clock(Instant);

impl Clock {
    fn new() -> Self {
        Self(Instant::now())
    }

    fn ms(&self, ms: u64) -> Instant {
        self.0 + Duration::from_millis(ms)
    }
}

/// Gives `p` a microphone and a three-layer simulcast camera.
fn publish(e: &mut Engine, p: &PeerId) {
    e.add_track(p, &mic(), TrackKind::Audio, vec![]);
    e.add_track(p, &cam(), TrackKind::Video, Layer::ALL.to_vec());
}

/// A room of admitted peers, each publishing a microphone and a simulcast camera.
fn room(names: &[&str]) -> Engine {
    let mut e = Engine::new();
    for name in names {
        let p = peer(name);
        publish(&mut e, &p);
        e.set_admitted(&p, true);
    }
    drain(&mut e);
    e
}

fn drain(e: &mut Engine) -> Vec<EngineEvent> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

fn keyframes(events: &[EngineEvent]) -> Vec<KeyframeRequest> {
    events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::KeyframeRequest(k) => Some(k.clone()),
            _ => None,
        })
        .collect()
}

fn names(peers: &[PeerId]) -> Vec<&str> {
    peers.iter().map(PeerId::as_str).collect()
}

// ---- Admission and forwarding. ----

#[test]
fn lobby_peers_send_nothing_and_receive_nothing() {
    let all = ["a", "b", "c", "d"];
    let clock = Clock::new();
    // Every subset of the four may be the admitted ones; the rest wait in the lobby.
    for mask in 0u32..16 {
        let admitted: Vec<&str> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect();
        let mut e = Engine::new();
        for name in all {
            let p = peer(name);
            publish(&mut e, &p);
            e.add_track(&p, &screen(), TrackKind::Screen, vec![]);
        }
        for name in &admitted {
            e.set_admitted(&peer(name), true);
        }
        // Subscriptions do not grant media: subscribe everyone to everyone, lobby included.
        for s in all {
            for p in all {
                e.subscribe(&peer(s), &peer(p));
            }
        }
        e.handle_timeout(clock.ms(0));
        for from in all {
            let from_id = peer(from);
            for track in [mic(), cam(), screen()] {
                for layer in [None, Some(Low), Some(Medium), Some(High)] {
                    let to = e.route(&from_id, &track, layer);
                    if !admitted.contains(&from) {
                        assert!(
                            to.is_empty(),
                            "{mask:04b}: lobby {from} sent {track} to {to:?}"
                        );
                    }
                    for r in &to {
                        assert!(
                            admitted.contains(&r.as_str()),
                            "{mask:04b}: lobby {r} received {from}'s {track}"
                        );
                        assert_ne!(r, &from_id);
                    }
                }
            }
            // Admitted senders do reach every other admitted peer (audio: no layer involved).
            if admitted.contains(&from) {
                let expected: Vec<&str> = admitted.iter().copied().filter(|n| *n != from).collect();
                assert_eq!(
                    names(&e.route(&from_id, &mic(), None)),
                    expected,
                    "{mask:04b}"
                );
            }
            for to in all {
                let to_id = peer(to);
                let both = admitted.contains(&from) && admitted.contains(&to) && from != to;
                if !both {
                    assert_eq!(e.layer_for(&to_id, &from_id, &cam()), None);
                    assert_eq!(
                        e.on_keyframe_request(&to_id, &from_id, &screen(), clock.ms(1000)),
                        None
                    );
                    assert!(
                        e.on_subscribe_start(&to_id, &from_id, clock.ms(1000))
                            .is_empty()
                    );
                }
                if !both {
                    for track in [mic(), cam(), screen()] {
                        assert_eq!(
                            e.stream_for(&to_id, &from_id, &track),
                            None,
                            "{mask:04b}: {from}→{to}"
                        );
                    }
                }
            }
        }
        e.handle_timeout(clock.ms(2000));
        for event in drain(&mut e) {
            if let EngineEvent::KeyframeRequest(k) = &event {
                assert!(
                    admitted.contains(&k.publisher.as_str()),
                    "{mask:04b}: {event:?}"
                );
            }
            if let EngineEvent::LayerChanged {
                subscriber,
                publisher,
                ..
            } = &event
            {
                assert!(
                    admitted.contains(&subscriber.as_str())
                        && admitted.contains(&publisher.as_str())
                );
            }
        }
    }
}

#[test]
fn a_lobby_peer_cannot_become_the_dominant_speaker() {
    let clock = Clock::new();
    let mut e = room(&["a", "b"]);
    let lobby = peer("z");
    publish(&mut e, &lobby);
    for i in 0..200 {
        e.on_audio_level(&lobby, 5, true, clock.ms(20 * i));
    }
    assert_eq!(e.dominant_speaker(), None);
}

#[test]
fn removal_and_denial_stop_routing_at_once() {
    let mut e = room(&["a", "b", "c"]);
    let (a, b, c) = (peer("a"), peer("b"), peer("c"));
    assert_eq!(names(&e.route(&a, &mic(), None)), ["b", "c"]);

    e.set_admitted(&b, false);
    assert_eq!(names(&e.route(&a, &mic(), None)), ["c"]);
    assert!(e.route(&b, &mic(), None).is_empty());

    e.set_admitted(&b, true);
    assert_eq!(names(&e.route(&a, &mic(), None)), ["b", "c"]);

    e.remove_peer(&c);
    assert_eq!(names(&e.route(&a, &mic(), None)), ["b"]);
    assert!(e.route(&c, &mic(), None).is_empty());

    e.unsubscribe(&b, &a);
    assert!(e.route(&a, &mic(), None).is_empty());
    e.subscribe(&b, &a);
    assert_eq!(names(&e.route(&a, &mic(), None)), ["b"]);

    e.remove_track(&a, &mic());
    assert!(e.route(&a, &mic(), None).is_empty());
    // And the video of a removed peer stops too, whatever layer.
    e.remove_peer(&a);
    for layer in [None, Some(Low), Some(Medium), Some(High)] {
        assert!(e.route(&a, &cam(), layer).is_empty());
    }
}

#[test]
fn only_the_participant_lifts_a_host_mute() {
    let clock = Clock::new();
    let mut e = room(&["a", "b", "c"]);
    let (a, b, c) = (peer("a"), peer("b"), peer("c"));
    e.set_forced_mute(&a, TrackKind::Audio);
    assert!(e.route(&a, &mic(), None).is_empty());
    assert!(
        !e.route(&a, &cam(), e.layer_for(&b, &a, &cam())).is_empty(),
        "video is not muted"
    );

    // Nothing anyone else does lifts it: their own unmutes, muting again, re-admission,
    // republishing, a reconnect.
    for other in [&b, &c] {
        e.set_self_unmuted(other, TrackKind::Audio);
        e.set_self_unmuted(other, TrackKind::Video);
    }
    e.set_self_unmuted(&a, TrackKind::Video);
    e.set_forced_mute(&a, TrackKind::Audio);
    e.set_admitted(&a, false);
    e.set_admitted(&a, true);
    e.add_track(&a, &mic(), TrackKind::Audio, vec![]);
    e.remove_peer(&a);
    publish(&mut e, &a);
    e.set_admitted(&a, true);
    e.subscribe_all_admitted();
    assert!(e.is_forced_muted(&a, TrackKind::Audio));
    assert!(e.route(&a, &mic(), None).is_empty());

    // A muted microphone is heard by nobody: it cannot take the floor.
    for i in 0..200 {
        e.on_audio_level(&a, 5, true, clock.ms(20 * i));
    }
    assert_eq!(e.dominant_speaker(), None);

    e.set_self_unmuted(&a, TrackKind::Audio);
    assert!(!e.is_forced_muted(&a, TrackKind::Audio));
    assert_eq!(names(&e.route(&a, &mic(), None)), ["b", "c"]);
}

#[test]
fn host_stopped_video_is_not_forwarded() {
    let mut e = room(&["a", "b", "c"]);
    let (a, b) = (peer("a"), peer("b"));
    let layer = e.layer_for(&b, &a, &cam());
    assert!(layer.is_some());
    assert_eq!(e.stream_for(&b, &a, &cam()), Some(layer));
    e.set_forced_mute(&a, TrackKind::Video);
    assert_eq!(e.layer_for(&b, &a, &cam()), None);
    assert_eq!(e.stream_for(&b, &a, &cam()), None);
    assert_eq!(e.stream_for(&b, &a, &mic()), Some(None));
    for l in [None, Some(Low), Some(Medium), Some(High)] {
        assert!(e.route(&a, &cam(), l).is_empty());
    }
}

// ---- Keyframes. ----

#[test]
fn keyframe_requests_are_throttled_per_track_without_losing_any() {
    let clock = Clock::new();
    let mut e = Engine::new();
    let (a, b) = (peer("a"), peer("b"));
    // Two-party: the camera is one stream.
    for p in [&a, &b] {
        e.add_track(p, &mic(), TrackKind::Audio, vec![]);
        e.add_track(p, &cam(), TrackKind::Video, vec![]);
        e.set_admitted(p, true);
    }
    drain(&mut e);

    // b's decoder is unhappy and sends a PLI every 10 ms for 3 s; a's decoder too, once.
    let mut sent: Vec<(u64, KeyframeRequest)> = Vec::new();
    for t in (0..=3000).step_by(10) {
        if let Some(k) = e.on_keyframe_request(&b, &a, &cam(), clock.ms(t)) {
            sent.push((t, k));
        }
        if t == 250
            && let Some(k) = e.on_keyframe_request(&a, &b, &cam(), clock.ms(t))
        {
            sent.push((t, k));
        }
        e.handle_timeout(clock.ms(t));
        sent.extend(keyframes(&drain(&mut e)).into_iter().map(|k| (t, k)));
    }
    let from_a: Vec<u64> = sent
        .iter()
        .filter(|(_, k)| k.publisher == a)
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(from_a, [0, 500, 1000, 1500, 2000, 2500, 3000]);
    // b's track has its own window: a's requests do not hold it back.
    let from_b: Vec<u64> = sent
        .iter()
        .filter(|(_, k)| k.publisher == b)
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(from_b, [250]);
    assert!(
        sent.iter()
            .all(|(_, k)| k.track == cam() && k.layers.is_empty())
    );

    // A want inside the window is sent when it ends, and poll_timeout says when that is.
    assert_eq!(e.on_keyframe_request(&b, &a, &cam(), clock.ms(3100)), None);
    assert_eq!(e.poll_timeout(), Some(clock.ms(3500)));
    e.handle_timeout(clock.ms(3499));
    assert!(keyframes(&drain(&mut e)).is_empty());
    e.handle_timeout(clock.ms(3500));
    assert_eq!(
        keyframes(&drain(&mut e)),
        [KeyframeRequest {
            publisher: a.clone(),
            track: cam(),
            layers: vec![]
        }]
    );
    // Audio has no keyframes.
    assert_eq!(e.on_keyframe_request(&b, &a, &mic(), clock.ms(9000)), None);
}

#[test]
fn a_new_subscriber_and_a_layer_switch_each_get_a_keyframe() {
    let clock = Clock::new();
    let mut e = Engine::new();
    let (a, b, c) = (peer("a"), peer("b"), peer("c"));
    e.set_bandwidth_estimate(&c, 5_000_000);
    for p in [&a, &b, &c] {
        publish(&mut e, p);
        e.set_admitted(p, true);
    }
    drain(&mut e);
    assert_eq!(e.layer_for(&c, &a, &cam()), Some(High));

    let started = e.on_subscribe_start(&c, &a, clock.ms(0));
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].publisher, a);
    assert_eq!(started[0].track, cam());
    assert!(started[0].layers.contains(&High), "{started:?}");

    // c's link collapses at 300 ms: its layer drops at once, and the keyframe for the new
    // layer waits for the end of the window opened at 0 ms.
    e.set_bandwidth_estimate(&c, 400_000);
    assert_eq!(e.layer_for(&c, &a, &cam()), Some(Low));
    let events = drain(&mut e);
    assert!(events.contains(&EngineEvent::LayerChanged {
        subscriber: c.clone(),
        publisher: a.clone(),
        track: cam(),
        layer: Some(Low),
    }));
    e.handle_timeout(clock.ms(300));
    assert!(keyframes(&drain(&mut e)).iter().all(|k| k.publisher != a));
    e.handle_timeout(clock.ms(500));
    let sent = keyframes(&drain(&mut e));
    let for_a: Vec<&KeyframeRequest> = sent.iter().filter(|k| k.publisher == a).collect();
    assert_eq!(for_a.len(), 1, "{sent:?}");
    assert!(for_a[0].layers.contains(&Low));
}

// ---- Simulcast and layers. ----

#[test]
fn two_party_is_one_720p_stream_and_three_party_is_simulcast() {
    let mut e = Engine::new();
    let (a, b, c) = (peer("a"), peer("b"), peer("c"));
    e.set_admitted(&a, true);
    e.set_admitted(&b, true);
    assert!(!e.simulcast_enabled());
    let two = e.video_constraints();
    assert_eq!(
        two,
        VideoConstraints {
            codec: VideoCodec::Vp8,
            width: 1280,
            height: 720,
            fps: 24,
            max_bitrate_kbps: 1500,
            simulcast: false,
            layers: vec![],
        }
    );
    assert_eq!(two.codec.as_str(), "VP8");

    // A low-end peer on either side caps a two-party call at 480p.
    e.set_low_end(&b, true);
    for p in [&a, &b] {
        let v = e.video_constraints_for(p);
        assert_eq!((v.width, v.height, v.simulcast), (854, 480, false));
        assert!((500..=1000).contains(&v.max_bitrate_kbps));
    }
    assert!(
        drain(&mut e)
            .iter()
            .all(|ev| !matches!(ev, EngineEvent::SimulcastChanged(_)))
    );

    e.set_admitted(&c, true);
    assert!(e.simulcast_enabled());
    assert_eq!(drain(&mut e), [EngineEvent::SimulcastChanged(true)]);
    let three = e.video_constraints_for(&a);
    assert!(three.simulcast);
    assert_eq!(three.layers, Layer::ALL);
    assert_eq!((three.width, three.height), (1280, 720));
    assert_eq!(three.max_bitrate_kbps, 1800);
    let low = e.video_constraints_for(&b);
    assert_eq!(low.layers, [Low, Medium]);
    assert!(low.height <= 480 && (500..=1000).contains(&low.max_bitrate_kbps));

    e.remove_peer(&c);
    assert!(!e.simulcast_enabled());
    assert_eq!(drain(&mut e), [EngineEvent::SimulcastChanged(false)]);
    // Lobby peers do not count.
    publish(&mut e, &c);
    assert!(!e.simulcast_enabled());
}

/// Subscriber `s` with `bps`, watching `a`, `b` and `c`, all with simulcast cameras.
fn watcher(bps: u64) -> Engine {
    let mut e = Engine::new();
    e.set_bandwidth_estimate(&peer("s"), bps);
    for name in ["a", "b", "c", "s"] {
        publish(&mut e, &peer(name));
        e.set_admitted(&peer(name), true);
    }
    drain(&mut e);
    e
}

fn layers_of(e: &Engine, subscriber: &str) -> [Option<Layer>; 3] {
    let s = peer(subscriber);
    ["a", "b", "c"].map(|p| e.layer_for(&s, &peer(p), &cam()))
}

#[test]
fn layers_follow_bandwidth_down_at_once_and_up_after_the_hold() {
    let clock = Clock::new();
    let s = peer("s");
    let mut e = watcher(5_000_000);
    assert_eq!(layers_of(&e, "s"), [Some(High); 3]);

    // 1 Mbps - 3 × 48 k audio = 856 k: three lows (450 k), then one more step fits (+300 k).
    e.set_bandwidth_estimate(&s, 1_000_000);
    assert_eq!(layers_of(&e, "s"), [Some(Medium), Some(Low), Some(Low)]);
    e.handle_timeout(clock.ms(0));

    e.set_bandwidth_estimate(&s, 5_000_000);
    assert_eq!(
        e.poll_timeout(),
        Some(clock.ms(0)),
        "the hold starts at the next tick"
    );
    e.handle_timeout(clock.ms(100));
    e.handle_timeout(clock.ms(2099));
    assert_eq!(
        layers_of(&e, "s"),
        [Some(Medium), Some(Low), Some(Low)],
        "held"
    );
    assert_eq!(e.poll_timeout(), Some(clock.ms(2100)));
    e.handle_timeout(clock.ms(2100));
    assert_eq!(layers_of(&e, "s"), [Some(High); 3]);

    // Not even the lowest layers fit: video pauses, audio keeps flowing.
    e.set_bandwidth_estimate(&s, 350_000);
    assert_eq!(layers_of(&e, "s"), [Some(Low), None, None]);
    e.set_bandwidth_estimate(&s, 100_000);
    assert_eq!(layers_of(&e, "s"), [None, None, None]);
    assert!(e.route(&peer("a"), &mic(), None).contains(&s));
    for l in Layer::ALL {
        assert!(!e.route(&peer("a"), &cam(), Some(l)).contains(&s));
    }
}

#[test]
fn oscillating_estimates_do_not_make_layers_flap() {
    let clock = Clock::new();
    let (s, a) = (peer("s"), peer("a"));
    let mut e = watcher(5_000_000);
    let mut changes = Vec::new();
    // The estimate swings between plenty and 1 Mbps every second for 30 s.
    for t in (0..30_000).step_by(100) {
        if t % 1000 == 0 {
            let bps = if (t / 1000) % 2 == 0 {
                1_000_000
            } else {
                5_000_000
            };
            e.set_bandwidth_estimate(&s, bps);
        }
        e.handle_timeout(clock.ms(t));
        for event in drain(&mut e) {
            if let EngineEvent::LayerChanged {
                subscriber,
                publisher,
                layer,
                ..
            } = event
                && subscriber == s
                && publisher == a
            {
                changes.push((t, layer));
            }
        }
    }
    assert_eq!(changes, [(0, Some(Medium))], "one drop, then steady");

    // The last swing, at 29 s, was up and it stays there: one upgrade, two seconds later.
    for t in (30_000..33_000).step_by(100) {
        e.handle_timeout(clock.ms(t));
        for event in drain(&mut e) {
            if let EngineEvent::LayerChanged {
                subscriber,
                publisher,
                layer,
                ..
            } = event
                && subscriber == s
                && publisher == a
            {
                changes.push((t, layer));
            }
        }
    }
    assert_eq!(changes, [(0, Some(Medium)), (31_000, Some(High))]);
}

#[test]
fn route_delivers_each_subscriber_only_its_own_layer() {
    let mut e = Engine::new();
    let rates = [
        ("a", 10_000_000),
        ("b", 1_000_000),
        ("c", 600_000),
        ("d", 250_000),
    ];
    for (name, bps) in rates {
        e.set_bandwidth_estimate(&peer(name), bps);
        publish(&mut e, &peer(name));
        e.set_admitted(&peer(name), true);
    }
    let a = peer("a");
    assert_eq!(e.layer_for(&peer("b"), &a, &cam()), Some(Medium));
    assert_eq!(e.layer_for(&peer("c"), &a, &cam()), Some(Low));
    assert_eq!(e.layer_for(&peer("d"), &a, &cam()), None);
    assert_eq!(names(&e.route(&a, &cam(), Some(High))), Vec::<&str>::new());
    assert_eq!(names(&e.route(&a, &cam(), Some(Medium))), ["b"]);
    assert_eq!(names(&e.route(&a, &cam(), Some(Low))), ["c"]);
    // An untagged packet on a simulcast track cannot be told apart: nobody gets it.
    assert!(e.route(&a, &cam(), None).is_empty());
    assert_eq!(names(&e.route(&peer("b"), &cam(), Some(High))), ["a"]);
}

#[test]
fn render_size_and_low_end_cap_the_layer() {
    let (s, a, b) = (peer("s"), peer("a"), peer("b"));
    let mut e = watcher(20_000_000);
    e.set_render_size(&s, &a, 320, 180);
    e.set_render_size(&s, &b, 400, 300);
    assert_eq!(layers_of(&e, "s"), [Some(Low), Some(Medium), Some(High)]);

    // A hidden tile gets nothing; shown again, it gets video at once, without the hold.
    e.set_render_size(&s, &a, 0, 0);
    assert_eq!(e.layer_for(&s, &a, &cam()), None);
    assert!(!e.route(&a, &cam(), Some(Low)).contains(&s));
    e.set_render_size(&s, &a, 640, 360);
    assert_eq!(e.layer_for(&s, &a, &cam()), Some(Medium));

    // A low-end device gets at most the medium layer, however much bandwidth it has.
    e.set_low_end(&s, true);
    assert_eq!(
        layers_of(&e, "s"),
        [Some(Medium), Some(Medium), Some(Medium)]
    );

    // Screen shares are not sized by a camera tile, and come before cameras.
    e.set_low_end(&s, false);
    e.set_bandwidth_estimate(&s, 1_800_000);
    e.add_track(&a, &screen(), TrackKind::Screen, Layer::ALL.to_vec());
    e.set_render_size(&s, &a, 1280, 720);
    // 1.8 M - 144 k audio: four lows (600 k), the screen to high (+1050 k), nothing left.
    assert_eq!(e.layer_for(&s, &a, &screen()), Some(High));
    assert_eq!(layers_of(&e, "s"), [Some(Low), Some(Low), Some(Low)]);
}

#[test]
fn a_paused_layer_moves_only_its_own_viewers() {
    let (s, t, a) = (peer("s"), peer("t"), peer("a"));
    let mut e = room(&["s", "t", "a"]);
    e.set_bandwidth_estimate(&s, 20_000_000);
    e.set_bandwidth_estimate(&t, 20_000_000);
    e.set_render_size(&s, &a, 1280, 720);
    e.set_render_size(&t, &a, 320, 180);
    let clock = Clock::new();
    e.handle_timeout(clock.ms(0));
    e.handle_timeout(clock.ms(3000));
    assert_eq!(e.layer_for(&s, &a, &cam()), Some(High));
    assert_eq!(e.layer_for(&t, &a, &cam()), Some(Low));
    drain(&mut e);

    // The publisher stops sending its top layer: its viewer drops to the next one at once,
    // the thumbnail's viewer is left alone (no change, no keyframe asked for on its account).
    e.add_track(&a, &cam(), TrackKind::Video, vec![Low, Medium]);
    assert_eq!(e.layer_for(&s, &a, &cam()), Some(Medium));
    assert_eq!(e.layer_for(&t, &a, &cam()), Some(Low));
    let moved: Vec<PeerId> = drain(&mut e)
        .into_iter()
        .filter_map(|ev| match ev {
            EngineEvent::LayerChanged { subscriber, .. } => Some(subscriber),
            _ => None,
        })
        .collect();
    assert_eq!(moved, std::slice::from_ref(&s));
    e.handle_timeout(clock.ms(3600));
    let asked = keyframes(&drain(&mut e));
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].layers, [Medium]);

    // Back again: the big tile climbs back after the hold.
    e.add_track(&a, &cam(), TrackKind::Video, Layer::ALL.to_vec());
    e.handle_timeout(clock.ms(3700));
    e.handle_timeout(clock.ms(6500));
    assert_eq!(e.layer_for(&s, &a, &cam()), Some(High));
    assert_eq!(e.layer_for(&t, &a, &cam()), Some(Low));
}

#[test]
fn the_dominant_speaker_gets_the_better_layer() {
    let clock = Clock::new();
    let b = peer("b");
    let mut e = watcher(1_000_000);
    // No speaker yet: the leftover goes round in id order.
    assert_eq!(layers_of(&e, "s"), [Some(Medium), Some(Low), Some(Low)]);

    // b talks.
    let mut t = 0;
    while t <= 4000 {
        e.on_audio_level(&b, 25, true, clock.ms(t));
        e.handle_timeout(clock.ms(t));
        t += 20;
    }
    assert_eq!(e.dominant_speaker(), Some(b.clone()));
    assert!(drain(&mut e).contains(&EngineEvent::DominantSpeakerChanged(Some(b.clone()))));
    // a dropped to make room at once; b got the medium layer after the hold.
    assert_eq!(layers_of(&e, "s"), [Some(Low), Some(Medium), Some(Low)]);
}

// ---- Dominant speaker. ----

/// Feeds 20 ms audio level samples from `from_ms` to `to_ms`: `level(peer, t)` gives each
/// peer's sample, or `None` for no packet (DTX). Returns the speaker changes with their times.
fn talk(
    e: &mut Engine,
    clock: &Clock,
    peers: &[&PeerId],
    from_ms: u64,
    to_ms: u64,
    level: impl Fn(&PeerId, u64) -> Option<u8>,
) -> Vec<(u64, Option<PeerId>)> {
    let mut changes = Vec::new();
    for t in (from_ms..to_ms).step_by(20) {
        for p in peers {
            if let Some(l) = level(p, t) {
                e.on_audio_level(p, l, l < 127, clock.ms(t));
            }
        }
        e.handle_timeout(clock.ms(t));
        for event in drain(e) {
            if let EngineEvent::DominantSpeakerChanged(who) = event {
                changes.push((t, who));
            }
        }
    }
    changes
}

#[test]
fn a_louder_speaker_takes_over_after_about_a_second() {
    let clock = Clock::new();
    let mut e = room(&["a", "b", "c"]);
    let (a, b) = (peer("a"), peer("b"));
    // a speaks at -40 dBov throughout; b joins in at -20 dBov from 3 s.
    let changes = talk(&mut e, &clock, &[&a, &b], 0, 10_000, |p, t| {
        match p.as_str() {
            "a" => Some(40),
            _ if t >= 3000 => Some(20),
            _ => None,
        }
    });
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[0].1, Some(a.clone()));
    assert!(
        changes[0].0 < 500,
        "the first speaker takes the empty floor quickly"
    );
    let (at, who) = &changes[1];
    assert_eq!(who, &Some(b.clone()));
    // b needs ~1.2 s to be 10 louder than a, then holds for 1 s.
    assert!((4000..=6000).contains(at), "switched at {at} ms");
}

#[test]
fn talking_over_each_other_does_not_flip_the_floor() {
    let clock = Clock::new();
    let mut e = room(&["a", "b"]);
    let (a, b) = (peer("a"), peer("b"));
    // b joins in slightly louder than a (-28 against -32 dBov), both keep going: a keeps the
    // floor, because a few dB is not a hand-over.
    let changes = talk(&mut e, &clock, &[&a, &b], 0, 10_000, |p, t| {
        match p.as_str() {
            "a" => Some(32),
            _ if t >= 2000 => Some(28),
            _ => None,
        }
    });
    assert_eq!(
        changes.iter().map(|c| c.1.clone()).collect::<Vec<_>>(),
        [Some(a)]
    );
}

#[test]
fn a_hand_over_between_equally_loud_speakers() {
    let clock = Clock::new();
    let mut e = room(&["a", "b"]);
    let (a, b) = (peer("a"), peer("b"));
    let changes = talk(&mut e, &clock, &[&a, &b], 0, 8000, |p, t| {
        match p.as_str() {
            "a" if t < 3000 => Some(30),
            "b" if t >= 3000 => Some(30),
            _ => None,
        }
    });
    let times: Vec<u64> = changes.iter().map(|(t, _)| *t).collect();
    assert_eq!(changes.last().map(|c| c.1.clone()), Some(Some(b)));
    assert!((4000..=5000).contains(&times[1]), "{changes:?}");
}

#[test]
fn a_cough_does_not_take_the_floor() {
    let clock = Clock::new();
    let mut e = room(&["a", "b", "c"]);
    let (a, b) = (peer("a"), peer("b"));
    // While a speaks: b coughs (300 ms, very loud).
    let changes = talk(&mut e, &clock, &[&a, &b], 0, 6000, |p, t| {
        match p.as_str() {
            "a" => Some(35),
            _ if (3000..3300).contains(&t) => Some(3),
            _ => None,
        }
    });
    assert_eq!(
        changes.iter().map(|c| c.1.clone()).collect::<Vec<_>>(),
        [Some(a.clone())]
    );

    // After a has stopped (and is still the speaker): a cough is still not a hand-over.
    let changes = talk(&mut e, &clock, &[&a, &b], 6000, 12_000, |p, t| {
        match p.as_str() {
            "b" if (9000..9300).contains(&t) => Some(3),
            _ => None,
        }
    });
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(e.dominant_speaker(), Some(a));
}

#[test]
fn silence_keeps_the_last_speaker_until_someone_else_speaks() {
    let clock = Clock::new();
    let mut e = room(&["a", "b"]);
    let (a, b) = (peer("a"), peer("b"));
    talk(&mut e, &clock, &[&a], 0, 2000, |_, _| Some(30));
    // Twenty seconds of DTX silence, and of silence flagged as such.
    talk(&mut e, &clock, &[&a, &b], 2000, 22_000, |p, _| {
        (p.as_str() == "b").then_some(127)
    });
    assert_eq!(e.dominant_speaker(), Some(a.clone()));
    // Loud noise the sender's VAD does not call voice does not count either.
    for t in (22_000..25_000).step_by(20) {
        e.on_audio_level(&b, 10, false, clock.ms(t));
        e.handle_timeout(clock.ms(t));
    }
    assert_eq!(e.dominant_speaker(), Some(a.clone()));
    let changes = talk(&mut e, &clock, &[&b], 25_000, 28_000, |_, _| Some(30));
    assert_eq!(changes.last().map(|c| c.1.clone()), Some(Some(b.clone())));

    // Leaving clears the floor.
    e.set_admitted(&b, false);
    assert_eq!(e.dominant_speaker(), None);
    assert!(drain(&mut e).contains(&EngineEvent::DominantSpeakerChanged(None)));
}

// ---- Network quality. ----

/// Reports once a second from `from_s` to `to_s`; returns the published score changes.
fn reports(
    e: &mut Engine,
    clock: &Clock,
    p: &PeerId,
    from_s: u64,
    to_s: u64,
    figures: (f64, f64, f64),
) -> Vec<(u64, u8)> {
    let mut changes = Vec::new();
    for s in from_s..to_s {
        e.on_receiver_report(p, figures.0, figures.1, figures.2, clock.ms(s * 1000));
        e.handle_timeout(clock.ms(s * 1000));
        for event in drain(e) {
            if let EngineEvent::NetworkScoreChanged { peer, score } = event
                && peer == *p
            {
                changes.push((s, score));
            }
        }
    }
    changes
}

#[test]
fn network_score_maps_steady_figures() {
    let clock = Clock::new();
    let mut e = room(&["a"]);
    let a = peer("a");
    assert_eq!(e.network_score(&a), 0, "no data yet");
    assert_eq!(e.network_score(&peer("nobody")), 0);
    let cases = [
        ((0.0, 5.0, 40.0), 5),
        ((0.02, 10.0, 80.0), 4),
        ((0.04, 45.0, 120.0), 3),
        ((0.0, 10.0, 600.0), 2),
        ((0.25, 10.0, 80.0), 1),
    ];
    for (figures, score) in cases {
        let mut fresh = room(&["a"]);
        reports(&mut fresh, &clock, &a, 0, 30, figures);
        assert_eq!(fresh.network_score(&a), score, "{figures:?}");
    }
    assert_eq!(
        reports(&mut e, &clock, &a, 0, 1, (0.0, 5.0, 40.0)),
        [(0, 5)]
    );
}

#[test]
fn network_score_is_smoothed_and_slow_to_recover() {
    let clock = Clock::new();
    let mut e = room(&["a"]);
    let a = peer("a");
    let good = (0.0, 5.0, 40.0);
    assert_eq!(reports(&mut e, &clock, &a, 0, 10, good), [(0, 5)]);
    // One report of 10 % loss (alone it would be a 2) costs one point, not three.
    let changes = reports(&mut e, &clock, &a, 10, 11, (0.10, 5.0, 40.0));
    assert_eq!(changes, [(10, 4)]);
    // Good again: the average is back under 1 % within a few reports, and the score returns
    // once that has held for five seconds.
    let changes = reports(&mut e, &clock, &a, 11, 30, good);
    assert_eq!(changes.len(), 1, "{changes:?}");
    let (at, score) = changes[0];
    assert_eq!(score, 5);
    assert!((16..=20).contains(&at), "recovered at {at} s");

    // Sustained heavy loss gets there, and drops are reported at once.
    let changes = reports(&mut e, &clock, &a, 30, 45, (0.2, 5.0, 40.0));
    assert_eq!(changes.first().map(|c| c.0), Some(30));
    assert_eq!(changes.last().map(|c| c.1), Some(1));
    assert!(
        changes.windows(2).all(|w| w[1].1 < w[0].1),
        "only down: {changes:?}"
    );

    // Reports stop: after ten seconds the score is 0 (disconnected).
    e.handle_timeout(clock.ms(54_000));
    assert_eq!(e.network_score(&a), 1);
    e.handle_timeout(clock.ms(55_000));
    assert_eq!(e.network_score(&a), 0);
    assert!(drain(&mut e).contains(&EngineEvent::NetworkScoreChanged {
        peer: a.clone(),
        score: 0
    }));
}

#[test]
fn a_score_hovering_on_a_threshold_does_not_blink() {
    let clock = Clock::new();
    let mut e = room(&["a"]);
    let a = peer("a");
    let mut changes = Vec::new();
    // RTT alternates 185 / 215 ms: the average sits on the 200 ms line between 5 and 4 and
    // crosses it with every report.
    for s in 0..60u64 {
        let rtt = if s % 2 == 0 { 185.0 } else { 215.0 };
        changes.extend(reports(&mut e, &clock, &a, s, s + 1, (0.0, 5.0, rtt)));
    }
    assert!(changes.len() <= 2, "{changes:?}");
}

// ---- A randomized room. ----

/// A tiny deterministic generator (xorshift64): reproducible failures without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

#[test]
fn randomized_four_party_room_keeps_its_invariants() {
    for seed in [0x5EED_u64, 0xC0FFEE, 0xDEC0DE] {
        simulate(seed);
    }
}

/// Upstream keyframe requests seen, to check the 500 ms spacing per track.
struct KeyframeLog {
    seed: u64,
    last: BTreeMap<(PeerId, TrackId), u64>,
}

impl KeyframeLog {
    fn record(&mut self, k: &KeyframeRequest, t: u64, stats: &mut BTreeMap<&str, u32>) {
        let seed = self.seed;
        if let Some(prev) = self.last.insert((k.publisher.clone(), k.track.clone()), t) {
            assert!(
                t - prev >= 500,
                "seed {seed:#x}: keyframes for {k:?} at {prev} and {t} ms"
            );
        }
        *stats.entry("keyframes").or_default() += 1;
    }
}

fn simulate(seed: u64) {
    let clock = Clock::new();
    let mut rng = XorShift(seed);
    let people: Vec<PeerId> = ["p0", "p1", "p2", "p3"].map(peer).to_vec();
    let tracks = [mic(), cam(), screen(), TrackId::from("unknown")];
    let layers = [None, Some(Low), Some(Medium), Some(High)];
    let kinds = [TrackKind::Audio, TrackKind::Video, TrackKind::Screen];
    let setup = |e: &mut Engine, p: &PeerId| {
        publish(e, p);
        if p.as_str() == "p0" {
            e.add_track(p, &screen(), TrackKind::Screen, vec![]);
        }
    };

    let mut e = Engine::new();
    for p in &people {
        setup(&mut e, p);
    }
    for p in &people[..3] {
        e.set_admitted(p, true);
    }
    let mut talking: BTreeMap<PeerId, bool> = people.iter().map(|p| (p.clone(), false)).collect();
    let mut keyframe_log = KeyframeLog {
        seed,
        last: BTreeMap::new(),
    };
    let mut stats = BTreeMap::<&str, u32>::new();

    for t in (0..60_000u64).step_by(20) {
        let now = clock.ms(t);
        // Signaling: admissions, departures, host actions, hints.
        if rng.chance(3) {
            let p = rng.pick(&people).clone();
            let admitted = e.is_admitted(&p);
            e.set_admitted(&p, !admitted);
        }
        if rng.chance(1) {
            let p = rng.pick(&people).clone();
            e.remove_peer(&p);
            // What it publishes next is a new publication on a new connection.
            keyframe_log
                .last
                .retain(|(publisher, _), _| *publisher != p);
            setup(&mut e, &p);
        }
        if rng.chance(20) {
            let p = rng.pick(&people).clone();
            e.set_bandwidth_estimate(&p, 100_000 + rng.below(6_000_000));
        }
        if rng.chance(5) {
            let (s, p) = (rng.pick(&people).clone(), rng.pick(&people).clone());
            let (w, h) = *rng.pick(&[(0, 0), (320, 180), (640, 360), (1280, 720)]);
            e.set_render_size(&s, &p, w, h);
        }
        if rng.chance(3) {
            let p = rng.pick(&people).clone();
            e.set_forced_mute(&p, *rng.pick(&kinds));
        }
        if rng.chance(3) {
            let p = rng.pick(&people).clone();
            e.set_self_unmuted(&p, *rng.pick(&kinds));
        }
        if rng.chance(2) {
            let p = rng.pick(&people).clone();
            e.set_low_end(&p, rng.chance(500));
        }
        if rng.chance(2) {
            let (s, p) = (rng.pick(&people).clone(), rng.pick(&people).clone());
            if rng.chance(500) {
                e.subscribe(&s, &p);
            } else {
                e.unsubscribe(&s, &p);
            }
        }

        // Media: audio levels, video packets, receiver reports.
        for p in &people {
            let speaking = talking.get_mut(p).expect("every peer has an entry");
            if rng.chance(10) {
                *speaking = !*speaking;
            }
            if *speaking {
                e.on_audio_level(p, 20 + rng.below(30) as u8, true, now);
            } else if rng.chance(100) {
                e.on_audio_level(p, 127, false, now);
            }
            if t % 1000 == 0 {
                let loss = rng.below(200) as f64 / 1000.0;
                e.on_receiver_report(p, loss, rng.below(120) as f64, rng.below(900) as f64, now);
            }
        }

        // Subscribers' feedback.
        if rng.chance(50) {
            let (s, p) = (rng.pick(&people).clone(), rng.pick(&people).clone());
            let track = rng.pick(&tracks).clone();
            if let Some(k) = e.on_keyframe_request(&s, &p, &track, now) {
                assert!(
                    e.is_admitted(&s) && e.is_admitted(&p),
                    "seed {seed:#x}: {k:?}"
                );
                keyframe_log.record(&k, t, &mut stats);
            }
        }
        if rng.chance(10) {
            let (s, p) = (rng.pick(&people).clone(), rng.pick(&people).clone());
            for k in e.on_subscribe_start(&s, &p, now) {
                keyframe_log.record(&k, t, &mut stats);
            }
        }
        e.handle_timeout(now);
        while let Some(event) = e.poll_event() {
            match event {
                EngineEvent::KeyframeRequest(k) => keyframe_log.record(&k, t, &mut stats),
                EngineEvent::LayerChanged { .. } => *stats.entry("layer changes").or_default() += 1,
                EngineEvent::DominantSpeakerChanged(_) => {
                    *stats.entry("speaker changes").or_default() += 1
                }
                _ => {}
            }
        }

        // Invariants, for every sender, track and layer tag.
        for from in &people {
            for track in &tracks {
                for layer in layers {
                    let to = e.route(from, track, layer);
                    if to.is_empty() {
                        continue;
                    }
                    *stats.entry("routed").or_default() += 1;
                    assert!(
                        e.is_admitted(from),
                        "seed {seed:#x} t {t}: lobby {from} sent {track}"
                    );
                    for r in &to {
                        assert!(
                            e.is_admitted(r),
                            "seed {seed:#x} t {t}: lobby {r} got {from}'s {track}"
                        );
                        assert_ne!(r, from);
                        assert!(e.is_subscribed(r, from));
                        if *track == cam() {
                            assert_eq!(
                                e.layer_for(r, from, track),
                                layer,
                                "seed {seed:#x} t {t}: wrong layer to {r}"
                            );
                            assert!(!e.is_forced_muted(from, TrackKind::Video));
                        }
                        if *track == mic() {
                            assert!(!e.is_forced_muted(from, TrackKind::Audio));
                        }
                    }
                }
            }
            // The other way round: whoever has a layer chosen gets exactly that layer, and the
            // driver's cached answer agrees with the per-packet rule.
            for s in &people {
                if let Some(l) = e.layer_for(s, from, &cam()) {
                    assert!(
                        e.route(from, &cam(), Some(l)).contains(s),
                        "seed {seed:#x} t {t}"
                    );
                }
                for track in &tracks {
                    for layer in layers {
                        let routed = e.route(from, track, layer).contains(s);
                        let cached = e.stream_for(s, from, track).is_some()
                            && e.stream_for(s, from, track) == e.stream_of(from, track, layer);
                        assert_eq!(routed, cached, "seed {seed:#x} t {t}: {s} {from} {track}");
                        if routed {
                            *stats.entry("cached agrees").or_default() += 1;
                        }
                    }
                }
            }
            assert!(e.network_score(from) <= 5);
        }
        if let Some(speaker) = e.dominant_speaker() {
            assert!(
                e.is_admitted(&speaker),
                "seed {seed:#x} t {t}: {speaker} holds the floor from the lobby"
            );
        }
    }

    // The run exercised what it claims to check.
    for what in [
        "routed",
        "keyframes",
        "layer changes",
        "speaker changes",
        "cached agrees",
    ] {
        assert!(
            stats.get(what).copied().unwrap_or(0) > 0,
            "seed {seed:#x}: no {what}: {stats:?}"
        );
    }
}
