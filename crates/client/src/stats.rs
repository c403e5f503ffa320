//! What the client sent and received: per remote participant, in total, and per peer
//! connection. [`ClientStats`] is a snapshot; the live counters sit behind one short-held lock.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rounds_proto::PcKind;

/// The transport protocol of a candidate pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceProtocol {
    Udp,
    Tcp,
}

/// The path a peer connection's media takes, as its ICE transport reports it. For an active
/// ICE-TCP candidate the local port is the placeholder 9 that RFC 6544 prescribes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CandidatePair {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub protocol: IceProtocol,
}

/// A peer connection's state, as the WebRTC stack reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PcState {
    /// Not created yet (or torn down).
    #[default]
    None,
    New,
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

/// One of the two peer connections.
#[derive(Debug, Clone, Default)]
pub struct PcStats {
    pub state: PcState,
    /// Refreshed about once a second while connected.
    pub selected_pair: Option<CandidatePair>,
    /// How many times this connection was (re)built during the client's life.
    pub generation: u64,
}

/// What arrived from one remote participant, over all of their tracks.
#[derive(Debug, Clone, Default)]
pub struct RemoteStats {
    pub participant_id: String,
    /// Remote tracks seen from this participant (audio and video).
    pub tracks: u32,
    pub rtp_packets: u64,
    /// RTP payload bytes.
    pub bytes: u64,
    pub video_rtp_packets: u64,
    pub audio_rtp_packets: u64,
    /// Complete VP8 frames reassembled from RTP (decodable ones only: after a loss, frames
    /// are dropped until the next keyframe).
    pub video_frames_received: u64,
    /// Pictures libvpx produced (0 when decoding is off).
    pub frames_decoded: u64,
    pub keyframes_decoded: u64,
    pub decode_errors: u64,
    /// Frames dropped because the decoder fell behind.
    pub frames_dropped: u64,
    /// Opus packets decoded (0 when audio decoding is off).
    pub audio_frames_decoded: u64,
    /// RTP packets missing from the video sequence: given up on after waiting for their
    /// retransmission.
    pub video_packets_lost: u64,
    /// Video packets that arrived late, after a later one, in time to fill their hole
    /// (retransmissions answering this client's NACKs, or reordering).
    pub video_packets_recovered: u64,
    /// Keyframe requests (PLI) this client sent for this participant's video.
    pub plis_sent: u64,
    /// Size of the last decoded camera picture.
    pub width: u32,
    pub height: u32,
    /// Pictures decoded from this participant's screen share (counted apart from the
    /// camera's: neither `frames_decoded` nor `width`/`height` include them).
    pub screen_frames_decoded: u64,
    /// Size of the last decoded screen-share picture.
    pub screen_width: u32,
    pub screen_height: u32,
    /// RFC 6464 level (0 loudest, 127 silence) of the last decoded audio frame.
    pub audio_level_dbov: Option<u8>,
    pub first_frame_at: Option<Instant>,
    /// The last decoded video frame (or, without decoding, the last reassembled one).
    pub last_frame_at: Option<Instant>,
    pub last_audio_at: Option<Instant>,
}

/// What this client sent.
#[derive(Debug, Clone, Default)]
pub struct SentStats {
    pub video_frames: u64,
    pub keyframes: u64,
    pub video_rtp_packets: u64,
    pub audio_frames: u64,
    pub audio_rtp_packets: u64,
    /// RTP payload bytes.
    pub bytes: u64,
    /// PLI/FIR that reached this client's video sender.
    pub keyframe_requests_received: u64,
    /// Packets the server asked this client to send again (RTCP NACK), summed over every
    /// NACK that reached it; the NACK responder resent those still in its buffer.
    pub retransmissions_requested: u64,
    /// The answer accepted the RFC 6464 audio-level extension, so every audio packet carries
    /// the tone's level.
    pub audio_level_negotiated: bool,
    /// What the encoder currently produces (after the server's constraints); with simulcast,
    /// the top encoding's size and the sum of the encodings' bitrates.
    pub video_width: u32,
    pub video_height: u32,
    pub video_fps: u32,
    pub video_bitrate_kbps: u32,
    /// Screen-share frames encoded and sent, and the size the encoder produces.
    pub screen_frames: u64,
    pub screen_width: u32,
    pub screen_height: u32,
    /// The video goes out as simulcast encodings (the room has three people or more).
    pub simulcast: bool,
}

/// A snapshot of everything [`crate::Client::stats`] knows.
#[derive(Debug, Clone, Default)]
pub struct ClientStats {
    pub participant_id: String,
    /// By remote participant id (the stream id the server gives each remote track).
    pub remote: BTreeMap<String, RemoteStats>,
    pub rtp_packets: u64,
    pub bytes: u64,
    pub frames_decoded: u64,
    pub audio_frames_decoded: u64,
    /// Milliseconds from sending `join` to the first remote video frame decoded (or
    /// reassembled, with decoding off).
    pub join_ms: Option<u64>,
    pub sent: SentStats,
    pub publisher: PcStats,
    pub subscriber: PcStats,
    /// Successful signaling reconnects (each with `resume`).
    pub signaling_reconnects: u32,
}

impl ClientStats {
    pub fn remote(&self, participant_id: &str) -> Option<&RemoteStats> {
        self.remote.get(participant_id)
    }

    /// Video frames decoded from one participant (0 if none arrived).
    pub fn frames_decoded_from(&self, participant_id: &str) -> u64 {
        self.remote
            .get(participant_id)
            .map_or(0, |r| r.frames_decoded)
    }

    /// RTP packets received from one participant (0 if none arrived).
    pub fn rtp_packets_from(&self, participant_id: &str) -> u64 {
        self.remote.get(participant_id).map_or(0, |r| r.rtp_packets)
    }

    pub fn pc(&self, kind: PcKind) -> &PcStats {
        match kind {
            PcKind::Publisher => &self.publisher,
            PcKind::Subscriber => &self.subscriber,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    participant_id: String,
    remote: BTreeMap<String, RemoteStats>,
    sent: SentStats,
    join_sent_at: Option<Instant>,
    join_ms: Option<u64>,
    publisher: PcStats,
    subscriber: PcStats,
    reconnects: u32,
}

/// The live counters, shared by the session task, the media tasks and the decoder threads.
#[derive(Debug, Default)]
pub(crate) struct StatsHub {
    inner: Mutex<Inner>,
    /// Counted by the publisher connection's RTCP tap, which runs on the connection's own
    /// task; read into [`SentStats::retransmissions_requested`].
    pub(crate) nack_requests: Arc<AtomicU64>,
}

impl StatsHub {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut inner)
    }

    fn remote<'a>(inner: &'a mut Inner, participant: &str) -> &'a mut RemoteStats {
        inner
            .remote
            .entry(participant.to_owned())
            .or_insert_with(|| RemoteStats {
                participant_id: participant.to_owned(),
                ..RemoteStats::default()
            })
    }

    pub(crate) fn snapshot(&self) -> ClientStats {
        self.with(|s| {
            let mut out = ClientStats {
                participant_id: s.participant_id.clone(),
                remote: s.remote.clone(),
                join_ms: s.join_ms,
                sent: SentStats {
                    retransmissions_requested: self.nack_requests.load(Ordering::Relaxed),
                    ..s.sent.clone()
                },
                publisher: s.publisher.clone(),
                subscriber: s.subscriber.clone(),
                signaling_reconnects: s.reconnects,
                ..ClientStats::default()
            };
            for r in s.remote.values() {
                out.rtp_packets += r.rtp_packets;
                out.bytes += r.bytes;
                out.frames_decoded += r.frames_decoded;
                out.audio_frames_decoded += r.audio_frames_decoded;
            }
            out
        })
    }

    pub(crate) fn set_participant(&self, id: &str) {
        self.with(|s| s.participant_id = id.to_owned());
    }

    pub(crate) fn join_sent(&self, at: Instant) {
        self.with(|s| {
            s.join_sent_at.get_or_insert(at);
        });
    }

    pub(crate) fn reconnected(&self) {
        self.with(|s| s.reconnects += 1);
    }

    pub(crate) fn pc(&self, kind: PcKind, f: impl FnOnce(&mut PcStats)) {
        self.with(|s| {
            f(match kind {
                PcKind::Publisher => &mut s.publisher,
                PcKind::Subscriber => &mut s.subscriber,
            })
        });
    }

    pub(crate) fn pc_state(&self, kind: PcKind) -> PcState {
        self.with(|s| match kind {
            PcKind::Publisher => s.publisher.state,
            PcKind::Subscriber => s.subscriber.state,
        })
    }

    pub(crate) fn sent(&self, f: impl FnOnce(&mut SentStats)) {
        self.with(|s| f(&mut s.sent));
    }

    pub(crate) fn track_opened(&self, participant: &str) {
        self.with(|s| Self::remote(s, participant).tracks += 1);
    }

    pub(crate) fn rtp(&self, participant: &str, video: bool, payload_bytes: usize) {
        self.with(|s| {
            let r = Self::remote(s, participant);
            r.rtp_packets += 1;
            r.bytes += payload_bytes as u64;
            if video {
                r.video_rtp_packets += 1;
            } else {
                r.audio_rtp_packets += 1;
            }
        });
    }

    /// A complete frame was reassembled. Without decoding it also counts as "shown".
    pub(crate) fn video_frame_received(
        &self,
        participant: &str,
        counts_as_shown: bool,
        lost_total: u64,
    ) {
        let now = Instant::now();
        self.with(|s| {
            let r = Self::remote(s, participant);
            r.video_frames_received += 1;
            r.video_packets_lost = lost_total;
            if counts_as_shown {
                r.first_frame_at.get_or_insert(now);
                r.last_frame_at = Some(now);
                Self::first_frame(s, now);
            }
        });
    }

    pub(crate) fn video_frame_decoded(
        &self,
        participant: &str,
        width: u32,
        height: u32,
        keyframe: bool,
    ) {
        let now = Instant::now();
        self.with(|s| {
            let r = Self::remote(s, participant);
            r.frames_decoded += 1;
            if keyframe {
                r.keyframes_decoded += 1;
            }
            r.width = width;
            r.height = height;
            r.first_frame_at.get_or_insert(now);
            r.last_frame_at = Some(now);
            Self::first_frame(s, now);
        });
    }

    /// A screen-share picture was decoded (kept apart from the camera's counters).
    pub(crate) fn screen_frame_decoded(&self, participant: &str, width: u32, height: u32) {
        self.with(|s| {
            let r = Self::remote(s, participant);
            r.screen_frames_decoded += 1;
            r.screen_width = width;
            r.screen_height = height;
        });
    }

    fn first_frame(s: &mut Inner, now: Instant) {
        if s.join_ms.is_none()
            && let Some(sent) = s.join_sent_at
        {
            s.join_ms = Some(now.saturating_duration_since(sent).as_millis() as u64);
        }
    }

    pub(crate) fn decode_error(&self, participant: &str) {
        self.with(|s| Self::remote(s, participant).decode_errors += 1);
    }

    pub(crate) fn frame_dropped(&self, participant: &str) {
        self.with(|s| Self::remote(s, participant).frames_dropped += 1);
    }

    pub(crate) fn video_packets_recovered(&self, participant: &str, total: u64) {
        self.with(|s| Self::remote(s, participant).video_packets_recovered = total);
    }

    pub(crate) fn pli_sent(&self, participant: &str) {
        self.with(|s| Self::remote(s, participant).plis_sent += 1);
    }

    pub(crate) fn audio_decoded(&self, participant: &str, level_dbov: u8) {
        let now = Instant::now();
        self.with(|s| {
            let r = Self::remote(s, participant);
            r.audio_frames_decoded += 1;
            r.audio_level_dbov = Some(level_dbov);
            r.last_audio_at = Some(now);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_join_time() {
        let hub = StatsHub::default();
        hub.set_participant("me");
        hub.join_sent(Instant::now());
        hub.rtp("a", true, 1000);
        hub.rtp("a", false, 80);
        hub.rtp("b", true, 500);
        hub.video_frame_received("a", false, 0);
        hub.video_frame_decoded("a", 640, 360, true);
        hub.audio_decoded("a", 23);
        let s = hub.snapshot();
        assert_eq!(s.participant_id, "me");
        assert_eq!(s.rtp_packets, 3);
        assert_eq!(s.bytes, 1580);
        assert_eq!(s.frames_decoded, 1);
        assert_eq!(s.frames_decoded_from("a"), 1);
        assert_eq!(s.frames_decoded_from("b"), 0);
        let a = s.remote("a").expect("a");
        assert_eq!(
            (
                a.video_rtp_packets,
                a.audio_rtp_packets,
                a.width,
                a.keyframes_decoded
            ),
            (1, 1, 640, 1)
        );
        assert_eq!(a.audio_level_dbov, Some(23));
        assert!(s.join_ms.is_some());
    }

    #[test]
    fn join_time_counts_from_the_first_join() {
        let hub = StatsHub::default();
        let first = Instant::now() - std::time::Duration::from_millis(300);
        hub.join_sent(first);
        hub.join_sent(Instant::now());
        hub.video_frame_received("a", true, 0);
        assert!(hub.snapshot().join_ms.expect("join ms") >= 300);
    }
}
