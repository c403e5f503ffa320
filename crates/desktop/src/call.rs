//! The visit's call, native end to end: camera (nokhwa) and microphone (cpal) through echo
//! cancellation, noise suppression and gain control (the WebRTC audio processing module),
//! VP8 and Opus through the Rust WebRTC client to the SFU; remote audio decoded and played
//! through cpal, remote video decoded and handed to the window **at the size it is drawn**.
//!
//! With no camera or microphone the call uses a synthetic test card and tone only when IT's
//! policy allows it, and [`CallState`] says so, so the window labels it. Otherwise a missing
//! device means that kind of media is not sent, and the state says that too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rounds_client::{
    AudioSink, AudioSource, Client, ClientConfig, ExternalAudio, ExternalVideo, VideoSink,
    VideoSource,
};
use rounds_media::I420Frame;
use rounds_media::native::{
    AudioCapture, AudioInput, AudioProcessor, AudioProcessorConfig, CaptureFormat, DeviceInfo,
    DeviceKind, SpeakerOutput, VideoCapture, VideoInput, list_devices,
};
use rounds_proto::{HostAction, MediaKind, ParticipantState, Role, ServerMessage};
use serde::Serialize;
use ts_rs::TS;

use crate::api::ApiError;

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

/// The devices of one kind a person could use: ALSA's `null` device (which "captures"
/// silence and plays into nothing) is not a microphone or a speaker.
fn usable_devices(kind: DeviceKind) -> Result<Vec<DeviceInfo>, rounds_media::MediaError> {
    Ok(list_devices(kind)?
        .into_iter()
        .filter(|d| !d.id.ends_with(":null"))
        .collect())
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
    pub synthetic_camera: bool,
    pub synthetic_microphone: bool,
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

/// Labels for what we send.
#[derive(Debug, Clone)]
struct Inputs {
    camera_label: String,
    microphone_label: String,
    synthetic_camera: bool,
    synthetic_microphone: bool,
}

/// A call in progress.
pub struct Call {
    visit_id: String,
    client: Client,
    inputs: Inputs,
    mic_paused: Arc<AtomicBool>,
    camera_paused: Arc<AtomicBool>,
    render_sizes: Arc<Mutex<HashMap<String, (u32, u32)>>>,
    notice: Arc<Mutex<Option<String>>>,
    ended: Arc<Mutex<Option<String>>>,
    quality: Mutex<HashMap<String, u8>>,
    _video_pump: Option<Pump>,
    _audio_pump: Option<Pump>,
    _speaker: Option<Arc<SpeakerOutput>>,
}

fn media_error(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new("media", format!("{what}: {e}"))
}

/// The video input to use: the chosen camera, the first one, or the test card if allowed.
fn pick_video(choice: &DeviceChoice, synthetic_allowed: bool) -> Option<(VideoInput, String)> {
    let cameras = usable_devices(DeviceKind::Camera).unwrap_or_default();
    if let Some(cam) = choice
        .camera
        .as_ref()
        .and_then(|id| cameras.iter().find(|c| &c.id == id))
        .or_else(|| cameras.first())
    {
        return Some((VideoInput::Camera(Some(cam.id.clone())), cam.name.clone()));
    }
    synthetic_allowed.then(|| (VideoInput::Synthetic, "Synthetic test card".to_owned()))
}

/// The microphones to try, best first: the chosen one, the system default, then a few
/// others. ALSA lists many plug-ins that are not microphones and cannot open; the first
/// that opens wins.
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
    processor: &AudioProcessor,
) -> Option<(AudioCapture, String)> {
    for mic in audio_candidates(choice) {
        match AudioInput::Microphone(Some(mic.id.clone())).open(Some(processor.clone())) {
            Ok(capture) => return Some((capture, mic.name)),
            Err(e) => tracing::info!(device = %mic.id, error = %e, "microphone did not open"),
        }
    }
    if !synthetic_allowed {
        return None;
    }
    match AudioInput::Synthetic.open(None) {
        Ok(capture) => Some((capture, "Synthetic tone".to_owned())),
        Err(e) => {
            tracing::warn!(error = %e, "the synthetic tone did not start");
            None
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
    ) -> Result<Call, ApiError> {
        let video = ExternalVideo::hd();
        let audio = ExternalAudio::new();
        let processor = AudioProcessor::new(AudioProcessorConfig::default())
            .map_err(|e| media_error("Echo cancellation could not start", e))?;

        let mut inputs = Inputs {
            camera_label: "No camera".into(),
            microphone_label: "No microphone".into(),
            synthetic_camera: false,
            synthetic_microphone: false,
        };
        let camera_paused = Arc::new(AtomicBool::new(false));
        let mic_paused = Arc::new(AtomicBool::new(false));

        let video_pump = match pick_video(&choice, synthetic_allowed) {
            Some((input, label)) => {
                let capture = input
                    .open(CaptureFormat {
                        width: 1280,
                        height: 720,
                        fps: 24,
                    })
                    .map_err(|e| media_error("The camera could not start", e))?;
                inputs.synthetic_camera = capture.is_synthetic();
                inputs.camera_label = label;
                Some(Pump::video(
                    capture,
                    video.clone(),
                    camera_paused.clone(),
                    render.clone(),
                ))
            }
            None => None,
        };
        let audio_pump = match open_audio(&choice, synthetic_allowed, &processor) {
            Some((capture, label)) => {
                inputs.synthetic_microphone = capture.is_synthetic();
                inputs.microphone_label = label;
                Some(Pump::audio(capture, audio.clone(), mic_paused.clone()))
            }
            None => None,
        };
        tracing::info!(
            camera = %inputs.camera_label,
            synthetic_camera = inputs.synthetic_camera,
            synthetic_microphone = inputs.synthetic_microphone,
            "call media ready"
        );

        let speaker = match SpeakerOutput::open_with(choice.speaker.as_deref(), Some(processor)) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                tracing::warn!(error = %e, "no speaker: remote audio is not played");
                None
            }
        };

        let render_sizes: Arc<Mutex<HashMap<String, (u32, u32)>>> = Arc::default();
        let sizes = render_sizes.clone();
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
                render(participant, &frame);
            } else if let Ok(small) = frame.scale_to(w, h) {
                render(participant, &small);
            }
        });
        let player = speaker.clone();
        let audio_sink = AudioSink::new(move |participant, samples| {
            if let Some(p) = &player {
                p.push(participant, &samples);
            }
        });

        let mut cfg = ClientConfig::new(server, token);
        cfg.publish_video = video_pump.is_some();
        cfg.publish_audio = audio_pump.is_some();
        cfg.video = VideoSource::External(video);
        cfg.audio = AudioSource::External(audio);
        cfg.video_sink = Some(video_sink);
        cfg.audio_sink = Some(audio_sink);
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
            inputs,
            mic_paused,
            camera_paused,
            render_sizes,
            notice: Arc::default(),
            ended: Arc::default(),
            quality: Mutex::default(),
            _video_pump: video_pump,
            _audio_pump: audio_pump,
            _speaker: speaker,
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
                id: p.id,
                name: p.name.expose().clone(),
                role: p.role,
                state: p.state,
                audio_muted: p.audio_muted,
                video_muted: p.video_muted,
            })
            .collect();
        participants.sort_by_key(|p| (!p.me, p.role != Role::Patient, p.name.clone()));
        CallState {
            visit_id: self.visit_id.clone(),
            participants,
            dominant_speaker: self.client.dominant_speaker(),
            mic_muted: self.mic_paused.load(Ordering::Relaxed),
            camera_off: self.camera_paused.load(Ordering::Relaxed),
            camera_label: self.inputs.camera_label.clone(),
            microphone_label: self.inputs.microphone_label.clone(),
            synthetic_camera: self.inputs.synthetic_camera,
            synthetic_microphone: self.inputs.synthetic_microphone,
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
        self.client.leave().await;
    }
}
