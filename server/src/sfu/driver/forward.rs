//! The media path: publishing tracks, forwarding RTP, relaying keyframe requests, audio levels.
//!
//! Each packet is decrypted once, by the publisher's connection, and arrives here in the
//! clear, from one of the track's encodings (the only one, or a simulcast layer). For every
//! subscriber connection holding a sender for the track, the engine's cached answer says
//! whether that encoding is the one it gets; if so the packet is re-addressed (the subscriber
//! leg's SSRC, sequence numbers and timestamps, and payload type, the audio level extension at
//! the subscriber leg's id, other extensions dropped because their ids were negotiated on the
//! other leg) and written to that connection, which encrypts it for that client. A sender that
//! is to move to another layer keeps getting the old one until a keyframe of the new one
//! arrives.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rtc::peer_connection::event::RTCTrackEventInit;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::RTCRtpTransceiverId;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;

use super::event_loop::{Driver, InboundStream, LAYER_IDLE, PublishedTrack, flush_and_rearm};
use super::feedback::{KeyframeFormat, is_keyframe_request};
use super::peer::{AUDIO_LEVEL_URI, PcEntry, SendParams, TrackKey, guard};
use super::rooms::{engine_kind, engine_peer, engine_track};
use super::{
    AUDIO_LEVEL_INTERVAL, KeyframeReason, Layer, MediaKind, PcId, PcKind, PcState, PeerId,
    SfuError, SfuEvent,
};

/// A layer switch whose keyframe has not come after this long asks for one again (the engine's
/// gate still spaces requests).
const SWITCH_KEYFRAME_RETRY: Duration = Duration::from_millis(1000);

/// A keyframe asked for when a subscriber leg became able to receive stands for the request
/// its first forwarded packet would make, if that packet comes within this long.
const PRIMED_KEYFRAME_COVERS: Duration = Duration::from_millis(1000);

/// The negotiated payload type and audio-level id for a sender, cached per negotiation.
fn send_params(entry: &mut PcEntry, key: &TrackKey) -> Result<Option<SendParams>, SfuError> {
    let generation = entry.generation;
    let Some(slot) = entry.slots.get(key) else {
        return Ok(None);
    };
    if let Some(params) = slot.params
        && params.generation == generation
    {
        return Ok(Some(params));
    }
    let (sender_id, mime) = (slot.sender_id, slot.mime_type.clone());
    let computed = guard(|| {
        entry.pc.rtp_sender(sender_id).map(|mut sender| {
            let parameters = sender.get_parameters();
            let payload_type = parameters
                .rtp_parameters
                .codecs
                .iter()
                .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(&mime))
                .map(|c| c.payload_type);
            let audio_level_id = parameters
                .rtp_parameters
                .header_extensions
                .iter()
                .find(|h| h.uri == AUDIO_LEVEL_URI)
                .and_then(|h| u8::try_from(h.id).ok());
            SendParams {
                generation,
                payload_type,
                audio_level_id,
            }
        })
    })?;
    if let (Some(params), Some(slot)) = (computed, entry.slots.get_mut(key)) {
        slot.params = Some(params);
    }
    Ok(computed)
}

impl Driver {
    /// Asks the publishers for a keyframe of every video track a subscriber connection can
    /// now receive (connected, and the client has answered the offer listing it), as soon as
    /// it can. Waiting for the first forwarded packet, as a leg that starts forwarding later
    /// still does, costs a joining patient up to a frame interval more of black tile.
    pub(super) fn prime_keyframes(&mut self, id: PcId, now: Instant) {
        let Some(entry) = self.pcs.get_mut(&id) else {
            return;
        };
        let connected = entry.state == PcState::Connected;
        if entry.kind != PcKind::Subscriber || !connected {
            return;
        }
        let peer = entry.peer.clone();
        let mut keys = Vec::new();
        for (key, slot) in &mut entry.slots {
            if slot.kind == MediaKind::Video
                && slot.receivable(connected).is_some()
                && !slot.forwarding
                && slot.keyframe_primed.is_none()
            {
                slot.keyframe_primed = Some(now);
                keys.push(key.clone());
            }
        }
        for key in keys {
            let reason = KeyframeReason::NewSubscriber {
                subscriber: peer.clone(),
            };
            self.request_keyframe(&peer, &key, reason, now);
        }
    }

    /// An encoding of a publisher's track delivered its first packet: publish the track, or
    /// add the layer to it.
    pub(super) fn on_track_open(&mut self, id: PcId, init: RTCTrackEventInit) {
        let Some(entry) = self.pcs.get_mut(&id) else {
            return;
        };
        if entry.kind != PcKind::Publisher {
            return;
        }
        let receiver_id = init.receiver_id;
        let transceiver: RTCRtpTransceiverId = receiver_id.into();
        let probed = guard(|| {
            let mid = entry
                .pc
                .rtp_transceiver(transceiver)
                .and_then(|t| t.mid().clone())?;
            let mut receiver = entry.pc.rtp_receiver(receiver_id)?;
            let kind = receiver.track().kind();
            let codec = receiver.track().codec(init.ssrc).cloned()?;
            let audio_level_id = receiver
                .get_parameters()
                .rtp_parameters
                .header_extensions
                .iter()
                .find(|h| h.uri == AUDIO_LEVEL_URI)
                .and_then(|h| u8::try_from(h.id).ok());
            Some((mid, kind, codec, audio_level_id))
        });
        let (mid, kind, codec, audio_level_id) = match probed {
            Ok(Some(found)) => found,
            Ok(None) => {
                tracing::debug!(peer = %entry.peer, "track opened without mid or codec; ignored");
                return;
            }
            Err(_) => {
                self.poison(id);
                return;
            }
        };
        let kind = match kind {
            RtpCodecKind::Audio => MediaKind::Audio,
            RtpCodecKind::Video => MediaKind::Video,
            _ => return,
        };
        let rid = init.rid.as_deref().filter(|r| !r.is_empty());
        let layer = rid.and_then(Layer::from_rid);
        if rid.is_some() && layer.is_none() {
            tracing::debug!(peer = %entry.peer, mid = %mid, "encoding with an unknown rid; ignored");
            return;
        }
        entry.receivers.insert(init.track_id.clone(), mid.clone());
        let peer = entry.peer.clone();
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        let stream = InboundStream {
            layer,
            ssrc: init.ssrc,
            routed_as: None,
            last_seen: Instant::now(),
            active: true,
        };
        if let Some(track) = state.published.get_mut(&mid) {
            if track.streams.iter().any(|s| s.ssrc == init.ssrc) {
                return;
            }
            // A layer that comes back with a new SSRC replaces its old self.
            track.streams.retain(|s| s.layer != layer);
            track.streams.push(stream);
            tracing::debug!(peer = %peer, mid = %mid, ?layer, "encoding added");
            self.publish_to_engine(&peer, &mid);
            return;
        }
        let key = TrackKey {
            publisher: peer.clone(),
            mid: mid.clone(),
        };
        // Subscriber connections may still hold a sender for this key from before a restart.
        let subscribers: Vec<PcId> = self
            .pcs
            .values()
            .filter(|e| e.kind == PcKind::Subscriber && e.slots.contains_key(&key))
            .map(|e| e.id)
            .collect();
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        state.published.insert(
            mid.clone(),
            PublishedTrack {
                track_id: init.track_id.clone(),
                kind,
                keyframes: KeyframeFormat::for_mime(&codec.mime_type),
                codec,
                streams: vec![stream],
                receiver_id,
                audio_level_id,
                last_level_event: None,
                subscribers,
            },
        );
        tracing::info!(peer = %peer, mid = %mid, kind = ?kind, ?layer, "track published");
        self.publish_to_engine(&peer, &mid);
        self.emit(SfuEvent::TrackPublished {
            peer: peer.clone(),
            track_id: init.track_id,
            kind,
            mid,
        });
        self.renegotiate_subscribers_of(&peer);
    }

    /// Tells the engine the track's current shape, and learns which of its streams each
    /// encoding is.
    fn publish_to_engine(&mut self, peer: &PeerId, mid: &str) {
        let Some(track) = self.peers.get(peer).and_then(|s| s.published.get(mid)) else {
            return;
        };
        let (kind, layers) = (engine_kind(track.kind), track.layers());
        let engine_id = engine_track(mid);
        self.with_engine(peer, None, true, |e, me| {
            e.add_track(me, &engine_id, kind, layers)
        });
        let me = engine_peer(peer);
        let routed: Vec<Option<Option<Layer>>> = match (
            self.engine_of(peer),
            self.peers.get(peer).and_then(|s| s.published.get(mid)),
        ) {
            (Some(engine), Some(track)) => track
                .streams
                .iter()
                .map(|s| engine.stream_of(&me, &engine_id, s.layer))
                .collect(),
            _ => return,
        };
        if let Some(track) = self
            .peers
            .get_mut(peer)
            .and_then(|s| s.published.get_mut(mid))
        {
            for (stream, routed_as) in track.streams.iter_mut().zip(routed) {
                stream.routed_as = routed_as;
            }
        }
    }

    /// One decrypted RTP packet from a publisher.
    pub(super) fn on_rtp(
        &mut self,
        id: PcId,
        track_id: &str,
        mut packet: rtc::rtp::Packet,
        now: Instant,
    ) {
        let Some(entry) = self.pcs.get_mut(&id) else {
            return;
        };
        if entry.kind != PcKind::Publisher {
            return;
        }
        entry.counters.rtp_packets += 1;
        let Some(mid) = entry.receivers.get(track_id) else {
            return;
        };
        let key = TrackKey {
            publisher: entry.peer.clone(),
            mid: mid.clone(),
        };
        let Some(state) = self.peers.get_mut(&key.publisher) else {
            return;
        };
        let Some(track) = state.published.get_mut(&key.mid) else {
            return;
        };
        let Some(stream) = track
            .streams
            .iter_mut()
            .find(|s| s.ssrc == packet.header.ssrc)
        else {
            return;
        };
        stream.last_seen = now;
        let reactivated = !std::mem::replace(&mut stream.active, true);
        let track = if reactivated {
            // A paused layer is back: the engine may choose it again.
            self.publish_to_engine(&key.publisher, &key.mid);
            let Some(track) = self
                .peers
                .get_mut(&key.publisher)
                .and_then(|s| s.published.get_mut(&key.mid))
            else {
                return;
            };
            track
        } else {
            track
        };
        let Some(routed_as) = track
            .streams
            .iter()
            .find(|s| s.ssrc == packet.header.ssrc)
            .and_then(|s| s.routed_as)
        else {
            return;
        };
        let (kind, keyframes) = (track.kind, track.keyframes);

        let level = track
            .audio_level_id
            .and_then(|ext| packet.header.get_extension(ext));
        if let Some(level) = level.as_ref().and_then(|l| l.first())
            && track
                .last_level_event
                .is_none_or(|last| now.saturating_duration_since(last) >= AUDIO_LEVEL_INTERVAL)
        {
            track.last_level_event = Some(now);
            let level_dbov = level & 0x7f;
            self.emit(SfuEvent::AudioLevel {
                peer: key.publisher.clone(),
                level_dbov,
            });
            // Silence is 127; clients send it while muted, so anything louder is a voice.
            self.with_engine(&key.publisher, Some(now), false, |e, me| {
                e.on_audio_level(me, level_dbov, level_dbov < 127, now)
            });
        }
        let Some(track) = self
            .peers
            .get(&key.publisher)
            .and_then(|s| s.published.get(&key.mid))
        else {
            return;
        };
        if track.subscribers.is_empty() {
            return;
        }
        let subscribers = track.subscribers.clone();

        // Extension ids belong to the publisher's negotiation; the subscriber leg has its own.
        packet.header.extension = false;
        packet.header.extensions.clear();
        packet.header.extensions_padding = 0;
        packet.header.extension_profile = 0;
        // Only looked at when a sender waits for a layer switch.
        let mut starts_keyframe: Option<bool> = None;

        let mut new_receivers = Vec::new();
        let mut slow_switches = Vec::new();
        let mut poisoned = Vec::new();
        for sub_id in subscribers {
            let Some(sub) = self.pcs.get_mut(&sub_id) else {
                continue;
            };
            let connected = sub.state == PcState::Connected;
            let Some(slot) = sub.slots.get_mut(&key) else {
                continue;
            };
            let Some(want) = slot.receivable(connected) else {
                slot.forwarding = false;
                continue;
            };
            if slot.current != Some(want) {
                let switch = (slot.current.is_some() || slot.continues) && kind == MediaKind::Video;
                if routed_as == want
                    && (!switch
                        || *starts_keyframe
                            .get_or_insert_with(|| keyframes.starts_keyframe(&packet.payload)))
                {
                    slot.current = Some(want);
                    slot.switch_since = None;
                    slot.continues = false;
                } else if slot.current == Some(routed_as)
                    || (slot.current.is_none() && routed_as == want)
                {
                    // The old layer carries on until the new one can be decoded; a stream
                    // that continues another track's sends nothing until then.
                    if let Some(since) = slot.switch_since
                        && now.saturating_duration_since(since) >= SWITCH_KEYFRAME_RETRY
                    {
                        slot.switch_since = Some(now);
                        slow_switches.push(sub.peer.clone());
                    }
                    if slot.current.is_none() {
                        continue;
                    }
                } else {
                    continue;
                }
            } else if routed_as != want {
                continue;
            }
            let params = match send_params(sub, &key) {
                Ok(Some(params)) => params,
                Ok(None) => continue,
                Err(_) => {
                    poisoned.push(sub_id);
                    continue;
                }
            };
            let Some(slot) = sub.slots.get_mut(&key) else {
                continue;
            };
            let Some(payload_type) = params.payload_type else {
                // Not negotiated on this leg (yet): the answer is still outstanding.
                slot.forwarding = false;
                continue;
            };
            let mut out = packet.clone();
            let clock_rate = if slot.kind == MediaKind::Video {
                90_000
            } else {
                48_000
            };
            (out.header.sequence_number, out.header.timestamp) = slot.rewrite.map(
                packet.header.ssrc,
                packet.header.sequence_number,
                packet.header.timestamp,
                clock_rate,
                now,
            );
            out.header.ssrc = slot.ssrc;
            out.header.payload_type = payload_type;
            if let (Some(ext), Some(level)) = (params.audio_level_id, level.as_ref()) {
                let _ = out.header.set_extension(ext, level.clone());
            }
            let sender_id = slot.sender_id;
            let written = guard(|| {
                sub.pc
                    .rtp_sender(sender_id)
                    .map(|mut sender| sender.write_rtp(now, out))
            });
            let Some(slot) = sub.slots.get_mut(&key) else {
                continue;
            };
            match written {
                Ok(Some(Ok(()))) => {
                    sub.counters.rtp_packets += 1;
                    self.counters.forwarded_rtp.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("rounds_sfu_forwarded_rtp_total").increment(1);
                    if !slot.forwarding {
                        slot.forwarding = true;
                        let primed = slot.keyframe_primed.take().is_some_and(|at| {
                            now.saturating_duration_since(at) < PRIMED_KEYFRAME_COVERS
                        });
                        if slot.kind == MediaKind::Video && !primed {
                            new_receivers.push(sub.peer.clone());
                        }
                    }
                }
                Ok(_) => slot.forwarding = false,
                Err(_) => {
                    poisoned.push(sub_id);
                    continue;
                }
            }
            if flush_and_rearm(&self.io, &mut self.timers, sub).is_err() {
                poisoned.push(sub_id);
            }
            if self.ingress.is_some() {
                // Timed when the batch goes to the kernel (`Driver::deliver`).
                self.forwarded_unsent += 1;
            }
        }
        for sub_id in poisoned {
            self.poison(sub_id);
        }
        if kind == MediaKind::Video {
            for subscriber in new_receivers {
                let reason = KeyframeReason::NewSubscriber {
                    subscriber: subscriber.clone(),
                };
                self.request_keyframe(&subscriber, &key, reason, now);
            }
            for subscriber in slow_switches {
                self.request_keyframe(&subscriber, &key, KeyframeReason::LayerSwitch, now);
            }
        }
    }

    /// Takes simulcast layers that stopped arriving off the engine's list, so no viewer is
    /// left on a layer the publisher no longer sends.
    pub(super) fn retire_idle_layers(&mut self, now: Instant) {
        // (`now` only stands in for a track with no streams, which has nothing to retire.)
        let mut reshaped = Vec::new();
        for (peer, state) in &mut self.peers {
            for (mid, track) in &mut state.published {
                if track.streams.len() < 2 {
                    continue;
                }
                // Idle next to its siblings, not just idle: a publisher whose every layer is
                // late (a busy machine, a network hiccup) has paused nothing.
                let freshest = track
                    .streams
                    .iter()
                    .map(|s| s.last_seen)
                    .max()
                    .unwrap_or(now);
                let mut changed = false;
                for stream in &mut track.streams {
                    if stream.active
                        && freshest.saturating_duration_since(stream.last_seen) >= LAYER_IDLE
                    {
                        stream.active = false;
                        changed = true;
                    }
                }
                if changed {
                    reshaped.push((peer.clone(), mid.clone()));
                }
            }
        }
        for (peer, mid) in reshaped {
            tracing::debug!(peer = %peer, mid = %mid, "a simulcast layer stopped arriving");
            self.publish_to_engine(&peer, &mid);
        }
    }

    /// RTCP that the feedback tap let through: PLI or FIR from a subscriber.
    pub(super) fn on_rtcp(
        &mut self,
        id: PcId,
        track_id: &str,
        packets: &[Box<dyn rtc::rtcp::Packet>],
        now: Instant,
    ) {
        let Some(entry) = self.pcs.get(&id) else {
            return;
        };
        if entry.kind != PcKind::Subscriber
            || !packets.iter().any(|p| is_keyframe_request(p.as_ref()))
        {
            return;
        }
        let Some(key) = entry.slot_by_track_id.get(track_id).cloned() else {
            return;
        };
        let subscriber = entry.peer.clone();
        // The engine's gate: a peer that does not get the track may not make its publisher
        // do work either.
        let reason = KeyframeReason::SubscriberRequest {
            subscriber: subscriber.clone(),
        };
        self.request_keyframe(&subscriber, &key, reason, now);
    }

    /// Sends a PLI for each stream named (all of the track's when `layers` is empty).
    pub(super) fn send_pli(
        &mut self,
        key: &TrackKey,
        layers: &[Layer],
        reason: KeyframeReason,
        now: Instant,
    ) {
        let Some(state) = self.peers.get(&key.publisher) else {
            return;
        };
        let (Some(pub_id), Some(track)) = (state.publisher, state.published.get(&key.mid)) else {
            return;
        };
        if track.kind != MediaKind::Video {
            return;
        }
        let ssrcs: Vec<u32> = track
            .streams
            .iter()
            .filter(|s| layers.is_empty() || s.layer.is_some_and(|l| layers.contains(&l)))
            .map(|s| s.ssrc)
            .collect();
        if ssrcs.is_empty() {
            return;
        }
        let (receiver_id, track_id) = (track.receiver_id, track.track_id.clone());
        let Some(entry) = self.pcs.get_mut(&pub_id) else {
            return;
        };
        let written = guard(|| {
            entry.pc.rtp_receiver(receiver_id).map(|mut receiver| {
                let plis: Vec<Box<dyn rtc::rtcp::Packet>> = ssrcs
                    .iter()
                    .map(|&media_ssrc| {
                        Box::new(PictureLossIndication {
                            sender_ssrc: 0,
                            media_ssrc,
                        }) as Box<dyn rtc::rtcp::Packet>
                    })
                    .collect();
                receiver.write_rtcp(now, plis)
            })
        });
        match written {
            Ok(Some(Ok(()))) => {}
            Ok(_) => return,
            Err(_) => {
                self.poison(pub_id);
                return;
            }
        }
        if flush_and_rearm(&self.io, &mut self.timers, entry).is_err() {
            self.poison(pub_id);
            return;
        }
        tracing::debug!(peer = %key.publisher, mid = %key.mid, ?layers, ?reason, "keyframe requested");
        self.emit(SfuEvent::KeyframeRequested {
            publisher: key.publisher.clone(),
            track_id,
            mid: key.mid.clone(),
            reason,
        });
    }
}
