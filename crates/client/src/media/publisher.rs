//! The publisher connection: our tracks, offered by us and answered by the server.
//!
//! Video is the `rounds_media` test pattern, or frames the application pushes through an
//! [`ExternalVideo`], encoded with libvpx on a thread of its own (a 720p frame takes several
//! milliseconds) and packetized per RFC 7741. When the room asks for simulcast (three people
//! or more) the test pattern is sent as three encodings of one track, 320x180, 640x360 and
//! 1280x720 with rids `q`, `h` and `f` (RFC 8853), each with its own libvpx encoder, its own
//! SSRC, and the MID and RID header extensions the SFU tells them apart by; audio is a sine tone or samples pushed through
//! an [`ExternalAudio`], encoded with Opus in 20 ms frames, each packet carrying the frame's
//! RFC 6464 level. Both
//! go out through `TrackLocalStaticRTP`, so sequence numbers, timestamps, SSRCs and payload
//! types are ours; `rtc` rejects packets whose SSRC or payload type was not negotiated, so
//! both are read back from the sender once the answer is in.
//!
//! A screen share is a third track, announced as `screen`, added and removed while the
//! connection runs: each change is a new offer on the same connection (as a browser's
//! `addTrack` and `removeTrack` are), so audio and camera never stop. It has its own
//! encoder, sized by the screen rather than by the server's camera constraints.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rounds_media::{
    I420Frame, OpusEncoder, RecvError, TestPattern, Tone, Vp8Config, Vp8Encoder, audio_level_dbov,
    fit_within, vp8_payloads,
};
use rounds_proto::{ClientMessage, PcKind, TrackInfo, TrackKind};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit, RTCSessionDescription};
use webrtc::rtp_transceiver::RtpSender;

use super::external::{ExternalAudio, ExternalVideo};
use super::pc::{
    self, AUDIO_LEVEL_URI, MediaEvent, NetOptions, OPUS_PT, PcHandler, RemoteCandidates, VP8_PT,
    is_keyframe_request,
};
use super::sdp;
use crate::ClientError;
use crate::config::VideoParams;
use crate::stats::StatsHub;

/// Largest RTP payload we produce (descriptor included): leaves room for the RTP header,
/// extensions and SRTP tag inside a 1280-byte datagram.
const MAX_RTP_PAYLOAD: usize = 1150;
/// At most this many encoded frames wait for the network before the encoder pauses.
const VIDEO_QUEUE: usize = 4;
/// The simulcast encodings, lowest first: rid, size, bitrate (kbps). The same ladder the
/// server's engine allocates by and the browsers send.
pub(crate) const SIMULCAST_LAYERS: [(&str, u32, u32, u32); 3] = [
    ("q", 320, 180, 150),
    ("h", 640, 360, 450),
    ("f", 1280, 720, 1200),
];
const SDES_MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const SDES_RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";

/// What the publisher sends, fixed when it is built.
#[derive(Debug, Clone)]
pub(crate) struct PublishOptions {
    pub(crate) net: NetOptions,
    pub(crate) audio: bool,
    pub(crate) video: bool,
    pub(crate) video_params: VideoParams,
    pub(crate) tone_hz: f32,
    pub(crate) tone_dbfs: f32,
    pub(crate) seed: u64,
    /// The msid stream id of our tracks (our participant id).
    pub(crate) stream_id: String,
    /// Frames pushed by the application instead of the test pattern.
    pub(crate) external_video: Option<ExternalVideo>,
    /// Samples pushed by the application instead of the tone.
    pub(crate) external_audio: Option<ExternalAudio>,
    /// A screen share to send from the start.
    pub(crate) screen: Option<ExternalVideo>,
    /// Send the test pattern as three simulcast encodings (the room has three people or more).
    pub(crate) simulcast: bool,
}

/// Knobs the session turns while the sources run.
#[derive(Debug)]
pub(crate) struct SourceControl {
    stop: AtomicBool,
    force_keyframe: AtomicBool,
    /// Simulcast: keyframes asked for per encoding, bit `i` for `SIMULCAST_LAYERS[i]`.
    force_layers: AtomicU8,
    audio_muted: AtomicBool,
    video_muted: AtomicBool,
    video: Mutex<VideoParams>,
}

impl SourceControl {
    fn new(video: VideoParams) -> Self {
        SourceControl {
            stop: AtomicBool::new(false),
            force_keyframe: AtomicBool::new(false),
            force_layers: AtomicU8::new(0),
            audio_muted: AtomicBool::new(false),
            video_muted: AtomicBool::new(false),
            video: Mutex::new(video),
        }
    }

    fn video_params(&self) -> VideoParams {
        *self.video.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct LocalTrack {
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    /// Simulcast: the SSRC of each of `SIMULCAST_LAYERS`; empty for one encoding.
    layer_ssrcs: Vec<u32>,
    /// The track's mid once offered (the SFU reads it from the MID header extension).
    mid: Option<String>,
}

/// One packet ready for the wire.
struct RtpOut {
    payload: Vec<u8>,
    marker: bool,
    timestamp: u32,
    /// Which encoding: 0 without simulcast, else the index into `SIMULCAST_LAYERS`.
    layer: usize,
}

/// Where the writer sends one encoding.
struct OutStream {
    ssrc: u32,
    /// Header extensions every packet of the encoding carries (MID and RID for simulcast).
    extensions: Vec<(u8, Bytes)>,
}

/// One encoded frame's packets.
struct FrameOut {
    packets: Vec<RtpOut>,
    keyframe: bool,
}

/// The screen-share track and its encoder.
struct ScreenTrack {
    id: String,
    local: LocalTrack,
    source: ExternalVideo,
    control: Arc<SourceControl>,
    started: bool,
    tasks: Vec<JoinHandle<()>>,
}

impl ScreenTrack {
    fn stop(&mut self) {
        self.control.stop.store(true, Ordering::Relaxed);
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

/// A screen source's own encoding limits (not the camera's constraints).
fn screen_params(source: &ExternalVideo) -> VideoParams {
    let (width, height, fps, bitrate_kbps) = source.limits();
    VideoParams {
        width,
        height,
        fps,
        bitrate_kbps,
    }
}

/// Offer numbers, unique in the process: an answer names the offer it answers, whichever
/// publisher (or signaling connection) sent it.
fn next_offer_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub(crate) struct Publisher {
    pub(crate) generation: u64,
    pc: Arc<dyn PeerConnection>,
    video: Option<LocalTrack>,
    audio: Option<LocalTrack>,
    screen: Option<ScreenTrack>,
    /// The number of the offer that went out and whose answer has not come back: no new
    /// offer until it does.
    pending_offer: Option<u32>,
    control: Arc<SourceControl>,
    stats: Arc<StatsHub>,
    opts: PublishOptions,
    answered: bool,
    connected: bool,
    started: bool,
    remote: RemoteCandidates,
    first_mid: Option<String>,
    /// The ids of the tracks announced with `publish`.
    track_ids: Vec<String>,
    tasks: Vec<JoinHandle<()>>,
}

fn random_ssrc() -> u32 {
    loop {
        let ssrc = rand::random::<u32>();
        if ssrc != 0 {
            return ssrc;
        }
    }
}

fn random_token() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Adds a track with one encoding, or (`simulcast`) one per `SIMULCAST_LAYERS`, each with its
/// rid and SSRC.
async fn add_track(
    pc: &Arc<dyn PeerConnection>,
    stream_id: &str,
    track_id: &str,
    label: &str,
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
    simulcast: bool,
) -> Result<LocalTrack, ClientError> {
    let ssrc = random_ssrc();
    let layer_ssrcs: Vec<u32> = if simulcast {
        SIMULCAST_LAYERS.iter().map(|_| random_ssrc()).collect()
    } else {
        Vec::new()
    };
    let codings = if simulcast {
        SIMULCAST_LAYERS
            .iter()
            .zip(&layer_ssrcs)
            .map(|((rid, ..), ssrc)| RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    rid: (*rid).to_owned(),
                    ssrc: Some(*ssrc),
                    ..Default::default()
                },
                codec: codec.clone(),
                ..Default::default()
            })
            .collect()
    } else {
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }]
    };
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        stream_id.to_owned(),
        track_id.to_owned(),
        label.to_owned(),
        kind,
        codings,
    )));
    let sender = pc.add_track(track.clone() as Arc<dyn TrackLocal>).await?;
    Ok(LocalTrack {
        track,
        sender,
        ssrc,
        layer_ssrcs,
        mid: None,
    })
}

impl Publisher {
    /// Builds the connection and its tracks and makes the offer. Returns the publisher, the
    /// offer SDP and the `publish` announcements for the tracks.
    pub(crate) async fn create(
        generation: u64,
        opts: PublishOptions,
        events: mpsc::UnboundedSender<MediaEvent>,
        stats: Arc<StatsHub>,
    ) -> Result<(Publisher, String, Vec<TrackInfo>), ClientError> {
        let handler = PcHandler {
            kind: PcKind::Publisher,
            generation,
            events,
            receive: None,
        };
        let pc = pc::build(opts.net, handler, stats.nack_requests.clone()).await?;
        let mut publisher = Publisher {
            generation,
            pc: pc.clone(),
            video: None,
            audio: None,
            screen: None,
            pending_offer: None,
            control: Arc::new(SourceControl::new(opts.video_params)),
            stats,
            opts: opts.clone(),
            answered: false,
            connected: false,
            started: false,
            remote: RemoteCandidates::new(opts.net.tcp_only),
            first_mid: None,
            track_ids: Vec::new(),
            tasks: Vec::new(),
        };
        match publisher.offer(&opts).await {
            Ok((offer, tracks)) => Ok((publisher, offer, tracks)),
            Err(e) => {
                publisher.close().await;
                Err(e)
            }
        }
    }

    async fn offer(
        &mut self,
        opts: &PublishOptions,
    ) -> Result<(String, Vec<TrackInfo>), ClientError> {
        let mut ids = Vec::new();
        if opts.audio {
            let id = format!("audio-{}", random_token());
            self.audio = Some(
                add_track(
                    &self.pc,
                    &opts.stream_id,
                    &id,
                    if opts.external_audio.is_some() {
                        "audio"
                    } else {
                        "synthetic tone"
                    },
                    RtpCodecKind::Audio,
                    pc::opus_codec(),
                    false,
                )
                .await?,
            );
            ids.push((id, TrackKind::Audio));
        }
        // Simulcast is for the test pattern; frames the application pushes go as one encoding.
        let simulcast = opts.simulcast && opts.external_video.is_none();
        if opts.video {
            let id = format!("video-{}", random_token());
            self.video = Some(
                add_track(
                    &self.pc,
                    &opts.stream_id,
                    &id,
                    if opts.external_video.is_some() {
                        "video"
                    } else {
                        "synthetic test pattern"
                    },
                    RtpCodecKind::Video,
                    pc::vp8_codec(),
                    simulcast,
                )
                .await?,
            );
            ids.push((id, TrackKind::Video));
        }
        if let Some(source) = opts.screen.clone() {
            let id = self.add_screen(source).await?;
            ids.push((id, TrackKind::Screen));
        }
        let sdp = self.make_offer().await?;
        self.first_mid = sdp::first_mid(&sdp);
        let tracks = track_infos(&sdp, ids, simulcast);
        self.track_ids = tracks.iter().map(|t| t.id.clone()).collect();
        if let Some(video) = self.video.as_mut() {
            video.mid = tracks
                .iter()
                .find(|t| t.kind == TrackKind::Video)
                .and_then(|t| t.mid.clone());
        }
        Ok((sdp, tracks))
    }

    /// Creates and applies an offer for the tracks as they are now.
    async fn make_offer(&mut self) -> Result<String, ClientError> {
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        let local = self.pc.local_description().await.ok_or_else(|| {
            ClientError::WebRtc("no local description after set_local_description".into())
        })?;
        self.pending_offer = Some(next_offer_id());
        Ok(local.sdp)
    }

    async fn add_screen(&mut self, source: ExternalVideo) -> Result<String, ClientError> {
        let id = format!("screen-{}", random_token());
        let local = add_track(
            &self.pc,
            &self.opts.stream_id,
            &id,
            "screen",
            RtpCodecKind::Video,
            pc::vp8_codec(),
            false,
        )
        .await?;
        self.screen = Some(ScreenTrack {
            id: id.clone(),
            local,
            control: Arc::new(SourceControl::new(screen_params(&source))),
            source,
            started: false,
            tasks: Vec::new(),
        });
        Ok(id)
    }

    /// Makes the screen share what `wanted` says: removes the current one, adds the new one,
    /// and returns the announcements and the offer that renegotiate the connection. Nothing
    /// while an offer waits for its answer (the caller asks again once it is in) or when
    /// nothing changes.
    pub(crate) async fn set_screen(
        &mut self,
        wanted: Option<ExternalVideo>,
    ) -> Result<Vec<ClientMessage>, ClientError> {
        let current = self.screen.as_ref().map(|s| &s.source);
        if self.pending_offer.is_some() || current == wanted.as_ref() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        if let Some(mut old) = self.screen.take() {
            old.stop();
            self.pc.remove_track(&old.local.sender).await?;
            self.track_ids.retain(|id| *id != old.id);
            out.push(ClientMessage::Unpublish { track_id: old.id });
        }
        let mut ids = Vec::new();
        if let Some(source) = wanted {
            ids.push((self.add_screen(source).await?, TrackKind::Screen));
        }
        let sdp = self.make_offer().await?;
        let tracks = track_infos(&sdp, ids, false);
        self.track_ids.extend(tracks.iter().map(|t| t.id.clone()));
        out.extend(
            tracks
                .into_iter()
                .map(|track| ClientMessage::Publish { track }),
        );
        out.push(ClientMessage::Offer {
            pc: PcKind::Publisher,
            sdp,
            offer_id: self.pending_offer,
        });
        tracing::debug!(
            generation = self.generation,
            sharing = self.screen.is_some(),
            "screen share renegotiated"
        );
        Ok(out)
    }

    /// The mid our candidates are announced with.
    pub(crate) fn first_mid(&self) -> Option<String> {
        self.first_mid.clone()
    }

    /// Whether an offer of this publisher (the first or a renegotiation) still waits for the
    /// server's answer.
    pub(crate) fn awaiting_answer(&self) -> bool {
        self.pending_offer.is_some()
    }

    /// The number of the offer still waiting for its answer.
    pub(crate) fn pending_offer(&self) -> Option<u32> {
        self.pending_offer
    }

    /// The ids of the tracks this publisher announced.
    pub(crate) fn track_ids(&self) -> &[String] {
        &self.track_ids
    }

    /// Whether the video goes out as simulcast encodings.
    pub(crate) fn is_simulcast(&self) -> bool {
        self.video
            .as_ref()
            .is_some_and(|v| !v.layer_ssrcs.is_empty())
    }

    pub(crate) async fn apply_answer(&mut self, answer: String) -> Result<(), ClientError> {
        self.pc
            .set_remote_description(RTCSessionDescription::answer(answer.clone())?)
            .await?;
        self.answered = true;
        self.pending_offer = None;
        self.remote
            .ready(&self.pc, &answer, self.first_mid.clone())
            .await;
        self.maybe_start().await;
        Ok(())
    }

    pub(crate) async fn add_remote_candidate(&mut self, candidate: RTCIceCandidateInit) {
        self.remote.add(&self.pc, candidate).await;
    }

    pub(crate) async fn on_connected(&mut self) {
        self.connected = true;
        self.maybe_start().await;
    }

    pub(crate) fn pc(&self) -> &Arc<dyn PeerConnection> {
        &self.pc
    }

    pub(crate) fn set_muted(&self, video: bool, muted: bool) {
        let flag = if video {
            &self.control.video_muted
        } else {
            &self.control.audio_muted
        };
        flag.store(muted, Ordering::Relaxed);
    }

    /// New target video parameters (from the server's constraints); the encoder picks them
    /// up with its next frame.
    pub(crate) fn set_video_params(&self, params: VideoParams) {
        *self.control.video.lock().unwrap_or_else(|e| e.into_inner()) = params;
    }

    /// Starts the sources once the answer is applied and the connection is up (before that
    /// the tracks are not bound and every write would fail).
    async fn maybe_start(&mut self) {
        if !self.answered || !self.connected {
            return;
        }
        self.start_screen().await;
        if self.started {
            return;
        }
        self.started = true;
        if let Some(audio) = &self.audio {
            let params = audio.sender.get_parameters().await.ok();
            let payload_type = negotiated_pt(params.as_ref(), "audio/opus").unwrap_or(OPUS_PT);
            let ssrc = negotiated_ssrc(params.as_ref()).unwrap_or(audio.ssrc);
            let level = params.as_ref().is_some_and(|p| {
                p.rtp_parameters
                    .header_extensions
                    .iter()
                    .any(|h| h.uri == AUDIO_LEVEL_URI)
            });
            self.stats.sent(|s| s.audio_level_negotiated = level);
            let source = AudioSender {
                track: audio.track.clone(),
                payload_type,
                ssrc,
                tone: Tone::with_dbfs(self.opts.tone_hz, self.opts.tone_dbfs),
                external: self.opts.external_audio.clone(),
                control: self.control.clone(),
                stats: self.stats.clone(),
            };
            self.tasks.push(tokio::spawn(source.run()));
        }
        if let Some(video) = &self.video {
            let params = video.sender.get_parameters().await.ok();
            let payload_type = negotiated_pt(params.as_ref(), "video/vp8").unwrap_or(VP8_PT);
            let streams = out_streams(video, params.as_ref());
            let (tx, rx) = mpsc::channel::<FrameOut>(VIDEO_QUEUE);
            let control = self.control.clone();
            let stats = self.stats.clone();
            let seed = self.opts.seed;
            let external = self.opts.external_video.clone();
            let simulcast = !video.layer_ssrcs.is_empty();
            let spawned = std::thread::Builder::new()
                .name("rounds-vp8-encode".into())
                .spawn(move || match external {
                    Some(external) => encode_external(control, stats, &external, tx, false),
                    None if simulcast => encode_simulcast(control, stats, seed, tx),
                    None => encode_loop(control, stats, seed, tx),
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "could not start the video encoder thread");
            }
            let ssrcs: Vec<u32> = streams.iter().map(|s| s.ssrc).collect();
            self.tasks.push(tokio::spawn(write_video(
                video.track.clone(),
                payload_type,
                streams,
                rx,
                self.stats.clone(),
                false,
            )));
            self.tasks.push(tokio::spawn(watch_keyframe_requests(
                video.track.clone(),
                self.control.clone(),
                self.stats.clone(),
                simulcast.then_some(ssrcs),
            )));
        }
        tracing::debug!(generation = self.generation, "publisher sources started");
    }

    /// Starts the screen share's encoder once its track is negotiated (a renegotiation's
    /// answer, or the first one) and the connection is up.
    async fn start_screen(&mut self) {
        if self.pending_offer.is_some() {
            return;
        }
        let Some(screen) = self.screen.as_mut().filter(|s| !s.started) else {
            return;
        };
        screen.started = true;
        let params = screen.local.sender.get_parameters().await.ok();
        let payload_type = negotiated_pt(params.as_ref(), "video/vp8").unwrap_or(VP8_PT);
        let streams = out_streams(&screen.local, params.as_ref());
        let (tx, rx) = mpsc::channel::<FrameOut>(VIDEO_QUEUE);
        let (control, stats, source) = (
            screen.control.clone(),
            self.stats.clone(),
            screen.source.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("rounds-screen-encode".into())
            .spawn(move || encode_external(control, stats, &source, tx, true));
        if let Err(error) = spawned {
            tracing::error!(%error, "could not start the screen encoder thread");
        }
        screen.tasks.push(tokio::spawn(write_video(
            screen.local.track.clone(),
            payload_type,
            streams,
            rx,
            self.stats.clone(),
            true,
        )));
        screen.tasks.push(tokio::spawn(watch_keyframe_requests(
            screen.local.track.clone(),
            screen.control.clone(),
            self.stats.clone(),
            None,
        )));
        tracing::debug!(generation = self.generation, "screen share started");
    }

    /// Stops the sources and closes the connection. A `webrtc` connection that is dropped
    /// without `close()` keeps its driver task running.
    pub(crate) async fn close(&mut self) {
        if let Some(screen) = self.screen.as_mut() {
            screen.stop();
        }
        self.control.stop.store(true, Ordering::Relaxed);
        for task in self.tasks.drain(..) {
            task.abort();
        }
        if let Err(error) = self.pc.close().await {
            tracing::debug!(%error, "closing the publisher connection");
        }
    }
}

/// The `publish` announcements for tracks just offered, with the mids the offer gave them;
/// `simulcast` marks the camera track as sent in simulcast encodings.
fn track_infos(offer: &str, ids: Vec<(String, TrackKind)>, simulcast: bool) -> Vec<TrackInfo> {
    let mids = sdp::mids_by_track(offer);
    ids.into_iter()
        .map(|(id, kind)| TrackInfo {
            mid: mids.get(&id).cloned(),
            simulcast: simulcast && kind == TrackKind::Video,
            id,
            kind,
            muted: false,
        })
        .collect()
}

fn negotiated_pt(
    params: Option<&rtc::rtp_transceiver::rtp_sender::RTCRtpSendParameters>,
    mime: &str,
) -> Option<u8> {
    params?
        .rtp_parameters
        .codecs
        .iter()
        .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
        .map(|c| c.payload_type)
}

fn negotiated_ssrc(
    params: Option<&rtc::rtp_transceiver::rtp_sender::RTCRtpSendParameters>,
) -> Option<u32> {
    params?.encodings.first()?.rtp_coding_parameters.ssrc
}

fn negotiated_extension(
    params: Option<&rtc::rtp_transceiver::rtp_sender::RTCRtpSendParameters>,
    uri: &str,
) -> Option<u8> {
    params?
        .rtp_parameters
        .header_extensions
        .iter()
        .find(|h| h.uri == uri)
        .and_then(|h| u8::try_from(h.id).ok())
}

/// The encodings the video writer sends: one, or each simulcast layer with the SSRC the
/// sender signalled for its rid and the MID and RID extensions.
fn out_streams(
    video: &LocalTrack,
    params: Option<&rtc::rtp_transceiver::rtp_sender::RTCRtpSendParameters>,
) -> Vec<OutStream> {
    if video.layer_ssrcs.is_empty() {
        return vec![OutStream {
            ssrc: negotiated_ssrc(params).unwrap_or(video.ssrc),
            extensions: Vec::new(),
        }];
    }
    let mid_ext = negotiated_extension(params, SDES_MID_URI);
    let rid_ext = negotiated_extension(params, SDES_RID_URI);
    SIMULCAST_LAYERS
        .iter()
        .zip(&video.layer_ssrcs)
        .map(|((rid, ..), ours)| {
            let ssrc = params
                .and_then(|p| {
                    p.encodings
                        .iter()
                        .find(|e| e.rtp_coding_parameters.rid == *rid)
                })
                .and_then(|e| e.rtp_coding_parameters.ssrc)
                .unwrap_or(*ours);
            let mut extensions = Vec::new();
            if let (Some(id), Some(mid)) = (mid_ext, video.mid.as_ref()) {
                extensions.push((id, Bytes::from(mid.clone().into_bytes())));
            }
            if let Some(id) = rid_ext {
                extensions.push((id, Bytes::from_static(rid.as_bytes())));
            }
            OutStream { ssrc, extensions }
        })
        .collect()
}

struct AudioSender {
    track: Arc<TrackLocalStaticRTP>,
    payload_type: u8,
    ssrc: u32,
    tone: Tone,
    external: Option<ExternalAudio>,
    control: Arc<SourceControl>,
    stats: Arc<StatsHub>,
}

/// How long an external audio source may stay quiet before silence is sent in its place.
const EXTERNAL_AUDIO_GAP: Duration = Duration::from_millis(60);

impl AudioSender {
    /// The next 20 ms to send. The tone is paced by a 20 ms timer; an external source by its
    /// own clock (the microphone's), with silence filling in when it stops.
    async fn next_frame(&mut self, tick: &mut tokio::time::Interval, quiet: &mut bool) -> Vec<i16> {
        let Some(external) = self.external.as_ref() else {
            tick.tick().await;
            return self.tone.next_20ms();
        };
        let wait = if *quiet {
            Duration::from_millis(20)
        } else {
            EXTERNAL_AUDIO_GAP
        };
        match tokio::time::timeout(wait, external.frames().recv()).await {
            Ok(Some(frame)) => {
                *quiet = false;
                frame
            }
            // The handle keeps a sender, so the queue never closes; treat it as quiet.
            Ok(None) | Err(_) => {
                *quiet = true;
                vec![0; rounds_media::FRAME_SAMPLES_20MS]
            }
        }
    }

    async fn run(mut self) {
        let mut encoder = match OpusEncoder::new() {
            Ok(e) => e,
            Err(error) => {
                tracing::error!(%error, "could not start the Opus encoder");
                return;
            }
        };
        let silence = vec![0i16; rounds_media::FRAME_SAMPLES_20MS];
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut seq: u16 = rand::random();
        let mut timestamp: u32 = rand::random();
        let mut first = true;
        let mut failures = 0u64;
        let mut quiet = false;
        while !self.control.stop.load(Ordering::Relaxed) {
            let frame = self.next_frame(&mut tick, &mut quiet).await;
            let muted = self.control.audio_muted.load(Ordering::Relaxed);
            let pcm = if muted || frame.len() != silence.len() {
                &silence
            } else {
                &frame
            };
            let level = audio_level_dbov(pcm);
            let payload = match encoder.encode(pcm) {
                Ok(p) => p,
                Err(error) => {
                    tracing::warn!(%error, "Opus encoding failed");
                    continue;
                }
            };
            let len = payload.len();
            let packet = rtp_packet(self.payload_type, seq, timestamp, self.ssrc, first, payload);
            let extension = HeaderExtension::AudioLevel(AudioLevelExtension {
                level,
                voice: !muted,
            });
            match self
                .track
                .write_rtp_with_extensions(packet, &[extension])
                .await
            {
                Ok(()) => {
                    first = false;
                    self.stats.sent(|s| {
                        s.audio_frames += 1;
                        s.audio_rtp_packets += 1;
                        s.bytes += len as u64;
                    });
                }
                Err(error) => {
                    failures += 1;
                    if failures.is_power_of_two() {
                        tracing::debug!(%error, failures, "audio packet not sent");
                    }
                }
            }
            seq = seq.wrapping_add(1);
            timestamp = timestamp.wrapping_add(rounds_media::FRAME_SAMPLES_20MS as u32);
        }
    }
}

fn rtp_packet(
    payload_type: u8,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    marker: bool,
    payload: Vec<u8>,
) -> rtc::rtp::Packet {
    rtc::rtp::Packet {
        header: rtc::rtp::header::Header {
            version: 2,
            marker,
            payload_type,
            sequence_number: seq,
            timestamp,
            ssrc,
            ..Default::default()
        },
        payload: Bytes::from(payload),
    }
}

fn new_encoder(params: VideoParams) -> Result<Vp8Encoder, ClientError> {
    Ok(Vp8Encoder::new(Vp8Config {
        width: params.width,
        height: params.height,
        fps: params.fps,
        bitrate_kbps: params.bitrate_kbps,
        threads: Vp8Config::threads_for(params.width, params.height),
    })?)
}

/// The encoder thread: a frame of the test pattern every 1/fps seconds, encoded and split
/// into RTP payloads. Ends when the publisher stops or the writer goes away.
fn encode_loop(
    control: Arc<SourceControl>,
    stats: Arc<StatsHub>,
    seed: u64,
    out: mpsc::Sender<FrameOut>,
) {
    let mut params = control.video_params();
    let mut pattern = TestPattern::with_seed(params.width, params.height, params.fps, seed);
    let mut encoder = match new_encoder(params) {
        Ok(e) => e,
        Err(error) => {
            tracing::error!(%error, "could not start the VP8 encoder");
            return;
        }
    };
    let record = |p: VideoParams| {
        stats.sent(|s| {
            s.video_width = p.width;
            s.video_height = p.height;
            s.video_fps = p.fps;
            s.video_bitrate_kbps = p.bitrate_kbps;
            s.simulcast = false;
        })
    };
    record(params);
    let start = Instant::now();
    let ts_base: u32 = rand::random();
    let mut picture_id: u16 = rand::random::<u16>() & 0x7fff;
    let mut next = Instant::now();
    while !control.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        let wanted = control.video_params();
        if wanted != params {
            if (wanted.width, wanted.height) != (params.width, params.height) {
                // A new size needs a new encoder (its first frame is a keyframe).
                pattern = TestPattern::with_seed(wanted.width, wanted.height, wanted.fps, seed);
                match new_encoder(wanted) {
                    Ok(e) => encoder = e,
                    Err(error) => {
                        tracing::error!(%error, "could not resize the VP8 encoder");
                        return;
                    }
                }
            } else if wanted.bitrate_kbps != params.bitrate_kbps
                && let Err(error) = encoder.set_bitrate_kbps(wanted.bitrate_kbps)
            {
                tracing::warn!(%error, "could not change the video bitrate");
            }
            tracing::debug!(
                width = wanted.width,
                height = wanted.height,
                fps = wanted.fps,
                kbps = wanted.bitrate_kbps,
                "video parameters changed"
            );
            params = wanted;
            record(params);
        }
        next += Duration::from_secs(1) / params.fps.max(1);
        if next < Instant::now() {
            // Running late (a slow machine): do not try to catch up with a burst.
            next = Instant::now();
        }
        if control.video_muted.load(Ordering::Relaxed) {
            continue;
        }
        let frame = pattern.next_frame();
        let force = control.force_keyframe.swap(false, Ordering::Relaxed);
        let encoded = match encoder.encode(&frame, force) {
            Ok(e) => e,
            Err(error) => {
                tracing::warn!(%error, "VP8 encoding failed");
                continue;
            }
        };
        let timestamp = ts_base.wrapping_add((start.elapsed().as_micros() * 90 / 1000) as u32);
        if !send_encoded(encoded, timestamp, &mut picture_id, &out) {
            return;
        }
    }
}

/// Turns encoded frames into RTP payloads for the writer. Returns false when the writer is
/// gone.
fn send_encoded(
    encoded: Vec<rounds_media::EncodedFrame>,
    timestamp: u32,
    picture_id: &mut u16,
    out: &mpsc::Sender<FrameOut>,
) -> bool {
    for frame in encoded {
        let packets = packetize(&frame, timestamp, picture_id, 0);
        if out
            .blocking_send(FrameOut {
                packets,
                keyframe: frame.keyframe,
            })
            .is_err()
        {
            return false;
        }
    }
    true
}

/// One encoded frame as RTP payloads of encoding `layer`; the marker ends the frame.
fn packetize(
    frame: &rounds_media::EncodedFrame,
    timestamp: u32,
    picture_id: &mut u16,
    layer: usize,
) -> Vec<RtpOut> {
    let payloads = vp8_payloads(frame, MAX_RTP_PAYLOAD, *picture_id);
    *picture_id = (*picture_id + 1) & 0x7fff;
    let count = payloads.len();
    payloads
        .into_iter()
        .enumerate()
        .map(|(i, payload)| RtpOut {
            payload,
            marker: i + 1 == count,
            timestamp,
            layer,
        })
        .collect()
}

/// The encoder thread for simulcast: each frame of the test pattern is drawn at every
/// `SIMULCAST_LAYERS` size (the same picture: same seed, same frame number; drawing is cheaper
/// than scaling the top one down) and encoded by that layer's encoder, and the three go out
/// together with one timestamp. A keyframe request names the layer it is for.
fn encode_simulcast(
    control: Arc<SourceControl>,
    stats: Arc<StatsHub>,
    seed: u64,
    out: mpsc::Sender<FrameOut>,
) {
    let fps = control.video_params().fps.max(1);
    let (_, top_w, top_h, _) = SIMULCAST_LAYERS[SIMULCAST_LAYERS.len() - 1];
    let mut patterns: Vec<TestPattern> = SIMULCAST_LAYERS
        .iter()
        .map(|(_, w, h, _)| TestPattern::with_seed(*w, *h, fps, seed))
        .collect();
    let mut encoders = Vec::new();
    for (_, width, height, kbps) in SIMULCAST_LAYERS.iter() {
        match Vp8Encoder::new(Vp8Config {
            width: *width,
            height: *height,
            fps,
            bitrate_kbps: *kbps,
            threads: Vp8Config::threads_for(*width, *height),
        }) {
            Ok(e) => encoders.push(e),
            Err(error) => {
                tracing::error!(%error, "could not start a simulcast VP8 encoder");
                return;
            }
        }
    }
    stats.sent(|s| {
        s.video_width = top_w;
        s.video_height = top_h;
        s.video_fps = fps;
        s.video_bitrate_kbps = SIMULCAST_LAYERS.iter().map(|l| l.3).sum();
        s.simulcast = true;
    });
    let start = Instant::now();
    let ts_base: u32 = rand::random();
    let mut picture_ids: Vec<u16> = SIMULCAST_LAYERS
        .iter()
        .map(|_| rand::random::<u16>() & 0x7fff)
        .collect();
    let mut next = Instant::now();
    while !control.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += Duration::from_secs(1) / fps;
        if next < Instant::now() {
            next = Instant::now();
        }
        if control.video_muted.load(Ordering::Relaxed) {
            continue;
        }
        let all = control.force_keyframe.swap(false, Ordering::Relaxed);
        let layers = control.force_layers.swap(0, Ordering::Relaxed);
        let timestamp = ts_base.wrapping_add((start.elapsed().as_micros() * 90 / 1000) as u32);
        let mut packets = Vec::new();
        let mut keyframe = false;
        for (i, (encoder, pattern)) in encoders.iter_mut().zip(&mut patterns).enumerate() {
            let frame = pattern.next_frame();
            let force = all || layers & (1 << i) != 0;
            match encoder.encode(&frame, force) {
                Ok(encoded) => {
                    for e in &encoded {
                        keyframe |= e.keyframe;
                        packets.extend(packetize(e, timestamp, &mut picture_ids[i], i));
                    }
                }
                Err(error) => tracing::warn!(%error, "VP8 encoding failed"),
            }
        }
        if packets.is_empty() {
            continue;
        }
        if out.blocking_send(FrameOut { packets, keyframe }).is_err() {
            return;
        }
    }
}

/// A source that sent nothing for this long has its last frame repeated, so receivers that
/// join or lose a keyframe get a picture.
const REPEAT_AFTER: Duration = Duration::from_secs(1);

/// The encoder thread for frames the application pushes: each frame is scaled to fit the
/// current limits (keeping its aspect ratio) and encoded; frames that come faster than the
/// frame rate are skipped. A new size starts a new encoder, whose first frame is a keyframe.
fn encode_external(
    control: Arc<SourceControl>,
    stats: Arc<StatsHub>,
    source: &ExternalVideo,
    out: mpsc::Sender<FrameOut>,
    screen: bool,
) {
    let mut encoder: Option<(Vp8Encoder, VideoParams)> = None;
    let mut last: Option<I420Frame> = None;
    let mut last_encoded = Instant::now();
    // When the next frame is due; frames that come earlier are skipped.
    let mut next_due = Instant::now();
    let start = Instant::now();
    let ts_base: u32 = rand::random();
    let mut picture_id: u16 = rand::random::<u16>() & 0x7fff;
    while !control.stop.load(Ordering::Relaxed) {
        let params = control.video_params();
        let interval = Duration::from_secs(1) / params.fps.max(1);
        let frame = match source.frames().recv_timeout(Duration::from_millis(100)) {
            Ok(frame) => {
                let now = Instant::now();
                if now + Duration::from_millis(5) < next_due {
                    // Faster than the frame rate: keep it for a repeat, do not send it.
                    last = Some(frame);
                    continue;
                }
                next_due = if next_due + interval < now {
                    now + interval
                } else {
                    next_due + interval
                };
                frame
            }
            Err(RecvError::Timeout | RecvError::Closed) => {
                let due = last_encoded.elapsed() >= REPEAT_AFTER
                    || control.force_keyframe.load(Ordering::Relaxed);
                match last.take() {
                    Some(frame) if due => frame,
                    other => {
                        last = other;
                        continue;
                    }
                }
            }
        };
        if control.video_muted.load(Ordering::Relaxed) {
            last = Some(frame);
            continue;
        }
        let (width, height) = fit_within(frame.width, frame.height, params.width, params.height);
        let target = VideoParams {
            width,
            height,
            ..params
        };
        let scaled = if (frame.width, frame.height) == (width, height) {
            None
        } else {
            match frame.scale_to(width, height) {
                Ok(f) => Some(f),
                Err(error) => {
                    tracing::warn!(%error, "an external video frame could not be scaled");
                    continue;
                }
            }
        };
        let current = encoder.as_ref().map(|(_, p)| *p);
        if current != Some(target) {
            let resize = current.is_none_or(|p| (p.width, p.height) != (width, height));
            if resize {
                match new_encoder(target) {
                    Ok(e) => encoder = Some((e, target)),
                    Err(error) => {
                        tracing::error!(%error, "could not start the VP8 encoder");
                        return;
                    }
                }
            } else if let Some((e, p)) = encoder.as_mut() {
                if p.bitrate_kbps != target.bitrate_kbps
                    && let Err(error) = e.set_bitrate_kbps(target.bitrate_kbps)
                {
                    tracing::warn!(%error, "could not change the video bitrate");
                }
                *p = target;
            }
            stats.sent(|s| {
                if screen {
                    s.screen_width = target.width;
                    s.screen_height = target.height;
                } else {
                    s.video_width = target.width;
                    s.video_height = target.height;
                    s.video_fps = target.fps;
                    s.video_bitrate_kbps = target.bitrate_kbps;
                }
            });
            tracing::debug!(
                width,
                height,
                fps = target.fps,
                screen,
                "external video size"
            );
        }
        let Some((enc, _)) = encoder.as_mut() else {
            continue;
        };
        let force = control.force_keyframe.swap(false, Ordering::Relaxed);
        let encoded = match enc.encode(scaled.as_ref().unwrap_or(&frame), force) {
            Ok(e) => e,
            Err(error) => {
                tracing::warn!(%error, "VP8 encoding failed");
                continue;
            }
        };
        last_encoded = Instant::now();
        last = Some(frame);
        let timestamp = ts_base.wrapping_add((start.elapsed().as_micros() * 90 / 1000) as u32);
        if !send_encoded(encoded, timestamp, &mut picture_id, &out) {
            return;
        }
    }
}

/// Writes the encoder's packets to the track, each encoding with its own SSRC, sequence
/// numbers and header extensions.
async fn write_video(
    track: Arc<TrackLocalStaticRTP>,
    payload_type: u8,
    streams: Vec<OutStream>,
    mut frames: mpsc::Receiver<FrameOut>,
    stats: Arc<StatsHub>,
    screen: bool,
) {
    let mut seqs: Vec<u16> = streams.iter().map(|_| rand::random()).collect();
    let mut failures = 0u64;
    while let Some(frame) = frames.recv().await {
        let (mut packets, mut bytes) = (0u64, 0u64);
        for out in frame.packets {
            let (Some(stream), Some(seq)) = (streams.get(out.layer), seqs.get_mut(out.layer))
            else {
                continue;
            };
            let len = out.payload.len();
            let mut packet = rtp_packet(
                payload_type,
                *seq,
                out.timestamp,
                stream.ssrc,
                out.marker,
                out.payload,
            );
            for (id, value) in &stream.extensions {
                let _ = packet.header.set_extension(*id, value.clone());
            }
            *seq = seq.wrapping_add(1);
            match track.write_rtp(packet).await {
                Ok(()) => {
                    packets += 1;
                    bytes += len as u64;
                }
                Err(error) => {
                    failures += 1;
                    if failures.is_power_of_two() {
                        tracing::debug!(%error, failures, "video packet not sent");
                    }
                }
            }
        }
        stats.sent(|s| {
            if screen {
                s.screen_frames += 1;
            } else {
                s.video_frames += 1;
                s.keyframes += u64::from(frame.keyframe);
                s.video_rtp_packets += packets;
            }
            s.bytes += bytes;
        });
    }
}

/// PLI/FIR from the server (relayed from a subscriber) ask the encoder for a keyframe; with
/// simulcast (`layer_ssrcs`), the encoder of the layer the PLI names.
async fn watch_keyframe_requests(
    track: Arc<TrackLocalStaticRTP>,
    control: Arc<SourceControl>,
    stats: Arc<StatsHub>,
    layer_ssrcs: Option<Vec<u32>>,
) {
    while !control.stop.load(Ordering::Relaxed) {
        match track.poll().await {
            Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                for packet in packets.iter().filter(|p| is_keyframe_request(p.as_ref())) {
                    stats.sent(|s| s.keyframe_requests_received += 1);
                    let Some(ssrcs) = &layer_ssrcs else {
                        control.force_keyframe.store(true, Ordering::Relaxed);
                        continue;
                    };
                    let pli = packet.as_any().downcast_ref::<PictureLossIndication>();
                    let mask = match pli.and_then(|p| ssrcs.iter().position(|s| *s == p.media_ssrc))
                    {
                        Some(layer) => 1u8 << layer,
                        // A FIR, or a PLI for an SSRC we do not know: every layer.
                        None => 0b111,
                    };
                    control.force_layers.fetch_or(mask, Ordering::Relaxed);
                }
            }
            Some(_) => {}
            // Not bound (yet, or any more): look again shortly.
            None => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}
