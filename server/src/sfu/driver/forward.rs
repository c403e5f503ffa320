//! The media path: publishing tracks, forwarding RTP, relaying keyframe requests, audio levels.
//!
//! Each packet is decrypted once, by the publisher's connection, and arrives here in the
//! clear. For every subscriber connection holding a sender for the track, the admission rule is
//! checked, the packet is re-addressed (the subscriber leg's SSRC and payload type, the audio
//! level extension at the subscriber leg's id, other extensions dropped because their ids were
//! negotiated on the other leg) and written to that connection, which encrypts it for that
//! client.

use std::sync::atomic::Ordering;
use std::time::Instant;

use rtc::peer_connection::event::RTCTrackEventInit;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::RTCRtpTransceiverId;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;

use super::event_loop::{Driver, PublishedTrack, flush_and_rearm};
use super::keyframe::{KeyframeThrottle, is_keyframe_request};
use super::peer::{AUDIO_LEVEL_URI, PcEntry, SendParams, TrackKey, guard};
use super::{
    AUDIO_LEVEL_INTERVAL, KeyframeReason, MediaKind, PcId, PcKind, PcState, SfuError, SfuEvent,
};

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
    /// A publisher's track delivered its first packet: publish it.
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
        entry.receivers.insert(init.track_id.clone(), mid.clone());
        let peer = entry.peer.clone();
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        if state.published.contains_key(&mid) {
            // Another simulcast encoding of a track we already forward.
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
        state.published.insert(
            mid.clone(),
            PublishedTrack {
                track_id: init.track_id.clone(),
                kind,
                codec,
                ssrc: init.ssrc,
                receiver_id,
                audio_level_id,
                last_level_event: None,
                throttle: KeyframeThrottle::default(),
                subscribers,
            },
        );
        tracing::info!(peer = %peer, mid = %mid, kind = ?kind, "track published");
        self.emit(SfuEvent::TrackPublished {
            peer: peer.clone(),
            track_id: init.track_id,
            kind,
            mid,
        });
        self.renegotiate_subscribers_of(&peer);
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
        let publisher_allowed = state.allowed;
        let Some(track) = state.published.get_mut(&key.mid) else {
            return;
        };
        if packet.header.ssrc != track.ssrc {
            return;
        }
        let kind = track.kind;

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

        let mut new_receivers = Vec::new();
        let mut poisoned = Vec::new();
        for sub_id in subscribers {
            let Some(sub) = self.pcs.get_mut(&sub_id) else {
                continue;
            };
            let gate_open = publisher_allowed
                && self
                    .peers
                    .get(&sub.peer)
                    .is_some_and(|s| s.allowed && s.subscriptions.contains(&key.publisher));
            let connected = sub.state == PcState::Connected;
            let Some(slot) = sub.slots.get_mut(&key) else {
                continue;
            };
            // `negotiated`: the client has answered an offer listing this sender, so it knows
            // the SSRC; before that the packets (and the keyframe they trigger) would be lost.
            if !gate_open || !connected || !slot.negotiated {
                slot.forwarding = false;
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
                        if slot.kind == MediaKind::Video {
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
            if let Some(ingress) = self.ingress {
                self.forward_delay
                    .record(Instant::now().saturating_duration_since(ingress));
            }
        }
        for sub_id in poisoned {
            self.poison(sub_id);
        }
        if kind == MediaKind::Video {
            for subscriber in new_receivers {
                self.request_keyframe(&key, KeyframeReason::NewSubscriber { subscriber }, now);
            }
        }
    }

    /// RTCP that the keyframe tap let through: PLI or FIR from a subscriber.
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
        // A peer behind the gate gets nothing, and may not make publishers do work either.
        let gate_open = self
            .peers
            .get(&subscriber)
            .is_some_and(|s| s.allowed && s.subscriptions.contains(&key.publisher))
            && self.peers.get(&key.publisher).is_some_and(|p| p.allowed);
        if gate_open {
            self.request_keyframe(&key, KeyframeReason::SubscriberRequest { subscriber }, now);
        }
    }

    /// Asks the publisher for a keyframe now, or as soon as the throttle allows.
    pub(super) fn request_keyframe(
        &mut self,
        key: &TrackKey,
        reason: KeyframeReason,
        now: Instant,
    ) {
        let Some(track) = self
            .peers
            .get_mut(&key.publisher)
            .and_then(|s| s.published.get_mut(&key.mid))
        else {
            return;
        };
        if track.kind != MediaKind::Video {
            return;
        }
        if track.throttle.request(now) {
            self.send_pli(key, reason, now);
        } else {
            self.pending_keyframes.insert(key.clone(), reason);
        }
    }

    pub(super) fn run_deferred_keyframes(&mut self, now: Instant) {
        if self.pending_keyframes.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending_keyframes);
        for (key, reason) in pending {
            let Some(track) = self
                .peers
                .get_mut(&key.publisher)
                .and_then(|s| s.published.get_mut(&key.mid))
            else {
                continue;
            };
            if track.throttle.poll_pending(now) {
                self.send_pli(&key, reason, now);
            } else if track.throttle.is_pending() {
                self.pending_keyframes.insert(key, reason);
            }
        }
    }

    fn send_pli(&mut self, key: &TrackKey, reason: KeyframeReason, now: Instant) {
        let Some(state) = self.peers.get(&key.publisher) else {
            return;
        };
        let (Some(pub_id), Some(track)) = (state.publisher, state.published.get(&key.mid)) else {
            return;
        };
        let (receiver_id, media_ssrc, track_id) =
            (track.receiver_id, track.ssrc, track.track_id.clone());
        let Some(entry) = self.pcs.get_mut(&pub_id) else {
            return;
        };
        let written = guard(|| {
            entry.pc.rtp_receiver(receiver_id).map(|mut receiver| {
                receiver.write_rtcp(
                    now,
                    vec![Box::new(PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc,
                    })],
                )
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
        tracing::debug!(peer = %key.publisher, mid = %key.mid, ?reason, "keyframe requested");
        self.emit(SfuEvent::KeyframeRequested {
            publisher: key.publisher.clone(),
            track_id,
            mid: key.mid.clone(),
            reason,
        });
    }
}
