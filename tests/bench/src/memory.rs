//! A server's resident memory over a long run, and whether it held steady once warmed up.
//!
//! A server under constant load allocates its working set (buffers per stream, caches,
//! pools) in the first minute and should then stay flat; memory that keeps climbing under
//! the same load is a leak that will take the host down over days. The judgement is plain
//! arithmetic over samples, so it is tested here without a server.

use std::time::Duration;

/// One sample: when (since the load started) and the resident set, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RssSample {
    pub at: Duration,
    pub rss_kib: u64,
}

/// What the samples after warm-up show.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryTrend {
    /// Median of the first three samples after warm-up.
    pub baseline_kib: u64,
    /// Median of the last three samples.
    pub end_kib: u64,
    /// Largest sample after warm-up.
    pub peak_kib: u64,
    /// `end - baseline` (negative when memory went down).
    pub growth_kib: i64,
    /// Least-squares slope over the samples after warm-up, KiB per minute.
    pub slope_kib_per_min: f64,
    /// Samples after warm-up.
    pub samples: usize,
}

impl MemoryTrend {
    /// The trend of `samples` taken at or after `warm_up`; `None` with fewer than three.
    pub fn after(samples: &[RssSample], warm_up: Duration) -> Option<MemoryTrend> {
        let steady: Vec<RssSample> = samples
            .iter()
            .copied()
            .filter(|s| s.at >= warm_up)
            .collect();
        if steady.len() < 3 {
            return None;
        }
        let median3 = |s: &[RssSample]| {
            let mut v: Vec<u64> = s.iter().map(|s| s.rss_kib).collect();
            v.sort_unstable();
            v[v.len() / 2]
        };
        let baseline_kib = median3(&steady[..3]);
        let end_kib = median3(&steady[steady.len() - 3..]);
        let peak_kib = steady.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        let n = steady.len() as f64;
        let xs: Vec<f64> = steady.iter().map(|s| s.at.as_secs_f64() / 60.0).collect();
        let ys: Vec<f64> = steady.iter().map(|s| s.rss_kib as f64).collect();
        let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
        let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
        let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        Some(MemoryTrend {
            baseline_kib,
            end_kib,
            peak_kib,
            growth_kib: end_kib as i64 - baseline_kib as i64,
            slope_kib_per_min: if sxx > 0.0 { sxy / sxx } else { 0.0 },
            samples: steady.len(),
        })
    }

    /// Steady: what was added after warm-up is at most `max_growth_pct` % of the baseline.
    pub fn is_steady(&self, max_growth_pct: f64) -> bool {
        (self.growth_kib as f64) <= self.baseline_kib as f64 * max_growth_pct / 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(kib: &[u64]) -> Vec<RssSample> {
        kib.iter()
            .enumerate()
            .map(|(i, &rss_kib)| RssSample {
                at: Duration::from_secs(10 * i as u64),
                rss_kib,
            })
            .collect()
    }

    #[test]
    fn a_flat_run_after_the_warm_up_climb_is_steady() {
        let s = series(&[
            20_000, 60_000, 80_000, 81_000, 80_500, 81_200, 80_900, 81_100,
        ]);
        let t = MemoryTrend::after(&s, Duration::from_secs(30)).expect("enough samples");
        assert_eq!(t.samples, 5);
        assert_eq!(t.baseline_kib, 81_000);
        assert_eq!(t.end_kib, 81_100);
        assert_eq!(t.peak_kib, 81_200);
        assert!(t.is_steady(5.0));
    }

    #[test]
    fn a_steady_climb_is_not() {
        let s: Vec<u64> = (0..20).map(|i| 80_000 + i * 1_000).collect();
        let t = MemoryTrend::after(&series(&s), Duration::from_secs(30)).expect("samples");
        assert!(!t.is_steady(5.0), "{t:?}");
        // 1,000 KiB per 10 s sample is 6,000 KiB a minute.
        assert!((t.slope_kib_per_min - 6_000.0).abs() < 1.0, "{t:?}");
    }

    #[test]
    fn one_spike_does_not_decide() {
        let s = series(&[
            80_000, 80_000, 80_000, 80_000, 120_000, 80_100, 80_000, 80_050,
        ]);
        let t = MemoryTrend::after(&s, Duration::ZERO).expect("samples");
        assert_eq!(t.peak_kib, 120_000);
        assert!(t.is_steady(5.0));
    }

    #[test]
    fn too_few_samples_give_no_verdict() {
        let s = series(&[80_000, 80_000, 80_000]);
        assert!(MemoryTrend::after(&s, Duration::from_secs(15)).is_none());
    }
}
