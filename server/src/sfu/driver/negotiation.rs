//! Offer/answer for both connection kinds, the admission gate and subscriptions, and removal.
//!
//! The subscriber connection's senders always follow one function, [`Driver::desired_tracks`]:
//! the tracks of every admitted publisher the peer subscribes to, if the peer itself is
//! admitted (both as the room's engine has it). Senders are added only when we make an offer; they are removed at once when the
//! gate closes (stopping the sender also drops its retransmission buffer, so not even a NACK
//! can pull media through a closed gate), and [`SfuEvent::RenegotiationNeeded`] tells the
//! signaling layer to bring the client's view up to date.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtp_transceiver::RTCRtpTransceiverId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::statistics::StatsSelector;
use rtc::statistics::report::RTCStatsReportEntry;

use super::event_loop::{Driver, flush_and_rearm};
use super::peer::{
    AUDIO_LEVEL_URI, FirstConnect, IdleSender, MAX_PENDING_CANDIDATES, PcEntry, SendSlot, TrackKey,
    build_peer_connection, guard, random_credential, sdp_attribute, sdp_fingerprint, sdp_token,
};
use super::rooms::{engine_peer, engine_track};
use super::{
    IceProtocol, MediaKind, PcId, PcKind, PcState, PcStats, PeerId, PeerStats, SelectedPair,
    SfuError, SfuEvent,
};
use crate::sfu::engine::PeerId as EnginePeer;

/// Largest SDP we parse. Real ones are a few KiB; this only stops abuse.
const MAX_SDP_LEN: usize = 128 * 1024;
/// Longest candidate line we accept.
const MAX_CANDIDATE_LEN: usize = 512;

/// A track the subscriber should have a sender for.
pub(super) struct DesiredTrack {
    pub(super) track_id: String,
    pub(super) kind: MediaKind,
    pub(super) codec: RTCRtpCodec,
}

fn check_sdp(sdp: &str) -> Result<(), SfuError> {
    if sdp.len() > MAX_SDP_LEN {
        return Err(SfuError::InvalidSdp("too long".to_owned()));
    }
    Ok(())
}

fn rtc_kind(kind: MediaKind) -> RtpCodecKind {
    match kind {
        MediaKind::Audio => RtpCodecKind::Audio,
        MediaKind::Video => RtpCodecKind::Video,
    }
}

impl Driver {
    // ---- Creating connections ------------------------------------------------------------

    fn create_pc(&mut self, peer: &PeerId, kind: PcKind, now: Instant) -> Result<PcId, SfuError> {
        let mut ufrag = random_credential(16);
        // 62^16 makes a collision practically impossible; the check makes it impossible.
        while self.routes.ufrag_in_use(&ufrag) {
            ufrag = random_credential(16);
        }
        let pwd = random_credential(32);
        let codec = self
            .engine_of(peer)
            .map_or(self.default_codec, |e| e.video_codec());
        let (mut pc, feedback) = guard(|| build_peer_connection(&ufrag, &pwd, kind, codec, now))??;
        if kind == PcKind::Subscriber {
            // Gives the connection a transport before it carries any track; see module docs.
            guard(|| pc.create_data_channel("rounds", None).map(|_| ()))??;
        }
        let id = self.next_pc_id();
        self.routes.set_ufrag(id, &ufrag);
        self.pcs.insert(
            id,
            PcEntry::new(id, peer.clone(), kind, pc, feedback, ufrag, pwd),
        );
        let state = self.peers.entry(peer.clone()).or_default();
        match kind {
            PcKind::Publisher => state.publisher = Some(id),
            PcKind::Subscriber => state.subscriber = Some(id),
        }
        tracing::debug!(peer = %peer, pc = ?kind, "peer connection created");
        Ok(id)
    }

    /// After a local description is set: follow our own credentials if `rtc` changed them
    /// (an ICE restart), so routing keeps matching what the client was told.
    fn adopt_local_credentials(&mut self, id: PcId, local_sdp: &str) {
        let (Some(ufrag), Some(pwd)) = (
            sdp_attribute(local_sdp, "ice-ufrag"),
            sdp_attribute(local_sdp, "ice-pwd"),
        ) else {
            return;
        };
        let Some(entry) = self.pcs.get_mut(&id) else {
            return;
        };
        if entry.ufrag != ufrag {
            self.routes.set_ufrag(id, ufrag);
            entry.ufrag = ufrag.to_owned();
        }
        if entry.pwd != pwd {
            entry.pwd = pwd.to_owned();
        }
    }

    fn apply_pending_candidates(&mut self, id: PcId) {
        let Some(entry) = self.pcs.get_mut(&id) else {
            return;
        };
        for candidate in std::mem::take(&mut entry.pending_candidates) {
            if let Ok(Err(error)) = guard(|| entry.pc.add_remote_candidate(candidate)) {
                tracing::debug!(peer = %entry.peer, %error, "buffered candidate rejected");
            }
        }
    }

    // ---- Publisher -----------------------------------------------------------------------

    pub(super) fn publisher_answer(
        &mut self,
        peer: PeerId,
        offer: String,
    ) -> Result<String, SfuError> {
        check_sdp(&offer)?;
        let fingerprint = sdp_fingerprint(&offer);
        let desc =
            RTCSessionDescription::offer(offer).map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let now = Instant::now();
        let existing = self.peers.get(&peer).and_then(|p| p.publisher);
        let (id, created) = match existing {
            Some(id)
                if self
                    .pcs
                    .get(&id)
                    .is_some_and(|e| e.is_reusable_for(fingerprint.as_deref())) =>
            {
                (id, false)
            }
            other => {
                if let Some(old) = other {
                    tracing::info!(peer = %peer, "publisher restarted its connection");
                    self.drop_pc(old);
                }
                (self.create_pc(&peer, PcKind::Publisher, now)?, true)
            }
        };
        let result = self.negotiate_publisher(id, desc, fingerprint, now);
        if result.is_err() && created {
            self.drop_pc(id);
        }
        result
    }

    fn negotiate_publisher(
        &mut self,
        id: PcId,
        desc: RTCSessionDescription,
        fingerprint: Option<String>,
        now: Instant,
    ) -> Result<String, SfuError> {
        let candidates = &self.candidates;
        let entry = self.pcs.get_mut(&id).ok_or(SfuError::UnknownPeer)?;
        let first = !entry.candidates_added;
        let sdp = guard(|| -> Result<String, SfuError> {
            entry.pc.set_remote_description(now, desc)?;
            if first {
                for candidate in candidates {
                    entry.pc.add_local_candidate(candidate.clone())?;
                }
                // An empty candidate ends gathering; without it the answer is never complete.
                entry
                    .pc
                    .add_local_candidate(RTCIceCandidateInit::default())?;
            }
            let answer = entry.pc.create_answer(None)?;
            entry.pc.set_local_description(now, answer)?;
            entry
                .pc
                .local_description()
                .map(|d| d.sdp)
                .ok_or(SfuError::InvalidSdp("no local description".to_owned()))
        });
        let sdp = match sdp {
            Ok(result) => result?,
            Err(poisoned) => {
                self.poison(id);
                return Err(poisoned);
            }
        };
        entry.candidates_added = true;
        entry.has_remote_description = true;
        entry.remote_fingerprint = fingerprint;
        entry.generation += 1;
        self.adopt_local_credentials(id, &sdp);
        self.apply_pending_candidates(id);
        self.refresh_published(id);
        self.service(id);
        Ok(sdp)
    }

    /// After a publisher renegotiation: forget tracks the client stopped sending, and pick up
    /// header extension ids that may have changed.
    fn refresh_published(&mut self, id: PcId) {
        let Some(entry) = self.pcs.get_mut(&id) else {
            return;
        };
        let Some(state) = self.peers.get_mut(&entry.peer) else {
            return;
        };
        let mut gone = Vec::new();
        for (mid, track) in state.published.iter_mut() {
            let receiver_id = track.receiver_id;
            let transceiver: RTCRtpTransceiverId = receiver_id.into();
            let alive = guard(|| {
                let still_receiving = entry.pc.rtp_transceiver(transceiver).is_some_and(|t| {
                    t.mid().as_deref() == Some(mid.as_str()) && t.current_direction().has_recv()
                });
                let level_id = entry.pc.rtp_receiver(receiver_id).and_then(|mut r| {
                    r.get_parameters()
                        .rtp_parameters
                        .header_extensions
                        .iter()
                        .find(|h| h.uri == AUDIO_LEVEL_URI)
                        .and_then(|h| u8::try_from(h.id).ok())
                });
                (still_receiving, level_id)
            });
            match alive {
                Ok((true, level_id)) => track.audio_level_id = level_id,
                _ => gone.push(mid.clone()),
            }
        }
        let peer = entry.peer.clone();
        for mid in gone {
            self.unpublish(&peer, &mid);
        }
    }

    /// A publisher's track ended: forget it, and let its subscribers drop it.
    pub(super) fn unpublish(&mut self, publisher: &PeerId, mid: &str) {
        let Some(state) = self.peers.get_mut(publisher) else {
            return;
        };
        let Some(track) = state.published.remove(mid) else {
            return;
        };
        if let Some(entry) = state.publisher.and_then(|id| self.pcs.get_mut(&id)) {
            entry.receivers.retain(|_, m| m != mid);
        }
        self.keyframe_reasons.remove(&TrackKey {
            publisher: publisher.clone(),
            mid: mid.to_owned(),
        });
        let track_key = engine_track(mid);
        self.with_engine(publisher, None, true, |e, me| {
            e.remove_track(me, &track_key)
        });
        tracing::info!(peer = %publisher, mid, "track unpublished");
        self.emit(SfuEvent::TrackUnpublished {
            peer: publisher.clone(),
            track_id: track.track_id,
            mid: mid.to_owned(),
        });
        self.renegotiate_subscribers_of(publisher);
    }

    // ---- Subscriber ----------------------------------------------------------------------

    pub(super) fn subscriber_offer(&mut self, peer: PeerId) -> Result<String, SfuError> {
        let now = Instant::now();
        let existing = self.peers.get(&peer).and_then(|p| p.subscriber);
        let id = match existing {
            Some(id) if self.pcs.get(&id).is_some_and(|e| e.is_reusable_for(None)) => id,
            other => {
                if let Some(old) = other {
                    self.drop_pc(old);
                }
                self.create_pc(&peer, PcKind::Subscriber, now)?
            }
        };
        if self.pcs.get(&id).is_some_and(|e| e.pending_offer.is_some()) {
            return Err(SfuError::NegotiationInProgress);
        }
        self.sync_senders(id)?;

        let candidates = &self.candidates;
        let entry = self.pcs.get_mut(&id).ok_or(SfuError::UnknownPeer)?;
        let first = !entry.candidates_added;
        let sdp = guard(|| -> Result<String, SfuError> {
            let offer = entry.pc.create_offer(None)?;
            entry.pc.set_local_description(now, offer)?;
            if first {
                for candidate in candidates {
                    entry.pc.add_local_candidate(candidate.clone())?;
                }
                entry
                    .pc
                    .add_local_candidate(RTCIceCandidateInit::default())?;
            }
            entry
                .pc
                .local_description()
                .map(|d| d.sdp)
                .ok_or(SfuError::InvalidSdp("no local description".to_owned()))
        });
        let sdp = match sdp {
            Ok(result) => result?,
            Err(poisoned) => {
                self.poison(id);
                return Err(poisoned);
            }
        };
        entry.candidates_added = true;
        entry.pending_offer = Some(sdp.clone());
        if let Some(state) = self.peers.get_mut(&peer) {
            state.renegotiation_signalled = false;
            state.subscriber_dirty = false;
        }
        self.adopt_local_credentials(id, &sdp);
        self.service(id);
        Ok(sdp)
    }

    /// Gives up on subscriber connections answered but still not connected at their deadline
    /// and has a new one offered in each one's place. A lost DTLS flight can stall the
    /// handshake for good (see [`super::SfuConfig::connect_deadline`]); a new connection, with
    /// new ICE credentials and a new handshake, gets media to the participant after all.
    pub(super) fn replace_stalled_subscribers(&mut self, now: Instant) {
        let stalled: Vec<(PcId, PeerId, PcState)> = self
            .pcs
            .values()
            .filter(|e| matches!(e.first_connect, FirstConnect::Due(at) if now >= at))
            .map(|e| (e.id, e.peer.clone(), e.state))
            .collect();
        for (id, peer, state) in stalled {
            if let Some(entry) = self.pcs.get_mut(&id) {
                entry.first_connect = FirstConnect::Abandoned;
            }
            tracing::warn!(
                peer = %peer,
                ?state,
                deadline = ?self.connect_deadline,
                "the subscriber connection did not connect in time; offering a new one"
            );
            metrics::counter!("rounds_sfu_stalled_connections_replaced_total").increment(1);
            if let Some(state) = self.peers.get_mut(&peer) {
                state.subscriber_dirty = true;
                state.renegotiation_signalled = false;
            }
            self.check_renegotiation(&peer);
        }
    }

    /// `peer` is back on a new signaling connection. Returns the subscriber offer still
    /// waiting for its answer (it may have died with the old connection), to be sent again;
    /// with none, a renegotiation raised while nobody could be told is raised anew.
    pub(super) fn signaling_resumed(&mut self, peer: &PeerId) -> Option<String> {
        let state = self.peers.get_mut(peer)?;
        if let Some(offer) = state
            .subscriber
            .and_then(|id| self.pcs.get(&id))
            .and_then(|e| e.pending_offer.clone())
        {
            return Some(offer);
        }
        state.renegotiation_signalled = false;
        self.check_renegotiation(peer);
        None
    }

    pub(super) fn subscriber_answer(
        &mut self,
        peer: PeerId,
        answer: String,
    ) -> Result<(), SfuError> {
        check_sdp(&answer)?;
        let id = self
            .peers
            .get(&peer)
            .and_then(|p| p.subscriber)
            .ok_or(SfuError::UnknownPeer)?;
        let entry = self.pcs.get_mut(&id).ok_or(SfuError::UnknownPeer)?;
        if entry.pending_offer.is_none() {
            return Err(SfuError::NoOfferPending);
        }
        let fingerprint = sdp_fingerprint(&answer);
        let desc = RTCSessionDescription::answer(answer)
            .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        match guard(|| entry.pc.set_remote_description(Instant::now(), desc)) {
            Ok(result) => result?,
            Err(poisoned) => {
                self.poison(id);
                return Err(poisoned);
            }
        }
        entry.pending_offer = None;
        entry.has_remote_description = true;
        entry.remote_fingerprint = fingerprint;
        if entry.first_connect == FirstConnect::Unanswered {
            entry.first_connect = FirstConnect::Due(Instant::now() + self.connect_deadline);
        }
        entry.generation += 1;
        for slot in entry.slots.values_mut() {
            slot.negotiated = true;
        }
        self.apply_pending_candidates(id);
        self.service(id);
        self.prime_keyframes(id, Instant::now());
        if let Some(state) = self.peers.get_mut(&peer) {
            state.renegotiation_signalled = false;
        }
        // Anything that changed while the offer was out needs another round.
        self.check_renegotiation(&peer);
        Ok(())
    }

    pub(super) fn add_ice_candidate(
        &mut self,
        peer: &PeerId,
        kind: PcKind,
        candidate: RTCIceCandidateInit,
    ) -> Result<(), SfuError> {
        if candidate.candidate.len() > MAX_CANDIDATE_LEN {
            return Err(SfuError::InvalidCandidate("too long".to_owned()));
        }
        let state = self.peers.get(peer).ok_or(SfuError::UnknownPeer)?;
        let id = match kind {
            PcKind::Publisher => state.publisher,
            PcKind::Subscriber => state.subscriber,
        }
        .ok_or(SfuError::UnknownPeer)?;
        let entry = self.pcs.get_mut(&id).ok_or(SfuError::UnknownPeer)?;
        if !entry.has_remote_description {
            if entry.pending_candidates.len() < MAX_PENDING_CANDIDATES {
                entry.pending_candidates.push(candidate);
            }
            return Ok(());
        }
        match guard(|| entry.pc.add_remote_candidate(candidate)) {
            Ok(result) => result.map_err(|e| SfuError::InvalidCandidate(e.to_string()))?,
            Err(poisoned) => {
                self.poison(id);
                return Err(poisoned);
            }
        }
        self.service(id);
        Ok(())
    }

    /// What the peer's subscriber connection should carry right now.
    pub(super) fn desired_tracks(&self, peer: &PeerId) -> BTreeMap<TrackKey, DesiredTrack> {
        let mut desired = BTreeMap::new();
        let Some(engine) = self.engine_of(peer) else {
            return desired;
        };
        let me = engine_peer(peer);
        if !engine.is_admitted(&me) {
            return desired;
        }
        for publisher in engine.subscriptions_of(&me) {
            // Admitted in this peer's room: a peer of another room is not known to its engine.
            if publisher == me || !engine.is_admitted(&publisher) {
                continue;
            }
            let publisher = publisher.as_str().to_owned();
            let Some(p) = self.peers.get(&publisher) else {
                continue;
            };
            for (mid, track) in &p.published {
                desired.insert(
                    TrackKey {
                        publisher: publisher.clone(),
                        mid: mid.clone(),
                    },
                    DesiredTrack {
                        track_id: track.track_id.clone(),
                        kind: track.kind,
                        codec: track.codec.clone(),
                    },
                );
            }
        }
        desired
    }

    /// Removes senders that must no longer exist (gate closed, unsubscribed, unpublished, or a
    /// codec change) and, if `add`, creates those that should. Only offers add.
    fn reconcile_senders(&mut self, id: PcId, add: bool) -> Result<bool, SfuError> {
        let Some(peer) = self.pcs.get(&id).map(|e| e.peer.clone()) else {
            return Ok(false);
        };
        let desired = self.desired_tracks(&peer);
        let Some(entry) = self.pcs.get_mut(&id) else {
            return Ok(false);
        };
        let stale: Vec<TrackKey> = entry
            .slots
            .iter()
            .filter(|(key, slot)| {
                desired
                    .get(*key)
                    .is_none_or(|d| !d.codec.mime_type.eq_ignore_ascii_case(&slot.mime_type))
            })
            .map(|(key, _)| key.clone())
            .collect();
        let mut removed = Vec::new();
        for key in stale {
            let Some(slot) = entry.slots.remove(&key) else {
                continue;
            };
            entry.slot_by_track_id.remove(&slot.track_id);
            // Stopping the sender also unbinds it from the NACK responder's buffer.
            match guard(|| entry.pc.remove_track(slot.sender_id)) {
                Ok(Ok(())) => {
                    entry.idle_senders.insert(
                        slot.sender_id.into(),
                        IdleSender {
                            kind: slot.kind,
                            ssrc: slot.ssrc,
                            rewrite: slot.rewrite,
                        },
                    );
                }
                Ok(Err(error)) => {
                    tracing::debug!(peer = %peer, %error, "removing a sender failed");
                }
                Err(_) => {}
            }
            removed.push(key);
        }

        let mut added = Vec::new();
        if add {
            for (key, track) in &desired {
                if entry.slots.contains_key(key) {
                    continue;
                }
                let track_id = format!("{}_{}", sdp_token(&key.publisher), sdp_token(&key.mid));
                // The transceiver `rtc` will reuse keeps its SSRC (see `idle_senders`).
                let reused = entry
                    .idle_senders
                    .values()
                    .find(|idle| idle.kind == track.kind)
                    .map(|idle| idle.ssrc);
                let ssrc = reused.unwrap_or_else(|| {
                    loop {
                        let candidate = rand::random::<u32>();
                        if candidate != 0
                            && !entry.slots.values().any(|s| s.ssrc == candidate)
                            && !entry.idle_senders.values().any(|s| s.ssrc == candidate)
                        {
                            break candidate;
                        }
                    }
                });
                let media_track = MediaStreamTrack::new(
                    sdp_token(&key.publisher),
                    track_id.clone(),
                    sdp_token(&track.track_id),
                    rtc_kind(track.kind),
                    vec![RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters {
                            ssrc: Some(ssrc),
                            ..Default::default()
                        },
                        codec: track.codec.clone(),
                        ..Default::default()
                    }],
                );
                let sender_id = guard(|| entry.pc.add_track(media_track))??;
                // `rtc` may normalise the encoding; send with the SSRC it actually signals.
                let ssrc = guard(|| {
                    entry
                        .pc
                        .rtp_sender(sender_id)
                        .and_then(|s| s.track().ssrcs().next())
                })?
                .unwrap_or(ssrc);
                // Whichever idle transceiver held this SSRC (the one `rtc` reused, unless it
                // chose another than predicted) hands its numbering on: the client's receive
                // stream goes on where it stopped. The reused transceiver is busy again.
                let holder = entry
                    .idle_senders
                    .iter()
                    .find(|(_, idle)| idle.ssrc == ssrc)
                    .map(|(&index, _)| index);
                let continued = holder
                    .and_then(|index| entry.idle_senders.remove(&index))
                    .map(|idle| idle.rewrite);
                entry.idle_senders.remove(&sender_id.into());
                entry.slot_by_track_id.insert(track_id.clone(), key.clone());
                entry.slots.insert(
                    key.clone(),
                    SendSlot {
                        sender_id,
                        track_id,
                        ssrc,
                        kind: track.kind,
                        mime_type: track.codec.mime_type.clone(),
                        forwarding: false,
                        keyframe_primed: None,
                        negotiated: false,
                        params: None,
                        continues: continued.is_some(),
                        // A new SSRC is a new stream to the client: its numbering starts
                        // afresh.
                        rewrite: continued.unwrap_or_default(),
                        want: None,
                        current: None,
                        switch_since: None,
                    },
                );
                added.push(key.clone());
            }
        }

        let changed = !removed.is_empty();
        for key in removed {
            if let Some(track) = self
                .peers
                .get_mut(&key.publisher)
                .and_then(|p| p.published.get_mut(&key.mid))
            {
                track.subscribers.retain(|s| *s != id);
            }
        }
        for key in added {
            if let Some(track) = self
                .peers
                .get_mut(&key.publisher)
                .and_then(|p| p.published.get_mut(&key.mid))
                && !track.subscribers.contains(&id)
            {
                track.subscribers.push(id);
            }
        }
        Ok(changed)
    }

    fn sync_senders(&mut self, id: PcId) -> Result<(), SfuError> {
        self.reconcile_senders(id, true)?;
        // New senders learn what the engine gives them.
        if let Some(room) = self
            .pcs
            .get(&id)
            .and_then(|e| self.peers.get(&e.peer))
            .map(|s| s.room.clone())
        {
            self.refresh_room(&room, Instant::now());
        }
        Ok(())
    }

    /// Closes what the gate no longer permits, and raises `RenegotiationNeeded` once if the
    /// client's subscriber view differs from what it should be.
    pub(super) fn check_renegotiation(&mut self, peer: &PeerId) {
        let subscriber = self.peers.get(peer).and_then(|p| p.subscriber);
        if let Some(id) = subscriber {
            match self.reconcile_senders(id, false) {
                Ok(true) => {
                    if let Some(state) = self.peers.get_mut(peer) {
                        state.subscriber_dirty = true;
                    }
                }
                Ok(false) => {}
                Err(SfuError::Poisoned) => self.poison(id),
                Err(error) => tracing::debug!(peer = %peer, %error, "closing senders failed"),
            }
        }
        let desired = self.desired_tracks(peer);
        let current_matches = match subscriber.and_then(|id| self.pcs.get(&id)) {
            Some(entry) => entry.slots.keys().eq(desired.keys()),
            None => desired.is_empty(),
        };
        let Some(state) = self.peers.get_mut(peer) else {
            return;
        };
        if (!current_matches || state.subscriber_dirty) && !state.renegotiation_signalled {
            state.renegotiation_signalled = true;
            tracing::debug!(peer = %peer, "subscriber renegotiation needed");
            self.emit(SfuEvent::RenegotiationNeeded { peer: peer.clone() });
        }
    }

    /// Every peer of `publisher`'s room re-checks its subscriber view.
    pub(super) fn renegotiate_subscribers_of(&mut self, publisher: &PeerId) {
        let Some(room) = self.peers.get(publisher).map(|s| s.room.clone()) else {
            return;
        };
        let members: Vec<PeerId> = self
            .rooms
            .get(&room)
            .map(|m| m.members.iter().cloned().collect())
            .unwrap_or_default();
        for subscriber in members {
            if subscriber != *publisher {
                self.check_renegotiation(&subscriber);
            }
        }
    }

    // ---- Gate, subscriptions, removal ----------------------------------------------------

    pub(super) fn set_allowed(&mut self, peer: PeerId, allowed: bool) {
        if self.is_allowed(&peer) == allowed {
            // Still makes the peer a member of its room.
            self.with_engine(&peer, None, false, |_, _| ());
            return;
        }
        self.with_engine(&peer, None, true, |e, me| e.set_admitted(me, allowed));
        tracing::info!(peer = %peer, allowed, "admission gate changed");
        self.check_renegotiation(&peer);
        self.renegotiate_subscribers_of(&peer);
    }

    pub(super) fn set_subscriptions(&mut self, peer: PeerId, publishers: Vec<PeerId>) {
        let wanted: BTreeSet<EnginePeer> = publishers.iter().map(|p| engine_peer(p)).collect();
        self.peers.entry(peer.clone()).or_default().subscribed_to =
            publishers.into_iter().collect();
        self.with_engine(&peer, None, true, |e, me| {
            for old in e.subscriptions_of(me) {
                if !wanted.contains(&old) {
                    e.unsubscribe(me, &old);
                }
            }
            for publisher in &wanted {
                e.subscribe(me, publisher);
            }
        });
        self.check_renegotiation(&peer);
    }

    pub(super) fn remove_peer(&mut self, peer: &PeerId) {
        let Some(state) = self.peers.get(peer) else {
            return;
        };
        let (publisher, subscriber, room) = (state.publisher, state.subscriber, state.room.clone());
        for id in [publisher, subscriber].into_iter().flatten() {
            self.drop_pc(id);
        }
        tracing::info!(peer = %peer, "peer removed");
        // Before the peer is forgotten: its room's members are who must renegotiate.
        self.renegotiate_subscribers_of(peer);
        self.leave_room(peer, &room);
        self.peers.remove(peer);
    }

    // ---- Stats ---------------------------------------------------------------------------

    pub(super) fn peer_stats(&mut self, peer: &PeerId) -> Option<PeerStats> {
        let subscriptions = self
            .engine_of(peer)
            .map(|e| {
                e.subscriptions_of(&engine_peer(peer))
                    .into_iter()
                    .map(|p| p.as_str().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let allowed = self.is_allowed(peer);
        let state = self.peers.get(peer)?;
        let mut stats = PeerStats {
            allowed,
            subscriptions,
            published_tracks: state.published.len(),
            publisher: None,
            subscriber: None,
        };
        let (publisher, subscriber) = (state.publisher, state.subscriber);
        stats.publisher = publisher.and_then(|id| self.pc_stats(id));
        stats.subscriber = subscriber.and_then(|id| self.pc_stats(id));
        Some(stats)
    }

    fn pc_stats(&mut self, id: PcId) -> Option<PcStats> {
        let entry = self.pcs.get_mut(&id)?;
        let mut stats = PcStats {
            state: entry.state,
            packets_in: entry.counters.packets_in,
            bytes_in: entry.counters.bytes_in,
            packets_out: entry.counters.packets_out,
            bytes_out: entry.counters.bytes_out,
            rtp_packets: entry.counters.rtp_packets,
            selected_pair: entry.last_transport.map(|t| SelectedPair {
                local: t.local_addr,
                remote: t.peer_addr,
                protocol: if t.transport_protocol == rtc::shared::TransportProtocol::TCP {
                    IceProtocol::Tcp
                } else {
                    IceProtocol::Udp
                },
            }),
            ..PcStats::default()
        };
        let Ok(report) = guard(|| entry.pc.get_stats(Instant::now(), StatsSelector::None)) else {
            return Some(stats);
        };
        for item in report.iter() {
            match item {
                RTCStatsReportEntry::Transport(t) if !t.srtp_cipher.is_empty() => {
                    stats.srtp_cipher = Some(t.srtp_cipher.clone());
                }
                RTCStatsReportEntry::RemoteInboundRtp(r) => {
                    if r.round_trip_time_measurements > 0 && r.round_trip_time.is_finite() {
                        let rtt = Duration::from_secs_f64(r.round_trip_time.max(0.0));
                        stats.rtt = Some(stats.rtt.map_or(rtt, |old| old.max(rtt)));
                    }
                    let lost = r.fraction_lost;
                    stats.fraction_lost =
                        Some(stats.fraction_lost.map_or(lost, |old| old.max(lost)));
                }
                RTCStatsReportEntry::InboundRtp(r) => {
                    let lost = r.received_rtp_stream_stats.packets_lost;
                    stats.packets_lost = Some(stats.packets_lost.unwrap_or(0) + lost);
                }
                _ => {}
            }
        }
        let _ = flush_and_rearm(&self.io, &mut self.timers, entry);
        Some(stats)
    }
}
