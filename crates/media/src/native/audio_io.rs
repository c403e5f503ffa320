//! Microphone capture and speaker playback through cpal.
//!
//! Device callbacks run on the sound system's realtime thread, so they only copy samples:
//! the microphone callback hands raw chunks to a worker thread, which downmixes, resamples
//! to 48 kHz, cuts 20 ms frames and runs the audio processing module; the speaker callback
//! pulls 10 ms at a time from the mixer. The cpal stream lives on a thread of its own (it is
//! not `Send` on every platform), which keeps [`MicCapture`] and [`SpeakerOutput`] `Send`.

use std::collections::{BTreeMap, VecDeque};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};

use super::apm::{APM_FRAME_SAMPLES, AudioProcessor};
use super::resample::{Resampler, downmix, f32_to_i16, i16_to_f32};
use super::{DeviceInfo, DeviceKind, audio_info};
use crate::source::{AUDIO_QUEUE_FRAMES, Worker};
use crate::{
    FRAME_SAMPLES_20MS, FrameReceiver, FrameSender, MediaError, SAMPLE_RATE_HZ, frame_queue,
};

/// Finds a device by id (a cpal device id such as "alsa:default" or
/// "pulseaudio:alsa_input.usb-…", or a device name), or the default one.
fn find_device(id: Option<&str>, kind: DeviceKind) -> Result<cpal::Device, MediaError> {
    let host = super::audio_host()?;
    let what = if kind == DeviceKind::Microphone {
        "microphone"
    } else {
        "speaker"
    };
    let Some(id) = id else {
        let device = if kind == DeviceKind::Microphone {
            host.default_input_device()
        } else {
            host.default_output_device()
        };
        return device.ok_or_else(|| {
            MediaError::Device(format!(
                "there is no default {what} (on Linux, is a sound server such as PulseAudio running?)"
            ))
        });
    };
    if let Ok(device_id) = cpal::DeviceId::from_str(id)
        && let Some(device) = super::device_by_id(&device_id)?
    {
        return Ok(device);
    }
    let devices = host
        .devices()
        .map_err(|e| MediaError::Device(format!("the {what}s cannot be listed: {e}")))?;
    for device in devices {
        if audio_info(&device, kind).is_some_and(|d| d.id == id || d.name == id) {
            return Ok(device);
        }
    }
    Err(MediaError::Device(format!(
        "the {what} {id:?} is not present"
    )))
}

/// The stream configuration for a device: its default format with a period of about 20 ms
/// where the device allows one. Short periods (the ALSA default through PulseAudio) overrun
/// on a busy machine, and a capture overrun is an audible gap.
fn stream_config(supported: &cpal::SupportedStreamConfig) -> cpal::StreamConfig {
    let mut config = supported.config();
    let period = supported.sample_rate() / 50;
    if let cpal::SupportedBufferSize::Range { min, max } = *supported.buffer_size()
        && min <= max
    {
        config.buffer_size = cpal::BufferSize::Fixed(period.clamp(min, max));
    }
    config
}

/// Opens a device on a worker thread of its own and keeps it there: `open` runs on the new
/// thread and its result comes back to the caller (the facts `R`, or its error as it is);
/// once it succeeded, `run` gets what it opened, `S`, on the same thread and must return
/// soon after the stop flag it is given is set. `S` never leaves that thread, so it need not
/// be `Send` (a cpal stream is not on every platform). `ended` is the error when the thread
/// ends without a result.
pub(super) fn open_on_worker<S, R: Send + 'static>(
    name: &str,
    ended: &str,
    open: impl FnOnce() -> Result<(S, R), MediaError> + Send + 'static,
    run: impl FnOnce(S, &AtomicBool) + Send + 'static,
) -> Result<(Worker, R), MediaError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let worker = Worker::spawn(name, move |stop| {
        let opened = match open() {
            Ok((opened, facts)) => {
                let _ = ready_tx.send(Ok(facts));
                opened
            }
            Err(error) => {
                let _ = ready_tx.send(Err(error));
                return;
            }
        };
        run(opened, &stop);
    })?;
    let facts = ready_rx
        .recv()
        .map_err(|_| MediaError::Device(ended.to_owned()))??;
    Ok((worker, facts))
}

/// Opens a stream on its own thread and keeps it there until the worker stops. `build`
/// returns the stream and the facts to report back.
fn run_stream<R: Send + 'static>(
    name: &str,
    build: impl FnOnce() -> Result<(cpal::Stream, R), MediaError> + Send + 'static,
) -> Result<(Worker, R), MediaError> {
    open_on_worker(
        name,
        "the audio thread ended before opening",
        move || {
            let (stream, facts) = build()?;
            stream
                .play()
                .map_err(|e| MediaError::Device(format!("the audio stream does not start: {e}")))?;
            Ok((stream, facts))
        },
        |stream, stop| {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            drop(stream);
        },
    )
}

/// How a [`MicCapture`] reads its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaptureBackend {
    /// Straight from ALSA by this crate's own reader, which sleeps until each period is due
    /// (Linux, ALSA devices).
    AlsaDirect,
    /// Through a cpal input stream: other hosts, or an ALSA device that refused what the
    /// direct reader asks for.
    Cpal,
}

/// A running microphone: 20 ms frames (960 samples, 48 kHz mono, i16) on
/// [`MicCapture::frames`], whatever the device's own rate and channel count. At most
/// [`AUDIO_QUEUE_FRAMES`] frames wait; older ones are dropped. Dropping it closes the device.
#[derive(Debug)]
pub struct MicCapture {
    frames: FrameReceiver<Vec<i16>>,
    device: DeviceInfo,
    device_rate: u32,
    device_channels: u16,
    backend: CaptureBackend,
    stream_failed: Arc<AtomicBool>,
    // Order matters: the stream stops before the worker that drains it.
    stream: Worker,
    _processing: Worker,
}

impl MicCapture {
    /// Opens a microphone (`None`: the system default) without audio processing.
    pub fn open(device_id: Option<&str>) -> Result<MicCapture, MediaError> {
        Self::open_with(device_id, None)
    }

    /// Opens a microphone and cleans every frame with `processor` (echo cancellation needs
    /// the speaker to use a clone of the same processor, see [`SpeakerOutput::open_with`]).
    pub fn open_with(
        device_id: Option<&str>,
        processor: Option<AudioProcessor>,
    ) -> Result<MicCapture, MediaError> {
        let device = find_device(device_id, DeviceKind::Microphone)?;
        let info = audio_info(&device, DeviceKind::Microphone)
            .ok_or_else(|| MediaError::Device("the microphone has no id".into()))?;
        let supported = device.default_input_config().map_err(|e| {
            MediaError::Device(format!(
                "the microphone {} has no usable format: {e}",
                info.id
            ))
        })?;
        let (rate, channels, format) = (
            supported.sample_rate(),
            supported.channels(),
            supported.sample_format(),
        );
        let config = stream_config(&supported);
        // Device chunks can be small; keep up to a few seconds of them for the converter.
        let (raw_tx, raw_rx) = frame_queue::<Vec<f32>>(1024);
        let stream_failed = Arc::new(AtomicBool::new(false));
        let (stream, rate, channels, backend, format) =
            match open_alsa_direct(&device, rate, channels, &raw_tx, &stream_failed) {
                Some((stream, rate, channels)) => (
                    stream,
                    rate,
                    channels,
                    CaptureBackend::AlsaDirect,
                    SampleFormat::I16,
                ),
                None => {
                    let failed = stream_failed.clone();
                    let (stream, ()) = run_stream("rounds-mic", move || {
                        let stream = build_input(&device, &config, format, raw_tx, failed)?;
                        Ok((stream, ()))
                    })?;
                    (stream, rate, channels, CaptureBackend::Cpal, format)
                }
            };
        let (tx, frames) = frame_queue(AUDIO_QUEUE_FRAMES);
        let processing = Worker::spawn("rounds-mic-frames", move |stop| {
            frame_loop(&stop, &raw_rx, rate, usize::from(channels), processor, &tx);
        })?;
        tracing::info!(
            device = %info.id,
            rate,
            channels,
            format = ?format,
            backend = ?backend,
            "microphone open"
        );
        Ok(MicCapture {
            frames,
            device: info,
            device_rate: rate,
            device_channels: channels,
            backend,
            stream_failed,
            stream,
            _processing: processing,
        })
    }

    /// The 20 ms frames, oldest first.
    pub fn frames(&self) -> &FrameReceiver<Vec<i16>> {
        &self.frames
    }

    /// The device being captured.
    pub fn device(&self) -> &DeviceInfo {
        &self.device
    }

    /// The device's own sample rate and channel count (before conversion).
    pub fn device_format(&self) -> (u32, u16) {
        (self.device_rate, self.device_channels)
    }

    /// How the device is read: on Linux, an ALSA device straight from ALSA unless it refused
    /// that reader's setup.
    pub fn backend(&self) -> CaptureBackend {
        self.backend
    }

    /// True once the device reported an error (unplugged, for example): open another one.
    pub fn has_failed(&self) -> bool {
        self.stream_failed.load(Ordering::Relaxed)
    }

    /// Never synthetic: this is a real microphone.
    pub fn is_synthetic(&self) -> bool {
        false
    }

    /// Closes the device now (dropping does the same).
    pub fn stop(mut self) {
        self.stream.stop();
    }
}

/// On Linux, an ALSA microphone, or one of the sound server's own sources (through its ALSA
/// plugin, by name), is read by [`super::alsa_capture`] rather than through cpal's stream,
/// whose wait for each period spins on the sound server's ALSA plugin. `None` elsewhere, for
/// other hosts, or when the device refuses what that reader asks for (then cpal opens it as
/// before).
#[cfg(target_os = "linux")]
fn open_alsa_direct(
    device: &cpal::Device,
    rate: u32,
    channels: u16,
    raw: &FrameSender<Vec<f32>>,
    failed: &Arc<AtomicBool>,
) -> Option<(Worker, u32, u16)> {
    let id = device.id().ok()?;
    let pcm = match id.host() {
        cpal::HostId::Alsa => id.id().to_owned(),
        // The sound server's ALSA plugin opens one of its sources by name.
        cpal::HostId::PulseAudio => super::alsa_capture::sound_server_pcm(id.id())?,
    };
    match super::alsa_capture::spawn(&pcm, rate, channels, raw.clone(), failed.clone()) {
        Ok((worker, opened)) => Some((worker, opened.rate, opened.channels)),
        Err(error) => {
            tracing::debug!(%error, "reading the microphone through cpal instead");
            None
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn open_alsa_direct(
    _: &cpal::Device,
    _: u32,
    _: u16,
    _: &FrameSender<Vec<f32>>,
    _: &Arc<AtomicBool>,
) -> Option<(Worker, u32, u16)> {
    None
}

fn build_input(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    format: SampleFormat,
    raw: FrameSender<Vec<f32>>,
    failed: Arc<AtomicBool>,
) -> Result<cpal::Stream, MediaError> {
    fn typed<T>(
        device: &cpal::Device,
        config: &cpal::StreamConfig,
        raw: FrameSender<Vec<f32>>,
        failed: Arc<AtomicBool>,
    ) -> Result<cpal::Stream, cpal::Error>
    where
        T: SizedSample,
        f32: FromSample<T>,
    {
        device.build_input_stream(
            *config,
            move |data: &[T], _: &cpal::InputCallbackInfo| {
                raw.push(data.iter().map(|&s| s.to_sample::<f32>()).collect());
            },
            move |error| {
                tracing::warn!(%error, "microphone stream error");
                failed.store(true, Ordering::Relaxed);
            },
            None,
        )
    }
    let stream = match format {
        SampleFormat::F32 => typed::<f32>(device, config, raw, failed),
        SampleFormat::I16 => typed::<i16>(device, config, raw, failed),
        SampleFormat::U16 => typed::<u16>(device, config, raw, failed),
        SampleFormat::I32 => typed::<i32>(device, config, raw, failed),
        SampleFormat::U8 => typed::<u8>(device, config, raw, failed),
        SampleFormat::I8 => typed::<i8>(device, config, raw, failed),
        SampleFormat::F64 => typed::<f64>(device, config, raw, failed),
        other => {
            return Err(MediaError::Device(format!(
                "the microphone's sample format {other:?} is not supported"
            )));
        }
    };
    stream.map_err(|e| MediaError::Device(format!("the microphone does not open: {e}")))
}

/// Raw device chunks in, 20 ms 48 kHz mono frames out.
fn frame_loop(
    stop: &AtomicBool,
    raw: &FrameReceiver<Vec<f32>>,
    rate: u32,
    channels: usize,
    mut processor: Option<AudioProcessor>,
    out: &FrameSender<Vec<i16>>,
) {
    let mut resampler = Resampler::new(rate, SAMPLE_RATE_HZ);
    let (mut mono, mut resampled) = (Vec::new(), Vec::new());
    let mut pending: Vec<i16> = Vec::with_capacity(2 * FRAME_SAMPLES_20MS);
    let mut processing_failed = false;
    while !stop.load(Ordering::Relaxed) {
        let chunk = match raw.recv_timeout(Duration::from_millis(100)) {
            Ok(c) => c,
            Err(crate::RecvError::Timeout) => continue,
            Err(crate::RecvError::Closed) => return,
        };
        mono.clear();
        downmix(&chunk, channels, &mut mono);
        resampled.clear();
        resampler.process(&mono, &mut resampled);
        pending.extend(resampled.iter().map(|&s| f32_to_i16(s)));
        while pending.len() >= FRAME_SAMPLES_20MS {
            let mut frame: Vec<i16> = pending.drain(..FRAME_SAMPLES_20MS).collect();
            if let Some(p) = processor.as_mut()
                && let Err(error) = p.process_capture(&mut frame)
                && !processing_failed
            {
                processing_failed = true;
                tracing::warn!(%error, "microphone audio processing failed; sending it unprocessed");
            }
            if !out.push(frame) {
                return;
            }
        }
    }
}

/// How much audio a remote person's jitter buffer collects before it starts playing.
const JITTER_TARGET: usize = 3 * FRAME_SAMPLES_20MS; // 60 ms
/// Above this a jitter buffer drops its oldest audio to get back to the target.
const JITTER_MAX: usize = 10 * FRAME_SAMPLES_20MS; // 200 ms
/// A source silent this long is forgotten.
const SOURCE_IDLE: Duration = Duration::from_secs(5);

/// One remote person's audio waiting to be played.
#[derive(Debug)]
struct JitterBuffer {
    samples: VecDeque<i16>,
    playing: bool,
    last_push: Instant,
}

/// Counters of a [`SpeakerOutput`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpeakerStats {
    /// 48 kHz samples pushed by the app, all sources together.
    pub samples_pushed: u64,
    /// 10 ms blocks the device has pulled.
    pub blocks_played: u64,
    /// Times a playing source ran dry and went back to buffering.
    pub underruns: u64,
    /// Samples dropped because a source's buffer overflowed (it sent faster than real time).
    pub samples_dropped: u64,
    /// Sources (remote people) currently known.
    pub sources: usize,
}

#[derive(Debug, Default)]
struct Mixer {
    sources: BTreeMap<String, JitterBuffer>,
    stats: SpeakerStats,
}

impl Mixer {
    fn push(&mut self, source: &str, samples: &[i16]) {
        let now = Instant::now();
        let buffer = self
            .sources
            .entry(source.to_owned())
            .or_insert_with(|| JitterBuffer {
                samples: VecDeque::with_capacity(JITTER_MAX),
                playing: false,
                last_push: now,
            });
        buffer.samples.extend(samples);
        buffer.last_push = now;
        if buffer.samples.len() > JITTER_MAX {
            let excess = buffer.samples.len() - JITTER_TARGET;
            buffer.samples.drain(..excess);
            self.stats.samples_dropped += excess as u64;
        }
        self.stats.samples_pushed += samples.len() as u64;
    }

    /// The next 10 ms of everyone together.
    fn mix(&mut self, out: &mut [i32; APM_FRAME_SAMPLES]) {
        out.fill(0);
        let now = Instant::now();
        self.sources
            .retain(|_, b| !b.samples.is_empty() || now.duration_since(b.last_push) < SOURCE_IDLE);
        for buffer in self.sources.values_mut() {
            if !buffer.playing {
                if buffer.samples.len() < JITTER_TARGET {
                    continue;
                }
                buffer.playing = true;
            }
            let n = buffer.samples.len().min(APM_FRAME_SAMPLES);
            for (o, s) in out.iter_mut().zip(buffer.samples.drain(..n)) {
                *o += i32::from(s);
            }
            if n < APM_FRAME_SAMPLES {
                buffer.playing = false;
                self.stats.underruns += 1;
            }
        }
        self.stats.blocks_played += 1;
        self.stats.sources = self.sources.len();
    }
}

/// Plays remote audio: 48 kHz mono i16 from any number of remote people, each through a small
/// jitter buffer (60 ms before it starts, at most 200 ms), mixed and converted to the
/// device's rate and channels. When given an [`AudioProcessor`], everything played is shown
/// to it as the far end. Dropping it closes the device.
#[derive(Debug)]
pub struct SpeakerOutput {
    mixer: Arc<Mutex<Mixer>>,
    device: DeviceInfo,
    device_rate: u32,
    device_channels: u16,
    stream_failed: Arc<AtomicBool>,
    stream: Worker,
}

impl SpeakerOutput {
    /// Opens a speaker (`None`: the system default).
    pub fn open(device_id: Option<&str>) -> Result<SpeakerOutput, MediaError> {
        Self::open_with(device_id, None)
    }

    /// Opens a speaker and feeds what it plays to `processor` as the echo reference (give a
    /// clone of the processor the microphone uses).
    pub fn open_with(
        device_id: Option<&str>,
        processor: Option<AudioProcessor>,
    ) -> Result<SpeakerOutput, MediaError> {
        let device = find_device(device_id, DeviceKind::Speaker)?;
        let info = audio_info(&device, DeviceKind::Speaker)
            .ok_or_else(|| MediaError::Device("the speaker has no id".into()))?;
        let supported = device.default_output_config().map_err(|e| {
            MediaError::Device(format!("the speaker {} has no usable format: {e}", info.id))
        })?;
        let (rate, channels, format) = (
            supported.sample_rate(),
            supported.channels(),
            supported.sample_format(),
        );
        let config = stream_config(&supported);
        let mixer = Arc::new(Mutex::new(Mixer::default()));
        let stream_failed = Arc::new(AtomicBool::new(false));
        let (shared, failed) = (mixer.clone(), stream_failed.clone());
        let (stream, ()) = run_stream("rounds-speaker", move || {
            let feed = Feed {
                mixer: shared,
                processor,
                resampler: Resampler::new(SAMPLE_RATE_HZ, rate),
                pending: VecDeque::new(),
                block: [0; APM_FRAME_SAMPLES],
                scratch: Vec::new(),
                processing_failed: false,
            };
            let stream = build_output(
                &device,
                &config,
                format,
                usize::from(channels),
                feed,
                failed,
            )?;
            Ok((stream, ()))
        })?;
        tracing::debug!(device = %info.id, rate, channels, format = ?format, "speaker open");
        Ok(SpeakerOutput {
            mixer,
            device: info,
            device_rate: rate,
            device_channels: channels,
            stream_failed,
            stream,
        })
    }

    fn mixer(&self) -> MutexGuard<'_, Mixer> {
        self.mixer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues 48 kHz mono samples from one remote person (`source` is any stable key, such as
    /// the participant id; it is never logged). Usually one 20 ms frame of 960 samples.
    pub fn push(&self, source: &str, samples: &[i16]) {
        self.mixer().push(source, samples);
    }

    /// Forgets a person who left (their buffered audio is dropped).
    pub fn remove_source(&self, source: &str) {
        self.mixer().sources.remove(source);
    }

    /// The device playing.
    pub fn device(&self) -> &DeviceInfo {
        &self.device
    }

    /// The device's own sample rate and channel count.
    pub fn device_format(&self) -> (u32, u16) {
        (self.device_rate, self.device_channels)
    }

    /// Counters so far.
    pub fn stats(&self) -> SpeakerStats {
        self.mixer().stats
    }

    /// True once the device reported an error (unplugged, for example): open another one.
    pub fn has_failed(&self) -> bool {
        self.stream_failed.load(Ordering::Relaxed)
    }

    /// Closes the device now (dropping does the same).
    pub fn stop(mut self) {
        self.stream.stop();
    }
}

/// What the speaker callback owns: it turns mixer blocks into device samples.
struct Feed {
    mixer: Arc<Mutex<Mixer>>,
    processor: Option<AudioProcessor>,
    resampler: Resampler,
    /// Mono samples at the device rate, ready to play.
    pending: VecDeque<f32>,
    block: [i32; APM_FRAME_SAMPLES],
    scratch: Vec<f32>,
    processing_failed: bool,
}

impl Feed {
    /// Makes sure `frames` mono samples are ready.
    fn fill(&mut self, frames: usize) {
        while self.pending.len() < frames {
            self.mixer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .mix(&mut self.block);
            let played: Vec<i16> = self
                .block
                .iter()
                .map(|&v| v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16)
                .collect();
            if let Some(p) = self.processor.as_mut()
                && let Err(error) = p.process_render(&played)
                && !self.processing_failed
            {
                self.processing_failed = true;
                tracing::warn!(%error, "the echo canceller lost the speaker signal");
            }
            let block: Vec<f32> = played.iter().map(|&s| i16_to_f32(s)).collect();
            self.scratch.clear();
            self.resampler.process(&block, &mut self.scratch);
            self.pending.extend(self.scratch.iter());
        }
    }
}

fn build_output(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    format: SampleFormat,
    channels: usize,
    feed: Feed,
    failed: Arc<AtomicBool>,
) -> Result<cpal::Stream, MediaError> {
    fn typed<T>(
        device: &cpal::Device,
        config: &cpal::StreamConfig,
        channels: usize,
        mut feed: Feed,
        failed: Arc<AtomicBool>,
    ) -> Result<cpal::Stream, cpal::Error>
    where
        T: SizedSample + FromSample<f32>,
    {
        device.build_output_stream(
            *config,
            move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
                let frames = data.len() / channels.max(1);
                feed.fill(frames);
                for frame in data.chunks_exact_mut(channels.max(1)) {
                    let s = feed.pending.pop_front().unwrap_or(0.0);
                    frame.fill(T::from_sample(s));
                }
            },
            move |error| {
                tracing::warn!(%error, "speaker stream error");
                failed.store(true, Ordering::Relaxed);
            },
            None,
        )
    }
    let stream = match format {
        SampleFormat::F32 => typed::<f32>(device, config, channels, feed, failed),
        SampleFormat::I16 => typed::<i16>(device, config, channels, feed, failed),
        SampleFormat::U16 => typed::<u16>(device, config, channels, feed, failed),
        SampleFormat::I32 => typed::<i32>(device, config, channels, feed, failed),
        SampleFormat::U8 => typed::<u8>(device, config, channels, feed, failed),
        SampleFormat::I8 => typed::<i8>(device, config, channels, feed, failed),
        SampleFormat::F64 => typed::<f64>(device, config, channels, feed, failed),
        other => {
            return Err(MediaError::Device(format!(
                "the speaker's sample format {other:?} is not supported"
            )));
        }
    };
    stream.map_err(|e| MediaError::Device(format!("the speaker does not open: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_on_worker_hands_back_what_opened_and_runs_until_stopped() {
        // What was opened stays on the worker thread: an `Rc` is fine.
        let (mut worker, facts) = open_on_worker(
            "rounds-test-open",
            "ended",
            || Ok((std::rc::Rc::new(5), 7u32)),
            |opened, stop| {
                assert_eq!(*opened, 5);
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            },
        )
        .expect("opened");
        assert_eq!(facts, 7);
        // Returns once `run` saw the stop flag.
        worker.stop();
    }

    #[test]
    fn open_on_worker_passes_errors_through_as_they_are() {
        let error = open_on_worker::<(), ()>(
            "rounds-test-open",
            "ended",
            || Err(MediaError::Device("the microphone x does not open".into())),
            |(), _| unreachable!("run after a failed open"),
        )
        .expect_err("the open error");
        assert_eq!(error.to_string(), "device: the microphone x does not open");
        let error = open_on_worker::<(), ()>(
            "rounds-test-open",
            "the thread ended before opening",
            || panic!("open panicked (on purpose, in a test)"),
            |(), _| {},
        )
        .expect_err("no result");
        assert_eq!(error.to_string(), "device: the thread ended before opening");
    }

    #[test]
    fn jitter_buffer_waits_then_plays_and_mixes() {
        let mut m = Mixer::default();
        let mut out = [0i32; APM_FRAME_SAMPLES];
        m.push("a", &[100; FRAME_SAMPLES_20MS]);
        m.mix(&mut out);
        assert!(out.iter().all(|&v| v == 0), "still buffering");
        m.push("a", &[100; 2 * FRAME_SAMPLES_20MS]);
        m.push("b", &[-30; 3 * FRAME_SAMPLES_20MS]);
        m.mix(&mut out);
        assert!(out.iter().all(|&v| v == 70), "both mixed");
        // 60 ms each: 5 more blocks, then both run dry and buffer again.
        for _ in 0..5 {
            m.mix(&mut out);
        }
        assert_eq!(m.stats.underruns, 0);
        m.mix(&mut out);
        assert!(out.iter().all(|&v| v == 0));
        assert_eq!(m.stats.underruns, 2);
        assert_eq!(m.stats.sources, 2);
    }

    #[test]
    fn a_runaway_source_is_trimmed_to_the_target() {
        let mut m = Mixer::default();
        m.push("fast", &vec![1; JITTER_MAX + 480]);
        assert_eq!(m.sources["fast"].samples.len(), JITTER_TARGET);
        assert_eq!(
            m.stats.samples_dropped,
            (JITTER_MAX + 480 - JITTER_TARGET) as u64
        );
    }
}
