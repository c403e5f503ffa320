//! Media pipeline pieces shared by the Rounds Rust clients (test client,
//! load generator and, later, the desktop app).
//!
//! * Synthetic sources: [`TestPattern`] (moving video test card, clearly
//!   labelled "SYNTHETIC") and [`Tone`] (48 kHz sine, 20 ms frames).
//! * Real codecs: [`Vp8Encoder`] / [`Vp8Decoder`] over the system libvpx,
//!   configured for realtime (CBR, no lag, error resilient, keyframes on
//!   demand); [`OpusEncoder`] / [`OpusDecoder`] over the system libopus.
//! * VP8 RTP payloading per RFC 7741: [`vp8_payloads`] and
//!   [`Vp8Depacketizer`], with [`ReorderBuffer`] in front of it to wait for retransmissions.
//! * RFC 6464 audio levels: [`audio_level_dbov`].
//! * Live sources and their queues: [`SyntheticVideo`] and [`SyntheticAudio`] pace the test
//!   card and the tone in real time and deliver them on a bounded, drop-oldest
//!   [`frame_queue`], the same way the native captures do.
//! * Resizing: [`I420Frame::scale_to`].
//! * With the `native` feature, [`native`]: device lists and hot-plug, camera and microphone
//!   capture, speaker playback and the WebRTC audio processing module (echo cancellation,
//!   noise suppression, gain control).
//!
//! Nothing here does networking. Device access lives only under `native`.

mod audio;
mod frame;
mod pattern;
mod queue;
mod reorder;
mod rtp_vp8;
mod source;
mod tone;
mod vpx;

#[cfg(feature = "native")]
pub mod native;

pub use audio::{
    OPUS_BITRATE_BPS, OPUS_FRAME_SAMPLES, OPUS_SAMPLE_RATE, OpusDecoder, OpusEncoder,
    audio_level_dbov,
};
pub use frame::{I420Frame, fit_within, luma_psnr};
pub use pattern::{LABEL as TEST_PATTERN_LABEL, TestPattern};
pub use queue::{FrameReceiver, FrameSender, RecvError, frame_queue};
pub use reorder::{ReorderBuffer, ReorderStats};
pub use rtp_vp8::{
    DepacketizerStats, PAYLOADER_DESCRIPTOR_LEN, Vp8Depacketizer, Vp8PayloadDescriptor,
    vp8_is_keyframe, vp8_packet_starts_keyframe, vp8_payloads,
};
pub use source::{AUDIO_QUEUE_FRAMES, SyntheticAudio, SyntheticVideo, VIDEO_QUEUE_FRAMES};
pub use tone::{FRAME_SAMPLES_20MS, SAMPLE_RATE_HZ, Tone};
pub use vpx::{
    DecodedInfo, EncodedFrame, Vp8Config, Vp8Decoder, Vp8Encoder, encoder_threads, libvpx_version,
};

/// Errors from the media pipeline.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// A configuration value is out of range (odd frame size, zero fps, ...).
    #[error("invalid media configuration: {0}")]
    InvalidConfig(String),
    /// The caller passed data of the wrong shape (wrong frame size, ...).
    #[error("invalid media input: {0}")]
    InvalidInput(String),
    /// libvpx returned an error.
    #[error("libvpx {op} failed: {message}")]
    Vpx {
        /// The libvpx call that failed.
        op: &'static str,
        /// libvpx's error string, with detail when it gave one.
        message: String,
    },
    /// libopus returned an error.
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    /// A camera, microphone or speaker could not be listed, opened or used.
    #[error("device: {0}")]
    Device(String),
    /// The WebRTC audio processing module failed.
    #[error("audio processing: {0}")]
    AudioProcessing(String),
}
