//! A sine tone source.

/// Sample rate of [`Tone`] (and of the Opus wrappers).
pub const SAMPLE_RATE_HZ: u32 = 48_000;
/// Samples in one 20 ms mono frame at 48 kHz.
pub const FRAME_SAMPLES_20MS: usize = 960;

/// A continuous sine tone, 48 kHz mono, handed out in 20 ms frames.
///
/// `amplitude` is relative to full scale (1.0 = peak at ±32767); values above
/// 1.0 clip. The phase carries over between frames, so consecutive frames join
/// without clicks.
#[derive(Debug, Clone)]
pub struct Tone {
    freq_hz: f32,
    amplitude: f32,
    /// Phase in cycles, kept in [0, 1).
    phase: f64,
}

impl Tone {
    /// A tone of `freq_hz` at `amplitude` (0.0..=1.0 of full scale).
    pub fn new(freq_hz: f32, amplitude: f32) -> Self {
        Self {
            freq_hz,
            amplitude,
            phase: 0.0,
        }
    }

    /// A tone whose RMS level is `dbfs` dB relative to a full-scale sine
    /// (so 0.0 is a full-scale sine and -20.0 has a tenth of its amplitude).
    pub fn with_dbfs(freq_hz: f32, dbfs: f32) -> Self {
        Self::new(freq_hz, 10f32.powf(dbfs / 20.0))
    }

    /// Frequency in Hz.
    pub fn freq_hz(&self) -> f32 {
        self.freq_hz
    }

    /// Amplitude relative to full scale.
    pub fn amplitude(&self) -> f32 {
        self.amplitude
    }

    /// Change the amplitude from the next frame on (phase is kept).
    pub fn set_amplitude(&mut self, amplitude: f32) {
        self.amplitude = amplitude;
    }

    /// The next 20 ms as floats in -1.0..=1.0.
    pub fn next_20ms_f32(&mut self) -> Vec<f32> {
        let step = f64::from(self.freq_hz) / f64::from(SAMPLE_RATE_HZ);
        let amp = f64::from(self.amplitude);
        let mut out = Vec::with_capacity(FRAME_SAMPLES_20MS);
        for _ in 0..FRAME_SAMPLES_20MS {
            let s = amp * (self.phase * std::f64::consts::TAU).sin();
            out.push(s.clamp(-1.0, 1.0) as f32);
            self.phase = (self.phase + step).fract();
        }
        out
    }

    /// The next 20 ms as 16-bit samples (960 of them).
    pub fn next_20ms(&mut self) -> Vec<i16> {
        self.next_20ms_f32()
            .into_iter()
            .map(|s| (f64::from(s) * 32767.0).round() as i16)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_shape_and_peak() {
        let mut t = Tone::new(1000.0, 0.5);
        let f = t.next_20ms();
        assert_eq!(f.len(), FRAME_SAMPLES_20MS);
        let peak = f.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!((16_300..=16_384).contains(&peak), "peak {peak}");
    }

    #[test]
    fn phase_is_continuous_across_frames() {
        // 440 Hz does not divide 50 frames/s evenly, so a phase reset would show.
        let mut a = Tone::new(440.0, 0.8);
        let joined: Vec<i16> = (0..3).flat_map(|_| a.next_20ms()).collect();
        let step = 440.0 / 48_000.0;
        for (i, &s) in joined.iter().enumerate() {
            let want = (0.8 * (i as f64 * step * std::f64::consts::TAU).sin() * 32767.0).round();
            assert!((f64::from(s) - want).abs() <= 2.0, "sample {i}");
        }
    }

    #[test]
    fn dbfs_constructor() {
        assert!((Tone::with_dbfs(440.0, -20.0).amplitude() - 0.1).abs() < 1e-6);
        assert!((Tone::with_dbfs(440.0, 0.0).amplitude() - 1.0).abs() < 1e-6);
    }
}
