//! Sequence numbers and timestamps on the subscriber leg.
//!
//! Each subscriber's sender keeps one SSRC for a published track for as long as the slot
//! lives, but what feeds it can change underneath: a publisher that rebuilds its connection
//! (after a network cut, say) publishes the same mid again with a new SSRC, a new random
//! first sequence number and a new RTP clock. Forwarding those numbers unchanged would make
//! the subscriber see its stream jump, half the time backwards, and a receiver that drops
//! "late" packets would never decode again. So every outgoing stream is rewritten to
//! continue where it left off: the first packet of a new source follows the last one sent,
//! and its timestamp advances by the wall-clock time in between.

use std::time::Instant;

/// Per subscriber and track: the offsets that map the current source onto the outgoing
/// stream.
#[derive(Debug, Default, Clone)]
pub(crate) struct StreamRewriter {
    last: Option<Mapping>,
}

#[derive(Debug, Clone)]
struct Mapping {
    source_ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
    /// The newest sequence number and timestamp sent, and when.
    out_seq: u16,
    out_ts: u32,
    at: Instant,
}

impl StreamRewriter {
    /// The outgoing (sequence number, timestamp) for a packet from `source_ssrc`.
    /// `clock_rate` is the RTP clock of the track (90 kHz video, 48 kHz Opus).
    pub(crate) fn map(
        &mut self,
        source_ssrc: u32,
        seq: u16,
        ts: u32,
        clock_rate: u32,
        now: Instant,
    ) -> (u16, u32) {
        if let Some(m) = self.last.as_mut()
            && m.source_ssrc == source_ssrc
        {
            let out = (seq.wrapping_add(m.seq_offset), ts.wrapping_add(m.ts_offset));
            // Only a newer packet moves the mark; a reordered one keeps its own number.
            if out.0.wrapping_sub(m.out_seq) < 0x8000 {
                (m.out_seq, m.out_ts, m.at) = (out.0, out.1, now);
            }
            return out;
        }
        let out = match &self.last {
            None => (seq, ts),
            Some(m) => {
                let ticks =
                    now.saturating_duration_since(m.at).as_secs_f64() * f64::from(clock_rate);
                let ticks = (ticks as u64).clamp(1, u64::from(u32::MAX / 2)) as u32;
                (m.out_seq.wrapping_add(1), m.out_ts.wrapping_add(ticks))
            }
        };
        self.last = Some(Mapping {
            source_ssrc,
            seq_offset: out.0.wrapping_sub(seq),
            ts_offset: out.1.wrapping_sub(ts),
            out_seq: out.0,
            out_ts: out.1,
            at: now,
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn one_source_passes_through_unchanged() {
        let mut r = StreamRewriter::default();
        let t = Instant::now();
        assert_eq!(r.map(7, 100, 9000, 90_000, t), (100, 9000));
        assert_eq!(r.map(7, 101, 12_000, 90_000, t), (101, 12_000));
        // Wraparound and a late packet keep their own numbers.
        assert_eq!(r.map(7, 99, 6000, 90_000, t), (99, 6000));
        assert_eq!(r.map(7, 101, 12_000, 90_000, t), (101, 12_000));
    }

    #[test]
    fn a_new_source_continues_the_stream_whichever_way_its_numbers_jump() {
        for new_seq in [3u16, 40_000, 65_535] {
            let mut r = StreamRewriter::default();
            let t = Instant::now();
            r.map(1, 1000, 50_000, 90_000, t);
            r.map(1, 1001, 53_000, 90_000, t);
            // The publisher came back as a new source half a second later.
            let later = t + Duration::from_millis(500);
            let (seq, ts) = r.map(2, new_seq, 7, 90_000, later);
            assert_eq!(seq, 1002, "new first seq {new_seq}");
            assert_eq!(ts, 53_000 + 45_000);
            let (seq, ts) = r.map(2, new_seq.wrapping_add(1), 3007, 90_000, later);
            assert_eq!((seq, ts), (1003, 53_000 + 48_000));
        }
    }

    #[test]
    fn the_outgoing_numbers_wrap_like_rtp() {
        let mut r = StreamRewriter::default();
        let t = Instant::now();
        r.map(1, 65_535, u32::MAX, 48_000, t);
        let (seq, ts) = r.map(2, 500, 500, 48_000, t);
        assert_eq!((seq, ts), (0, 0));
    }
}
