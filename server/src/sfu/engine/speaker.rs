//! Dominant speaker detection from RFC 6464 audio levels.
//!
//! A sample counts as speech loudness `127 - level` (so -20 dBov is 107) when the sender's
//! voice activity flag is set and the level is above [`ACTIVE_LEVEL_DBOV`]; anything else is 0.
//! Trusting the flag keeps typing and a fan out; the floor keeps out a VAD that fires on
//! background murmur. Loudness is averaged per peer with an exponential time constant of
//! [`SPEECH_TAU`] and keeps decaying while no samples arrive, because with Opus DTX a silent
//! peer sends nothing at all.
//!
//! The floor changes hands only when a challenger is at least [`SPEAKING_MIN`] loud, louder than
//! the current speaker by [`SPEAKER_MARGIN`], and stays so for [`SPEAKER_HOLD`]: a cough or a
//! short "mm-hm" is over before then, and two people talking over each other do not make the
//! layout flip back and forth. The current speaker falling silent does not drop them: the last
//! person who spoke stays on the big tile until someone else takes over or they leave.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{ACTIVE_LEVEL_DBOV, PeerId, SPEAKER_HOLD, SPEAKER_MARGIN, SPEAKING_MIN, SPEECH_TAU};

/// A sample stands for at most this long of audio: the driver may report levels per packet
/// (every 20 ms) or sample them, but a gap longer than this is silence, not the last level held.
const MAX_SAMPLE_SPAN: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
struct Smoothed {
    value: f64,
    at: Instant,
}

impl Smoothed {
    fn at(&self, now: Instant) -> f64 {
        self.value * decay(now.saturating_duration_since(self.at))
    }
}

fn decay(elapsed: Duration) -> f64 {
    (-elapsed.as_secs_f64() / SPEECH_TAU.as_secs_f64()).exp()
}

/// Speech loudness of one RFC 6464 sample.
pub(super) fn loudness(level_dbov: u8, voice_activity: bool) -> f64 {
    let level = level_dbov.min(127);
    if voice_activity && level <= ACTIVE_LEVEL_DBOV {
        f64::from(127 - level)
    } else {
        0.0
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct SpeakerDetector {
    levels: BTreeMap<PeerId, Smoothed>,
    current: Option<PeerId>,
    /// Who is out-talking the current speaker, and since when.
    challenger: Option<(PeerId, Instant)>,
}

impl SpeakerDetector {
    pub(super) fn current(&self) -> Option<&PeerId> {
        self.current.as_ref()
    }

    pub(super) fn observe(
        &mut self,
        peer: &PeerId,
        level_dbov: u8,
        voice_activity: bool,
        now: Instant,
    ) {
        let x = loudness(level_dbov, voice_activity);
        match self.levels.get_mut(peer) {
            Some(s) => {
                let elapsed = now.saturating_duration_since(s.at);
                let weight = 1.0 - decay(elapsed.min(MAX_SAMPLE_SPAN));
                s.value = s.value * decay(elapsed) + x * weight;
                s.at = s.at.max(now);
            }
            // The first sample has no span to weigh it by; the next one, 20 ms later, has.
            None => {
                self.levels.insert(
                    peer.clone(),
                    Smoothed {
                        value: 0.0,
                        at: now,
                    },
                );
            }
        }
    }

    /// The smoothed loudness of `peer` at `now`.
    pub(super) fn level(&self, peer: &PeerId, now: Instant) -> f64 {
        self.levels.get(peer).map_or(0.0, |s| s.at(now))
    }

    /// Forgets a peer that left or lost admission; true if they were the dominant speaker.
    pub(super) fn forget(&mut self, peer: &PeerId) -> bool {
        self.levels.remove(peer);
        if self.challenger.as_ref().is_some_and(|(c, _)| c == peer) {
            self.challenger = None;
        }
        if self.current.as_ref() == Some(peer) {
            self.current = None;
            return true;
        }
        false
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        self.challenger
            .as_ref()
            .map(|(_, since)| *since + SPEAKER_HOLD)
    }

    /// Re-decides the dominant speaker among the `eligible`; true when it changed.
    pub(super) fn evaluate(&mut self, eligible: impl Fn(&PeerId) -> bool, now: Instant) -> bool {
        let mut loudest: Option<(&PeerId, f64)> = None;
        for (peer, s) in &self.levels {
            let v = s.at(now);
            // Strictly louder: on a tie the first in id order stays, so the outcome is stable.
            if eligible(peer) && loudest.is_none_or(|(_, best)| v > best) {
                loudest = Some((peer, v));
            }
        }
        let Some((best, best_level)) = loudest.filter(|(_, v)| *v >= SPEAKING_MIN) else {
            self.challenger = None;
            return false;
        };
        let best = best.clone();
        let Some(current) = &self.current else {
            // Nobody holds the floor: the first person to speak takes it.
            self.current = Some(best);
            self.challenger = None;
            return true;
        };
        if *current == best || best_level < self.level(current, now) + SPEAKER_MARGIN {
            self.challenger = None;
            return false;
        }
        match &self.challenger {
            Some((who, since)) if *who == best => {
                if now.saturating_duration_since(*since) < SPEAKER_HOLD {
                    return false;
                }
                self.current = Some(best);
                self.challenger = None;
                true
            }
            _ => {
                self.challenger = Some((best, now));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loudness_counts_only_flagged_speech_above_the_floor() {
        assert_eq!(loudness(20, true), 107.0);
        assert_eq!(loudness(0, true), 127.0);
        assert_eq!(
            loudness(20, false),
            0.0,
            "loud, but the sender's VAD says it is not speech"
        );
        assert_eq!(loudness(ACTIVE_LEVEL_DBOV + 1, true), 0.0);
        assert_eq!(loudness(127, true), 0.0);
        assert_eq!(loudness(200, true), 0.0, "out of range is silence");
    }

    #[test]
    fn level_decays_when_samples_stop() {
        let t0 = Instant::now();
        let mut d = SpeakerDetector::default();
        let a = PeerId::from("a");
        for i in 0..100u64 {
            d.observe(&a, 20, true, t0 + Duration::from_millis(20 * i));
        }
        let end = t0 + Duration::from_millis(20 * 99);
        assert!(
            d.level(&a, end) > 100.0,
            "two seconds of speech settles near 107"
        );
        assert!(
            d.level(&a, end + Duration::from_secs(3)) < 1.0,
            "DTX silence decays"
        );
    }
}
