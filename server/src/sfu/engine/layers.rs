//! Simulcast layer allocation for one subscriber, and the hysteresis that keeps a choice steady.
//!
//! Allocation splits the subscriber's video budget over the simulcast tracks it receives:
//!
//! 1. every displayed track gets its lowest layer, most important first, while the budget
//!    lasts (a track that does not fit is paused: audio and the other tracks come first);
//! 2. high-priority tracks (screen shares, the dominant speaker's camera) climb as far as their
//!    cap and the budget allow;
//! 3. the standard tracks climb one layer at a time in turn, so the leftover is shared evenly
//!    instead of going to whoever sorts first.
//!
//! Estimates from congestion control swing by tens of percent from one report to the next, so
//! a choice is not simply the latest allocation: dropping a layer happens at once (too much
//! video on a link that cannot carry it freezes *everything*, audio included), but raising one
//! waits until the higher layer has fitted continuously for [`UPGRADE_HOLD`].

use std::time::Instant;

use super::{Layer, UPGRADE_HOLD};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Priority {
    Standard,
    High,
}

/// One simulcast track a subscriber receives.
#[derive(Debug, Clone)]
pub(super) struct Want<'a> {
    /// The layers the publisher sends, lowest first.
    pub layers: &'a [Layer],
    /// The highest layer worth sending; `None` when the subscriber does not display the track.
    pub cap: Option<Layer>,
    pub priority: Priority,
}

/// The layer for each want (in the same order), `None` where it is paused.
pub(super) fn allocate(budget_bps: u64, wants: &[Want<'_>]) -> Vec<Option<Layer>> {
    // Indices into each want's `layers`.
    let mut at: Vec<Option<usize>> = vec![None; wants.len()];
    let ceiling: Vec<Option<usize>> = wants
        .iter()
        .map(|w| {
            let cap = w.cap?;
            if w.layers.is_empty() {
                return None;
            }
            // The lowest layer is allowed even above the cap: it is that or nothing.
            Some(w.layers.iter().rposition(|&l| l <= cap).unwrap_or(0))
        })
        .collect();
    let mut order: Vec<usize> = (0..wants.len()).collect();
    // Stable: within a priority, the caller's (deterministic) order decides.
    order.sort_by_key(|&i| std::cmp::Reverse(wants[i].priority));

    let mut left = budget_bps;
    for &i in &order {
        if ceiling[i].is_some() {
            let cost = wants[i].layers[0].bitrate_bps();
            if cost <= left {
                left -= cost;
                at[i] = Some(0);
            }
        }
    }
    let mut climb = |i: usize, left: &mut u64| -> bool {
        let (Some(cur), Some(top)) = (at[i], ceiling[i]) else {
            return false;
        };
        if cur >= top {
            return false;
        }
        let layers = wants[i].layers;
        let delta = layers[cur + 1]
            .bitrate_bps()
            .saturating_sub(layers[cur].bitrate_bps());
        if delta > *left {
            return false;
        }
        *left -= delta;
        at[i] = Some(cur + 1);
        true
    };
    for &i in order
        .iter()
        .filter(|&&i| wants[i].priority == Priority::High)
    {
        while climb(i, &mut left) {}
    }
    loop {
        let mut climbed = false;
        for &i in order
            .iter()
            .filter(|&&i| wants[i].priority == Priority::Standard)
        {
            climbed |= climb(i, &mut left);
        }
        if !climbed {
            break;
        }
    }
    at.iter()
        .zip(wants)
        .map(|(at, w)| at.map(|i| w.layers[i]))
        .collect()
}

/// The layer one subscriber currently receives of one simulcast track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LayerState {
    current: Option<Layer>,
    /// The subscriber was not displaying the track at the last allocation.
    hidden: bool,
    /// An upgrade waiting out the hold: the lowest target seen since, and since when (`None`:
    /// seen by a call without a clock; the hold starts at the next call that has one).
    upgrade: Option<(Option<Layer>, Option<Instant>)>,
}

impl LayerState {
    /// A new subscription starts on its allocation at once: there is nothing to flap from.
    pub(super) fn new(target: Option<Layer>, hidden: bool) -> Self {
        Self {
            current: target,
            hidden,
            upgrade: None,
        }
    }

    pub(super) fn current(&self) -> Option<Layer> {
        self.current
    }

    /// When the pending upgrade may land: `Some(None)` means the hold has yet to start, as
    /// soon as there is a clock.
    pub(super) fn deadline(&self) -> Option<Option<Instant>> {
        self.upgrade
            .map(|(_, since)| since.map(|t| t + UPGRADE_HOLD))
    }

    /// Moves towards `target`; true when the current layer changed. Without a clock (`now` is
    /// `None`) downgrades still apply, and an upgrade only waits for the next call that has one.
    pub(super) fn update(
        &mut self,
        target: Option<Layer>,
        hidden: bool,
        now: Option<Instant>,
    ) -> bool {
        let was_hidden = std::mem::replace(&mut self.hidden, hidden);
        if target == self.current {
            self.upgrade = None;
            return false;
        }
        // `None < Some(_)`, so pausing is a downgrade. A tile that becomes visible again is the
        // user asking for video, not the estimate wobbling: no hold.
        if target < self.current || (was_hidden && !hidden) {
            self.current = target;
            self.upgrade = None;
            return true;
        }
        let Some((lowest, since)) = &mut self.upgrade else {
            self.upgrade = Some((target, now));
            return false;
        };
        // Only a layer that has fitted for the whole hold is safe: the lowest target seen.
        *lowest = (*lowest).min(target);
        let Some(now) = now else {
            return false;
        };
        let started = *since.get_or_insert(now);
        if now.saturating_duration_since(started) < UPGRADE_HOLD {
            return false;
        }
        self.current = *lowest;
        self.upgrade = None;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Layer::*;
    use super::*;

    const ALL: &[Layer] = &[Low, Medium, High];

    fn want(cap: Option<Layer>, priority: Priority) -> Want<'static> {
        Want {
            layers: ALL,
            cap,
            priority,
        }
    }

    #[test]
    fn plenty_of_budget_gives_everyone_their_cap() {
        let wants = [
            want(Some(High), Priority::Standard),
            want(Some(Medium), Priority::Standard),
            want(Some(Low), Priority::High),
        ];
        assert_eq!(
            allocate(10_000_000, &wants),
            vec![Some(High), Some(Medium), Some(Low)]
        );
    }

    #[test]
    fn the_high_priority_track_climbs_first_and_the_rest_share_evenly() {
        let wants = [
            want(Some(High), Priority::Standard),
            want(Some(High), Priority::Standard),
            want(Some(High), Priority::High),
        ];
        // 3 × 150 k for the lows, +1050 k takes the speaker to high, 300 k left: one more medium.
        assert_eq!(
            allocate(1_800_000, &wants),
            vec![Some(Medium), Some(Low), Some(High)]
        );
        // 300 k more: the second standard track catches up instead of the first going higher.
        assert_eq!(
            allocate(2_100_000, &wants),
            vec![Some(Medium), Some(Medium), Some(High)]
        );
    }

    #[test]
    fn too_little_budget_pauses_the_least_important_tracks() {
        let wants = [
            want(Some(High), Priority::Standard),
            want(Some(High), Priority::High),
        ];
        assert_eq!(allocate(200_000, &wants), vec![None, Some(Low)]);
        assert_eq!(allocate(0, &wants), vec![None, None]);
    }

    #[test]
    fn hidden_tracks_get_nothing_and_missing_layers_are_skipped() {
        let two = [Medium, High];
        let wants = [
            Want {
                layers: &two,
                cap: Some(Low),
                priority: Priority::Standard,
            },
            want(None, Priority::High),
        ];
        assert_eq!(allocate(10_000_000, &wants), vec![Some(Medium), None]);
    }

    #[test]
    fn downgrades_are_immediate_and_upgrades_wait_out_the_hold() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_millis(s);
        let mut state = LayerState::new(Some(High), false);
        assert!(
            state.update(Some(Low), false, None),
            "a downgrade needs no clock"
        );
        assert_eq!(state.current(), Some(Low));
        assert!(!state.update(Some(High), false, Some(at(0))));
        assert!(!state.update(Some(High), false, Some(at(1000))));
        assert!(!state.update(Some(Medium), false, None));
        assert_eq!(state.deadline(), Some(Some(at(2000))));
        assert!(!state.update(Some(High), false, Some(at(1999))));
        assert!(state.update(Some(High), false, Some(at(2000))));
        assert_eq!(
            state.current(),
            Some(Medium),
            "only what fitted the whole hold"
        );
    }

    #[test]
    fn an_upgrade_seen_without_a_clock_starts_its_hold_at_the_next_tick() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_millis(s);
        let mut state = LayerState::new(Some(Low), false);
        assert!(!state.update(Some(High), false, None));
        assert_eq!(
            state.deadline(),
            Some(None),
            "wants a tick as soon as possible"
        );
        assert!(!state.update(Some(High), false, Some(at(500))));
        assert_eq!(state.deadline(), Some(Some(at(2500))));
        assert!(!state.update(Some(High), false, Some(at(2499))));
        assert!(state.update(Some(High), false, Some(at(2500))));
    }

    #[test]
    fn a_dip_restarts_the_hold() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_millis(s);
        let mut state = LayerState::new(Some(Low), false);
        assert!(!state.update(Some(High), false, Some(at(0))));
        assert!(!state.update(Some(Low), false, Some(at(1500))));
        assert!(!state.update(Some(High), false, Some(at(1600))));
        assert!(!state.update(Some(High), false, Some(at(3000))));
        assert!(state.update(Some(High), false, Some(at(3600))));
    }

    #[test]
    fn showing_a_hidden_tile_again_is_immediate() {
        let mut state = LayerState::new(Some(Medium), false);
        assert!(state.update(None, true, None));
        assert_eq!(state.current(), None);
        assert!(state.update(Some(Medium), false, None));
        assert_eq!(state.current(), Some(Medium));
    }
}
