//! The keyframe request gate of one published track.
//!
//! Every subscriber that joins, loses packets or switches layer wants a keyframe, and each one
//! costs the publisher a burst several times the size of a normal frame on its uplink. The gate
//! lets at most one request per track through per [`KEYFRAME_INTERVAL`]. A want that arrives
//! inside the window is not dropped but merged into a pending request that goes out when the
//! window ends: otherwise a subscriber that switched layer 100 ms after someone else's request
//! would wait for the publisher's next spontaneous keyframe, which browsers may not send for
//! many seconds.

use std::collections::BTreeSet;
use std::time::Instant;

use super::{KEYFRAME_INTERVAL, Layer};

#[derive(Debug, Clone, Default)]
pub(super) struct KeyframeGate {
    last_sent: Option<Instant>,
    /// A keyframe of the whole track (not simulcast) is wanted.
    whole: bool,
    /// Simulcast layers a keyframe is wanted on.
    layers: BTreeSet<Layer>,
}

impl KeyframeGate {
    /// Notes that a subscriber needs a keyframe of `stream` (`None`: the track's only stream).
    pub(super) fn want(&mut self, stream: Option<Layer>) {
        match stream {
            None => self.whole = true,
            Some(layer) => {
                self.layers.insert(layer);
            }
        }
    }

    pub(super) fn is_pending(&self) -> bool {
        self.whole || !self.layers.is_empty()
    }

    /// Sends what is pending if the window allows: the layers to ask for (empty: every stream
    /// of the track), or `None` when there is nothing to send or it is too soon.
    pub(super) fn try_send(&mut self, now: Instant) -> Option<Vec<Layer>> {
        if !self.is_pending() {
            return None;
        }
        if let Some(last) = self.last_sent
            && now.saturating_duration_since(last) < KEYFRAME_INTERVAL
        {
            return None;
        }
        let layers = if self.whole {
            Vec::new()
        } else {
            self.layers.iter().copied().collect()
        };
        self.whole = false;
        self.layers.clear();
        self.last_sent = Some(now);
        Some(layers)
    }

    /// When a pending request may go out: `Some(None)` means as soon as there is a clock.
    pub(super) fn deadline(&self) -> Option<Option<Instant>> {
        self.is_pending()
            .then(|| self.last_sent.map(|t| t + KEYFRAME_INTERVAL))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn one_request_per_window_and_wants_inside_it_are_merged_not_lost() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut gate = KeyframeGate::default();
        assert_eq!(gate.try_send(t0), None, "nothing wanted");

        gate.want(Some(Layer::High));
        assert_eq!(gate.try_send(t0), Some(vec![Layer::High]));
        gate.want(Some(Layer::Low));
        gate.want(Some(Layer::Low));
        assert_eq!(gate.try_send(ms(100)), None);
        gate.want(Some(Layer::Medium));
        assert_eq!(gate.try_send(ms(499)), None);
        assert_eq!(gate.deadline(), Some(Some(ms(500))));
        assert_eq!(
            gate.try_send(ms(500)),
            Some(vec![Layer::Low, Layer::Medium])
        );
        assert_eq!(gate.deadline(), None);
        assert_eq!(
            gate.try_send(ms(2000)),
            None,
            "sent requests are not repeated"
        );
    }

    #[test]
    fn a_whole_track_request_covers_every_stream() {
        let t0 = Instant::now();
        let mut gate = KeyframeGate::default();
        gate.want(Some(Layer::Low));
        gate.want(None);
        assert_eq!(gate.deadline(), Some(None));
        assert_eq!(gate.try_send(t0), Some(vec![]));
    }
}
