//! How long the SFU holds a packet: from the moment a datagram is read off the socket to the
//! moment each forwarded copy is handed to the kernel.
//!
//! Recording is an array increment on the driver's own thread (no atomics, no allocation per
//! packet); the counts are published as `rounds_sfu_forward_delay_seconds_bucket{le=...}` on
//! the housekeeping tick, in the cumulative shape of a Prometheus histogram.

use std::time::Duration;

/// Upper bounds of the buckets, in microseconds.
const BOUNDS_US: [u64; 14] = [
    10, 25, 50, 100, 200, 300, 500, 750, 1_000, 2_000, 5_000, 10_000, 50_000, 250_000,
];
const LABELS: [&str; 15] = [
    "0.00001", "0.000025", "0.00005", "0.0001", "0.0002", "0.0003", "0.0005", "0.00075", "0.001",
    "0.002", "0.005", "0.01", "0.05", "0.25", "+Inf",
];

#[derive(Debug, Default)]
pub(crate) struct ForwardDelay {
    counts: [u64; BOUNDS_US.len() + 1],
    sum_us: u64,
}

impl ForwardDelay {
    pub(crate) fn record(&mut self, held: Duration) {
        let us = held.as_micros().min(u128::from(u64::MAX)) as u64;
        let i = BOUNDS_US.partition_point(|&b| b < us);
        self.counts[i] += 1;
        self.sum_us += us;
    }

    /// Publishes the cumulative counts.
    pub(crate) fn export(&self) {
        let mut cumulative = 0;
        for (count, le) in self.counts.iter().zip(LABELS) {
            cumulative += count;
            metrics::counter!("rounds_sfu_forward_delay_seconds_bucket", "le" => le)
                .absolute(cumulative);
        }
        metrics::counter!("rounds_sfu_forward_delay_seconds_count").absolute(cumulative);
        metrics::gauge!("rounds_sfu_forward_delay_seconds_sum").set(self.sum_us as f64 / 1e6);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_land_in_the_bucket_that_bounds_them() {
        let mut d = ForwardDelay::default();
        d.record(Duration::from_micros(10));
        d.record(Duration::from_micros(11));
        d.record(Duration::from_secs(1));
        assert_eq!(d.counts[0], 1);
        assert_eq!(d.counts[1], 1);
        assert_eq!(d.counts[BOUNDS_US.len()], 1);
        assert_eq!(LABELS.len(), BOUNDS_US.len() + 1);
    }
}
