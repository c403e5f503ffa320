//! Synthetic live sources: the test card and the tone, paced in real time on threads of
//! their own and delivered on a [`frame_queue`] exactly as the native camera and microphone
//! deliver theirs. They are what a machine without devices publishes, and only when asked
//! to: both say they are synthetic ([`SyntheticVideo::is_synthetic`]), and the test card
//! carries the word SYNTHETIC.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::queue::{FrameReceiver, frame_queue};
use crate::{FRAME_SAMPLES_20MS, I420Frame, MediaError, TestPattern, Tone};

/// Video frames a capture keeps for a slow consumer before dropping the oldest.
pub const VIDEO_QUEUE_FRAMES: usize = 3;
/// 20 ms audio frames a capture keeps for a slow consumer before dropping the oldest.
pub const AUDIO_QUEUE_FRAMES: usize = 25;

/// A capture thread and the flag that stops it; stopping joins the thread.
#[derive(Debug)]
pub(crate) struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Runs `body(stop)` on a named thread.
    pub(crate) fn spawn(
        name: &str,
        body: impl FnOnce(Arc<AtomicBool>) + Send + 'static,
    ) -> Result<Worker, MediaError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || body(flag))
            .map_err(|e| MediaError::Device(format!("could not start the {name} thread: {e}")))?;
        Ok(Worker {
            stop,
            thread: Some(thread),
        })
    }

    /// Asks the thread to stop and waits for it.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The moving test card ([`TestPattern`]) as a live source: a frame every 1/fps seconds.
#[derive(Debug)]
pub struct SyntheticVideo {
    frames: FrameReceiver<I420Frame>,
    width: u32,
    height: u32,
    fps: u32,
    _worker: Worker,
}

impl SyntheticVideo {
    /// Starts the test card at `width` x `height` (even, at least 2x2), `fps` (1..=60).
    /// `seed` varies its colours so several synthetic people can be told apart.
    pub fn start(width: u32, height: u32, fps: u32, seed: u64) -> Result<Self, MediaError> {
        if width < 2 || height < 2 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(MediaError::InvalidConfig(format!(
                "the test card needs even dimensions of at least 2x2, not {width}x{height}"
            )));
        }
        if !(1..=60).contains(&fps) {
            return Err(MediaError::InvalidConfig(format!(
                "the test card runs at 1..=60 fps, not {fps}"
            )));
        }
        let (tx, frames) = frame_queue(VIDEO_QUEUE_FRAMES);
        let worker = Worker::spawn("rounds-synthetic-video", move |stop| {
            let mut pattern = TestPattern::with_seed(width, height, fps, seed);
            pace(&stop, Duration::from_secs(1) / fps, || {
                tx.push(pattern.next_frame())
            });
        })?;
        Ok(SyntheticVideo {
            frames,
            width,
            height,
            fps,
            _worker: worker,
        })
    }

    /// Always true: this is not a camera, and the UI must say so.
    pub fn is_synthetic(&self) -> bool {
        true
    }

    /// The frames, newest last.
    pub fn frames(&self) -> &FrameReceiver<I420Frame> {
        &self.frames
    }

    /// Width, height and frame rate.
    pub fn format(&self) -> (u32, u32, u32) {
        (self.width, self.height, self.fps)
    }
}

/// A sine tone ([`Tone`]) as a live source: 960 samples (20 ms at 48 kHz mono) every 20 ms.
#[derive(Debug)]
pub struct SyntheticAudio {
    frames: FrameReceiver<Vec<i16>>,
    _worker: Worker,
}

impl SyntheticAudio {
    /// Starts a tone of `freq_hz` (20..=20000) at `dbfs` (relative to a full-scale sine).
    pub fn start(freq_hz: f32, dbfs: f32) -> Result<Self, MediaError> {
        if !(20.0..=20_000.0).contains(&freq_hz) {
            return Err(MediaError::InvalidConfig(format!(
                "the tone must be 20..=20000 Hz, not {freq_hz}"
            )));
        }
        if !(-127.0..=0.0).contains(&dbfs) {
            return Err(MediaError::InvalidConfig(format!(
                "the tone level must be -127..=0 dBFS, not {dbfs}"
            )));
        }
        let (tx, frames) = frame_queue(AUDIO_QUEUE_FRAMES);
        let worker = Worker::spawn("rounds-synthetic-audio", move |stop| {
            let mut tone = Tone::with_dbfs(freq_hz, dbfs);
            pace(&stop, Duration::from_millis(20), || {
                let frame = tone.next_20ms();
                debug_assert_eq!(frame.len(), FRAME_SAMPLES_20MS);
                tx.push(frame)
            });
        })?;
        Ok(SyntheticAudio {
            frames,
            _worker: worker,
        })
    }

    /// Always true: this is not a microphone, and the UI must say so.
    pub fn is_synthetic(&self) -> bool {
        true
    }

    /// The 20 ms frames (960 samples, 48 kHz mono), oldest first.
    pub fn frames(&self) -> &FrameReceiver<Vec<i16>> {
        &self.frames
    }
}

/// Calls `produce` every `period` on an absolute schedule (no drift) until `stop` is set or
/// `produce` returns false. A late thread does not burst to catch up.
fn pace(stop: &AtomicBool, period: Duration, mut produce: impl FnMut() -> bool) {
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if !produce() {
            return;
        }
        next += period;
        let now = Instant::now();
        if next > now {
            // Sleep in short steps so a stop request is seen promptly.
            let wait = next - now;
            std::thread::sleep(wait.min(Duration::from_millis(50)));
            while Instant::now() < next && !stop.load(Ordering::Relaxed) {
                std::thread::sleep((next - Instant::now()).min(Duration::from_millis(50)));
            }
        } else {
            next = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_video_runs_in_real_time() {
        let v = SyntheticVideo::start(64, 48, 50, 1).expect("start");
        assert!(v.is_synthetic());
        let start = Instant::now();
        let mut n = 0;
        while n < 10 {
            let f = v
                .frames()
                .recv_timeout(Duration::from_secs(2))
                .expect("frame");
            assert_eq!((f.width, f.height), (64, 48));
            n += 1;
        }
        // 10 frames at 50 fps take about 180 ms (the first comes at once).
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(150), "{took:?}");
        assert!(SyntheticVideo::start(63, 48, 15, 0).is_err());
    }

    #[test]
    fn synthetic_audio_gives_20ms_frames() {
        let a = SyntheticAudio::start(440.0, -20.0).expect("start");
        let f = a
            .frames()
            .recv_timeout(Duration::from_secs(2))
            .expect("frame");
        assert_eq!(f.len(), 960);
        assert!(f.iter().any(|&s| s != 0));
        assert!(SyntheticAudio::start(5.0, -20.0).is_err());
    }
}
