//! The SFU decision engine: who receives which packet and at which simulcast layer, when a
//! publisher is asked for a keyframe, who the dominant speaker is and how good each participant's network is. Plain data in, plain data out: no sockets, no RTP
//! parsing, no clock of its own.
//!
//! The driver (ICE, DTLS/SRTP, the `rtc` crate, SSRC and sequence rewriting) owns the
//! connections and signaling owns the room. Both tell the engine what happened, with plain ids
//! and numbers, and ask it what to do:
//!
//! - **Forwarding**: [`Engine::stream_for`] answers "which stream of this track, if any, does
//!   this subscriber get"; the driver caches the answer per subscriber leg and asks again after
//!   every change, so nothing is looked up per packet. [`Engine::route`] is the same rule seen
//!   from one packet.
//!   Admission comes first everywhere: a peer that is not admitted neither sends nor receives
//!   anything, not a packet, not a retransmission, not a keyframe request. A track muted by a
//!   host is not forwarded until the participant themself unmutes ([`Engine::set_forced_mute`]).
//! - **Keyframes**: [`Engine::on_keyframe_request`], [`Engine::on_subscribe_start`] and layer
//!   switches ask the publisher for a keyframe through a per-track gate: at most one request per
//!   [`KEYFRAME_INTERVAL`], later wants merged into the next one, never lost.
//! - **Retransmission** is not here: each subscriber leg's own `rtc` NACK responder answers
//!   from what was actually sent on that leg (docs/adr/0005-engine-in-the-driver.md).
//! - **Simulcast**: on from [`SIMULCAST_MIN_PARTICIPANTS`] admitted participants
//!   ([`Engine::video_constraints_for`] tells each publisher what to send); each subscriber gets
//!   one layer of each simulcast track, from its bandwidth estimate, its render sizes and who is
//!   speaking ([`Engine::layer_for`]; the `layers` submodule documents the rules).
//! - **Dominant speaker** from RFC 6464 audio levels, with hysteresis (the `speaker` submodule).
//! - **Network quality** 0–5 per participant from receiver reports (the `quality` submodule
//!   has the thresholds); the same reports' loss drives each subscriber's downlink estimate
//!   when no congestion controller gives one (the `bandwidth` submodule).
//!
//! Time: calls that need it take `now`, and [`Engine::handle_timeout`] must be called when
//! [`Engine::poll_timeout`] says (a regular tick of 100 ms or so does as well): held layer
//! upgrades, deferred keyframe requests, speaker hand-overs and score changes happen there.
//! Calls without `now` act at once on whatever needs no clock (admission, routing, layer
//! downgrades) and leave the rest to the next call that has one.
//!
//! Outputs that are not the answer to a call are queued as [`EngineEvent`]s for
//! [`Engine::poll_event`]; the driver should drain them after every call that takes `now`.
//!
//! Everything is kept in `BTreeMap`s and `BTreeSet`s: the same inputs give the same decisions in
//! the same order, which the tests rely on and which makes a recorded call replayable.

mod bandwidth;
mod keyframe;
mod layers;
mod quality;
mod speaker;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use bandwidth::LossBasedEstimate;
use keyframe::KeyframeGate;
use layers::{LayerState, Priority, Want};
use quality::NetworkQuality;
use speaker::SpeakerDetector;

pub use quality::score_for as network_score_for;

// ---- Tuning. Every threshold the engine uses is here, with its reason. ----

/// At most one upstream keyframe request per published track in this window. A keyframe is
/// several times the size of a normal frame; a burst of them congests the publisher's uplink.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);
/// Simulcast from this many admitted participants. With two, the one viewer's needs can be met
/// by the publisher's own encoder adapting; with three, viewers differ and layers are needed.
pub const SIMULCAST_MIN_PARTICIPANTS: usize = 3;
/// Downlink assumed for a subscriber before its first receiver report: enough for a medium
/// layer of the speaker and low layers of two others, without starting on a guess too high.
pub const DEFAULT_BANDWIDTH_BPS: u64 = 1_000_000;
/// Downlink set aside for each audio track a subscriber receives (Opus at ~32 kbps plus
/// RTP/SRTP/UDP overhead). Audio is never traded for video.
pub const AUDIO_RESERVE_BPS: u64 = 48_000;
/// Downlink set aside for a video track that is not simulcast (a screen share in a group call),
/// which the engine cannot scale down.
pub const UNLAYERED_VIDEO_BPS: u64 = 1_000_000;
/// A higher simulcast layer must have fitted this long before a subscriber is moved up to it.
pub const UPGRADE_HOLD: Duration = Duration::from_secs(2);
/// RFC 6464 levels quieter than this (in -dBov) are silence even if flagged as voice.
pub const ACTIVE_LEVEL_DBOV: u8 = 50;
/// Time constant of the speech loudness average: long enough to bridge the gaps between words,
/// short enough that the floor changes within about a second of a real hand-over.
pub const SPEECH_TAU: Duration = Duration::from_millis(500);
/// Smoothed loudness (0–127) needed to be the dominant speaker at all: roughly, speaking at a
/// normal level a third of the time.
pub const SPEAKING_MIN: f64 = 30.0;
/// How much louder than the current speaker a challenger must be.
pub const SPEAKER_MARGIN: f64 = 10.0;
/// How long a challenger must stay louder by the margin before taking the floor.
pub const SPEAKER_HOLD: Duration = Duration::from_secs(1);
/// Time constant of the network figures' average; receiver reports come about once a second.
pub const QUALITY_TAU: Duration = Duration::from_secs(4);
/// A better network score is published only once it has held this long.
pub const QUALITY_RECOVERY_HOLD: Duration = Duration::from_secs(5);
/// With no receiver report for this long a participant's score falls to 0.
pub const QUALITY_STALE_AFTER: Duration = Duration::from_secs(10);

// ---- Ids and plain types. ----

/// A participant, as signaling names them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(String);

/// A published track, unique within its publisher (the client's track id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrackId(String);

macro_rules! string_id {
    ($name:ident) => {
        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(PeerId);
string_id!(TrackId);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TrackKind {
    Audio,
    Video,
    /// A screen share: video, but always given high priority and never sized by a tile.
    Screen,
}

/// A simulcast layer, lowest first (the derived order is the quality order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    Low,
    Medium,
    High,
}

impl Layer {
    pub const ALL: [Layer; 3] = [Layer::Low, Layer::Medium, Layer::High];

    /// The RTP stream id (RFC 8852) of the layer: quarter, half and full resolution.
    pub fn rid(self) -> &'static str {
        match self {
            Layer::Low => "q",
            Layer::Medium => "h",
            Layer::High => "f",
        }
    }

    pub fn from_rid(rid: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.rid() == rid)
    }

    pub fn width(self) -> u32 {
        match self {
            Layer::Low => 320,
            Layer::Medium => 640,
            Layer::High => 1280,
        }
    }

    pub fn height(self) -> u32 {
        match self {
            Layer::Low => 180,
            Layer::Medium => 360,
            Layer::High => 720,
        }
    }

    /// The bitrate budgeted for the layer; publishers cap each encoding at it.
    pub fn bitrate_bps(self) -> u64 {
        match self {
            Layer::Low => 150_000,
            Layer::Medium => 450_000,
            Layer::High => 1_200_000,
        }
    }

    /// The smallest layer that fills a tile of this size without upscaling (High if none).
    pub fn for_render_size(width: u32, height: u32) -> Layer {
        Layer::ALL
            .into_iter()
            .find(|l| l.width() >= width && l.height() >= height)
            .unwrap_or(Layer::High)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    H264,
}

impl VideoCodec {
    /// The name as SDP and the signaling protocol spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "VP8",
            VideoCodec::H264 => "H264",
        }
    }
}

/// What a publisher's camera should send (the signaling `VideoConstraints` message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoConstraints {
    pub codec: VideoCodec,
    /// The top encoding's size.
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// For the whole track: the sum of the encodings when simulcast.
    pub max_bitrate_kbps: u32,
    pub simulcast: bool,
    /// The encodings to send when simulcast, lowest first (each at [`Layer::width`] and
    /// [`Layer::bitrate_bps`]); empty otherwise.
    pub layers: Vec<Layer>,
}

/// Two-party video: what the one viewer gets, straight from the publisher's encoder.
const TWO_PARTY: (u32, u32, u32) = (1280, 720, 1500);
/// The low-end cap: 480p, and a bitrate within 500–1000 kbps that an old laptop or a phone on
/// a poor link can encode and carry.
const LOW_END: (u32, u32, u32) = (854, 480, 1000);
const VIDEO_FPS: u32 = 24;

impl VideoConstraints {
    fn single(codec: VideoCodec, (width, height, max_bitrate_kbps): (u32, u32, u32)) -> Self {
        Self {
            codec,
            width,
            height,
            fps: VIDEO_FPS,
            max_bitrate_kbps,
            simulcast: false,
            layers: Vec::new(),
        }
    }

    fn simulcast(codec: VideoCodec, layers: Vec<Layer>) -> Self {
        let top = layers.last().copied().unwrap_or(Layer::High);
        let total: u64 = layers.iter().map(|l| l.bitrate_bps()).sum();
        Self {
            codec,
            width: top.width(),
            height: top.height(),
            fps: VIDEO_FPS,
            max_bitrate_kbps: u32::try_from(total / 1000).unwrap_or(u32::MAX),
            simulcast: true,
            layers,
        }
    }
}

/// Ask `publisher` for a keyframe of `track`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyframeRequest {
    pub publisher: PeerId,
    pub track: TrackId,
    /// The simulcast layers that need one; empty means every stream of the track (the only
    /// one, when it is not simulcast).
    pub layers: Vec<Layer>,
}

/// Something the driver or signaling must act on, from [`Engine::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    /// Send this upstream (a PLI or FIR per layer).
    KeyframeRequest(KeyframeRequest),
    /// `subscriber` now gets `layer` of the track; `None` pauses it (no budget, or not shown).
    /// [`Engine::route`] switches at once and the new layer's keyframe has been asked for; until
    /// it arrives the subscriber cannot decode the new layer, so a driver that can spot
    /// keyframes should hold back the new layer's packets until one comes. Not sent when the
    /// pair ends altogether (unsubscribed, admission taken away, host mute, removal).
    LayerChanged {
        subscriber: PeerId,
        publisher: PeerId,
        track: TrackId,
        layer: Option<Layer>,
    },
    DominantSpeakerChanged(Option<PeerId>),
    NetworkScoreChanged {
        peer: PeerId,
        score: u8,
    },
    /// The room crossed [`SIMULCAST_MIN_PARTICIPANTS`]: publishers should be sent their new
    /// [`Engine::video_constraints_for`].
    SimulcastChanged(bool),
}

// ---- State. ----

#[derive(Debug, Default)]
struct Peer {
    admitted: bool,
    low_end: bool,
    /// From congestion control (TWCC, REMB), when the driver has it.
    bandwidth_bps: Option<u64>,
    /// From the loss in the peer's receiver reports, used when there is no estimate above.
    loss_estimate: LossBasedEstimate,
    /// How large this peer shows each publisher's camera.
    render_sizes: BTreeMap<PeerId, (u32, u32)>,
    tracks: BTreeMap<TrackId, Track>,
    quality: NetworkQuality,
}

#[derive(Debug)]
struct Track {
    kind: TrackKind,
    /// Sorted and deduplicated; always empty for audio.
    layers: Vec<Layer>,
    keyframe: KeyframeGate,
    /// The layer each subscriber gets, for simulcast tracks.
    chosen: BTreeMap<PeerId, LayerState>,
}

impl Track {
    fn is_simulcast(&self) -> bool {
        self.kind != TrackKind::Audio && self.layers.len() >= 2
    }

    /// Which stream of this track a packet tagged `layer` belongs to, or `None` if it belongs
    /// to none: an untagged packet on a simulcast track cannot be told apart, so it is dropped.
    fn stream(&self, layer: Option<Layer>) -> Option<Option<Layer>> {
        if self.is_simulcast() {
            return layer.filter(|l| self.layers.contains(l)).map(Some);
        }
        match (layer, self.layers.as_slice()) {
            (Some(tagged), [only]) if tagged != *only => None,
            _ => Some(None),
        }
    }

    /// The stream `subscriber` gets of this track; `None` when it gets none (paused, or not yet
    /// allocated).
    fn stream_for(&self, subscriber: &PeerId) -> Option<Option<Layer>> {
        if self.is_simulcast() {
            self.chosen
                .get(subscriber)
                .and_then(LayerState::current)
                .map(Some)
        } else {
            Some(None)
        }
    }
}

/// Allocation results: (publisher, track) → subscriber → (target layer, hidden).
type Targets = BTreeMap<(PeerId, TrackId), BTreeMap<PeerId, (Option<Layer>, bool)>>;

/// The decision engine of one room. See the module documentation.
#[derive(Debug)]
pub struct Engine {
    peers: BTreeMap<PeerId, Peer>,
    /// Publisher → its subscribers.
    subscriptions: BTreeMap<PeerId, BTreeSet<PeerId>>,
    /// Host mutes. Kept when a peer is removed, so a reconnect is not a way around one.
    forced_mutes: BTreeMap<PeerId, BTreeSet<TrackKind>>,
    auto_subscribe: bool,
    codec: VideoCodec,
    speaker: SpeakerDetector,
    /// The simulcast state last announced.
    simulcast: bool,
    events: VecDeque<EngineEvent>,
    /// The latest `now` the engine has been given.
    last_now: Option<Instant>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// An empty room that subscribes every admitted peer to every other one.
    pub fn new() -> Self {
        Self {
            peers: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            forced_mutes: BTreeMap::new(),
            auto_subscribe: true,
            codec: VideoCodec::Vp8,
            speaker: SpeakerDetector::default(),
            simulcast: false,
            events: VecDeque::new(),
            last_now: None,
        }
    }

    // ---- Admission and subscriptions. ----

    /// Whether subscriptions follow admission (the default): admitting a peer subscribes it to
    /// every admitted peer and them to it. Off, subscriptions are only what is asked for.
    pub fn set_auto_subscribe(&mut self, on: bool) {
        self.auto_subscribe = on;
    }

    /// Admits a peer to media or takes it away. Taking it away stops all routing to and from
    /// the peer at once; its tracks, subscriptions and host mutes are kept for a re-admission.
    pub fn set_admitted(&mut self, peer: &PeerId, admitted: bool) {
        let p = self.peers.entry(peer.clone()).or_default();
        if p.admitted == admitted {
            return;
        }
        p.admitted = admitted;
        if admitted {
            if self.auto_subscribe {
                let others: Vec<PeerId> = self
                    .admitted_peers()
                    .filter(|other| *other != peer)
                    .cloned()
                    .collect();
                for other in others {
                    self.insert_subscription(peer, &other);
                    self.insert_subscription(&other, peer);
                }
            }
        } else {
            self.forget_speaker(peer);
        }
        self.announce_simulcast();
        self.reallocate(None);
    }

    pub fn is_admitted(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|p| p.admitted)
    }

    pub fn admitted_count(&self) -> usize {
        self.admitted_peers().count()
    }

    /// Forgets a peer that left or was removed: its tracks, subscriptions, estimates and scores.
    /// Host mutes on it are kept: a participant muted by the host is still muted on reconnect.
    pub fn remove_peer(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
        self.subscriptions.remove(peer);
        for subscribers in self.subscriptions.values_mut() {
            subscribers.remove(peer);
        }
        self.subscriptions
            .retain(|_, subscribers| !subscribers.is_empty());
        for p in self.peers.values_mut() {
            p.render_sizes.remove(peer);
            for track in p.tracks.values_mut() {
                track.chosen.remove(peer);
            }
        }
        self.forget_speaker(peer);
        self.announce_simulcast();
        self.reallocate(None);
    }

    /// `subscriber` receives `publisher`'s tracks (while both are admitted). True if new.
    pub fn subscribe(&mut self, subscriber: &PeerId, publisher: &PeerId) -> bool {
        let added = self.insert_subscription(subscriber, publisher);
        if added {
            self.reallocate(None);
        }
        added
    }

    /// Stops `subscriber` receiving `publisher`'s tracks, at once. True if it did.
    pub fn unsubscribe(&mut self, subscriber: &PeerId, publisher: &PeerId) -> bool {
        let Some(subscribers) = self.subscriptions.get_mut(publisher) else {
            return false;
        };
        let removed = subscribers.remove(subscriber);
        if subscribers.is_empty() {
            self.subscriptions.remove(publisher);
        }
        if removed {
            self.reallocate(None);
        }
        removed
    }

    /// The publishers `subscriber` is subscribed to, in id order.
    pub fn subscriptions_of(&self, subscriber: &PeerId) -> Vec<PeerId> {
        self.subscriptions
            .iter()
            .filter(|(_, subscribers)| subscribers.contains(subscriber))
            .map(|(publisher, _)| publisher.clone())
            .collect()
    }

    pub fn is_subscribed(&self, subscriber: &PeerId, publisher: &PeerId) -> bool {
        self.subscriptions
            .get(publisher)
            .is_some_and(|s| s.contains(subscriber))
    }

    /// Subscribes every admitted peer to every other admitted peer; returns the new
    /// `(subscriber, publisher)` pairs, in order.
    pub fn subscribe_all_admitted(&mut self) -> Vec<(PeerId, PeerId)> {
        let admitted: Vec<PeerId> = self.admitted_peers().cloned().collect();
        let mut added = Vec::new();
        for subscriber in &admitted {
            for publisher in &admitted {
                if self.insert_subscription(subscriber, publisher) {
                    added.push((subscriber.clone(), publisher.clone()));
                }
            }
        }
        if !added.is_empty() {
            self.reallocate(None);
        }
        added
    }

    // ---- Tracks and mutes. ----

    /// Adds a published track, or updates it (a renegotiation that changed its layers). `layers`
    /// are the simulcast layers it is sent in; empty or one means not simulcast. Audio has none.
    pub fn add_track(
        &mut self,
        publisher: &PeerId,
        track: &TrackId,
        kind: TrackKind,
        layers: Vec<Layer>,
    ) {
        let mut layers = if kind == TrackKind::Audio {
            Vec::new()
        } else {
            layers
        };
        layers.sort();
        layers.dedup();
        let p = self.peers.entry(publisher.clone()).or_default();
        match p.tracks.get_mut(track) {
            Some(existing) => {
                if existing.kind != kind || existing.layers != layers {
                    // A layer came or went (a browser pauses its top layer on a weak uplink):
                    // subscribers on a layer that is still sent keep it; otherwise old choices
                    // mean nothing for the new shape. The keyframe gate stays so the change
                    // cannot reset its throttle.
                    let reshaped = existing.kind != kind
                        || (existing.layers.len() >= 2) != (layers.len() >= 2);
                    if reshaped {
                        existing.chosen.clear();
                    } else {
                        existing
                            .chosen
                            .retain(|_, state| state.current().is_none_or(|l| layers.contains(&l)));
                    }
                    existing.kind = kind;
                    existing.layers = layers;
                }
            }
            None => {
                p.tracks.insert(
                    track.clone(),
                    Track {
                        kind,
                        layers,
                        keyframe: KeyframeGate::default(),
                        chosen: BTreeMap::new(),
                    },
                );
            }
        }
        self.reallocate(None);
    }

    /// Stops forwarding a track at once and forgets it.
    pub fn remove_track(&mut self, publisher: &PeerId, track: &TrackId) {
        let removed = self
            .peers
            .get_mut(publisher)
            .and_then(|p| p.tracks.remove(track));
        if removed.is_some() {
            self.reallocate(None);
        }
    }

    /// A host mutes `peer`'s tracks of `kind`: they are not forwarded until the participant
    /// unmutes themself with [`Engine::set_self_unmuted`]. There is deliberately no way for
    /// anyone else to lift it: the host can ask, only the participant can turn their microphone
    /// or camera back on.
    pub fn set_forced_mute(&mut self, peer: &PeerId, kind: TrackKind) {
        if self
            .forced_mutes
            .entry(peer.clone())
            .or_default()
            .insert(kind)
        {
            self.reallocate(None);
        }
    }

    /// The participant `peer` turns their own `kind` back on, lifting a host mute. Signaling
    /// calls this only for a request from `peer`'s own connection.
    pub fn set_self_unmuted(&mut self, peer: &PeerId, kind: TrackKind) {
        let Some(kinds) = self.forced_mutes.get_mut(peer) else {
            return;
        };
        let lifted = kinds.remove(&kind);
        if kinds.is_empty() {
            self.forced_mutes.remove(peer);
        }
        if lifted {
            self.reallocate(None);
        }
    }

    pub fn is_forced_muted(&self, peer: &PeerId, kind: TrackKind) -> bool {
        self.forced_mutes
            .get(peer)
            .is_some_and(|k| k.contains(&kind))
    }

    // ---- Forwarding. ----

    /// Who gets a packet `from` sent on `track` (tagged with its simulcast `layer`, if any), in
    /// id order. Empty unless the sender is admitted and the track is not host-muted; each
    /// recipient is admitted, subscribed, and for a simulcast track gets exactly this layer.
    pub fn route(&self, from: &PeerId, track: &TrackId, layer: Option<Layer>) -> Vec<PeerId> {
        let Some(t) = self.published(from, track) else {
            return Vec::new();
        };
        let Some(stream) = t.stream(layer) else {
            return Vec::new();
        };
        let Some(subscribers) = self.subscriptions.get(from) else {
            return Vec::new();
        };
        subscribers
            .iter()
            .filter(|s| *s != from && self.is_admitted(s) && t.stream_for(s) == Some(stream))
            .cloned()
            .collect()
    }

    /// The stream of `track` that `subscriber` gets: `None` when it gets nothing (not admitted,
    /// not subscribed, host-muted, paused, or not yet allocated), `Some(None)` for the one
    /// stream of a track that is not simulcast, `Some(Some(layer))` for a simulcast layer.
    /// The driver asks this after every change and caches the answer per subscriber leg.
    pub fn stream_for(
        &self,
        subscriber: &PeerId,
        publisher: &PeerId,
        track: &TrackId,
    ) -> Option<Option<Layer>> {
        self.deliverable(subscriber, publisher, track)?
            .stream_for(subscriber)
    }

    /// Which stream of `track` a packet tagged `layer` belongs to (see [`Engine::stream_for`]);
    /// `None` for a packet that belongs to none (an untagged packet on a simulcast track).
    pub fn stream_of(
        &self,
        publisher: &PeerId,
        track: &TrackId,
        layer: Option<Layer>,
    ) -> Option<Option<Layer>> {
        self.peers.get(publisher)?.tracks.get(track)?.stream(layer)
    }

    // ---- Keyframes. ----

    /// A subscriber asks for a keyframe (its PLI or FIR) on a track it receives. Returns the
    /// upstream request if one goes out now; inside the throttle window the want is merged into
    /// a request that [`Engine::handle_timeout`] sends when the window ends.
    pub fn on_keyframe_request(
        &mut self,
        subscriber: &PeerId,
        publisher: &PeerId,
        track: &TrackId,
        now: Instant,
    ) -> Option<KeyframeRequest> {
        self.clock(now);
        let t = self.deliverable(subscriber, publisher, track)?;
        if t.kind == TrackKind::Audio {
            return None;
        }
        let stream = t.stream_for(subscriber)?;
        self.want_keyframe(publisher, track, stream, now)
    }

    /// `subscriber` starts receiving `publisher`'s tracks (its downstream tracks are
    /// negotiated): a decoder cannot start without a keyframe, so one is asked for every video
    /// track at once, throttle permitting (see [`Engine::on_keyframe_request`]).
    pub fn on_subscribe_start(
        &mut self,
        subscriber: &PeerId,
        publisher: &PeerId,
        now: Instant,
    ) -> Vec<KeyframeRequest> {
        self.clock(now);
        let wanted: Vec<(TrackId, Option<Layer>)> = self
            .peers
            .get(publisher)
            .map(|p| {
                p.tracks
                    .iter()
                    .filter(|(_, t)| t.kind != TrackKind::Audio)
                    .filter(|(id, _)| self.deliverable(subscriber, publisher, id).is_some())
                    .filter_map(|(id, t)| Some((id.clone(), t.stream_for(subscriber)?)))
                    .collect()
            })
            .unwrap_or_default();
        wanted
            .into_iter()
            .filter_map(|(track, stream)| self.want_keyframe(publisher, &track, stream, now))
            .collect()
    }

    // ---- Simulcast and layers. ----

    /// Whether publishers should send simulcast: from [`SIMULCAST_MIN_PARTICIPANTS`] admitted.
    pub fn simulcast_enabled(&self) -> bool {
        self.admitted_count() >= SIMULCAST_MIN_PARTICIPANTS
    }

    /// The codec publishers are asked for; VP8 unless the room asks otherwise.
    pub fn set_video_codec(&mut self, codec: VideoCodec) {
        self.codec = codec;
    }

    pub fn video_codec(&self) -> VideoCodec {
        self.codec
    }

    /// What a camera in this room should send, for a device that is not low-end: 720p at 24 fps
    /// in a two-party call (480p if either side is low-end: the one viewer cannot use more, or
    /// the publisher cannot encode more), all three layers when simulcast.
    pub fn video_constraints(&self) -> VideoConstraints {
        if self.simulcast_enabled() {
            return VideoConstraints::simulcast(self.codec, Layer::ALL.to_vec());
        }
        let low = self
            .admitted_peers()
            .any(|p| self.peers.get(p).is_some_and(|p| p.low_end));
        VideoConstraints::single(self.codec, if low { LOW_END } else { TWO_PARTY })
    }

    /// What `publisher`'s camera should send: [`Engine::video_constraints`], capped for a
    /// low-end publisher (480p in a two-party call; only the low and medium layers, 600 kbps in
    /// all, when simulcast).
    pub fn video_constraints_for(&self, publisher: &PeerId) -> VideoConstraints {
        let low_end = self.peers.get(publisher).is_some_and(|p| p.low_end);
        match (self.simulcast_enabled(), low_end) {
            (true, true) => {
                VideoConstraints::simulcast(self.codec, vec![Layer::Low, Layer::Medium])
            }
            (false, true) => VideoConstraints::single(self.codec, LOW_END),
            (_, false) => self.video_constraints(),
        }
    }

    /// Marks a low-end device: it publishes at most 480p, and receives at most the medium layer.
    pub fn set_low_end(&mut self, peer: &PeerId, low_end: bool) {
        self.peers.entry(peer.clone()).or_default().low_end = low_end;
        self.reallocate(None);
    }

    /// The subscriber's downlink estimate from congestion control (TWCC or REMB), in bit/s.
    /// A lower estimate drops layers at once; a higher one raises them after [`UPGRADE_HOLD`].
    pub fn set_bandwidth_estimate(&mut self, subscriber: &PeerId, bps: u64) {
        self.peers
            .entry(subscriber.clone())
            .or_default()
            .bandwidth_bps = Some(bps);
        self.reallocate(None);
    }

    /// How large `subscriber` shows `publisher`'s camera, in pixels; 0 × 0 when not at all
    /// (the video is paused for it). Screen shares are not sized by this.
    pub fn set_render_size(
        &mut self,
        subscriber: &PeerId,
        publisher: &PeerId,
        width: u32,
        height: u32,
    ) {
        self.peers
            .entry(subscriber.clone())
            .or_default()
            .render_sizes
            .insert(publisher.clone(), (width, height));
        self.reallocate(None);
    }

    /// The layer `subscriber` gets of a simulcast track. `None` if it gets nothing of it
    /// (paused, not subscribed, not admitted) and for tracks that are not simulcast, whose one
    /// stream every subscriber gets.
    pub fn layer_for(
        &self,
        subscriber: &PeerId,
        publisher: &PeerId,
        track: &TrackId,
    ) -> Option<Layer> {
        let t = self.deliverable(subscriber, publisher, track)?;
        if !t.is_simulcast() {
            return None;
        }
        t.stream_for(subscriber).flatten()
    }

    // ---- Speaker and network quality. ----

    /// An RFC 6464 audio level from `peer`: `level_dbov` 0 (loudest) to 127 (silence).
    pub fn on_audio_level(
        &mut self,
        peer: &PeerId,
        level_dbov: u8,
        voice_activity: bool,
        now: Instant,
    ) {
        self.clock(now);
        if !self.is_admitted(peer) {
            return;
        }
        // A host-muted microphone is heard by nobody, so it cannot hold the floor.
        let voice = voice_activity && !self.is_forced_muted(peer, TrackKind::Audio);
        self.speaker.observe(peer, level_dbov, voice, now);
        if self.evaluate_speaker(now) {
            self.settle(now);
        }
    }

    pub fn dominant_speaker(&self) -> Option<PeerId> {
        self.speaker.current().cloned()
    }

    /// Receiver report figures for what `peer` receives: `loss_fraction` 0.0–1.0, interarrival
    /// jitter and round trip in milliseconds. They make its network score, and (until a
    /// congestion controller's estimate is given) its downlink estimate from loss (the
    /// `bandwidth` submodule).
    pub fn on_receiver_report(
        &mut self,
        peer: &PeerId,
        loss_fraction: f64,
        jitter_ms: f64,
        rtt_ms: f64,
        now: Instant,
    ) {
        self.clock(now);
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        if let Some(score) = p.quality.report(loss_fraction, jitter_ms, rtt_ms, now) {
            self.events.push_back(EngineEvent::NetworkScoreChanged {
                peer: peer.clone(),
                score,
            });
        }
        let before = p.loss_estimate.bps();
        let after = p.loss_estimate.report(loss_fraction, now);
        if p.bandwidth_bps.is_none() && after != before {
            // Lower at once, higher after the hold, as for any estimate.
            self.settle(now);
        }
    }

    /// 5 excellent, 4 good, 3 fair, 2 poor, 1 very poor, 0 no data (see the `quality`
    /// submodule for the thresholds).
    pub fn network_score(&self, peer: &PeerId) -> u8 {
        self.peers.get(peer).map_or(0, |p| p.quality.score())
    }

    // ---- Time and events. ----

    /// Lets time pass: speaker hand-overs, held layer upgrades, deferred keyframe requests,
    /// score recoveries and stale scores.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.clock(now);
        self.evaluate_speaker(now);
        for (id, p) in &mut self.peers {
            if let Some(score) = p.quality.tick(now) {
                self.events.push_back(EngineEvent::NetworkScoreChanged {
                    peer: id.clone(),
                    score,
                });
            }
        }
        self.settle(now);
    }

    /// When [`Engine::handle_timeout`] is next needed, if anything is waiting on time. An
    /// instant in the past means now.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut deadlines = vec![self.speaker.deadline()];
        for p in self.peers.values() {
            deadlines.push(p.quality.deadline());
            for t in p.tracks.values() {
                deadlines.push(t.keyframe.deadline().and_then(|at| at.or(self.last_now)));
                deadlines.extend(
                    t.chosen
                        .values()
                        .filter_map(LayerState::deadline)
                        .map(|at| at.or(self.last_now)),
                );
            }
        }
        deadlines.into_iter().flatten().min()
    }

    pub fn poll_event(&mut self) -> Option<EngineEvent> {
        self.events.pop_front()
    }

    // ---- Internals. ----

    fn clock(&mut self, now: Instant) {
        self.last_now = Some(self.last_now.map_or(now, |t| t.max(now)));
    }

    fn admitted_peers(&self) -> impl Iterator<Item = &PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| p.admitted)
            .map(|(id, _)| id)
    }

    fn insert_subscription(&mut self, subscriber: &PeerId, publisher: &PeerId) -> bool {
        subscriber != publisher
            && self
                .subscriptions
                .entry(publisher.clone())
                .or_default()
                .insert(subscriber.clone())
    }

    /// A track whose packets may be forwarded at all: admitted publisher, not host-muted.
    fn published(&self, publisher: &PeerId, track: &TrackId) -> Option<&Track> {
        let t = self
            .peers
            .get(publisher)
            .filter(|p| p.admitted)?
            .tracks
            .get(track)?;
        (!self.is_forced_muted(publisher, t.kind)).then_some(t)
    }

    fn receives_from(&self, subscriber: &PeerId, publisher: &PeerId) -> bool {
        subscriber != publisher
            && self.is_admitted(subscriber)
            && self.is_admitted(publisher)
            && self.is_subscribed(subscriber, publisher)
    }

    /// The track, if `subscriber` may receive it (whichever layer).
    fn deliverable(
        &self,
        subscriber: &PeerId,
        publisher: &PeerId,
        track: &TrackId,
    ) -> Option<&Track> {
        if !self.receives_from(subscriber, publisher) {
            return None;
        }
        self.published(publisher, track)
    }

    fn want_keyframe(
        &mut self,
        publisher: &PeerId,
        track: &TrackId,
        stream: Option<Layer>,
        now: Instant,
    ) -> Option<KeyframeRequest> {
        let gate = &mut self
            .peers
            .get_mut(publisher)?
            .tracks
            .get_mut(track)?
            .keyframe;
        gate.want(stream);
        let layers = gate.try_send(now)?;
        Some(KeyframeRequest {
            publisher: publisher.clone(),
            track: track.clone(),
            layers,
        })
    }

    fn forget_speaker(&mut self, peer: &PeerId) {
        if self.speaker.forget(peer) {
            self.events
                .push_back(EngineEvent::DominantSpeakerChanged(None));
        }
    }

    /// Re-decides the dominant speaker; true (and an event) when it changed.
    fn evaluate_speaker(&mut self, now: Instant) -> bool {
        let peers = &self.peers;
        let mutes = &self.forced_mutes;
        let eligible = |p: &PeerId| {
            peers.get(p).is_some_and(|p| p.admitted)
                && !mutes.get(p).is_some_and(|k| k.contains(&TrackKind::Audio))
        };
        if !self.speaker.evaluate(eligible, now) {
            return false;
        }
        self.events.push_back(EngineEvent::DominantSpeakerChanged(
            self.speaker.current().cloned(),
        ));
        true
    }

    fn announce_simulcast(&mut self) {
        let enabled = self.simulcast_enabled();
        if enabled != self.simulcast {
            self.simulcast = enabled;
            self.events
                .push_back(EngineEvent::SimulcastChanged(enabled));
        }
    }

    /// What a timed call does after its own work: layers move, then keyframe requests that are
    /// due (including those the layer moves just asked for) go out.
    fn settle(&mut self, now: Instant) {
        self.reallocate(Some(now));
        for (id, p) in &mut self.peers {
            for (track, t) in &mut p.tracks {
                if let Some(layers) = t.keyframe.try_send(now) {
                    self.events
                        .push_back(EngineEvent::KeyframeRequest(KeyframeRequest {
                            publisher: id.clone(),
                            track: track.clone(),
                            layers,
                        }));
                }
            }
        }
    }

    /// The highest layer worth sending `subscriber` of a track; `None` when it is not shown.
    fn layer_cap(&self, subscriber: &Peer, publisher: &PeerId, track: &Track) -> Option<Layer> {
        let mut cap = Layer::High;
        if track.kind == TrackKind::Video
            && let Some(&(width, height)) = subscriber.render_sizes.get(publisher)
        {
            if width == 0 || height == 0 {
                return None;
            }
            cap = Layer::for_render_size(width, height);
        }
        if subscriber.low_end {
            // Medium (360p) is the largest layer within the 480p low-end cap.
            cap = cap.min(Layer::Medium);
        }
        Some(cap)
    }

    /// Re-runs layer allocation for every subscriber and moves each choice towards it, with
    /// the hysteresis of [`LayerState::update`]. Changes are queued as events, and each new
    /// layer wants a keyframe.
    fn reallocate(&mut self, now: Option<Instant>) {
        let dominant = self.speaker.current();
        let mut targets: Targets = BTreeMap::new();
        for (sub_id, sub) in self.peers.iter().filter(|(_, p)| p.admitted) {
            let mut reserved = 0u64;
            let mut wants = Vec::new();
            let mut keys = Vec::new();
            for (pub_id, publisher) in &self.peers {
                // Most peers of a large room publish nothing: skip them before the costlier
                // question of whether they are received (ordered sets keyed by strings).
                if publisher.tracks.is_empty() || !self.receives_from(sub_id, pub_id) {
                    continue;
                }
                for (track_id, t) in &publisher.tracks {
                    if self.is_forced_muted(pub_id, t.kind) {
                        continue;
                    }
                    if t.kind == TrackKind::Audio {
                        reserved += AUDIO_RESERVE_BPS;
                    } else if !t.is_simulcast() {
                        reserved += t
                            .layers
                            .first()
                            .map_or(UNLAYERED_VIDEO_BPS, |l| l.bitrate_bps());
                    } else {
                        let cap = self.layer_cap(sub, pub_id, t);
                        let priority = if t.kind == TrackKind::Screen || dominant == Some(pub_id) {
                            Priority::High
                        } else {
                            Priority::Standard
                        };
                        wants.push(Want {
                            layers: &t.layers,
                            cap,
                            priority,
                        });
                        keys.push((pub_id, track_id, cap.is_none()));
                    }
                }
            }
            let budget = sub
                .bandwidth_bps
                .unwrap_or(sub.loss_estimate.bps())
                .saturating_sub(reserved);
            let chosen = layers::allocate(budget, &wants);
            for ((pub_id, track_id, hidden), target) in keys.into_iter().zip(chosen) {
                targets
                    .entry((pub_id.clone(), track_id.clone()))
                    .or_default()
                    .insert(sub_id.clone(), (target, hidden));
            }
        }

        for (pub_id, p) in &mut self.peers {
            for (track_id, t) in &mut p.tracks {
                let wanted = targets
                    .remove(&(pub_id.clone(), track_id.clone()))
                    .unwrap_or_default();
                // Pairs that no longer receive the track start afresh if they ever do again.
                t.chosen.retain(|sub, _| wanted.contains_key(sub));
                for (sub, (target, hidden)) in wanted {
                    let changed = match t.chosen.get_mut(&sub) {
                        Some(state) => state.update(target, hidden, now),
                        None => {
                            t.chosen
                                .insert(sub.clone(), LayerState::new(target, hidden));
                            // Starting paused is no change: nothing was being sent.
                            target.is_some()
                        }
                    };
                    if !changed {
                        continue;
                    }
                    let layer = t.chosen.get(&sub).and_then(LayerState::current);
                    if let Some(layer) = layer {
                        // The new layer's stream is undecodable without its own keyframe.
                        t.keyframe.want(Some(layer));
                    }
                    self.events.push_back(EngineEvent::LayerChanged {
                        subscriber: sub,
                        publisher: pub_id.clone(),
                        track: track_id.clone(),
                        layer,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
