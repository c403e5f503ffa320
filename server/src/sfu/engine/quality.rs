//! Network quality: a 0–5 score per participant from RTCP receiver report figures.
//!
//! | score | meaning       | loss      | jitter    | round trip |
//! |-------|---------------|-----------|-----------|------------|
//! | 5     | excellent     | < 1 %     | < 20 ms   | < 200 ms   |
//! | 4     | good          | < 3 %     | < 40 ms   | < 300 ms   |
//! | 3     | fair          | < 6 %     | < 60 ms   | < 450 ms   |
//! | 2     | poor          | < 12 %    | < 100 ms  | < 700 ms   |
//! | 1     | very poor     | otherwise | otherwise | otherwise  |
//! | 0     | no data       | –         | –         | –          |
//!
//! "No data" is before the first report, and again once none has come for
//! [`QUALITY_STALE_AFTER`]: the participant is gone or their connection is.
//!
//! The score is the worst of the three columns: one bad figure is enough to spoil a call.
//! Loss thresholds follow what Opus FEC and video NACK can hide; the round trip ones follow ITU-T
//! G.114 (conversation suffers beyond about 150 ms one way). Each figure is smoothed with an
//! exponential time constant of [`QUALITY_TAU`], so one bad report is not a red badge on the
//! clinician's screen; a smoothed score that worsens is published at once, one that improves only
//! after it has held for [`QUALITY_RECOVERY_HOLD`], so a link hovering on a threshold does not
//! make the badge blink.

use std::time::{Duration, Instant};

use super::{QUALITY_RECOVERY_HOLD, QUALITY_STALE_AFTER, QUALITY_TAU};

/// Upper bounds (exclusive) for scores 5, 4, 3 and 2.
const LOSS_PERCENT: [f64; 4] = [1.0, 3.0, 6.0, 12.0];
const JITTER_MS: [f64; 4] = [20.0, 40.0, 60.0, 100.0];
const RTT_MS: [f64; 4] = [200.0, 300.0, 450.0, 700.0];

/// A report weighs at least as much as this much time, so two reports at the same instant (the
/// uplink's and the downlink's) both count.
const MIN_REPORT_SPAN: Duration = Duration::from_millis(200);

/// The score for one set of figures, without smoothing.
pub fn score_for(loss_fraction: f64, jitter_ms: f64, rtt_ms: f64) -> u8 {
    let grade = |value: f64, bounds: &[f64; 4]| -> u8 {
        match bounds.iter().position(|&b| value < b) {
            Some(i) => 5 - i as u8,
            None => 1,
        }
    };
    grade(loss_fraction * 100.0, &LOSS_PERCENT)
        .min(grade(jitter_ms, &JITTER_MS))
        .min(grade(rtt_ms, &RTT_MS))
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Figures {
    loss: f64,
    jitter_ms: f64,
    rtt_ms: f64,
}

impl Figures {
    /// Clamps to the possible range; `None` if a figure is not a number at all.
    fn sane(loss: f64, jitter_ms: f64, rtt_ms: f64) -> Option<Self> {
        if loss.is_nan() || jitter_ms.is_nan() || rtt_ms.is_nan() {
            return None;
        }
        Some(Self {
            loss: loss.clamp(0.0, 1.0),
            jitter_ms: jitter_ms.max(0.0),
            rtt_ms: rtt_ms.max(0.0),
        })
    }

    fn blend(self, new: Self, weight: f64) -> Self {
        let mix = |old: f64, new: f64| old + (new - old) * weight;
        Self {
            loss: mix(self.loss, new.loss),
            jitter_ms: mix(self.jitter_ms, new.jitter_ms),
            rtt_ms: mix(self.rtt_ms, new.rtt_ms),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct NetworkQuality {
    smoothed: Option<Figures>,
    last_report: Option<Instant>,
    published: u8,
    /// The smoothed score has been better than the published one since then.
    better_since: Option<Instant>,
}

impl NetworkQuality {
    pub(super) fn score(&self) -> u8 {
        self.published
    }

    /// Takes a report; the new published score if it changed.
    pub(super) fn report(
        &mut self,
        loss: f64,
        jitter_ms: f64,
        rtt_ms: f64,
        now: Instant,
    ) -> Option<u8> {
        let figures = Figures::sane(loss, jitter_ms, rtt_ms)?;
        let previous = match (self.smoothed, self.last_report) {
            (Some(s), Some(at)) if now.saturating_duration_since(at) <= QUALITY_STALE_AFTER => {
                Some((s, now.saturating_duration_since(at)))
            }
            _ => None,
        };
        self.smoothed = Some(match previous {
            Some((old, elapsed)) => {
                let span = elapsed.max(MIN_REPORT_SPAN).as_secs_f64();
                old.blend(figures, 1.0 - (-span / QUALITY_TAU.as_secs_f64()).exp())
            }
            // The first report after none (or after a silence) is all there is to go on.
            None => figures,
        });
        self.last_report = Some(self.last_report.map_or(now, |t| t.max(now)));
        self.republish(now)
    }

    /// Lets time pass: a held improvement may land, or the reports may have stopped.
    pub(super) fn tick(&mut self, now: Instant) -> Option<u8> {
        let stale = self
            .last_report
            .is_some_and(|t| now.saturating_duration_since(t) > QUALITY_STALE_AFTER);
        if stale {
            *self = Self::default();
            return Some(0);
        }
        self.republish(now)
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        let stale = self
            .last_report
            .map(|t| t + QUALITY_STALE_AFTER + Duration::from_millis(1));
        let recovery = self.better_since.map(|t| t + QUALITY_RECOVERY_HOLD);
        match (stale, recovery) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn republish(&mut self, now: Instant) -> Option<u8> {
        let s = self.smoothed?;
        let computed = score_for(s.loss, s.jitter_ms, s.rtt_ms);
        if computed == self.published {
            self.better_since = None;
            return None;
        }
        if self.published != 0 && computed > self.published {
            let since = *self.better_since.get_or_insert(now);
            if now.saturating_duration_since(since) < QUALITY_RECOVERY_HOLD {
                return None;
            }
        }
        self.published = computed;
        self.better_since = None;
        Some(computed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_threshold_maps_to_its_score() {
        let good = (0.0, 5.0, 50.0);
        assert_eq!(score_for(good.0, good.1, good.2), 5);
        for (loss, score) in [
            (0.009, 5),
            (0.01, 4),
            (0.029, 4),
            (0.03, 3),
            (0.059, 3),
            (0.06, 2),
            (0.119, 2),
            (0.12, 1),
            (1.0, 1),
        ] {
            assert_eq!(score_for(loss, good.1, good.2), score, "loss {loss}");
        }
        for (jitter, score) in [
            (19.9, 5),
            (20.0, 4),
            (39.0, 4),
            (40.0, 3),
            (59.0, 3),
            (60.0, 2),
            (99.0, 2),
            (100.0, 1),
        ] {
            assert_eq!(score_for(good.0, jitter, good.2), score, "jitter {jitter}");
        }
        for (rtt, score) in [
            (199.0, 5),
            (200.0, 4),
            (299.0, 4),
            (300.0, 3),
            (449.0, 3),
            (450.0, 2),
            (699.0, 2),
            (700.0, 1),
        ] {
            assert_eq!(score_for(good.0, good.1, rtt), score, "rtt {rtt}");
        }
        // The worst figure decides.
        assert_eq!(score_for(0.02, 55.0, 100.0), 3);
        assert_eq!(score_for(0.0, 0.0, 800.0), 1);
    }

    #[test]
    fn garbage_figures_are_ignored_or_clamped() {
        let t0 = Instant::now();
        let mut q = NetworkQuality::default();
        assert_eq!(q.report(f64::NAN, 1.0, 1.0, t0), None);
        assert_eq!(q.score(), 0);
        assert_eq!(q.report(-3.0, -1.0, -5.0, t0), Some(5));
        assert_eq!(score_for(f64::INFINITY, 0.0, 0.0), 1);
    }
}
