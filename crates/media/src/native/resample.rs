//! Sample-rate conversion and channel mixing between devices and the 48 kHz mono pipeline.
//!
//! Sound cards run at 44.1, 48 or 96 kHz with one, two or more channels; Opus and the audio
//! processing module want 48 kHz mono. [`Resampler`] is a windowed-sinc (Blackman, 32 taps)
//! polyphase converter: the cut-off sits just under the lower of the two Nyquist
//! frequencies, so downsampling does not alias, and it streams (any chunk sizes in, the
//! right number of samples out over time).

/// Taps on each side of the interpolation point.
const HALF_TAPS: usize = 16;
/// Kernel phases per input sample (nearest phase is used: error under 1/512 sample).
const PHASES: usize = 256;

/// A streaming converter from one sample rate to another, one channel.
#[derive(Debug, Clone)]
pub struct Resampler {
    in_rate: u32,
    out_rate: u32,
    /// Input samples per output sample.
    step: f64,
    /// Position of the next output sample in `buf`, in input samples.
    pos: f64,
    buf: Vec<f32>,
    /// `PHASES` rows of `2 * HALF_TAPS` taps.
    table: Vec<f32>,
}

impl Resampler {
    /// A converter from `in_rate` to `out_rate` Hz (both non-zero).
    ///
    /// # Panics
    /// If either rate is zero.
    pub fn new(in_rate: u32, out_rate: u32) -> Self {
        assert!(in_rate > 0 && out_rate > 0, "sample rates must be non-zero");
        let step = f64::from(in_rate) / f64::from(out_rate);
        // Cut-off relative to the input's Nyquist frequency.
        let cutoff = (f64::from(out_rate) / f64::from(in_rate)).min(1.0) * 0.92;
        let taps = 2 * HALF_TAPS;
        let mut table = Vec::with_capacity(PHASES * taps);
        for phase in 0..PHASES {
            let frac = phase as f64 / PHASES as f64;
            let row_start = table.len();
            for k in 0..taps {
                // Tap k sits at input offset (k - HALF_TAPS + 1) from floor(pos).
                let t = k as f64 - (HALF_TAPS as f64 - 1.0) - frac;
                let x = std::f64::consts::PI * cutoff * t;
                let sinc = if x.abs() < 1e-9 { 1.0 } else { x.sin() / x };
                let n = (t / HALF_TAPS as f64 + 1.0) / 2.0; // 0..1 across the window
                let window = if (0.0..=1.0).contains(&n) {
                    0.42 - 0.5 * (std::f64::consts::TAU * n).cos()
                        + 0.08 * (2.0 * std::f64::consts::TAU * n).cos()
                } else {
                    0.0
                };
                table.push((cutoff * sinc * window) as f32);
            }
            // Normalise each phase to unity gain at DC.
            let row = &mut table[row_start..];
            let sum: f32 = row.iter().sum();
            if sum.abs() > f32::EPSILON {
                row.iter_mut().for_each(|v| *v /= sum);
            }
        }
        Resampler {
            in_rate,
            out_rate,
            step,
            pos: HALF_TAPS as f64,
            buf: vec![0.0; HALF_TAPS],
            table,
        }
    }

    /// Input rate in Hz.
    pub fn in_rate(&self) -> u32 {
        self.in_rate
    }

    /// Output rate in Hz.
    pub fn out_rate(&self) -> u32 {
        self.out_rate
    }

    /// Converts the next chunk of input, appending the output samples produced so far to
    /// `out`. Equal rates pass samples straight through.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        if self.in_rate == self.out_rate {
            out.extend_from_slice(input);
            return;
        }
        self.buf.extend_from_slice(input);
        let taps = 2 * HALF_TAPS;
        loop {
            let base = self.pos.floor() as usize;
            if base + HALF_TAPS >= self.buf.len() {
                break;
            }
            let frac = self.pos - base as f64;
            let mut phase = (frac * PHASES as f64).round() as usize;
            let mut base = base;
            if phase >= PHASES {
                phase = 0;
                base += 1;
            }
            if base + HALF_TAPS >= self.buf.len() {
                break;
            }
            let kernel = &self.table[phase * taps..(phase + 1) * taps];
            let window = &self.buf[base + 1 - HALF_TAPS..=base + HALF_TAPS];
            out.push(kernel.iter().zip(window).map(|(k, s)| k * s).sum());
            self.pos += self.step;
        }
        // Keep only what future outputs still need.
        let keep_from = (self.pos.floor() as usize).saturating_sub(HALF_TAPS);
        if keep_from > 0 {
            self.buf.drain(..keep_from);
            self.pos -= keep_from as f64;
        }
    }
}

/// Averages interleaved frames of `channels` samples into one channel.
pub fn downmix(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    if channels <= 1 {
        out.extend_from_slice(interleaved);
        return;
    }
    let scale = 1.0 / channels as f32;
    out.extend(
        interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() * scale),
    );
}

/// Converts a float sample (-1.0..=1.0) to 16 bits, clipping.
pub fn f32_to_i16(s: f32) -> i16 {
    (s * 32767.0).round().clamp(-32768.0, 32767.0) as i16
}

/// Converts a 16-bit sample to a float in -1.0..1.0.
pub fn i16_to_f32(s: i16) -> f32 {
    f32::from(s) / 32768.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (0.5 * (std::f64::consts::TAU * freq * i as f64 / f64::from(rate)).sin()) as f32
            })
            .collect()
    }

    /// Goertzel power of `freq` relative to the signal's total power.
    fn tone_share(samples: &[f32], freq: f64, rate: u32) -> f64 {
        let w = std::f64::consts::TAU * freq / f64::from(rate);
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in samples {
            let s0 = f64::from(x) + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        let energy: f64 = samples.iter().map(|&x| f64::from(x).powi(2)).sum();
        2.0 * power / (samples.len() as f64 * energy)
    }

    fn run(r: &mut Resampler, input: &[f32], chunk: usize) -> Vec<f32> {
        let mut out = Vec::new();
        for c in input.chunks(chunk) {
            r.process(c, &mut out);
        }
        out
    }

    #[test]
    fn cd_rate_to_48k_keeps_the_tone_and_the_count() {
        let input = sine(440.0, 44_100, 44_100);
        let mut r = Resampler::new(44_100, 48_000);
        let out = run(&mut r, &input, 441);
        // One second in, one second out (less the filter's delay).
        assert!((47_900..=48_000).contains(&out.len()), "{}", out.len());
        let steady = &out[1000..47_000];
        assert!(tone_share(steady, 440.0, 48_000) > 0.99);
        let peak = steady.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
        assert!((0.48..0.52).contains(&peak), "peak {peak}");
    }

    #[test]
    fn downsampling_from_96k_does_not_alias() {
        // 30 kHz cannot exist at 48 kHz: it must be filtered out, not folded to 18 kHz.
        let mut r = Resampler::new(96_000, 48_000);
        let out = run(&mut r, &sine(30_000.0, 96_000, 96_000), 960);
        let rms = (out[1000..]
            .iter()
            .map(|&v| f64::from(v).powi(2))
            .sum::<f64>()
            / (out.len() - 1000) as f64)
            .sqrt();
        assert!(rms < 0.005, "alias rms {rms}");
        // While 1 kHz passes.
        let mut r = Resampler::new(96_000, 48_000);
        let out = run(&mut r, &sine(1000.0, 96_000, 96_000), 960);
        assert!(tone_share(&out[1000..], 1000.0, 48_000) > 0.99);
    }

    #[test]
    fn equal_rates_pass_through_and_channels_average() {
        let mut r = Resampler::new(48_000, 48_000);
        let mut out = Vec::new();
        r.process(&[0.1, 0.2], &mut out);
        assert_eq!(out, vec![0.1, 0.2]);
        let mut mono = Vec::new();
        downmix(&[0.2, 0.4, -1.0, 1.0], 2, &mut mono);
        assert!((mono[0] - 0.3).abs() < 1e-6 && mono[1].abs() < 1e-6);
        assert_eq!(f32_to_i16(2.0), 32767);
        assert_eq!(f32_to_i16(-2.0), -32768);
        assert!((i16_to_f32(16384) - 0.5).abs() < 1e-6);
    }
}
