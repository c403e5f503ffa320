//! Opus wrappers and RFC 6464 audio levels.

use crate::MediaError;

/// Opus sample rate used throughout Rounds.
pub const OPUS_SAMPLE_RATE: u32 = 48_000;
/// Samples per 20 ms mono Opus frame.
pub const OPUS_FRAME_SAMPLES: usize = 960;
/// Target bitrate of [`OpusEncoder`].
pub const OPUS_BITRATE_BPS: i32 = 32_000;

/// Largest packet we accept from the encoder. 32 kbps × 20 ms is 80 bytes;
/// this leaves generous room for FEC and bitrate spikes.
const MAX_PACKET: usize = 1500;

/// Opus encoder: 48 kHz mono, VOIP application, 32 kbps, in-band FEC on
/// (tuned for 10 % expected loss), 20 ms frames.
pub struct OpusEncoder {
    inner: opus::Encoder,
    frames_encoded: u64,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("frames_encoded", &self.frames_encoded)
            .finish_non_exhaustive()
    }
}

impl OpusEncoder {
    /// A new encoder with the Rounds settings.
    pub fn new() -> Result<Self, MediaError> {
        let mut inner = opus::Encoder::new(
            OPUS_SAMPLE_RATE,
            opus::Channels::Mono,
            opus::Application::Voip,
        )?;
        inner.set_bitrate(opus::Bitrate::Bits(OPUS_BITRATE_BPS))?;
        inner.set_inband_fec(true)?;
        // FEC only kicks in when the encoder expects loss.
        inner.set_packet_loss_perc(10)?;
        Ok(Self {
            inner,
            frames_encoded: 0,
        })
    }

    /// Change the target bitrate (bits per second).
    pub fn set_bitrate_bps(&mut self, bps: i32) -> Result<(), MediaError> {
        self.inner.set_bitrate(opus::Bitrate::Bits(bps))?;
        Ok(())
    }

    /// Tell the encoder how much loss to plan FEC for (0..=100).
    pub fn set_expected_loss_percent(&mut self, pct: i32) -> Result<(), MediaError> {
        self.inner.set_packet_loss_perc(pct)?;
        Ok(())
    }

    /// Encode exactly one 20 ms frame (960 samples) into one Opus packet.
    pub fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, MediaError> {
        if pcm.len() != OPUS_FRAME_SAMPLES {
            return Err(MediaError::InvalidInput(format!(
                "opus frame must be {OPUS_FRAME_SAMPLES} samples, got {}",
                pcm.len()
            )));
        }
        let packet = self.inner.encode_vec(pcm, MAX_PACKET)?;
        self.frames_encoded += 1;
        Ok(packet)
    }

    /// Frames encoded so far.
    pub fn frames_encoded(&self) -> u64 {
        self.frames_encoded
    }
}

/// Opus decoder: 48 kHz mono.
pub struct OpusDecoder {
    inner: opus::Decoder,
    frames_decoded: u64,
    frames_concealed: u64,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("frames_decoded", &self.frames_decoded)
            .field("frames_concealed", &self.frames_concealed)
            .finish_non_exhaustive()
    }
}

impl OpusDecoder {
    /// A new 48 kHz mono decoder.
    pub fn new() -> Result<Self, MediaError> {
        Ok(Self {
            inner: opus::Decoder::new(OPUS_SAMPLE_RATE, opus::Channels::Mono)?,
            frames_decoded: 0,
            frames_concealed: 0,
        })
    }

    /// Decode one packet into PCM (960 samples for a 20 ms packet). An empty
    /// packet is treated as a lost one (see [`OpusDecoder::conceal`]).
    pub fn decode(&mut self, packet: &[u8]) -> Result<Vec<i16>, MediaError> {
        if packet.is_empty() {
            return self.conceal(None);
        }
        let mut out = vec![0i16; max_frame_samples()];
        let n = self.inner.decode(packet, &mut out, false)?;
        out.truncate(n);
        self.frames_decoded += 1;
        Ok(out)
    }

    /// Produce 20 ms for a lost packet. With the packet that follows the lost
    /// one, its in-band FEC data rebuilds the loss; without it, packet loss
    /// concealment fills the gap. Call [`OpusDecoder::decode`] on `next`
    /// afterwards as usual.
    pub fn conceal(&mut self, next: Option<&[u8]>) -> Result<Vec<i16>, MediaError> {
        let mut out = vec![0i16; OPUS_FRAME_SAMPLES];
        let n = match next {
            Some(p) if !p.is_empty() => self.inner.decode(p, &mut out, true)?,
            _ => self.inner.decode(&[], &mut out, false)?,
        };
        out.truncate(n);
        self.frames_concealed += 1;
        Ok(out)
    }

    /// Packets decoded so far (concealed frames not counted).
    pub fn frames_decoded(&self) -> u64 {
        self.frames_decoded
    }

    /// Frames produced by [`OpusDecoder::conceal`] so far.
    pub fn frames_concealed(&self) -> u64 {
        self.frames_concealed
    }
}

/// Room for the longest Opus packet (120 ms at 48 kHz).
fn max_frame_samples() -> usize {
    OPUS_SAMPLE_RATE as usize * 120 / 1000
}

/// RFC 6464 audio level of a frame: its RMS in -dBov, where 0 is the loudest
/// (a full-scale square wave), a full-scale sine is 3, and 127 means silence
/// (anything at or below -127 dBov, including an empty frame).
pub fn audio_level_dbov(samples: &[i16]) -> u8 {
    if samples.is_empty() {
        return 127;
    }
    let sum_sq: f64 = samples
        .iter()
        .map(|&s| {
            let x = f64::from(s) / 32768.0;
            x * x
        })
        .sum();
    let rms = (sum_sq / samples.len() as f64).sqrt();
    if rms <= 0.0 {
        return 127;
    }
    let level = -20.0 * rms.log10();
    level.round().clamp(0.0, 127.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_edges() {
        assert_eq!(audio_level_dbov(&[]), 127);
        assert_eq!(audio_level_dbov(&[0; 960]), 127);
        assert_eq!(audio_level_dbov(&[i16::MIN; 960]), 0);
        assert_eq!(audio_level_dbov(&[i16::MAX; 960]), 0);
        // A single LSB of noise is about -90 dBov.
        let lsb: Vec<i16> = (0..960).map(|i| if i % 2 == 0 { 1 } else { -1 }).collect();
        assert_eq!(audio_level_dbov(&lsb), 90);
    }

    #[test]
    fn encoder_rejects_wrong_frame_size() {
        let mut enc = OpusEncoder::new().expect("encoder");
        assert!(matches!(
            enc.encode(&[0; 480]),
            Err(MediaError::InvalidInput(_))
        ));
        assert_eq!(enc.frames_encoded(), 0);
    }
}
