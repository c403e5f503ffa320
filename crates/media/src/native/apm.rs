//! Echo cancellation, noise suppression and gain control: the WebRTC audio processing module
//! (PulseAudio's packaging, Debian's libwebrtc-audio-processing 0.3) through
//! `webrtc-audio-processing` 0.5.
//!
//! The module works on 10 ms frames at 48 kHz mono. Everything the speaker plays must be
//! shown to it as the far end ([`AudioProcessor::process_render`]) before the microphone
//! frames that may contain its echo are cleaned ([`AudioProcessor::process_capture`]).
//! [`super::SpeakerOutput`] and [`super::MicCapture`] do both when given clones of one
//! processor.

use webrtc_audio_processing as wap;

use super::resample::{f32_to_i16, i16_to_f32};
use crate::MediaError;

/// Samples in the module's 10 ms frame at 48 kHz.
pub const APM_FRAME_SAMPLES: usize = wap::NUM_SAMPLES_PER_FRAME as usize;

/// Which parts of the module run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AudioProcessorConfig {
    /// Acoustic echo cancellation (needs the far end, see [`AudioProcessor::process_render`]).
    pub echo_cancellation: bool,
    /// Stationary noise suppression (fans, hum).
    pub noise_suppression: bool,
    /// Adaptive digital gain control towards -3 dBFS peaks, with a limiter.
    pub gain_control: bool,
    /// Removes rumble below about 80 Hz.
    pub high_pass_filter: bool,
}

impl Default for AudioProcessorConfig {
    /// Everything on.
    fn default() -> Self {
        AudioProcessorConfig {
            echo_cancellation: true,
            noise_suppression: true,
            gain_control: true,
            high_pass_filter: true,
        }
    }
}

/// One audio processing module. Clones share the module (and so its echo model): give one
/// clone to the speaker and one to the microphone.
#[derive(Clone)]
pub struct AudioProcessor {
    inner: wap::Processor,
    config: AudioProcessorConfig,
    scratch: Vec<f32>,
}

impl std::fmt::Debug for AudioProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioProcessor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What the module measured on the last capture frame (for diagnostics and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AudioProcessorStats {
    /// Whether it heard a voice.
    pub has_voice: Option<bool>,
    /// Whether it heard echo.
    pub has_echo: Option<bool>,
    /// Echo return loss enhancement in dB (how much echo it removed).
    pub echo_return_loss_enhancement: Option<f64>,
    /// The delay it estimated between speaker and microphone, in ms.
    pub delay_median_ms: Option<i32>,
}

impl AudioProcessor {
    /// A module for 48 kHz mono with the given parts enabled.
    pub fn new(config: AudioProcessorConfig) -> Result<AudioProcessor, MediaError> {
        let init = wap::InitializationConfig {
            num_capture_channels: 1,
            num_render_channels: 1,
            ..Default::default()
        };
        let mut inner = wap::Processor::new(&init)
            .map_err(|e| MediaError::AudioProcessing(format!("the module did not start: {e}")))?;
        inner.set_config(module_config(config));
        Ok(AudioProcessor {
            inner,
            config,
            scratch: Vec::with_capacity(APM_FRAME_SAMPLES),
        })
    }

    /// The enabled parts.
    pub fn config(&self) -> AudioProcessorConfig {
        self.config
    }

    /// Changes the enabled parts at once, for every clone.
    pub fn set_config(&mut self, config: AudioProcessorConfig) {
        self.config = config;
        self.inner.set_config(module_config(config));
    }

    /// Shows the module what the speaker plays (48 kHz mono, a multiple of 10 ms: 480
    /// samples). Call it for everything played, in order, as close to playback as possible.
    pub fn process_render(&mut self, played: &[i16]) -> Result<(), MediaError> {
        check_len(played.len())?;
        for chunk in played.chunks_exact(APM_FRAME_SAMPLES) {
            self.scratch.clear();
            self.scratch.extend(chunk.iter().map(|&s| i16_to_f32(s)));
            self.inner
                .process_render_frame(&mut self.scratch)
                .map_err(|e| MediaError::AudioProcessing(format!("far-end frame: {e}")))?;
        }
        Ok(())
    }

    /// Cleans microphone samples in place (48 kHz mono, a multiple of 10 ms: a 20 ms frame
    /// of 960 samples is two module frames).
    pub fn process_capture(&mut self, captured: &mut [i16]) -> Result<(), MediaError> {
        check_len(captured.len())?;
        for chunk in captured.chunks_exact_mut(APM_FRAME_SAMPLES) {
            self.scratch.clear();
            self.scratch.extend(chunk.iter().map(|&s| i16_to_f32(s)));
            self.inner
                .process_capture_frame(&mut self.scratch)
                .map_err(|e| MediaError::AudioProcessing(format!("near-end frame: {e}")))?;
            for (dst, &s) in chunk.iter_mut().zip(&self.scratch) {
                *dst = f32_to_i16(s);
            }
        }
        Ok(())
    }

    /// What the module measured on the last capture frame.
    pub fn stats(&self) -> AudioProcessorStats {
        let s = self.inner.get_stats();
        AudioProcessorStats {
            has_voice: s.has_voice,
            has_echo: s.has_echo,
            echo_return_loss_enhancement: s.echo_return_loss_enhancement,
            delay_median_ms: s.delay_median_ms,
        }
    }
}

fn check_len(len: usize) -> Result<(), MediaError> {
    if len == 0 || !len.is_multiple_of(APM_FRAME_SAMPLES) {
        return Err(MediaError::InvalidInput(format!(
            "audio processing takes multiples of {APM_FRAME_SAMPLES} samples (10 ms at 48 kHz), got {len}"
        )));
    }
    Ok(())
}

fn module_config(c: AudioProcessorConfig) -> wap::Config {
    wap::Config {
        echo_cancellation: c.echo_cancellation.then_some(wap::EchoCancellation {
            suppression_level: wap::EchoCancellationSuppressionLevel::High,
            // The speaker-to-microphone delay of a desktop app is unknown and changes with
            // devices: let the module find it, over a long filter.
            enable_extended_filter: true,
            enable_delay_agnostic: true,
            stream_delay_ms: None,
        }),
        gain_control: c.gain_control.then_some(wap::GainControl {
            mode: wap::GainControlMode::AdaptiveDigital,
            target_level_dbfs: 3,
            compression_gain_db: 9,
            enable_limiter: true,
        }),
        noise_suppression: c.noise_suppression.then_some(wap::NoiseSuppression {
            suppression_level: wap::NoiseSuppressionLevel::Moderate,
        }),
        voice_detection: Some(wap::VoiceDetection {
            detection_likelihood: wap::VoiceDetectionLikelihood::Moderate,
        }),
        enable_transient_suppressor: false,
        enable_high_pass_filter: c.high_pass_filter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_sizes_are_checked() {
        let mut p = AudioProcessor::new(AudioProcessorConfig::default()).expect("module");
        assert!(p.process_capture(&mut [0i16; 960]).is_ok());
        assert!(p.process_render(&[0i16; 480]).is_ok());
        assert!(matches!(
            p.process_capture(&mut [0i16; 100]),
            Err(MediaError::InvalidInput(m)) if m.contains("480")
        ));
        assert!(p.process_render(&[]).is_err());
    }
}
