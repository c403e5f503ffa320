//! Pluggable media: sources the application feeds ([`ExternalVideo`], [`ExternalAudio`]) and
//! sinks that receive what remote people send ([`VideoSink`], [`AudioSink`]).
//!
//! The desktop app captures its camera and microphone natively (`rounds_media::native`) and
//! pushes the frames into these handles; the client encodes them with the same VP8 and Opus
//! encoders as the synthetic sources and sends them over the publisher connection. The
//! handles outlive connections: when the publisher is rebuilt, it reads the same handle.
//! Switching cameras, microphones or to a screen share is pushing from another capture into
//! the same handle; a new frame size is picked up with a new keyframe.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rounds_media::{FRAME_SAMPLES_20MS, FrameReceiver, FrameSender, I420Frame, frame_queue};

/// Frames waiting for the video encoder before the oldest is dropped.
const EXTERNAL_VIDEO_QUEUE: usize = 2;
/// 20 ms frames waiting for the audio encoder before the oldest is dropped (200 ms).
const EXTERNAL_AUDIO_QUEUE: usize = 10;

/// A video source the application feeds with I420 frames, e.g. from
/// `rounds_media::native::CameraCapture`. Cloning gives another handle to the same source.
///
/// The encoder follows the frames' size, scaled down (keeping the aspect ratio) to fit
/// `max_width` x `max_height` and whatever the server asks for; frames pushed faster than
/// `fps` are skipped. When no new frame comes for a second, the last one is sent again so
/// receivers keep a picture.
#[derive(Clone)]
pub struct ExternalVideo {
    inner: Arc<ExternalVideoInner>,
}

struct ExternalVideoInner {
    tx: FrameSender<I420Frame>,
    rx: FrameReceiver<I420Frame>,
    max_width: u32,
    max_height: u32,
    fps: u32,
    bitrate_kbps: u32,
    pushed: AtomicU64,
}

impl ExternalVideo {
    /// A source sent at most `max_width` x `max_height` (even, at least 2x2), `fps`
    /// (1..=60) and `bitrate_kbps` (at least 30).
    pub fn new(max_width: u32, max_height: u32, fps: u32, bitrate_kbps: u32) -> Self {
        let (tx, rx) = frame_queue(EXTERNAL_VIDEO_QUEUE);
        ExternalVideo {
            inner: Arc::new(ExternalVideoInner {
                tx,
                rx,
                max_width,
                max_height,
                fps,
                bitrate_kbps,
                pushed: AtomicU64::new(0),
            }),
        }
    }

    /// The two-person visit configuration: up to 1280x720 at 24 fps, 1200 kbps.
    pub fn hd() -> Self {
        Self::new(1280, 720, 24, 1200)
    }

    /// Hands a frame to the encoder without waiting. When the encoder is behind, the oldest
    /// waiting frame is dropped. Frames pushed before the call is connected are dropped too.
    pub fn push(&self, frame: I420Frame) {
        self.inner.pushed.fetch_add(1, Ordering::Relaxed);
        self.inner.tx.push(frame);
    }

    /// Frames pushed so far.
    pub fn frames_pushed(&self) -> u64 {
        self.inner.pushed.load(Ordering::Relaxed)
    }

    /// Frames dropped because the encoder was busy or not yet running.
    pub fn frames_dropped(&self) -> u64 {
        self.inner.rx.dropped()
    }

    /// (max width, max height, fps, bitrate kbps).
    pub fn limits(&self) -> (u32, u32, u32, u32) {
        let i = &self.inner;
        (i.max_width, i.max_height, i.fps, i.bitrate_kbps)
    }

    pub(crate) fn frames(&self) -> &FrameReceiver<I420Frame> {
        &self.inner.rx
    }
}

impl PartialEq for ExternalVideo {
    /// Two handles are equal when they feed the same source.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for ExternalVideo {}

impl std::fmt::Debug for ExternalVideo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = &self.inner;
        f.debug_struct("ExternalVideo")
            .field("max_width", &i.max_width)
            .field("max_height", &i.max_height)
            .field("fps", &i.fps)
            .field("bitrate_kbps", &i.bitrate_kbps)
            .field("pushed", &self.frames_pushed())
            .finish()
    }
}

/// An audio source the application feeds with 48 kHz mono 16-bit samples, e.g. from
/// `rounds_media::native::MicCapture`. Each 20 ms (960 samples) becomes one Opus packet
/// with its RFC 6464 level. Cloning gives another handle to the same source.
///
/// When nothing is pushed for 60 ms (the microphone stopped, or the app stopped pushing
/// while muted), silence goes out every 20 ms until samples come again.
#[derive(Clone)]
pub struct ExternalAudio {
    inner: Arc<ExternalAudioInner>,
}

struct ExternalAudioInner {
    tx: FrameSender<Vec<i16>>,
    rx: FrameReceiver<Vec<i16>>,
    /// Samples pushed that do not yet make a whole 20 ms frame.
    partial: Mutex<Vec<i16>>,
    pushed: AtomicU64,
}

impl Default for ExternalAudio {
    fn default() -> Self {
        Self::new()
    }
}

impl ExternalAudio {
    /// A new source.
    pub fn new() -> Self {
        let (tx, rx) = frame_queue(EXTERNAL_AUDIO_QUEUE);
        ExternalAudio {
            inner: Arc::new(ExternalAudioInner {
                tx,
                rx,
                partial: Mutex::new(Vec::with_capacity(FRAME_SAMPLES_20MS)),
                pushed: AtomicU64::new(0),
            }),
        }
    }

    /// Hands samples (48 kHz mono) to the encoder without waiting. Any length works; they
    /// are cut into 20 ms frames. When the encoder is more than 200 ms behind, the oldest
    /// frames are dropped.
    pub fn push(&self, samples: &[i16]) {
        self.inner
            .pushed
            .fetch_add(samples.len() as u64, Ordering::Relaxed);
        let mut partial = self.inner.partial.lock().unwrap_or_else(|e| e.into_inner());
        if partial.is_empty() && samples.len() == FRAME_SAMPLES_20MS {
            self.inner.tx.push(samples.to_vec());
            return;
        }
        partial.extend_from_slice(samples);
        while partial.len() >= FRAME_SAMPLES_20MS {
            let frame: Vec<i16> = partial.drain(..FRAME_SAMPLES_20MS).collect();
            self.inner.tx.push(frame);
        }
    }

    /// Samples pushed so far.
    pub fn samples_pushed(&self) -> u64 {
        self.inner.pushed.load(Ordering::Relaxed)
    }

    /// 20 ms frames dropped because the encoder was behind or not yet running.
    pub fn frames_dropped(&self) -> u64 {
        self.inner.rx.dropped()
    }

    pub(crate) fn frames(&self) -> &FrameReceiver<Vec<i16>> {
        &self.inner.rx
    }
}

impl PartialEq for ExternalAudio {
    /// Two handles are equal when they feed the same source.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for ExternalAudio {}

impl std::fmt::Debug for ExternalAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalAudio")
            .field("samples_pushed", &self.samples_pushed())
            .finish()
    }
}

type VideoCallback = dyn Fn(&str, I420Frame) + Send + Sync;
type AudioCallback = dyn Fn(&str, Vec<i16>) + Send + Sync;

/// Receives every decoded remote video frame with the sender's participant id. It is called
/// on a decoder thread, so it should only hand the frame on (to a channel, or after
/// `I420Frame::scale_to` the display size); see [`VideoSink::channel`].
#[derive(Clone)]
pub struct VideoSink(Arc<VideoCallback>);

impl VideoSink {
    /// A sink calling `f(participant_id, frame)`.
    pub fn new(f: impl Fn(&str, I420Frame) + Send + Sync + 'static) -> Self {
        VideoSink(Arc::new(f))
    }

    /// A sink that forwards `(participant_id, frame)` to a bounded channel; frames that do
    /// not fit are dropped (the receiver is behind, and a newer frame is coming).
    pub fn channel(capacity: usize) -> (Self, tokio::sync::mpsc::Receiver<(String, I420Frame)>) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        let sink = VideoSink::new(move |participant, frame| {
            let _ = tx.try_send((participant.to_owned(), frame));
        });
        (sink, rx)
    }

    pub(crate) fn deliver(&self, participant: &str, frame: I420Frame) {
        (self.0)(participant, frame);
    }
}

impl std::fmt::Debug for VideoSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VideoSink")
    }
}

/// Receives decoded remote audio: 20 ms (960 samples, 48 kHz mono) per call, per remote
/// participant, including frames rebuilt for lost packets, in order. It is called on the
/// network task, so it should only hand the samples on, e.g. to
/// `rounds_media::native::SpeakerOutput::push`.
#[derive(Clone)]
pub struct AudioSink(Arc<AudioCallback>);

impl AudioSink {
    /// A sink calling `f(participant_id, samples)`.
    pub fn new(f: impl Fn(&str, Vec<i16>) + Send + Sync + 'static) -> Self {
        AudioSink(Arc::new(f))
    }

    /// A sink that forwards `(participant_id, samples)` to a bounded channel; frames that do
    /// not fit are dropped.
    pub fn channel(capacity: usize) -> (Self, tokio::sync::mpsc::Receiver<(String, Vec<i16>)>) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        let sink = AudioSink::new(move |participant, samples| {
            let _ = tx.try_send((participant.to_owned(), samples));
        });
        (sink, rx)
    }

    pub(crate) fn deliver(&self, participant: &str, samples: Vec<i16>) {
        (self.0)(participant, samples);
    }
}

impl std::fmt::Debug for AudioSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AudioSink")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_is_cut_into_20ms_frames() {
        let a = ExternalAudio::new();
        a.push(&[1; 500]);
        assert!(a.frames().try_recv().is_none());
        a.push(&[2; 1000]);
        let f = a.frames().try_recv().expect("one frame");
        assert_eq!(f.len(), FRAME_SAMPLES_20MS);
        assert_eq!((f[0], f[499], f[500]), (1, 1, 2));
        assert!(a.frames().try_recv().is_none(), "540 samples wait");
        a.push(&[3; 420]);
        assert_eq!(a.frames().try_recv().map(|f| f.len()), Some(960));
        assert_eq!(a.samples_pushed(), 1920);
    }

    #[test]
    fn handles_compare_by_identity() {
        let v = ExternalVideo::hd();
        assert_eq!(v, v.clone());
        assert_ne!(v, ExternalVideo::hd());
        let a = ExternalAudio::new();
        assert_eq!(a, a.clone());
        assert_ne!(a, ExternalAudio::new());
    }
}
