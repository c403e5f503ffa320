//! The visit's call, native end to end: camera (nokhwa) and microphone (cpal) through echo
//! cancellation, noise suppression and gain control (the WebRTC audio processing module),
//! VP8 and Opus through the Rust WebRTC client to the SFU; remote audio decoded and played
//! through cpal, remote video decoded and handed to the window **at the size it is drawn**.
//!
//! With no camera or microphone the call uses a synthetic test card and tone only when IT's
//! policy allows it, and [`CallState`] says so, so the window labels it. Otherwise a missing
//! device means that kind of media is not sent, and the state says that too.
//!
//! Devices can come and go during the call (hot-plug): the controller hands each change to
//! [`Call::on_device_change`], which follows [`crate::devices::plan`]: a lost device falls
//! back to the default, a new one is offered, and [`CallState::notice`] says what happened.
//! The clinician can switch device mid-call ([`Call::switch`]).
//!
//! Screen share (X11) is a track of its own beside the camera, as on the patient pages: the
//! whole screen, up to 1920x1080 at 15 fps. Others' screen shares arrive under
//! [`rounds_client::screen_key`] of their participant id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rounds_client::{
    AudioSink, AudioSource, Client, ClientConfig, ExternalAudio, ExternalVideo, VideoSink,
    VideoSource,
};
use rounds_media::I420Frame;
#[cfg(target_os = "linux")]
use rounds_media::native::ScreenCapture;
use rounds_media::native::{
    AudioCapture, AudioInput, AudioProcessor, AudioProcessorConfig, CaptureFormat, DeviceChange,
    DeviceInfo, DeviceKind, SpeakerOutput, VideoCapture, VideoInput, list_devices,
};
use rounds_proto::{HostAction, MediaKind, ParticipantState, Role, ServerMessage, TrackKind};
use serde::Serialize;
use ts_rs::TS;

use crate::api::ApiError;
use crate::devices::{self, InUse, Switch};

/// The size remote video is scaled to until the window says how large it draws it.
const DEFAULT_RENDER: (u32, u32) = (640, 360);

/// The participant id the self-view's frames are rendered under.
pub const LOCAL: &str = "local";
/// The self-view's size.
const PREVIEW: (u32, u32) = (320, 180);

/// Receives each remote video frame, already scaled to its tile's size (and the self-view
/// under [`LOCAL`]).
pub type RenderSink = Arc<dyn Fn(&str, &I420Frame) + Send + Sync>;

/// The devices the clinician can choose from, now.
#[derive(Debug, Clone, Serialize, TS)]
pub struct Devices {
    pub cameras: Vec<Device>,
    pub microphones: Vec<Device>,
    pub speakers: Vec<Device>,
    /// IT allows a synthetic camera and microphone where none exist.
    pub synthetic_allowed: bool,
}

#[derive(Debug, Clone, Serialize, TS)]
pub struct Device {
    pub id: String,
    pub name: String,
}

impl From<DeviceInfo> for Device {
    fn from(d: DeviceInfo) -> Device {
        Device {
            id: d.id,
            name: d.name,
        }
    }
}

/// The devices of one kind a person could use (see [`devices::pickable`]).
pub fn usable_devices(kind: DeviceKind) -> Result<Vec<DeviceInfo>, rounds_media::MediaError> {
    Ok(devices::pickable(kind, list_devices(kind)?))
}

/// Lists the devices; a kind that cannot be listed is empty (and logged).
pub fn devices(synthetic_allowed: bool) -> Devices {
    let list = |kind| match usable_devices(kind) {
        Ok(v) => v.into_iter().map(Device::from).collect(),
        Err(e) => {
            tracing::info!(?kind, error = %e, "devices cannot be listed");
            Vec::new()
        }
    };
    Devices {
        cameras: list(DeviceKind::Camera),
        microphones: list(DeviceKind::Microphone),
        speakers: list(DeviceKind::Speaker),
        synthetic_allowed,
    }
}

/// Which device the clinician is choosing, for [`crate::Controller::switch_device`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum DeviceSlot {
    Camera,
    Microphone,
    Speaker,
}

impl From<DeviceSlot> for DeviceKind {
    fn from(slot: DeviceSlot) -> DeviceKind {
        match slot {
            DeviceSlot::Camera => DeviceKind::Camera,
            DeviceSlot::Microphone => DeviceKind::Microphone,
            DeviceSlot::Speaker => DeviceKind::Speaker,
        }
    }
}

/// One person in the call, as the window draws them.
#[derive(Debug, Clone, Serialize, TS)]
pub struct CallParticipant {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub state: ParticipantState,
    pub audio_muted: bool,
    pub video_muted: bool,
    /// 0 (no data) to 5 (excellent).
    pub quality: u8,
    pub me: bool,
    /// Sharing their screen (drawn under `<id>/screen`).
    pub screen: bool,
}

/// The call, as the window draws it.
#[derive(Debug, Clone, Serialize, TS)]
pub struct CallState {
    pub visit_id: String,
    pub participants: Vec<CallParticipant>,
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dominant_speaker: Option<String>,
    pub mic_muted: bool,
    pub camera_off: bool,
    /// What the others see from us: a camera's name, "Synthetic test card", or "No camera".
    pub camera_label: String,
    pub microphone_label: String,
    /// The devices in use, by id (none: nothing, or the synthetic source).
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera_id: Option<String>,
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub microphone_id: Option<String>,
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speaker_id: Option<String>,
    pub synthetic_camera: bool,
    pub synthetic_microphone: bool,
    /// We are sharing our screen with everyone in the call.
    pub sharing_screen: bool,
    /// Set when the call is over (ended, removed), in words.
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    /// A message for the clinician (a host muted you, ...).
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

/// What the clinician picked in settings.
#[derive(Debug, Clone, Default)]
pub struct DeviceChoice {
    pub camera: Option<String>,
    pub microphone: Option<String>,
    pub speaker: Option<String>,
}

/// Moves captured frames into the client on its own thread, until stopped.
struct Pump {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pump {
    fn video(
        capture: VideoCapture,
        out: ExternalVideo,
        paused: Arc<AtomicBool>,
        preview: RenderSink,
    ) -> Pump {
        let stop = Arc::new(AtomicBool::new(false));
        let halt = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rounds-camera-pump".into())
            .spawn(move || {
                let mut n = 0u64;
                while !halt.load(Ordering::Relaxed) {
                    if let Ok(frame) = capture.frames().recv_timeout(Duration::from_millis(200))
                        && !paused.load(Ordering::Relaxed)
                    {
                        // The self-view: small, and a third of the frames are plenty.
                        n += 1;
                        if n % 3 == 1 {
                            let (w, h) = frame.fit_within(PREVIEW.0, PREVIEW.1);
                            if let Ok(small) = frame.scale_to(w, h) {
                                preview(LOCAL, &small);
                            }
                        }
                        out.push(frame);
                    }
                }
                drop(capture);
            })
            .ok();
        Pump { stop, thread }
    }

    fn screen(capture: ScreenCapture, out: ExternalVideo) -> Pump {
        let stop = Arc::new(AtomicBool::new(false));
        let halt = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rounds-screen-pump".into())
            .spawn(move || {
                while !halt.load(Ordering::Relaxed) {
                    if let Ok(frame) = capture.frames().recv_timeout(Duration::from_millis(200)) {
                        out.push(frame);
                    }
                }
                drop(capture);
            })
            .ok();
        Pump { stop, thread }
    }

    fn audio(capture: AudioCapture, out: ExternalAudio, paused: Arc<AtomicBool>) -> Pump {
        let stop = Arc::new(AtomicBool::new(false));
        let halt = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rounds-mic-pump".into())
            .spawn(move || {
                while !halt.load(Ordering::Relaxed) {
                    if let Ok(frame) = capture.frames().recv_timeout(Duration::from_millis(200))
                        && !paused.load(Ordering::Relaxed)
                    {
                        out.push(&frame);
                    }
                }
                drop(capture);
            })
            .ok();
        Pump { stop, thread }
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the call captures and plays, and the threads that move it. One owner: the call,
/// behind one lock, so a switch never races another.
struct Inputs {
    camera: InUse,
    microphone: InUse,
    speaker: InUse,
    video_pump: Option<Pump>,
    audio_pump: Option<Pump>,
}

impl Inputs {
    fn label(in_use: &InUse, kind: DeviceKind) -> String {
        match (in_use, kind) {
            (InUse::Device(d), _) => d.name.clone(),
            (InUse::Synthetic, DeviceKind::Camera) => "Synthetic test card".into(),
            (InUse::Synthetic, _) => "Synthetic tone".into(),
            (InUse::Nothing, DeviceKind::Camera) => "No camera".into(),
            (InUse::Nothing, DeviceKind::Microphone) => "No microphone".into(),
            (InUse::Nothing, DeviceKind::Speaker) => "No speaker".into(),
        }
    }

    fn id(in_use: &InUse) -> Option<String> {
        match in_use {
            InUse::Device(d) => Some(d.id.clone()),
            _ => None,
        }
    }
}

/// The camera capture size (the two-person visit's 720p at 24 fps).
const CAMERA: CaptureFormat = CaptureFormat {
    width: 1280,
    height: 720,
    fps: 24,
};

/// A call in progress.
pub struct Call {
    visit_id: String,
    client: Client,
    inputs: Mutex<Inputs>,
    video: ExternalVideo,
    audio: ExternalAudio,
    processor: AudioProcessor,
    /// Where remote audio plays; replaced when the speaker changes.
    speaker: Arc<Mutex<Option<Arc<SpeakerOutput>>>>,
    synthetic_allowed: bool,
    render: RenderSink,
    mic_paused: Arc<AtomicBool>,
    camera_paused: Arc<AtomicBool>,
    render_sizes: Arc<Mutex<HashMap<String, (u32, u32)>>>,
    notice: Arc<Mutex<Option<String>>>,
    ended: Arc<Mutex<Option<String>>>,
    quality: Mutex<HashMap<String, u8>>,
    /// The screen share's capture while it runs.
    screen: tokio::sync::Mutex<Option<Pump>>,
    sharing: AtomicBool,
}

fn media_error(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new("media", format!("{what}: {e}"))
}

/// The video input to use: the chosen camera, the first one, or the test card if allowed.
fn pick_video(choice: &DeviceChoice, synthetic_allowed: bool) -> Switch {
    let cameras = usable_devices(DeviceKind::Camera).unwrap_or_default();
    if let Some(cam) = choice
        .camera
        .as_ref()
        .and_then(|id| cameras.iter().find(|c| &c.id == id))
        .or_else(|| cameras.first())
    {
        return Switch::Device(cam.clone());
    }
    if synthetic_allowed {
        Switch::Synthetic
    } else {
        Switch::Nothing
    }
}

/// Starts the camera (or the card) that `to` names, feeding `video`.
fn start_video(
    to: &Switch,
    video: &ExternalVideo,
    paused: &Arc<AtomicBool>,
    render: &RenderSink,
) -> Result<(InUse, Option<Pump>), ApiError> {
    let (input, in_use) = match to {
        Switch::Device(d) => (
            VideoInput::Camera(Some(d.id.clone())),
            InUse::Device(d.clone()),
        ),
        Switch::Synthetic => (VideoInput::Synthetic, InUse::Synthetic),
        Switch::Nothing => return Ok((InUse::Nothing, None)),
    };
    let capture = input
        .open(CAMERA)
        .map_err(|e| media_error("The camera could not start", e))?;
    Ok((
        in_use,
        Some(Pump::video(
            capture,
            video.clone(),
            paused.clone(),
            render.clone(),
        )),
    ))
}

/// Starts the microphone (or the tone) that `to` names, feeding `audio`.
fn start_audio(
    to: &Switch,
    audio: &ExternalAudio,
    paused: &Arc<AtomicBool>,
    processor: &AudioProcessor,
) -> Result<(InUse, Option<Pump>), ApiError> {
    let (capture, in_use) = match to {
        Switch::Device(d) => (
            AudioInput::Microphone(Some(d.id.clone())).open(Some(processor.clone())),
            InUse::Device(d.clone()),
        ),
        Switch::Synthetic => (AudioInput::Synthetic.open(None), InUse::Synthetic),
        Switch::Nothing => return Ok((InUse::Nothing, None)),
    };
    let capture = capture.map_err(|e| media_error("The microphone could not start", e))?;
    Ok((
        in_use,
        Some(Pump::audio(capture, audio.clone(), paused.clone())),
    ))
}

/// The microphones to try, best first: the chosen one, the system default, then a few
/// others; the first that opens wins.
fn audio_candidates(choice: &DeviceChoice) -> Vec<DeviceInfo> {
    let mics = usable_devices(DeviceKind::Microphone).unwrap_or_default();
    let mut out: Vec<DeviceInfo> = Vec::new();
    let mut add = |d: Option<DeviceInfo>| {
        if let Some(d) = d
            && !out.iter().any(|o| o.id == d.id)
            && !d.id.ends_with(":null")
        {
            out.push(d);
        }
    };
    add(choice
        .microphone
        .as_ref()
        .and_then(|id| mics.iter().find(|m| &m.id == id).cloned()));
    add(rounds_media::native::default_device(DeviceKind::Microphone)
        .ok()
        .flatten());
    for m in mics.iter().take(3) {
        add(Some(m.clone()));
    }
    out
}

/// Opens the first microphone that works, else the tone if IT allows it.
fn open_audio(
    choice: &DeviceChoice,
    synthetic_allowed: bool,
    audio: &ExternalAudio,
    paused: &Arc<AtomicBool>,
    processor: &AudioProcessor,
) -> (InUse, Option<Pump>) {
    for mic in audio_candidates(choice) {
        match start_audio(&Switch::Device(mic.clone()), audio, paused, processor) {
            Ok(started) => return started,
            Err(e) => tracing::info!(device = %mic.id, error = %e, "microphone did not open"),
        }
    }
    if !synthetic_allowed {
        return (InUse::Nothing, None);
    }
    match start_audio(&Switch::Synthetic, audio, paused, processor) {
        Ok(started) => started,
        Err(e) => {
            tracing::warn!(error = %e, "the synthetic tone did not start");
            (InUse::Nothing, None)
        }
    }
}

/// Opens the speaker `id` names (`None`: the default) for remote audio.
fn open_speaker(
    id: Option<&str>,
    processor: &AudioProcessor,
) -> (InUse, Option<Arc<SpeakerOutput>>) {
    match SpeakerOutput::open_with(id, Some(processor.clone())) {
        Ok(s) => (InUse::Device(s.device().clone()), Some(Arc::new(s))),
        Err(e) => {
            tracing::warn!(error = %e, "no speaker: remote audio is not played");
            (InUse::Nothing, None)
        }
    }
}

impl Call {
    /// Joins the visit's room with a provider token and starts capture and playback.
    pub async fn start(
        visit_id: String,
        server: url::Url,
        token: String,
        choice: DeviceChoice,
        synthetic_allowed: bool,
        render: RenderSink,
        proxy: rounds_client::ProxyConfig,
    ) -> Result<Call, ApiError> {
        let video = ExternalVideo::hd();
        let audio = ExternalAudio::new();
        let processor = AudioProcessor::new(AudioProcessorConfig::default())
            .map_err(|e| media_error("Echo cancellation could not start", e))?;

        let camera_paused = Arc::new(AtomicBool::new(false));
        let mic_paused = Arc::new(AtomicBool::new(false));

        let (camera, video_pump) = start_video(
            &pick_video(&choice, synthetic_allowed),
            &video,
            &camera_paused,
            &render,
        )?;
        let (microphone, audio_pump) =
            open_audio(&choice, synthetic_allowed, &audio, &mic_paused, &processor);
        let (speaker_in_use, speaker) = open_speaker(choice.speaker.as_deref(), &processor);
        tracing::info!(
            camera = %Inputs::label(&camera, DeviceKind::Camera),
            synthetic_camera = camera == InUse::Synthetic,
            synthetic_microphone = microphone == InUse::Synthetic,
            "call media ready"
        );
        let publish_video = video_pump.is_some();
        let inputs = Inputs {
            camera,
            microphone,
            speaker: speaker_in_use,
            video_pump,
            audio_pump,
        };
        let speaker = Arc::new(Mutex::new(speaker));

        let render_sizes: Arc<Mutex<HashMap<String, (u32, u32)>>> = Arc::default();
        let sizes = render_sizes.clone();
        let draw = render.clone();
        let video_sink = VideoSink::new(move |participant, frame| {
            let (w, h) = sizes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(participant)
                .copied()
                .unwrap_or(DEFAULT_RENDER);
            // Never scale up: the window's canvas stretches what it gets.
            let (w, h) = rounds_media::fit_within(frame.width, frame.height, w, h);
            if (w, h) == (frame.width, frame.height) {
                draw(participant, &frame);
            } else if let Ok(small) = frame.scale_to(w, h) {
                draw(participant, &small);
            }
        });
        let player = speaker.clone();
        let audio_sink = AudioSink::new(move |participant, samples| {
            let speaker = player.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(p) = speaker {
                p.push(participant, &samples);
            }
        });

        let mut cfg = ClientConfig::new(server, token);
        cfg.publish_video = publish_video;
        // Audio is always offered: a microphone plugged in during the call can then be heard
        // (until one is, the track carries silence).
        cfg.publish_audio = true;
        cfg.video = VideoSource::External(video.clone());
        cfg.audio = AudioSource::External(audio.clone());
        cfg.video_sink = Some(video_sink);
        cfg.audio_sink = Some(audio_sink);
        cfg.proxy = Arc::new(proxy);
        let client = Client::join(cfg).await.map_err(|e| {
            ApiError::new(
                "call",
                format!("Could not join the visit's call: {e}. Check the network and try again."),
            )
        })?;
        tracing::info!(participant = %client.participant_id(), "joined the call");
        Ok(Call {
            visit_id,
            client,
            inputs: Mutex::new(inputs),
            video,
            audio,
            processor,
            speaker,
            synthetic_allowed,
            render,
            mic_paused,
            camera_paused,
            render_sizes,
            notice: Arc::default(),
            ended: Arc::default(),
            quality: Mutex::default(),
            screen: tokio::sync::Mutex::new(None),
            sharing: AtomicBool::new(false),
        })
    }

    pub fn visit_id(&self) -> &str {
        &self.visit_id
    }

    /// Signaling events, to redraw on.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<ServerMessage> {
        self.client.events()
    }

    /// Notes what an event means for the clinician (ended, muted by a host, ...).
    pub fn observe(&self, event: &ServerMessage) {
        let set = |m: &Mutex<Option<String>>, v: String| {
            *m.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
        };
        match event {
            ServerMessage::VisitEnded { message } => set(&self.ended, message.clone()),
            ServerMessage::Removed { .. } => {
                set(&self.ended, "You were removed from this visit.".into())
            }
            ServerMessage::NetworkQuality { scores } => {
                let mut q = self.quality.lock().unwrap_or_else(|e| e.into_inner());
                for s in scores {
                    q.insert(s.participant_id.clone(), s.score);
                }
            }
            ServerMessage::MuteRequested { kind, message } => {
                match kind {
                    MediaKind::Audio => self.mic_paused.store(true, Ordering::Relaxed),
                    MediaKind::Video => self.camera_paused.store(true, Ordering::Relaxed),
                }
                set(&self.notice, message.clone());
            }
            _ => {}
        }
    }

    pub fn state(&self) -> CallState {
        let me = self.client.participant_id().to_owned();
        let quality = self
            .quality
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut participants: Vec<CallParticipant> = self
            .client
            .participants()
            .into_iter()
            .map(|p| CallParticipant {
                quality: quality.get(&p.id).copied().unwrap_or(0),
                me: p.id == me,
                screen: p.tracks.iter().any(|t| t.kind == TrackKind::Screen),
                id: p.id,
                name: p.name.expose().clone(),
                role: p.role,
                state: p.state,
                audio_muted: p.audio_muted,
                video_muted: p.video_muted,
            })
            .collect();
        participants.sort_by_key(|p| (!p.me, p.role != Role::Patient, p.name.clone()));
        let inputs = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        CallState {
            visit_id: self.visit_id.clone(),
            participants,
            dominant_speaker: self.client.dominant_speaker(),
            mic_muted: self.mic_paused.load(Ordering::Relaxed),
            camera_off: self.camera_paused.load(Ordering::Relaxed),
            camera_label: Inputs::label(&inputs.camera, DeviceKind::Camera),
            microphone_label: Inputs::label(&inputs.microphone, DeviceKind::Microphone),
            camera_id: Inputs::id(&inputs.camera),
            microphone_id: Inputs::id(&inputs.microphone),
            speaker_id: Inputs::id(&inputs.speaker),
            synthetic_camera: inputs.camera == InUse::Synthetic,
            synthetic_microphone: inputs.microphone == InUse::Synthetic,
            sharing_screen: self.sharing.load(Ordering::Relaxed),
            ended: self.ended.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            notice: self
                .notice
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Mutes or unmutes the microphone (we stop sending audio, and the room is told).
    pub async fn set_mic_muted(&self, muted: bool) -> Result<(), ApiError> {
        self.mic_paused.store(muted, Ordering::Relaxed);
        self.client
            .set_muted(MediaKind::Audio, muted)
            .await
            .map_err(|e| media_error("Could not change the microphone", e))
    }

    /// Turns the camera off or on.
    pub async fn set_camera_off(&self, off: bool) -> Result<(), ApiError> {
        self.camera_paused.store(off, Ordering::Relaxed);
        self.client
            .set_muted(MediaKind::Video, off)
            .await
            .map_err(|e| media_error("Could not change the camera", e))
    }

    /// Switches one kind of media to `to`. Blocking (devices open here): call it off the
    /// async threads. The old device is closed first, since some cannot be opened twice.
    pub fn switch(&self, kind: DeviceKind, to: &Switch) -> Result<(), ApiError> {
        let mut inputs = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        match kind {
            DeviceKind::Camera => {
                drop(inputs.video_pump.take());
                let (in_use, pump) =
                    start_video(to, &self.video, &self.camera_paused, &self.render)
                        .inspect_err(|_| inputs.camera = InUse::Nothing)?;
                inputs.camera = in_use;
                inputs.video_pump = pump;
            }
            DeviceKind::Microphone => {
                drop(inputs.audio_pump.take());
                let (in_use, pump) =
                    start_audio(to, &self.audio, &self.mic_paused, &self.processor)
                        .inspect_err(|_| inputs.microphone = InUse::Nothing)?;
                inputs.microphone = in_use;
                inputs.audio_pump = pump;
            }
            DeviceKind::Speaker => {
                let id = match to {
                    Switch::Device(d) => Some(d.id.as_str()),
                    _ => None,
                };
                let old = self
                    .speaker
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                drop(old);
                let (in_use, speaker) = if matches!(to, Switch::Nothing) {
                    (InUse::Nothing, None)
                } else {
                    open_speaker(id, &self.processor)
                };
                inputs.speaker = in_use;
                *self.speaker.lock().unwrap_or_else(|e| e.into_inner()) = speaker;
            }
        }
        tracing::info!(?kind, now = %Inputs::label(match kind {
            DeviceKind::Camera => &inputs.camera,
            DeviceKind::Microphone => &inputs.microphone,
            DeviceKind::Speaker => &inputs.speaker,
        }, kind), "device switched");
        Ok(())
    }

    /// Devices of one kind appeared or went away: falls back, offers, and says so.
    /// Blocking, like [`Call::switch`].
    pub fn on_device_change(&self, change: &DeviceChange) {
        let kind = change.kind;
        let present: Vec<DeviceInfo> = usable_devices(kind).unwrap_or_default();
        let offered = |d: &DeviceInfo| present.iter().any(|p| p.id == d.id);
        let default = rounds_media::native::default_device(kind)
            .ok()
            .flatten()
            .filter(|d| offered(d));
        let change = DeviceChange {
            kind,
            added: change
                .added
                .iter()
                .filter(|d| offered(d))
                .cloned()
                .collect(),
            removed: change.removed.clone(),
        };
        let in_use = {
            let inputs = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
            match kind {
                DeviceKind::Camera => inputs.camera.clone(),
                DeviceKind::Microphone => inputs.microphone.clone(),
                DeviceKind::Speaker => inputs.speaker.clone(),
            }
        };
        let synthetic = self.synthetic_allowed && kind != DeviceKind::Speaker;
        let plan = devices::plan(&change, &in_use, &present, default.as_ref(), synthetic);
        let mut notice = plan.notice;
        if let Some(to) = plan.switch
            && let Err(e) = self.switch(kind, &to)
        {
            tracing::warn!(?kind, error = %e, "could not switch device");
            notice = Some(format!(
                "{} {}",
                notice.unwrap_or_default(),
                "Rounds could not start it; choose another below."
            ));
        }
        if let Some(text) = notice {
            *self.notice.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
        }
    }

    /// Shares the whole screen with everyone in the call, beside the camera.
    pub async fn start_screen_share(&self) -> Result<(), ApiError> {
        let mut slot = self.screen.lock().await;
        if slot.is_some() {
            return Ok(());
        }
        let (capture, source) = open_screen().await?;
        let pump = Pump::screen(capture, source.clone());
        self.client
            .share_screen(Some(source))
            .await
            .map_err(|e| media_error("Your screen could not be shared", e))?;
        *slot = Some(pump);
        self.sharing.store(true, Ordering::Relaxed);
        tracing::info!("screen share started");
        Ok(())
    }

    /// Stops sharing the screen.
    pub async fn stop_screen_share(&self) -> Result<(), ApiError> {
        let mut slot = self.screen.lock().await;
        let Some(pump) = slot.take() else {
            return Ok(());
        };
        drop(pump);
        self.sharing.store(false, Ordering::Relaxed);
        tracing::info!("screen share stopped");
        self.client
            .share_screen(None)
            .await
            .map_err(|e| media_error("Could not stop sharing your screen", e))
    }

    /// A host action on someone else: mute their microphone, stop their camera, remove.
    pub async fn host(&self, participant: &str, action: HostAction) -> Result<(), ApiError> {
        self.client
            .host(participant, action)
            .await
            .map_err(|e| media_error("The room did not take that action", e))
    }

    pub async fn chat(&self, text: String) -> Result<(), ApiError> {
        let text = text.trim().to_owned();
        if text.is_empty() || text.len() > 2000 {
            return Err(ApiError::new(
                "chat",
                "A message must have between 1 and 2000 characters.",
            ));
        }
        self.client
            .send(rounds_proto::ClientMessage::Chat {
                text: rounds_proto::Phi::new(text),
                to: None,
            })
            .await
            .map_err(|e| media_error("The message was not sent", e))
    }

    /// The window draws `participant` at `width` x `height` device pixels.
    pub fn set_render_size(&self, participant: &str, width: u32, height: u32) {
        let w = (width.clamp(2, 1920) / 2) * 2;
        let h = (height.clamp(2, 1080) / 2) * 2;
        self.render_sizes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(participant.to_owned(), (w, h));
    }

    /// The client, for tests and statistics.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn leave(self) {
        drop(self.screen.lock().await.take());
        self.client.leave().await;
    }
}

/// The largest screen share sent, its rate and bitrate: text stays legible at 1080p, and a
/// screen changes less often than a face.
const SCREEN: CaptureFormat = CaptureFormat {
    width: 1920,
    height: 1080,
    fps: 15,
};
const SCREEN_KBPS: u32 = 1500;

/// Starts grabbing the X screen (`$DISPLAY`).
#[cfg(target_os = "linux")]
async fn open_screen() -> Result<(ScreenCapture, ExternalVideo), ApiError> {
    let capture = tokio::task::spawn_blocking(|| ScreenCapture::open(None, SCREEN))
        .await
        .map_err(|e| media_error("Your screen could not be shared", e))?
        .map_err(|e| {
            tracing::warn!(error = %e, "screen capture did not start");
            ApiError::new(
                "screen-share",
                "Rounds could not read your screen. Screen sharing needs an X11 desktop session; under Wayland it is not available yet.",
            )
        })?;
    let (width, height) = capture.frame_size();
    tracing::info!(width, height, "screen capture ready");
    let source = ExternalVideo::new(SCREEN.width, SCREEN.height, SCREEN.fps, SCREEN_KBPS);
    Ok((capture, source))
}

#[cfg(not(target_os = "linux"))]
async fn open_screen() -> Result<(ScreenCapture, ExternalVideo), ApiError> {
    Err(ApiError::new(
        "screen-share",
        "Screen sharing is not available on this operating system yet.",
    ))
}

/// Stands in for the capture type where there is no screen capture: it cannot exist.
#[cfg(not(target_os = "linux"))]
enum ScreenCapture {}

#[cfg(not(target_os = "linux"))]
impl ScreenCapture {
    fn frames(&self) -> &rounds_media::FrameReceiver<I420Frame> {
        match *self {}
    }
}
