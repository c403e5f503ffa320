//! Recent RTP packets of one upstream stream, by sequence number, for answering NACKs.
//!
//! Sequence numbers are 16 bits and wrap every 65536 packets (about four minutes of 720p
//! video), so they are extended to 64 bits relative to the newest packet seen, the way RFC 3550
//! appendix A.1 counts cycles. Every slot remembers the extended number it holds: a lookup can
//! never return a packet from an earlier cycle that happens to share the 16-bit number.

use bytes::Bytes;

/// A packet kept for retransmission: its upstream sequence number and the bytes the driver
/// stored (typically the whole RTP packet, which the driver rewrites as it does for live ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    pub seq: u16,
    pub data: Bytes,
}

/// A packet this far behind the newest one is not a reordering (no network holds back
/// thousands of packets): the sender restarted its sequence, so the history is dropped.
const RESTART_BEHIND: i64 = 4096;

/// Extended numbering starts here, not at zero, so that it can move backwards (a reordered
/// first packet) without going below zero.
const ORIGIN: u64 = 1 << 32;

/// A ring of the last `capacity` packets of one stream.
#[derive(Debug, Clone)]
pub struct RetransmitBuffer {
    slots: Vec<Option<(u64, Bytes)>>,
    /// Extended sequence number of the newest packet, once there is one.
    newest: Option<u64>,
}

impl RetransmitBuffer {
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: vec![None; capacity.max(1)],
            newest: None,
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Stores a packet. Packets older than the window are ignored; a duplicate replaces the copy.
    pub fn insert(&mut self, seq: u16, data: Bytes) {
        let ext = match self.extend(seq) {
            Some(ext) if self.behind(ext) < RESTART_BEHIND => ext,
            Some(_) => {
                self.clear();
                ORIGIN + u64::from(seq)
            }
            None => ORIGIN + u64::from(seq),
        };
        let newest = self.newest.map_or(ext, |n| n.max(ext));
        if newest - ext >= self.capacity() as u64 {
            return;
        }
        self.newest = Some(newest);
        let slot = self.slot(ext);
        self.slots[slot] = Some((ext, data));
    }

    /// The packet with this sequence number, if it is still in the window.
    pub fn get(&self, seq: u16) -> Option<&Bytes> {
        let newest = self.newest?;
        let ext = self.extend(seq)?;
        if ext > newest || newest - ext >= self.capacity() as u64 {
            return None;
        }
        match &self.slots[self.slot(ext)] {
            Some((stored, data)) if *stored == ext => Some(data),
            _ => None,
        }
    }

    fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.newest = None;
    }

    /// The extended number of `seq`: the one nearest the newest packet.
    fn extend(&self, seq: u16) -> Option<u64> {
        let newest = self.newest?;
        let delta = seq.wrapping_sub(newest as u16) as i16;
        Some(newest.wrapping_add_signed(i64::from(delta)))
    }

    fn behind(&self, ext: u64) -> i64 {
        self.newest.map_or(0, |n| n as i64 - ext as i64)
    }

    fn slot(&self, ext: u64) -> usize {
        (ext % self.capacity() as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(n: u32) -> Bytes {
        Bytes::from(n.to_be_bytes().to_vec())
    }

    #[test]
    fn keeps_the_last_capacity_packets_and_evicts_older_ones() {
        let mut buf = RetransmitBuffer::new(512);
        for n in 0..1000u32 {
            buf.insert(n as u16, payload(n));
        }
        for n in 0..1000u32 {
            let got = buf.get(n as u16);
            if n < 1000 - 512 {
                assert_eq!(got, None, "seq {n} should have been evicted");
            } else {
                assert_eq!(got, Some(&payload(n)), "seq {n}");
            }
        }
        assert_eq!(buf.get(1000), None, "a packet not yet received");
    }

    #[test]
    fn survives_sequence_wraparound() {
        let mut buf = RetransmitBuffer::new(512);
        let seqs: Vec<u16> = (65_500..=65_535).chain(0..40).collect();
        for (i, &seq) in seqs.iter().enumerate() {
            buf.insert(seq, payload(i as u32));
        }
        for (i, &seq) in seqs.iter().enumerate() {
            assert_eq!(buf.get(seq), Some(&payload(i as u32)), "seq {seq}");
        }
        assert_eq!(buf.get(65_499), None);
        assert_eq!(buf.get(40), None);
    }

    #[test]
    fn eviction_across_wraparound_is_by_age_not_by_number() {
        let mut buf = RetransmitBuffer::new(8);
        for seq in (65_530..=65_535).chain(0..10) {
            buf.insert(seq, payload(u32::from(seq)));
        }
        // The newest is 9; the window is 2..=9, so everything before the wrap is gone.
        for seq in 65_530..=65_535 {
            assert_eq!(buf.get(seq), None, "seq {seq}");
        }
        assert_eq!(buf.get(1), None);
        for seq in 2..10 {
            assert_eq!(buf.get(seq), Some(&payload(u32::from(seq))), "seq {seq}");
        }
    }

    #[test]
    fn a_later_cycle_never_returns_the_old_packet_with_the_same_number() {
        let mut buf = RetransmitBuffer::new(512);
        buf.insert(100, payload(1));
        // Big forward jumps (lost bursts) carry the stream two full cycles on without ever
        // rewriting the slot that held 100; 100 of this cycle was never received.
        for seq in [30_100, 60_100, 24_564, 54_564, 110] {
            buf.insert(seq, payload(2));
        }
        assert_eq!(buf.get(110), Some(&payload(2)));
        assert_eq!(buf.get(100), None, "the stored 100 is from two cycles ago");

        let mut fresh = RetransmitBuffer::new(512);
        fresh.insert(100, payload(1));
        fresh.insert(612, payload(3));
        // 100 is now exactly outside the window of 512.
        assert_eq!(fresh.get(100), None);
        assert_eq!(fresh.get(612), Some(&payload(3)));
    }

    #[test]
    fn reordered_and_duplicate_packets() {
        let mut buf = RetransmitBuffer::new(16);
        buf.insert(10, payload(10));
        buf.insert(12, payload(12));
        buf.insert(11, payload(11));
        buf.insert(12, payload(99));
        assert_eq!(buf.get(11), Some(&payload(11)));
        assert_eq!(buf.get(12), Some(&payload(99)));
        // Older than the window: ignored, and does not disturb what is there.
        for seq in 13..40 {
            buf.insert(seq, payload(u32::from(seq)));
        }
        buf.insert(5, payload(5));
        assert_eq!(buf.get(5), None);
        assert_eq!(buf.get(39), Some(&payload(39)));
    }

    #[test]
    fn a_restarted_sequence_replaces_the_history() {
        let mut buf = RetransmitBuffer::new(64);
        for seq in 30_000..30_010 {
            buf.insert(seq, payload(u32::from(seq)));
        }
        buf.insert(7, payload(7));
        buf.insert(8, payload(8));
        assert_eq!(buf.get(8), Some(&payload(8)));
        assert_eq!(buf.get(30_005), None);
    }

    #[test]
    fn empty_buffer_has_nothing() {
        let buf = RetransmitBuffer::new(0);
        assert_eq!(buf.capacity(), 1);
        assert_eq!(buf.get(0), None);
    }
}
