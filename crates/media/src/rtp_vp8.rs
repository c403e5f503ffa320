//! VP8 RTP payload format (RFC 7741): payloader and depacketizer.
//!
//! Only the RTP *payload* is handled here; the caller owns the RTP header
//! (sequence number, timestamp, marker). The payloader emits the payloads of
//! one frame in order; the caller sets the marker bit on the last one and gives
//! all of them the frame's RTP timestamp.

use crate::vpx::EncodedFrame;

/// Bytes of payload descriptor the payloader writes (X and I bits, 15-bit
/// picture ID).
pub const PAYLOADER_DESCRIPTOR_LEN: usize = 4;

/// Whether a complete VP8 frame is a keyframe: the P bit of the frame tag is
/// clear and the keyframe start code follows (RFC 6386 §9.1).
pub fn vp8_is_keyframe(frame: &[u8]) -> bool {
    frame.len() >= 10 && frame[0] & 0x01 == 0 && frame[3..6] == [0x9d, 0x01, 0x2a]
}

/// Whether an RTP payload is the first packet of a VP8 keyframe: the descriptor marks the
/// start of partition 0 and the frame tag that follows is a keyframe's. A receiver waiting
/// for a lost packet can stop waiting once this arrives.
pub fn vp8_packet_starts_keyframe(payload: &[u8]) -> bool {
    Vp8PayloadDescriptor::parse(payload).is_some_and(|d| {
        d.start_of_partition && d.partition_id == 0 && {
            let data = &payload[d.len..];
            data[0] & 0x01 == 0 && data.get(3..6).is_none_or(|code| code == [0x9d, 0x01, 0x2a])
        }
    })
}

/// Split a frame into RTP payloads of at most `max_payload` bytes each, every
/// one starting with a VP8 payload descriptor: S set on the first packet,
/// partition ID 0, and the 15-bit `picture_id` (the top bit of `picture_id` is
/// ignored). The frame is spread evenly over as few packets as possible.
///
/// `max_payload` values below 5 are treated as 5 (descriptor plus one byte).
/// An empty frame gives no payloads.
pub fn vp8_payloads(frame: &EncodedFrame, max_payload: usize, picture_id: u16) -> Vec<Vec<u8>> {
    let data = &frame.data;
    if data.is_empty() {
        return Vec::new();
    }
    let room = max_payload.max(PAYLOADER_DESCRIPTOR_LEN + 1) - PAYLOADER_DESCRIPTOR_LEN;
    let count = data.len().div_ceil(room);
    // Even split: the first `data.len() % count` packets carry one byte more.
    let (base, extra) = (data.len() / count, data.len() % count);
    let pid = picture_id & 0x7fff;
    let mut out = Vec::with_capacity(count);
    let mut offset = 0;
    for i in 0..count {
        let len = base + usize::from(i < extra);
        let mut p = Vec::with_capacity(PAYLOADER_DESCRIPTOR_LEN + len);
        // X=1, N=0, S=first, PID=0.
        p.push(if i == 0 { 0x90 } else { 0x80 });
        // I=1 (picture ID present), L=T=K=0.
        p.push(0x80);
        // M=1: 15-bit picture ID.
        p.push(0x80 | (pid >> 8) as u8);
        p.push((pid & 0xff) as u8);
        p.extend_from_slice(&data[offset..offset + len]);
        offset += len;
        out.push(p);
    }
    out
}

/// A parsed VP8 payload descriptor (RFC 7741 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vp8PayloadDescriptor {
    /// N: the frame is not used as a reference.
    pub non_reference: bool,
    /// S: the packet starts a VP8 partition.
    pub start_of_partition: bool,
    /// PID: partition index.
    pub partition_id: u8,
    /// Picture ID, 7 or 15 bits, when present.
    pub picture_id: Option<u16>,
    /// TL0PICIDX, when present.
    pub tl0_pic_idx: Option<u8>,
    /// Temporal layer index, when present.
    pub tid: Option<u8>,
    /// KEYIDX, when present.
    pub key_idx: Option<u8>,
    /// Length of the descriptor in bytes (where the VP8 data starts).
    pub len: usize,
}

impl Vp8PayloadDescriptor {
    /// Parse the descriptor at the start of an RTP payload. `None` when the
    /// payload is too short for the descriptor it announces or carries no
    /// VP8 data after it.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let mut d = Self::default();
        let b0 = *payload.first()?;
        d.non_reference = b0 & 0x20 != 0;
        d.start_of_partition = b0 & 0x10 != 0;
        d.partition_id = b0 & 0x0f;
        let mut i = 1;
        if b0 & 0x80 != 0 {
            let x = *payload.get(i)?;
            i += 1;
            if x & 0x80 != 0 {
                let p0 = *payload.get(i)?;
                i += 1;
                if p0 & 0x80 != 0 {
                    let p1 = *payload.get(i)?;
                    i += 1;
                    d.picture_id = Some(u16::from(p0 & 0x7f) << 8 | u16::from(p1));
                } else {
                    d.picture_id = Some(u16::from(p0));
                }
            }
            if x & 0x40 != 0 {
                d.tl0_pic_idx = Some(*payload.get(i)?);
                i += 1;
            }
            if x & 0x30 != 0 {
                let tk = *payload.get(i)?;
                i += 1;
                if x & 0x20 != 0 {
                    d.tid = Some(tk >> 6);
                }
                if x & 0x10 != 0 {
                    d.key_idx = Some(tk & 0x1f);
                }
            }
        }
        if i >= payload.len() {
            return None;
        }
        d.len = i;
        Some(d)
    }
}

/// Counters kept by [`Vp8Depacketizer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DepacketizerStats {
    /// Packets passed to `push`.
    pub packets: u64,
    /// Packets missing according to sequence-number gaps.
    pub packets_lost: u64,
    /// Duplicate or out-of-order (older) packets, ignored.
    pub packets_late: u64,
    /// Payloads with an unparseable descriptor.
    pub packets_malformed: u64,
    /// Frames returned.
    pub frames_completed: u64,
    /// Keyframes among the frames returned.
    pub keyframes: u64,
    /// Frames seen at least partly but not returned (incomplete, or a delta
    /// frame while waiting for a keyframe).
    pub frames_dropped: u64,
}

/// Reassembles VP8 frames from RTP payloads that arrive in order.
///
/// Loss handling is deliberately simple and safe for a decoder: on any
/// sequence gap (or a malformed payload) the frame in progress is dropped and
/// every frame after it is dropped too until a complete keyframe arrives,
/// because delta frames would reference the lost data. It starts in that
/// waiting state, so a receiver joining mid-stream begins at a keyframe.
/// Reordered packets are not buffered: a packet older than the newest seen is
/// counted as late and ignored (the gap it left has already been handled).
#[derive(Debug, Clone)]
pub struct Vp8Depacketizer {
    last_seq: Option<u16>,
    buf: Vec<u8>,
    assembling: bool,
    frame_ts: u32,
    need_keyframe: bool,
    stats: DepacketizerStats,
}

impl Default for Vp8Depacketizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Vp8Depacketizer {
    /// A depacketizer waiting for its first keyframe.
    pub fn new() -> Self {
        Self {
            last_seq: None,
            buf: Vec::new(),
            assembling: false,
            frame_ts: 0,
            need_keyframe: true,
            stats: DepacketizerStats::default(),
        }
    }

    /// True while frames are being dropped until a keyframe arrives (the
    /// moment to send a PLI).
    pub fn needs_keyframe(&self) -> bool {
        self.need_keyframe
    }

    /// Counters so far.
    pub fn stats(&self) -> DepacketizerStats {
        self.stats
    }

    /// Feed one RTP packet's sequence number, timestamp, marker bit and
    /// payload. Returns a complete VP8 frame when this packet finished one
    /// that can be decoded.
    pub fn push(
        &mut self,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Option<Vec<u8>> {
        self.stats.packets += 1;
        if let Some(last) = self.last_seq {
            let delta = seq.wrapping_sub(last);
            if delta == 0 || delta >= 0x8000 {
                self.stats.packets_late += 1;
                return None;
            }
            if delta > 1 {
                self.stats.packets_lost += u64::from(delta - 1);
                self.lose();
            }
        }
        self.last_seq = Some(seq);

        let Some(desc) = Vp8PayloadDescriptor::parse(payload) else {
            self.stats.packets_malformed += 1;
            self.lose();
            return None;
        };
        let data = &payload[desc.len..];

        if desc.start_of_partition && desc.partition_id == 0 {
            if self.assembling {
                // The previous frame never saw its marker: incomplete.
                self.lose();
            }
            self.assembling = true;
            self.frame_ts = timestamp;
            self.buf.clear();
        } else if !self.assembling {
            // The rest of a frame whose start we lost or already dropped.
            return None;
        } else if timestamp != self.frame_ts {
            // A continuation from another frame: our frame is incomplete.
            self.lose();
            return None;
        }
        self.buf.extend_from_slice(data);

        if !marker {
            return None;
        }
        self.assembling = false;
        let frame = std::mem::take(&mut self.buf);
        let key = vp8_is_keyframe(&frame);
        if self.need_keyframe && !key {
            self.stats.frames_dropped += 1;
            return None;
        }
        if key {
            self.need_keyframe = false;
            self.stats.keyframes += 1;
        }
        self.stats.frames_completed += 1;
        Some(frame)
    }

    /// Something was lost: drop the frame in progress and wait for a keyframe.
    fn lose(&mut self) {
        if self.assembling {
            self.assembling = false;
            self.buf.clear();
            self.stats.frames_dropped += 1;
        }
        self.need_keyframe = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake keyframe: frame tag with P=0, then the start code.
    fn key(len: usize, fill: u8) -> EncodedFrame {
        let mut data = vec![fill; len];
        data[0] = 0x10;
        data[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
        EncodedFrame {
            data,
            keyframe: true,
            pts_ms: 0,
        }
    }

    fn delta(len: usize, fill: u8) -> EncodedFrame {
        let mut data = vec![fill; len];
        data[0] = 0x11;
        EncodedFrame {
            data,
            keyframe: false,
            pts_ms: 0,
        }
    }

    #[test]
    fn keyframe_detection() {
        assert!(vp8_is_keyframe(&key(10, 0).data));
        assert!(!vp8_is_keyframe(&delta(100, 0).data));
        assert!(!vp8_is_keyframe(&key(10, 0).data[..9]));
        assert!(!vp8_is_keyframe(&[]));
    }

    #[test]
    fn a_keyframe_is_told_from_its_first_packet_only() {
        let k = vp8_payloads(&key(3000, 0), 1200, 5);
        assert!(vp8_packet_starts_keyframe(&k[0]));
        assert!(!vp8_packet_starts_keyframe(&k[1]), "a continuation");
        let d = vp8_payloads(&delta(300, 0), 1200, 6);
        assert!(!vp8_packet_starts_keyframe(&d[0]));
        assert!(!vp8_packet_starts_keyframe(&[0x90]));
        assert!(!vp8_packet_starts_keyframe(&[]));
    }

    #[test]
    fn payloads_are_even_and_bounded() {
        let f = delta(2501, 7);
        let ps = vp8_payloads(&f, 1200, 0x1234);
        assert_eq!(ps.len(), 3);
        let sizes: Vec<usize> = ps.iter().map(Vec::len).collect();
        assert_eq!(sizes, [4 + 834, 4 + 834, 4 + 833]);
        assert!(ps.iter().all(|p| p.len() <= 1200));
        assert_eq!(&ps[0][..4], &[0x90, 0x80, 0x92, 0x34]);
        assert_eq!(&ps[1][..4], &[0x80, 0x80, 0x92, 0x34]);
        let joined: Vec<u8> = ps.iter().flat_map(|p| p[4..].to_vec()).collect();
        assert_eq!(joined, f.data);
        // Exactly fitting frame: one packet.
        assert_eq!(vp8_payloads(&delta(1196, 0), 1200, 0).len(), 1);
        assert_eq!(vp8_payloads(&delta(1197, 0), 1200, 0).len(), 2);
        // Degenerate sizes.
        assert_eq!(vp8_payloads(&delta(3, 0), 0, 0).len(), 3);
        let empty = EncodedFrame {
            data: vec![],
            keyframe: false,
            pts_ms: 0,
        };
        assert!(vp8_payloads(&empty, 1200, 0).is_empty());
    }

    #[test]
    fn picture_id_wraps_to_15_bits() {
        let ps = vp8_payloads(&delta(10, 0), 1200, 0xffff);
        let d = Vp8PayloadDescriptor::parse(&ps[0]).expect("parse");
        assert_eq!(d.picture_id, Some(0x7fff));
        assert!(d.start_of_partition);
        assert_eq!(d.len, 4);
    }

    #[test]
    fn parses_descriptors_from_other_senders() {
        // Minimal: no X, S set, PID 0.
        let d = Vp8PayloadDescriptor::parse(&[0x10, 0xaa]).expect("minimal");
        assert_eq!((d.start_of_partition, d.picture_id, d.len), (true, None, 1));
        // 7-bit picture ID.
        let d = Vp8PayloadDescriptor::parse(&[0x90, 0x80, 0x05, 0xaa]).expect("7-bit");
        assert_eq!((d.picture_id, d.len), (Some(5), 3));
        // Everything: N, S, PID 2, 15-bit picture ID, TL0PICIDX, TID/Y/KEYIDX.
        let d = Vp8PayloadDescriptor::parse(&[0xb2, 0xf0, 0x81, 0x02, 0x09, 0b1010_0011, 0xaa])
            .expect("full");
        assert_eq!(
            d,
            Vp8PayloadDescriptor {
                non_reference: true,
                start_of_partition: true,
                partition_id: 2,
                picture_id: Some(0x102),
                tl0_pic_idx: Some(9),
                tid: Some(2),
                key_idx: Some(3),
                len: 6,
            }
        );
        // Truncated or data-less payloads.
        for bad in [
            &[][..],
            &[0x90],
            &[0x90, 0x80],
            &[0x90, 0x80, 0x81, 0x02],
            &[0x10],
        ] {
            assert_eq!(Vp8PayloadDescriptor::parse(bad), None, "{bad:?}");
        }
    }

    /// Feed a frame's payloads with consecutive sequence numbers, skipping
    /// the indexes in `skip`; return what the last push returned.
    fn feed(
        d: &mut Vp8Depacketizer,
        seq: &mut u16,
        ts: u32,
        f: &EncodedFrame,
        skip: &[usize],
    ) -> Option<Vec<u8>> {
        let ps = vp8_payloads(f, 100, 1);
        let mut out = None;
        for (i, p) in ps.iter().enumerate() {
            let s = *seq;
            *seq = seq.wrapping_add(1);
            if skip.contains(&i) {
                continue;
            }
            out = d.push(s, ts, i + 1 == ps.len(), p);
        }
        out
    }

    #[test]
    fn waits_for_first_keyframe() {
        let mut d = Vp8Depacketizer::new();
        let mut seq = 65_530; // wraps during the test
        assert_eq!(feed(&mut d, &mut seq, 0, &delta(250, 1), &[]), None);
        assert!(d.needs_keyframe());
        let k = key(250, 2);
        assert_eq!(feed(&mut d, &mut seq, 3000, &k, &[]), Some(k.data.clone()));
        assert!(!d.needs_keyframe());
        let f = delta(250, 3);
        assert_eq!(feed(&mut d, &mut seq, 6000, &f, &[]), Some(f.data.clone()));
        let s = d.stats();
        assert_eq!(
            (s.frames_completed, s.frames_dropped, s.keyframes),
            (2, 1, 1)
        );
        assert_eq!(s.packets_lost, 0);
    }

    #[test]
    fn loss_drops_frames_until_keyframe() {
        let mut d = Vp8Depacketizer::new();
        let mut seq = 100;
        assert!(feed(&mut d, &mut seq, 0, &key(250, 0), &[]).is_some());
        // Middle packet of a delta frame lost.
        assert_eq!(feed(&mut d, &mut seq, 1, &delta(250, 1), &[1]), None);
        // Complete delta frames after the loss are still dropped.
        assert_eq!(feed(&mut d, &mut seq, 2, &delta(250, 2), &[]), None);
        // First packet (with S) lost.
        assert_eq!(feed(&mut d, &mut seq, 3, &delta(250, 3), &[0]), None);
        // Last packet (with marker) lost, then a keyframe recovers.
        assert_eq!(feed(&mut d, &mut seq, 4, &key(250, 4), &[2]), None);
        let k = key(250, 5);
        assert_eq!(feed(&mut d, &mut seq, 5, &k, &[]), Some(k.data.clone()));
        let f = delta(250, 6);
        assert_eq!(feed(&mut d, &mut seq, 6, &f, &[]), Some(f.data.clone()));
        let s = d.stats();
        assert_eq!(s.packets_lost, 3);
        assert_eq!(s.frames_completed, 3);
        assert_eq!(s.keyframes, 2);
    }

    #[test]
    fn duplicates_and_late_packets_are_ignored() {
        let mut d = Vp8Depacketizer::new();
        let ps = vp8_payloads(&key(250, 0), 100, 1);
        assert_eq!(d.push(10, 0, false, &ps[0]), None);
        assert_eq!(d.push(10, 0, false, &ps[0]), None);
        assert_eq!(d.push(11, 0, false, &ps[1]), None);
        assert_eq!(d.push(9, 0, false, &ps[1]), None);
        assert!(d.push(12, 0, true, &ps[2]).is_some());
        assert_eq!(d.stats().packets_late, 2);
    }

    #[test]
    fn malformed_payload_counts_as_loss() {
        let mut d = Vp8Depacketizer::new();
        let ps = vp8_payloads(&key(250, 0), 100, 1);
        assert_eq!(d.push(1, 0, false, &ps[0]), None);
        assert_eq!(d.push(2, 0, false, &[0x90]), None);
        assert_eq!(d.push(3, 0, true, &ps[2]), None);
        let s = d.stats();
        assert_eq!((s.packets_malformed, s.frames_dropped), (1, 1));
        assert!(d.needs_keyframe());
    }
}
