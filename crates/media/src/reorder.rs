//! Puts RTP packets back in sequence order and gives a lost packet time to be retransmitted.
//!
//! On a lossy network a receiver asks for every missing packet again (RTCP NACK, RFC 4585) and
//! the retransmission arrives a round trip later, after packets that were sent behind it. A
//! depacketizer fed straight from the network sees a gap, drops the frame and waits for a
//! keyframe: every lost packet becomes a keyframe round trip, which is a visible freeze.
//!
//! [`ReorderBuffer`] sits in front of it. Packets in order pass straight through. Behind a
//! hole, packets are held until the hole fills, or until the first packet held behind it has
//! waited `max_wait`: then the hole is given up and what follows is released, and the
//! depacketizer sees the gap. A duplicate, or a packet older than what was already released,
//! is dropped. Holding is bounded by `max_wait` and by a packet count, never by the sender.
//!
//! The caller may also give holes up early with [`ReorderBuffer::skip_to`]: once a keyframe
//! has arrived behind a hole, nothing before it is needed to decode what follows.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Packets held at most (about 5 s of 720p video at 1.5 Mbps is far more than any hole).
const MAX_HELD: usize = 2048;

/// Counters kept by [`ReorderBuffer`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReorderStats {
    /// Packets that arrived after a later one and filled a hole in time (typically a
    /// retransmission answering a NACK).
    pub recovered: u64,
    /// Packets given up on: the hole was still open when its wait ran out.
    pub lost: u64,
    /// Duplicates, and packets that came after their place had been released.
    pub discarded: u64,
}

/// Reorders one RTP stream's packets; `T` is whatever the caller keeps per packet.
#[derive(Debug)]
pub struct ReorderBuffer<T> {
    max_wait: Duration,
    /// Extended sequence number of the next packet to release.
    next: Option<u64>,
    /// The highest extended sequence number seen, for unwrapping.
    highest: Option<u64>,
    held: BTreeMap<u64, (Instant, T)>,
    stats: ReorderStats,
}

impl<T> ReorderBuffer<T> {
    /// A buffer that waits at most `max_wait` for a missing packet.
    pub fn new(max_wait: Duration) -> Self {
        ReorderBuffer {
            max_wait,
            next: None,
            highest: None,
            held: BTreeMap::new(),
            stats: ReorderStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> ReorderStats {
        self.stats
    }

    /// Packets held behind a hole right now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Takes a packet that arrived at `now`. Returns what can be released, in order, with
    /// each packet's sequence number.
    pub fn push(&mut self, seq: u16, item: T, now: Instant) -> Vec<(u16, T)> {
        let behind = self.highest;
        let ext = self.extend(seq);
        let next = *self.next.get_or_insert(ext);
        if ext < next || self.held.contains_key(&ext) {
            self.stats.discarded += 1;
            return Vec::new();
        }
        if ext == next && self.held.is_empty() {
            // The common case: in order, nothing held.
            self.next = Some(next + 1);
            return vec![(seq, item)];
        }
        if behind.is_some_and(|h| ext < h) {
            self.stats.recovered += 1;
        }
        self.held.insert(ext, (now, item));
        self.release(now)
    }

    /// Releases what is due at `now` without a new packet: call it at [`Self::deadline`].
    pub fn poll(&mut self, now: Instant) -> Vec<(u16, T)> {
        self.release(now)
    }

    /// When the hole being waited on will be given up, if one is.
    pub fn deadline(&self) -> Option<Instant> {
        self.waiting_since().map(|since| since + self.max_wait)
    }

    /// Since when the oldest open hole has been waited on (when the first packet behind it
    /// arrived), if one is.
    pub fn waiting_since(&self) -> Option<Instant> {
        self.held.values().next().map(|(arrived, _)| *arrived)
    }

    /// Gives up every hole before `seq` now, as if their wait had run out, and releases what
    /// that frees: what was held before `seq`, then `seq` and what follows it in order. Does
    /// nothing if `seq` was already released.
    pub fn skip_to(&mut self, seq: u16, now: Instant) -> Vec<(u16, T)> {
        let (Some(next), Some(high)) = (self.next, self.highest) else {
            return Vec::new();
        };
        let delta = seq.wrapping_sub(high as u16) as i16;
        let target = high.saturating_add_signed(i64::from(delta));
        if target <= next {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut n = next;
        let before: Vec<u64> = self.held.range(..target).map(|(k, _)| *k).collect();
        for k in before {
            if let Some((_, item)) = self.held.remove(&k) {
                self.stats.lost += k - n;
                out.push((k as u16, item));
                n = k + 1;
            }
        }
        self.stats.lost += target - n;
        self.next = Some(target);
        out.extend(self.release(now));
        out
    }

    fn release(&mut self, now: Instant) -> Vec<(u16, T)> {
        let mut out = Vec::new();
        let Some(mut next) = self.next else {
            return out;
        };
        loop {
            if let Some((_, item)) = self.held.remove(&next) {
                out.push((next as u16, item));
                next += 1;
                continue;
            }
            let Some((&first, (arrived, _))) = self.held.iter().next() else {
                break;
            };
            if now < *arrived + self.max_wait && self.held.len() < MAX_HELD {
                break;
            }
            // Give the hole up: the packets in it are lost.
            self.stats.lost += first - next;
            next = first;
        }
        self.next = Some(next);
        out
    }

    /// The extended (wrap-free) sequence number of `seq`, nearest to the highest seen.
    fn extend(&mut self, seq: u16) -> u64 {
        let ext = match self.highest {
            None => u64::from(seq) + (1 << 16),
            Some(high) => {
                let delta = seq.wrapping_sub(high as u16) as i16;
                high.saturating_add_signed(i64::from(delta))
            }
        };
        if self.highest.is_none_or(|h| ext > h) {
            self.highest = Some(ext);
        }
        ext
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_millis(300);

    fn seqs(out: &[(u16, u32)]) -> Vec<u16> {
        out.iter().map(|(s, _)| *s).collect()
    }

    #[test]
    fn in_order_packets_pass_straight_through() {
        let mut b = ReorderBuffer::new(WAIT);
        let t = Instant::now();
        for s in 100u16..110 {
            assert_eq!(seqs(&b.push(s, u32::from(s), t)), vec![s]);
        }
        assert_eq!(b.held(), 0);
        assert_eq!(b.deadline(), None);
    }

    #[test]
    fn a_retransmission_fills_the_hole_and_everything_comes_out_in_order() {
        let mut b = ReorderBuffer::new(WAIT);
        let t = Instant::now();
        assert_eq!(seqs(&b.push(1, 1, t)), vec![1]);
        // 2 is lost; 3 and 4 wait for it.
        assert!(b.push(3, 3, t).is_empty());
        assert!(b.push(4, 4, t + Duration::from_millis(10)).is_empty());
        assert_eq!(b.deadline(), Some(t + WAIT));
        // The retransmission arrives 200 ms later.
        let out = b.push(2, 2, t + Duration::from_millis(200));
        assert_eq!(seqs(&out), vec![2, 3, 4]);
        assert_eq!(out.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(b.stats().recovered, 1);
        assert_eq!(b.stats().lost, 0);
        // A second copy of it is dropped.
        assert!(b.push(2, 2, t + Duration::from_millis(250)).is_empty());
        assert_eq!(b.stats().discarded, 1);
    }

    #[test]
    fn a_hole_is_given_up_after_the_wait_and_late_packets_are_dropped() {
        let mut b = ReorderBuffer::new(WAIT);
        let t = Instant::now();
        b.push(10, 10, t);
        b.push(13, 13, t);
        assert!(b.poll(t + WAIT - Duration::from_millis(1)).is_empty());
        assert_eq!(seqs(&b.poll(t + WAIT)), vec![13]);
        assert_eq!(b.stats().lost, 2);
        assert!(b.push(11, 11, t + WAIT * 2).is_empty());
        assert_eq!(b.stats().discarded, 1);
        assert_eq!(seqs(&b.push(14, 14, t + WAIT * 2)), vec![14]);
    }

    #[test]
    fn each_hole_waits_from_when_it_was_seen() {
        let mut b = ReorderBuffer::new(WAIT);
        let t = Instant::now();
        b.push(1, 1, t);
        b.push(3, 3, t); // hole at 2
        let later = t + Duration::from_millis(200);
        b.push(5, 5, later); // hole at 4, seen at `later`
        // The first hole is given up at t + WAIT; 3 is released, then the second hole is
        // waited on until later + WAIT.
        assert_eq!(seqs(&b.poll(t + WAIT)), vec![3]);
        assert_eq!(b.deadline(), Some(later + WAIT));
        assert_eq!(seqs(&b.push(4, 4, t + WAIT)), vec![4, 5]);
    }

    #[test]
    fn skipping_to_a_keyframe_gives_the_holes_before_it_up_at_once() {
        let mut b = ReorderBuffer::new(WAIT);
        let t = Instant::now();
        b.push(1, 1, t);
        b.push(3, 3, t); // hole at 2
        b.push(6, 6, t); // hole at 4..=5; 6 starts a keyframe
        b.push(8, 8, t); // hole at 7, inside the keyframe: still waited for
        assert_eq!(b.waiting_since(), Some(t));
        let out = b.skip_to(6, t + Duration::from_millis(10));
        assert_eq!(seqs(&out), vec![3, 6]);
        assert_eq!(b.stats().lost, 3);
        assert_eq!(b.held(), 1);
        // The hole inside the keyframe fills normally.
        assert_eq!(seqs(&b.push(7, 7, t)), vec![7, 8]);
        // Skipping to something already released does nothing.
        assert!(b.skip_to(6, t).is_empty());
        assert!(b.skip_to(3, t).is_empty());
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut b = ReorderBuffer::new(WAIT);
        let t = Instant::now();
        b.push(65534, 0, t);
        assert!(b.push(0, 2, t).is_empty());
        assert_eq!(seqs(&b.push(65535, 1, t)), vec![65535, 0]);
        assert_eq!(seqs(&b.push(1, 3, t)), vec![1]);
    }

    #[test]
    fn holding_is_bounded_by_count() {
        let mut b = ReorderBuffer::new(Duration::from_secs(3600));
        let t = Instant::now();
        b.push(0, 0, t);
        let mut released = 0;
        for s in 2..(MAX_HELD as u16 + 10) {
            released += b.push(s, 0, t).len();
        }
        assert!(b.held() <= MAX_HELD);
        assert!(released > 0, "a full buffer gives its oldest hole up");
        assert_eq!(b.stats().lost, 1);
    }
}
