//! The engine of each room inside the driver: what the driver tells it, and how its answers
//! are applied.
//!
//! The driver is one task for every room, so the engines live here rather than in the room
//! tasks: a per-packet decision never crosses a channel. What the engine decides reaches the
//! connections in three ways:
//!
//! - the stream each subscriber sender gets ([`Engine::stream_for`]) is cached on the sender
//!   and refreshed after every change ([`Driver::refresh_room`]);
//! - keyframe requests go upstream as PLIs, now or when the engine's gate opens;
//! - dominant speaker, network scores and camera settings become [`SfuEvent`]s for the room
//!   task, which tells the participants.
//!
//! Engine calls are made through [`Driver::with_engine`], which drains what the call produced;
//! [`Driver::run_engines`] lets time pass for every room on the housekeeping tick.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::sfu::engine::{
    Engine, EngineEvent, KeyframeRequest, PeerId as EnginePeer, TrackId, TrackKind,
};

use super::event_loop::Driver;
use super::peer::TrackKey;
use super::{KeyframeReason, MediaKind, PcKind, PeerId, RoomId, SfuEvent, VideoCodec};

/// Render sizes accepted in one update: more tiles than any visit shows.
const MAX_RENDER_SIZES: usize = 32;
/// Larger than any screen; a bigger figure is a client bug, not a tile.
const MAX_RENDER_EDGE: u32 = 8192;

/// One room's engine and who is in it.
pub(crate) struct RoomMedia {
    pub(crate) engine: Engine,
    pub(crate) members: BTreeSet<PeerId>,
}

impl RoomMedia {
    fn new(codec: VideoCodec) -> Self {
        let mut engine = Engine::new();
        // The room task names each peer's publishers explicitly (`Sfu::set_subscriptions`).
        engine.set_auto_subscribe(false);
        engine.set_video_codec(codec);
        Self {
            engine,
            members: BTreeSet::new(),
        }
    }
}

pub(super) fn engine_peer(peer: &str) -> EnginePeer {
    EnginePeer::new(peer)
}

/// Tracks are known to the engine by their mid on the publisher's connection.
pub(super) fn engine_track(mid: &str) -> TrackId {
    TrackId::new(mid)
}

pub(super) fn engine_kind(kind: MediaKind) -> TrackKind {
    match kind {
        MediaKind::Audio => TrackKind::Audio,
        MediaKind::Video => TrackKind::Video,
    }
}

impl Driver {
    /// The engine deciding for `peer`, if the driver knows the peer.
    pub(super) fn engine_of(&self, peer: &PeerId) -> Option<&Engine> {
        let room = &self.peers.get(peer)?.room;
        self.rooms.get(room).map(|m| &m.engine)
    }

    /// Whether the engine admits `peer` to media.
    pub(super) fn is_allowed(&self, peer: &PeerId) -> bool {
        self.engine_of(peer)
            .is_some_and(|e| e.is_admitted(&engine_peer(peer)))
    }

    /// Makes sure the peer exists and is a member of its room; returns the room. A peer new to
    /// the room gets the subscriptions the room task asked for, both ways.
    fn ensure_member(&mut self, peer: &PeerId) -> RoomId {
        let room = self.peers.entry(peer.clone()).or_default().room.clone();
        let codec = self.default_codec;
        let media = self
            .rooms
            .entry(room.clone())
            .or_insert_with(|| RoomMedia::new(codec));
        if !media.members.insert(peer.clone()) {
            return room;
        }
        let me = engine_peer(peer);
        for member in &media.members {
            let Some(state) = self.peers.get(member) else {
                continue;
            };
            if member == peer {
                for publisher in &state.subscribed_to {
                    media.engine.subscribe(&me, &engine_peer(publisher));
                }
            } else if state.subscribed_to.contains(peer) {
                media.engine.subscribe(&engine_peer(member), &me);
            }
        }
        room
    }

    /// Runs `f` on `peer`'s room engine, then applies what it decided. `refresh`: the call may
    /// change who gets what (admission, subscriptions, tracks), so every sender in the room is
    /// brought up to date even if the engine raised no event about it.
    pub(super) fn with_engine<R>(
        &mut self,
        peer: &PeerId,
        now: Option<Instant>,
        refresh: bool,
        f: impl FnOnce(&mut Engine, &EnginePeer) -> R,
    ) -> R {
        let room = self.ensure_member(peer);
        let media = self
            .rooms
            .get_mut(&room)
            .expect("ensure_member created the room");
        let out = f(&mut media.engine, &engine_peer(peer));
        self.settle_room(&room, now, refresh);
        out
    }

    /// Acts on the events the room's engine has queued.
    pub(super) fn settle_room(&mut self, room: &RoomId, now: Option<Instant>, mut refresh: bool) {
        let Some(media) = self.rooms.get_mut(room) else {
            return;
        };
        let events: Vec<EngineEvent> = std::iter::from_fn(|| media.engine.poll_event()).collect();
        let now = now.unwrap_or_else(Instant::now);
        for event in events {
            match event {
                EngineEvent::KeyframeRequest(request) => self.send_keyframe_request(request, now),
                EngineEvent::LayerChanged { .. } | EngineEvent::SimulcastChanged(_) => {
                    refresh = true;
                }
                EngineEvent::DominantSpeakerChanged(peer) => self.emit(SfuEvent::DominantSpeaker {
                    room: room.clone(),
                    peer: peer.map(|p| p.as_str().to_owned()),
                }),
                EngineEvent::NetworkScoreChanged { peer, score } => {
                    self.emit(SfuEvent::NetworkScore {
                        peer: peer.as_str().to_owned(),
                        score,
                    })
                }
            }
        }
        if refresh {
            self.refresh_room(room, now);
        }
    }

    /// Brings every subscriber sender in the room to the engine's current answer, and
    /// announces camera settings that changed.
    pub(super) fn refresh_room(&mut self, room: &RoomId, now: Instant) {
        let Some(media) = self.rooms.get(room) else {
            return;
        };
        let engine = &media.engine;
        let mut announce = Vec::new();
        // Subscriber legs with a track wanted again without a renegotiation (the host lets a
        // camera through again): keyframes are asked for at once if they can receive them.
        // (An admission or a new subscription renegotiates: the answer asks.)
        let mut newly_wanted = Vec::new();
        for member in &media.members {
            let me = engine_peer(member);
            let Some(state) = self.peers.get_mut(member) else {
                continue;
            };
            if engine.is_admitted(&me) {
                let constraints = engine.video_constraints_for(&me);
                if state.constraints.as_ref() != Some(&constraints) {
                    state.constraints = Some(constraints.clone());
                    announce.push((member.clone(), constraints));
                }
            } else {
                // Announced again on the next admission: the client starts from the default.
                state.constraints = None;
            }
            let Some(entry) = state.subscriber.and_then(|id| self.pcs.get_mut(&id)) else {
                continue;
            };
            let mut wanted_again = false;
            for (key, slot) in entry.slots.iter_mut() {
                let want =
                    engine.stream_for(&me, &engine_peer(&key.publisher), &engine_track(&key.mid));
                if want == slot.want {
                    continue;
                }
                slot.want = want;
                match want {
                    None => {
                        slot.current = None;
                        slot.forwarding = false;
                        slot.switch_since = None;
                        slot.keyframe_primed = None;
                    }
                    Some(stream) => {
                        let switching = slot.current.is_some_and(|c| c != stream)
                            || (slot.current.is_none()
                                && slot.continues
                                && slot.kind == MediaKind::Video);
                        slot.switch_since = switching.then_some(now);
                        wanted_again |= slot.current.is_none();
                    }
                }
            }
            if wanted_again {
                newly_wanted.push(entry.id);
            }
        }
        for (peer, constraints) in announce {
            self.emit(SfuEvent::VideoConstraints { peer, constraints });
        }
        for id in newly_wanted {
            self.prime_keyframes(id, now);
        }
    }

    /// Lets time pass for every room: held layer upgrades, deferred keyframe requests, speaker
    /// hand-overs, network scores.
    pub(super) fn run_engines(&mut self, now: Instant) {
        let rooms: Vec<RoomId> = self.rooms.keys().cloned().collect();
        for room in rooms {
            if let Some(media) = self.rooms.get_mut(&room) {
                media.engine.handle_timeout(now);
            }
            self.settle_room(&room, Some(now), false);
        }
    }

    /// Sends a PLI upstream for what the engine asked, labelled with why it was wanted.
    pub(super) fn send_keyframe_request(&mut self, request: KeyframeRequest, now: Instant) {
        let key = TrackKey {
            publisher: request.publisher.as_str().to_owned(),
            mid: request.track.as_str().to_owned(),
        };
        let reason = self
            .keyframe_reasons
            .remove(&key)
            .unwrap_or(KeyframeReason::LayerSwitch);
        self.send_pli(&key, &request.layers, reason, now);
    }

    /// A subscriber needs a keyframe of a track it gets: through the engine's gate (now, or
    /// when the gate next opens).
    pub(super) fn request_keyframe(
        &mut self,
        subscriber: &PeerId,
        key: &TrackKey,
        reason: KeyframeReason,
        now: Instant,
    ) {
        self.keyframe_reasons.insert(key.clone(), reason);
        let publisher = engine_peer(&key.publisher);
        let track = engine_track(&key.mid);
        let request = self.with_engine(subscriber, Some(now), false, |e, me| {
            e.on_keyframe_request(me, &publisher, &track, now)
        });
        if let Some(request) = request {
            self.send_keyframe_request(request, now);
        }
    }

    // ---- What the room task tells us -----------------------------------------------------

    pub(super) fn join_room(&mut self, peer: PeerId, room: RoomId) {
        let old = self.peers.get(&peer).map(|s| s.room.clone());
        if old.as_ref() == Some(&room) {
            self.ensure_member(&peer);
            return;
        }
        if let Some(old) = old {
            self.leave_room(&peer, &old);
        }
        self.peers.entry(peer.clone()).or_default().room = room;
        // Whatever the peer already publishes is re-announced to its new room's engine.
        let tracks: Vec<(String, MediaKind, Vec<super::Layer>)> = self
            .peers
            .get(&peer)
            .map(|s| {
                s.published
                    .iter()
                    .map(|(mid, t)| (mid.clone(), t.kind, t.layers()))
                    .collect()
            })
            .unwrap_or_default();
        self.with_engine(&peer, None, true, |e, me| {
            for (mid, kind, layers) in tracks {
                e.add_track(me, &engine_track(&mid), engine_kind(kind), layers);
            }
        });
        self.check_renegotiation(&peer);
        self.renegotiate_subscribers_of(&peer);
    }

    /// Takes the peer out of a room's engine, forgetting the room when nobody is left.
    pub(super) fn leave_room(&mut self, peer: &PeerId, room: &RoomId) {
        let Some(media) = self.rooms.get_mut(room) else {
            return;
        };
        media.members.remove(peer);
        media.engine.remove_peer(&engine_peer(peer));
        if media.members.is_empty() {
            self.rooms.remove(room);
        } else {
            self.settle_room(room, None, true);
        }
    }

    pub(super) fn set_video_codec(&mut self, room: &RoomId, codec: VideoCodec) {
        let default = self.default_codec;
        let media = self
            .rooms
            .entry(room.clone())
            .or_insert_with(|| RoomMedia::new(default));
        media.engine.set_video_codec(codec);
        self.refresh_room(room, Instant::now());
    }

    pub(super) fn set_render_sizes(&mut self, peer: &PeerId, sizes: &[(PeerId, u32, u32)]) {
        if !self.peers.contains_key(peer) {
            return;
        }
        let sizes: Vec<(EnginePeer, u32, u32)> = sizes
            .iter()
            .take(MAX_RENDER_SIZES)
            .filter(|(publisher, _, _)| publisher != peer)
            .map(|(publisher, w, h)| {
                (
                    engine_peer(publisher),
                    (*w).min(MAX_RENDER_EDGE),
                    (*h).min(MAX_RENDER_EDGE),
                )
            })
            .collect();
        self.with_engine(peer, Some(Instant::now()), false, |e, me| {
            for (publisher, w, h) in &sizes {
                e.set_render_size(me, publisher, *w, *h);
            }
        });
    }

    pub(super) fn set_host_muted(&mut self, peer: &PeerId, kind: MediaKind, muted: bool) {
        let kind = engine_kind(kind);
        self.with_engine(peer, None, true, |e, me| {
            if muted {
                e.set_forced_mute(me, kind);
            } else {
                e.set_self_unmuted(me, kind);
            }
        });
    }

    // ---- RTCP feedback -------------------------------------------------------------------

    /// Hands what the RTCP taps gathered to the engines: loss, jitter and round trip from the
    /// receiver reports about what we send each subscriber.
    pub(super) fn collect_feedback(&mut self, now: Instant) {
        let mut gathered = Vec::new();
        for entry in self.pcs.values_mut() {
            let reports = {
                let mut feedback = entry.feedback.lock().unwrap_or_else(|e| e.into_inner());
                std::mem::take(&mut feedback.reports)
            };
            if entry.kind != PcKind::Subscriber || reports.is_empty() {
                continue;
            }
            // Loss and round trip: the worst of any stream. Jitter: audio's when there is
            // any, because a video frame leaves as a burst of packets with one timestamp and
            // its interarrival jitter measures the frame sizes as much as the network.
            let mut loss: Option<f64> = None;
            let (mut audio_jitter, mut video_jitter): (Option<f64>, Option<f64>) = (None, None);
            let mut rtt: Option<f64> = None;
            for report in &reports {
                let Some(slot) = entry.slots.values().find(|s| s.ssrc == report.ssrc) else {
                    continue;
                };
                let (clock_hz, jitter) = if slot.kind == MediaKind::Video {
                    (90_000.0, &mut video_jitter)
                } else {
                    (48_000.0, &mut audio_jitter)
                };
                let jitter_ms = f64::from(report.jitter) * 1000.0 / clock_hz;
                *jitter = Some(jitter.map_or(jitter_ms, |j: f64| j.max(jitter_ms)));
                loss =
                    Some(loss.map_or(report.fraction_lost, |l: f64| l.max(report.fraction_lost)));
                if let Some(ms) = report.rtt_ms {
                    rtt = Some(rtt.map_or(ms, |r: f64| r.max(ms)));
                }
            }
            if rtt.is_some() {
                entry.last_rtt_ms = rtt;
            }
            let Some(loss) = loss else {
                continue;
            };
            let jitter = audio_jitter.or(video_jitter).unwrap_or(0.0);
            // Until a sender report has been answered there is no round trip to count.
            gathered.push((
                entry.peer.clone(),
                loss,
                jitter,
                entry.last_rtt_ms.unwrap_or(0.0),
            ));
        }
        for (peer, loss, jitter_ms, rtt_ms) in gathered {
            self.with_engine(&peer, Some(now), false, |e, me| {
                e.on_receiver_report(me, loss, jitter_ms, rtt_ms, now)
            });
        }
    }
}
