//! One deadline per peer connection, kept in a min-heap.
//!
//! Each `rtc` connection reports its own next deadline (ICE consent, DTLS retransmits, RTCP
//! reports, NACK, TWCC feedback). Scanning every connection on every wake-up would cost
//! O(connections) per packet, so the driver keeps them in a heap instead. Re-arming pushes a new
//! entry and leaves the old one in place; entries that no longer match the connection's armed
//! deadline are skipped when they surface (lazy deletion) and the heap is rebuilt when stale
//! entries outnumber live ones.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use super::PcId;

#[derive(Default)]
pub(crate) struct TimerHeap {
    heap: BinaryHeap<Reverse<(Instant, PcId)>>,
    armed: HashMap<PcId, Instant>,
}

impl TimerHeap {
    pub(crate) fn arm(&mut self, id: PcId, at: Option<Instant>) {
        let Some(at) = at else {
            self.armed.remove(&id);
            return;
        };
        if self.armed.get(&id) == Some(&at) {
            return;
        }
        self.armed.insert(id, at);
        self.heap.push(Reverse((at, id)));
        if self.heap.len() > 2 * self.armed.len() + 64 {
            self.heap = self
                .armed
                .iter()
                .map(|(id, at)| Reverse((*at, *id)))
                .collect();
        }
    }

    pub(crate) fn disarm(&mut self, id: PcId) {
        self.armed.remove(&id);
    }

    fn is_live(&self, at: Instant, id: PcId) -> bool {
        self.armed.get(&id) == Some(&at)
    }

    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if self.is_live(at, id) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// The next connection whose deadline is at or before `now`, disarming it.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<PcId> {
        loop {
            let Reverse((at, id)) = self.heap.peek().copied()?;
            if !self.is_live(at, id) {
                self.heap.pop();
                continue;
            }
            if at > now {
                return None;
            }
            self.heap.pop();
            self.armed.remove(&id);
            return Some(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_deadline_order_and_skips_stale_entries() {
        let t0 = Instant::now();
        let mut timers = TimerHeap::default();
        timers.arm(PcId(1), Some(t0 + Duration::from_millis(30)));
        timers.arm(PcId(2), Some(t0 + Duration::from_millis(10)));
        // Re-arming leaves a stale entry behind that must not fire.
        timers.arm(PcId(1), Some(t0 + Duration::from_millis(20)));
        timers.arm(PcId(3), Some(t0 + Duration::from_millis(5)));
        timers.disarm(PcId(3));
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_millis(10)));
        let later = t0 + Duration::from_millis(100);
        assert_eq!(timers.pop_due(later), Some(PcId(2)));
        assert_eq!(timers.pop_due(later), Some(PcId(1)));
        assert_eq!(timers.pop_due(later), None);
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn heap_stays_bounded_under_rearming() {
        let t0 = Instant::now();
        let mut timers = TimerHeap::default();
        for i in 0..10_000u64 {
            timers.arm(PcId(i % 4), Some(t0 + Duration::from_micros(i)));
        }
        assert!(timers.heap.len() <= 2 * 4 + 65);
    }
}
