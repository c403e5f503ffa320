//! A subscriber's downlink estimate from the loss its receiver reports show, for when nothing
//! better (TWCC or REMB through [`super::Engine::set_bandwidth_estimate`]) is given.
//!
//! This is the loss-based half of Google Congestion Control (draft-ietf-rmcat-gcc §6): below
//! [`LOW_LOSS`] the link has room, so the estimate grows by [`INCREASE`] at most once per
//! [`INCREASE_EVERY`]; above [`HIGH_LOSS`] it shrinks in proportion to the loss at once;
//! in between it holds. It needs nothing but receiver reports, which every WebRTC endpoint
//! sends, and costs nothing per packet (a full delay-based estimator over TWCC feedback has
//! to record every packet sent to every subscriber).

use std::time::{Duration, Instant};

use super::DEFAULT_BANDWIDTH_BPS;

/// Loss below which the link is taken to have room.
pub const LOW_LOSS: f64 = 0.02;
/// Loss above which the link is taken to be overloaded.
pub const HIGH_LOSS: f64 = 0.10;
/// Growth per step while loss is low: a layer step (150 → 450 → 1200 kbps) takes a few
/// seconds, which is as fast as the upgrade hold lets a viewer move anyway.
pub const INCREASE: f64 = 1.08;
pub const INCREASE_EVERY: Duration = Duration::from_secs(1);
const MIN_BPS: u64 = 100_000;
const MAX_BPS: u64 = 20_000_000;

#[derive(Debug, Clone)]
pub(super) struct LossBasedEstimate {
    bps: u64,
    last_increase: Option<Instant>,
}

impl Default for LossBasedEstimate {
    fn default() -> Self {
        Self {
            bps: DEFAULT_BANDWIDTH_BPS,
            last_increase: None,
        }
    }
}

impl LossBasedEstimate {
    pub(super) fn bps(&self) -> u64 {
        self.bps
    }

    /// One receiver report's loss fraction (0.0–1.0); returns the new estimate.
    pub(super) fn report(&mut self, loss: f64, now: Instant) -> u64 {
        if !loss.is_finite() {
            return self.bps;
        }
        let loss = loss.clamp(0.0, 1.0);
        if loss > HIGH_LOSS {
            self.bps = ((self.bps as f64) * (1.0 - 0.5 * loss)) as u64;
        } else if loss < LOW_LOSS
            && self
                .last_increase
                .is_none_or(|at| now.saturating_duration_since(at) >= INCREASE_EVERY)
        {
            self.bps = ((self.bps as f64) * INCREASE) as u64 + 1_000;
            self.last_increase = Some(now);
        }
        self.bps = self.bps.clamp(MIN_BPS, MAX_BPS);
        self.bps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_slowly_without_loss_and_falls_at_once_with_much() {
        let t0 = Instant::now();
        let mut e = LossBasedEstimate::default();
        assert_eq!(e.bps(), DEFAULT_BANDWIDTH_BPS);
        // Many reports in one second count once.
        let first = e.report(0.0, t0);
        assert!(first > DEFAULT_BANDWIDTH_BPS);
        assert_eq!(e.report(0.0, t0 + Duration::from_millis(300)), first);
        // Ten clean seconds: a bit more than doubled.
        for s in 1..=10 {
            e.report(0.0, t0 + Duration::from_secs(s));
        }
        assert!(e.bps() > 2 * DEFAULT_BANDWIDTH_BPS, "{}", e.bps());
        // Moderate loss holds; heavy loss cuts at once.
        let held = e.bps();
        assert_eq!(e.report(0.05, t0 + Duration::from_secs(12)), held);
        let cut = e.report(0.40, t0 + Duration::from_millis(12_100));
        assert_eq!(cut, (held as f64 * 0.8) as u64);
        // Never below the floor, whatever the loss.
        for i in 0..100 {
            e.report(1.0, t0 + Duration::from_secs(13) + Duration::from_millis(i));
        }
        assert_eq!(e.bps(), MIN_BPS);
        assert_eq!(e.report(f64::NAN, t0 + Duration::from_secs(20)), MIN_BPS);
    }
}
