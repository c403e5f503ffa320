//! Native capture and playback for the desktop app (feature `native`).
//!
//! * Devices: [`list_devices`] and, for hot-plug, [`DeviceWatcher`]. Only real devices are
//!   listed; synthetic sources are never presented as devices. On Linux a sound server's own
//!   sources and sinks are listed beside ALSA's devices, through one kept connection to it.
//! * Camera: [`CameraCapture`] (nokhwa), mode chosen by [`choose_format`], frames converted
//!   to I420 ([`to_i420`]).
//! * Microphone: [`MicCapture`] (cpal; on Linux read straight from ALSA, see
//!   [`CaptureBackend`]), 48 kHz mono, 20 ms frames of 960 samples, optionally
//!   cleaned by an [`AudioProcessor`].
//! * Speaker: [`SpeakerOutput`] (cpal), mixes 48 kHz mono frames from several remote people
//!   through small jitter buffers and shows what it plays to the [`AudioProcessor`].
//! * Screen share on X11: [`ScreenCapture`] (Linux only).
//! * Inputs the app can switch between, synthetic ones included and labelled as such:
//!   [`VideoInput`] and [`AudioInput`].
//!
//! Every capture delivers on a bounded, drop-oldest [`crate::FrameReceiver`] and never blocks
//! its device thread. Logs name devices and errors, never people.

#[cfg(target_os = "linux")]
mod alsa_capture;
mod apm;
mod audio_io;
mod camera;
mod convert;
mod resample;
#[cfg(target_os = "linux")]
mod screen;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait};

pub use apm::{APM_FRAME_SAMPLES, AudioProcessor, AudioProcessorConfig, AudioProcessorStats};
pub use audio_io::{CaptureBackend, MicCapture, SpeakerOutput, SpeakerStats};
pub use camera::{CameraCapture, CaptureFormat, choose_format};
pub use convert::{
    RgbLayout, SUPPORTED_FORMATS, buffer_to_i420, gray_to_i420, mjpeg_to_i420, nv12_to_i420,
    rgb_to_i420, to_i420, yuyv_to_i420,
};
/// nokhwa's types for camera modes and buffers, re-exported so callers need not depend on it.
pub use nokhwa::Buffer as CameraBuffer;
pub use nokhwa::utils::{CameraFormat, FrameFormat, Resolution};
pub use resample::{Resampler, downmix, f32_to_i16, i16_to_f32};
#[cfg(target_os = "linux")]
pub use screen::ScreenCapture;

use crate::source::Worker;
use crate::{FrameReceiver, I420Frame, MediaError, SyntheticAudio, SyntheticVideo};

/// What a device is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// A video capture device.
    Camera,
    /// An audio capture device.
    Microphone,
    /// An audio playback device.
    Speaker,
}

/// A device the user can pick.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct DeviceInfo {
    /// Stable id to open it with: a camera index ("0") or a cpal device id ("alsa:default",
    /// or a sound server's device such as "pulseaudio:bluez_sink.00_1B_66_AA_BB_CC.a2dp_sink").
    pub id: String,
    /// Human-readable name from the system.
    pub name: String,
    /// Camera, microphone or speaker.
    pub kind: DeviceKind,
    /// True for a synthetic source. [`list_devices`] never returns one; the field lets the
    /// app put synthetic entries (see [`VideoInput::Synthetic`]) in the same list, labelled.
    pub synthetic: bool,
}

/// The devices of one kind present now. Cameras come from nokhwa (an empty list when the
/// system has none). Microphones and speakers come from cpal's ALSA host, where the sound
/// server's `default` PCM is listed when PulseAudio or PipeWire runs, followed on Linux by the
/// sound server's own sources and sinks (a Bluetooth headset, a virtual device), which ALSA
/// only reaches through that one `default` PCM. Their ids start with `pulseaudio:`.
pub fn list_devices(kind: DeviceKind) -> Result<Vec<DeviceInfo>, MediaError> {
    match kind {
        DeviceKind::Camera => list_cameras(),
        DeviceKind::Microphone | DeviceKind::Speaker => {
            let mut devices = list_audio(&audio_host()?, kind)?;
            match with_sound_server(|server| list_audio(server, kind)) {
                Some(Ok(found)) => devices.extend(found),
                // The server stopped answering between two calls; ALSA's list stands.
                Some(Err(error)) => {
                    tracing::debug!(%error, "the sound server's devices cannot be listed");
                }
                None => {}
            }
            Ok(devices)
        }
    }
}

/// The device the system would use for `kind` when none is chosen, if any.
pub fn default_device(kind: DeviceKind) -> Result<Option<DeviceInfo>, MediaError> {
    match kind {
        DeviceKind::Camera => Ok(list_cameras()?.into_iter().next()),
        DeviceKind::Microphone => Ok(audio_host()?
            .default_input_device()
            .and_then(|d| audio_info(&d, kind))),
        DeviceKind::Speaker => Ok(audio_host()?
            .default_output_device()
            .and_then(|d| audio_info(&d, kind))),
    }
}

/// The audio host that opens the default devices: ALSA on Linux (where a sound server's
/// devices are reached through its `default` PCM), cpal's default elsewhere. cpal would pick
/// its PulseAudio host first when one answers; ALSA is kept so the default microphone is read
/// by this crate's own reader (see [`CaptureBackend`]). The sound server's own devices are
/// reached through [`with_sound_server`].
pub(crate) fn audio_host() -> Result<cpal::Host, MediaError> {
    #[cfg(target_os = "linux")]
    {
        cpal::host_from_id(cpal::HostId::Alsa)
            .map_err(|e| MediaError::Device(format!("ALSA is not available: {e}")))
    }
    #[cfg(not(target_os = "linux"))]
    {
        Ok(cpal::default_host())
    }
}

/// The device with cpal id `id`, from its own host: the sound server for a `pulseaudio:` id
/// (an error when it no longer answers), [`audio_host`] otherwise.
pub(crate) fn device_by_id(id: &cpal::DeviceId) -> Result<Option<cpal::Device>, MediaError> {
    #[cfg(target_os = "linux")]
    if id.host() == cpal::HostId::PulseAudio {
        return with_sound_server(|server| Ok(server.device_by_id(id))).unwrap_or_else(|| {
            Err(MediaError::Device(format!(
                "the sound server that had {id} does not answer (is PulseAudio or PipeWire running?)"
            )))
        });
    }
    Ok(audio_host()?.device_by_id(id))
}

/// The process's one connection to the sound server (PulseAudio, or PipeWire's PulseAudio
/// service), spoken to in its own protocol through cpal's PulseAudio host. It is kept: the
/// client library's I/O thread ends only when the server closes the connection, so a
/// connection per look would leave a thread behind each time.
#[cfg(target_os = "linux")]
static SOUND_SERVER: std::sync::Mutex<Option<cpal::Host>> = std::sync::Mutex::new(None);

/// Runs `use_it` with the sound server, connecting first if needed; when it fails on a kept
/// connection (the server restarted or went away, which ends that connection), once more on
/// a new one. `None` when no sound server answers, or off Linux.
pub(crate) fn with_sound_server<T>(
    use_it: impl Fn(&cpal::Host) -> Result<T, MediaError>,
) -> Option<Result<T, MediaError>> {
    #[cfg(target_os = "linux")]
    {
        let mut kept = SOUND_SERVER.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = kept.as_ref() {
            match use_it(server) {
                Ok(found) => return Some(Ok(found)),
                Err(error) => {
                    tracing::debug!(%error, "the sound server connection failed; connecting again");
                    *kept = None;
                }
            }
        }
        let server = match cpal::host_from_id(cpal::HostId::PulseAudio) {
            Ok(server) => server,
            Err(error) => {
                tracing::debug!(%error, "no sound server answers");
                return None;
            }
        };
        let result = use_it(&server);
        *kept = Some(server);
        Some(result)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = use_it;
        None
    }
}

fn list_cameras() -> Result<Vec<DeviceInfo>, MediaError> {
    let cameras = nokhwa::query(nokhwa::utils::ApiBackend::Auto)
        .map_err(|e| MediaError::Device(format!("the cameras cannot be listed: {e}")))?;
    Ok(cameras
        .into_iter()
        .map(|c| DeviceInfo {
            id: c.index().to_string(),
            name: c.human_name(),
            kind: DeviceKind::Camera,
            synthetic: false,
        })
        .collect())
}

fn list_audio(host: &cpal::Host, kind: DeviceKind) -> Result<Vec<DeviceInfo>, MediaError> {
    let devices: Vec<cpal::Device> = if kind == DeviceKind::Microphone {
        host.input_devices()
            .map_err(|e| MediaError::Device(format!("the microphones cannot be listed: {e}")))?
            .collect()
    } else {
        host.output_devices()
            .map_err(|e| MediaError::Device(format!("the speakers cannot be listed: {e}")))?
            .collect()
    };
    Ok(devices.iter().filter_map(|d| audio_info(d, kind)).collect())
}

pub(crate) fn audio_info(device: &cpal::Device, kind: DeviceKind) -> Option<DeviceInfo> {
    let id = device.id().ok()?.to_string();
    let name = device
        .description()
        .map(|d| d.name().to_owned())
        .unwrap_or_else(|_| id.clone());
    Some(DeviceInfo {
        id,
        name,
        kind,
        synthetic: false,
    })
}

/// Devices that appeared or went away since the previous look.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceChange {
    /// The kind of every device in this change.
    pub kind: DeviceKind,
    /// Devices now present that were not before.
    pub added: Vec<DeviceInfo>,
    /// Devices present before that are gone.
    pub removed: Vec<DeviceInfo>,
}

/// Compares two lists of one kind by device id; `None` when nothing changed.
pub fn diff_devices(
    kind: DeviceKind,
    before: &[DeviceInfo],
    now: &[DeviceInfo],
) -> Option<DeviceChange> {
    let added: Vec<DeviceInfo> = now
        .iter()
        .filter(|d| !before.iter().any(|b| b.id == d.id))
        .cloned()
        .collect();
    let removed: Vec<DeviceInfo> = before
        .iter()
        .filter(|b| !now.iter().any(|d| d.id == b.id))
        .cloned()
        .collect();
    (!added.is_empty() || !removed.is_empty()).then_some(DeviceChange {
        kind,
        added,
        removed,
    })
}

/// How often [`DeviceWatcher::spawn`] looks by default.
pub const DEVICE_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Watches the camera, microphone and speaker lists for hot-plug by polling them on a
/// thread. Dropping it stops the thread.
///
/// It sees what [`list_devices`] sees. On Linux that is ALSA's list (a new sound card shows
/// up) and the sound server's own sinks and sources (a Bluetooth or USB headset the server
/// picked up, a virtual device). ALSA's configuration makes `default` the sound server only
/// while the server answers, so the server going away and coming back is reported as
/// `alsa:default` and the server's devices removed and added.
#[derive(Debug)]
pub struct DeviceWatcher {
    looks: Arc<AtomicU64>,
    _worker: Worker,
}

impl DeviceWatcher {
    /// Polls every `interval` and sends each [`DeviceChange`] on the returned channel (it can
    /// be awaited from async code or read with `blocking_recv`). The first look sets the
    /// baseline; only later differences are sent.
    pub fn spawn(
        interval: Duration,
    ) -> Result<
        (
            DeviceWatcher,
            tokio::sync::mpsc::UnboundedReceiver<DeviceChange>,
        ),
        MediaError,
    > {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let watcher = Self::with_callback(interval, move |change| {
            let _ = tx.send(change);
        })?;
        Ok((watcher, rx))
    }

    /// Like [`DeviceWatcher::spawn`], calling `on_change` on the watcher's thread instead.
    pub fn with_callback(
        interval: Duration,
        mut on_change: impl FnMut(DeviceChange) + Send + 'static,
    ) -> Result<DeviceWatcher, MediaError> {
        let looks = Arc::new(AtomicU64::new(0));
        let counter = looks.clone();
        let worker = Worker::spawn("rounds-device-watch", move |stop| {
            let kinds = [
                DeviceKind::Camera,
                DeviceKind::Microphone,
                DeviceKind::Speaker,
            ];
            let look = |kind| list_devices(kind).ok();
            let mut known: Vec<Option<Vec<DeviceInfo>>> = kinds.iter().map(|&k| look(k)).collect();
            counter.fetch_add(1, Ordering::Release);
            let step = Duration::from_millis(50);
            loop {
                let mut waited = Duration::ZERO;
                while waited < interval {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(step);
                    waited += step;
                }
                for (slot, &kind) in known.iter_mut().zip(&kinds) {
                    // A failed look changes nothing: a flaky query must not look like unplugging.
                    let Some(now) = look(kind) else { continue };
                    if let Some(before) = slot.as_ref()
                        && let Some(change) = diff_devices(kind, before, &now)
                    {
                        on_change(change);
                    }
                    *slot = Some(now);
                }
                counter.fetch_add(1, Ordering::Release);
            }
        })?;
        Ok(DeviceWatcher {
            looks,
            _worker: worker,
        })
    }

    /// How many times the watcher has read all the lists so far, the first (baseline) look
    /// included. Once it is at least 1, any later change will be reported. A change made
    /// before this read `n` has been through a complete look (and reported, if the lists
    /// showed it) once it reads `n + 2`.
    pub fn looks(&self) -> u64 {
        self.looks.load(Ordering::Acquire)
    }
}

/// Where outgoing video comes from. `Synthetic` is the labelled test card, used only when the
/// app is configured for it; the UI must show [`VideoInput::is_synthetic`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum VideoInput {
    /// A camera by [`DeviceInfo::id`]; `None` is the first camera.
    Camera(Option<String>),
    /// The moving test card with the word SYNTHETIC on it.
    Synthetic,
}

impl VideoInput {
    /// True for the test card.
    pub fn is_synthetic(&self) -> bool {
        matches!(self, VideoInput::Synthetic)
    }

    /// Starts this input near `want` (the test card runs at exactly `want`).
    pub fn open(&self, want: CaptureFormat) -> Result<VideoCapture, MediaError> {
        Ok(match self {
            VideoInput::Camera(id) => {
                VideoCapture::Camera(CameraCapture::open(id.as_deref(), want)?)
            }
            VideoInput::Synthetic => VideoCapture::Synthetic(SyntheticVideo::start(
                want.width,
                want.height,
                want.fps,
                0,
            )?),
        })
    }
}

/// A running [`VideoInput`].
#[derive(Debug)]
pub enum VideoCapture {
    /// A real camera.
    Camera(CameraCapture),
    /// The test card.
    Synthetic(SyntheticVideo),
}

impl VideoCapture {
    /// The I420 frames, oldest first (drop-oldest, a few frames deep).
    pub fn frames(&self) -> &FrameReceiver<I420Frame> {
        match self {
            VideoCapture::Camera(c) => c.frames(),
            VideoCapture::Synthetic(s) => s.frames(),
        }
    }

    /// True for the test card.
    pub fn is_synthetic(&self) -> bool {
        matches!(self, VideoCapture::Synthetic(_))
    }

    /// The size and rate frames come at.
    pub fn format(&self) -> CaptureFormat {
        match self {
            VideoCapture::Camera(c) => c.format(),
            VideoCapture::Synthetic(s) => {
                let (width, height, fps) = s.format();
                CaptureFormat { width, height, fps }
            }
        }
    }
}

/// Where outgoing audio comes from. `Synthetic` is a 440 Hz tone at -20 dBFS, used only when
/// the app is configured for it; the UI must show [`AudioInput::is_synthetic`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum AudioInput {
    /// A microphone by [`DeviceInfo::id`]; `None` is the system default.
    Microphone(Option<String>),
    /// A sine tone.
    Synthetic,
}

impl AudioInput {
    /// True for the tone.
    pub fn is_synthetic(&self) -> bool {
        matches!(self, AudioInput::Synthetic)
    }

    /// Starts this input. A microphone's frames are cleaned by `processor` when given (the
    /// tone never is).
    pub fn open(&self, processor: Option<AudioProcessor>) -> Result<AudioCapture, MediaError> {
        Ok(match self {
            AudioInput::Microphone(id) => {
                AudioCapture::Microphone(MicCapture::open_with(id.as_deref(), processor)?)
            }
            AudioInput::Synthetic => AudioCapture::Synthetic(SyntheticAudio::start(440.0, -20.0)?),
        })
    }
}

/// A running [`AudioInput`].
#[derive(Debug)]
pub enum AudioCapture {
    /// A real microphone.
    Microphone(MicCapture),
    /// The tone.
    Synthetic(SyntheticAudio),
}

impl AudioCapture {
    /// 20 ms frames of 960 samples, 48 kHz mono, oldest first.
    pub fn frames(&self) -> &FrameReceiver<Vec<i16>> {
        match self {
            AudioCapture::Microphone(m) => m.frames(),
            AudioCapture::Synthetic(s) => s.frames(),
        }
    }

    /// True for the tone.
    pub fn is_synthetic(&self) -> bool {
        matches!(self, AudioCapture::Synthetic(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(id: &str) -> DeviceInfo {
        DeviceInfo {
            id: id.into(),
            name: format!("Device {id}"),
            kind: DeviceKind::Microphone,
            synthetic: false,
        }
    }

    #[test]
    fn diff_reports_hot_plug() {
        let before = [dev("a"), dev("b")];
        let now = [dev("b"), dev("c")];
        let change = diff_devices(DeviceKind::Microphone, &before, &now).expect("change");
        assert_eq!(change.added, vec![dev("c")]);
        assert_eq!(change.removed, vec![dev("a")]);
        assert_eq!(diff_devices(DeviceKind::Microphone, &now, &now), None);
    }

    #[test]
    fn inputs_say_whether_they_are_synthetic() {
        assert!(VideoInput::Synthetic.is_synthetic());
        assert!(!VideoInput::Camera(None).is_synthetic());
        assert!(AudioInput::Synthetic.is_synthetic());
        let v = VideoInput::Synthetic
            .open(CaptureFormat {
                width: 64,
                height: 36,
                fps: 30,
            })
            .expect("test card");
        assert!(v.is_synthetic());
        let f = v
            .frames()
            .recv_timeout(Duration::from_secs(2))
            .expect("frame");
        assert_eq!((f.width, f.height), (64, 36));
    }

    #[test]
    fn no_camera_here_means_an_empty_list_not_a_made_up_one() {
        // On machines with cameras this lists them; none may be synthetic.
        if let Ok(cameras) = list_devices(DeviceKind::Camera) {
            assert!(cameras.iter().all(|c| !c.synthetic));
        }
    }
}
