//! The SFU media driver against real sockets and real WebRTC peers.
//!
//! Clients are `webrtc` 0.21 peer connections in this process, two per participant as the
//! driver expects (publisher: the client offers; subscriber: the SFU offers). SDP goes straight
//! through the `Sfu` API, so no signaling server is involved. Media is synthetic RTP with the
//! negotiated VP8 and Opus payload types and increasing sequence numbers and timestamps: this
//! layer forwards packets and never decodes them.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use rounds_server::sfu::{
    IceProtocol, KeyframeReason, MediaKind, PcKind, PeerId, Sfu, SfuConfig, SfuError, SfuEvent,
};
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::{
    Registry, register_default_interceptors,
};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::error::Error as RtcError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- Test-side RTCP tap ----------------------------------------------------------------------

/// Client-side counterpart of the driver's tap: marks inbound PLIs for the application so the
/// publishing client can see that the SFU relayed a keyframe request.
#[derive(Default)]
struct PliTap {
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for PliTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = RtcError;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet
            && packets
                .iter()
                .any(|p| p.as_any().is::<PictureLossIndication>())
        {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.reads.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.writes.push_back(msg);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.writes.pop_front()
    }
}

impl Interceptor for PliTap {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

/// Holds back the client's receiver reports on their way to the wire, as a slow return path
/// would: the SFU's round-trip figure from LSR/DLSR grows by `delay`.
struct DelayReports {
    delay: Duration,
    held: VecDeque<(Instant, TaggedPacket)>,
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl DelayReports {
    fn new(delay: Duration) -> Self {
        Self {
            delay,
            held: VecDeque::new(),
            reads: VecDeque::new(),
            writes: VecDeque::new(),
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for DelayReports {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = RtcError;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.reads.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        let report = matches!(&msg.message.packet, Packet::Rtcp(packets)
            if packets.iter().any(|p| p.as_any().is::<ReceiverReport>()));
        if report {
            self.held.push_back((msg.now + self.delay, msg));
        } else {
            self.writes.push_back(msg);
        }
        Ok(())
    }
    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.writes.pop_front()
    }
    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        while self.held.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, mut msg)) = self.held.pop_front() {
                msg.now = now;
                self.writes.push_back(msg);
            }
        }
        Ok(())
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        self.held.front().map(|(due, _)| *due)
    }
}

impl Interceptor for DelayReports {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

// ---- Clients -----------------------------------------------------------------------------------

/// Where an RTP packet sits in its stream: (SSRC, sequence number).
type StreamPosition = (u32, u16);

/// RTP packets a client received, by sending publisher (stream id) and kind.
#[derive(Default)]
struct Received {
    counts: Mutex<HashMap<(String, bool), u64>>,
    /// The (SSRC, sequence number) of the first and of the latest packet of each.
    ends: Mutex<HashMap<(String, bool), (StreamPosition, StreamPosition)>>,
}

impl Received {
    fn add(&self, stream: &str, video: bool, header: &rtc::rtp::header::Header) {
        let mut counts = self.counts.lock().expect("lock");
        *counts.entry((stream.to_owned(), video)).or_default() += 1;
        let this = (header.ssrc, header.sequence_number);
        let mut ends = self.ends.lock().expect("lock");
        ends.entry((stream.to_owned(), video))
            .and_modify(|(_, last)| *last = this)
            .or_insert((this, this));
    }
    /// The (SSRC, sequence number) of the first and the latest packet from `stream`.
    fn ends(&self, stream: &str, video: bool) -> Option<(StreamPosition, StreamPosition)> {
        let ends = self.ends.lock().expect("lock");
        ends.get(&(stream.to_owned(), video)).copied()
    }
    fn get(&self, stream: &str, video: bool) -> u64 {
        let counts = self.counts.lock().expect("lock");
        counts
            .get(&(stream.to_owned(), video))
            .copied()
            .unwrap_or(0)
    }
    fn total(&self) -> u64 {
        self.counts.lock().expect("lock").values().sum()
    }
}

struct Handler {
    state: watch::Sender<RTCPeerConnectionState>,
    received: Arc<Received>,
    remote_tracks: Arc<Mutex<Vec<Arc<dyn TrackRemote>>>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.send(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        self.remote_tracks.lock().expect("lock").push(track.clone());
        let received = self.received.clone();
        tokio::spawn(async move {
            let stream = track.stream_id().await;
            let video = track.kind().await == RtpCodecKind::Video;
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                    received.add(&stream, video, &packet.header);
                }
            }
        });
    }
}

fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

fn vp8() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

async fn build_pc(
    tcp: bool,
    received: Arc<Received>,
    remote_tracks: Arc<Mutex<Vec<Arc<dyn TrackRemote>>>>,
    report_delay: Option<Duration>,
) -> (
    Arc<dyn PeerConnection>,
    watch::Receiver<RTCPeerConnectionState>,
) {
    let mut media = MediaEngine::default();
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus(),
                payload_type: 111,
            },
            RtpCodecKind::Audio,
        )
        .expect("opus");
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: vp8(),
                payload_type: 96,
            },
            RtpCodecKind::Video,
        )
        .expect("vp8");
    media
        .register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: AUDIO_LEVEL_URI.to_owned(),
            },
            RtpCodecKind::Audio,
            None,
        )
        .expect("audio level");
    let mut registry = register_default_interceptors(Registry::new(), &mut media)
        .expect("interceptors")
        .with(Slot::from(14_000), PliTap::default());
    if let Some(delay) = report_delay {
        // Wire-most, so the reports are held after they were written.
        registry = registry.with(Slot::from(100), DelayReports::new(delay));
    }
    let mut settings = SettingEngineBuilder::new();
    if tcp {
        settings = settings.with_network_types(vec![rtc::ice::network_type::NetworkType::Tcp4]);
    }
    let (state_tx, state_rx) = watch::channel(RTCPeerConnectionState::New);
    let handler = Handler {
        state: state_tx,
        received,
        remote_tracks,
    };
    let local = vec!["127.0.0.1:0".to_owned()];
    let (udp, tcp_addrs) = if tcp {
        (vec![], local)
    } else {
        (local, vec![])
    };
    // Boxed: the builder's future is ~20 KiB.
    let pc = Box::pin(
        PeerConnectionBuilder::new()
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings.build())
            .with_handler(Arc::new(handler))
            .with_udp_addrs(udp)
            .with_tcp_addrs(tcp_addrs)
            .build(),
    )
    .await
    .expect("peer connection");
    (Arc::new(pc), state_rx)
}

/// The webrtc client only dials a passive TCP candidate it is handed through
/// `add_ice_candidate`, not one it reads in the remote SDP.
async fn add_tcp_candidates(pc: &Arc<dyn PeerConnection>, sdp: &str) {
    for line in sdp.lines() {
        let Some(candidate) = line.trim().strip_prefix("a=") else {
            continue;
        };
        if candidate.starts_with("candidate:")
            && candidate.contains(" tcp ")
            && candidate.contains("tcptype passive")
        {
            pc.add_ice_candidate(RTCIceCandidateInit {
                candidate: candidate.to_owned(),
                sdp_mid: Some("0".to_owned()),
                sdp_mline_index: Some(0),
                ..Default::default()
            })
            .await
            .expect("add candidate");
        }
    }
}

struct Client {
    id: PeerId,
    tcp: bool,
    publisher: Arc<dyn PeerConnection>,
    subscriber: Arc<dyn PeerConnection>,
    publisher_state: watch::Receiver<RTCPeerConnectionState>,
    subscriber_state: watch::Receiver<RTCPeerConnectionState>,
    received: Arc<Received>,
    remote_tracks: Arc<Mutex<Vec<Arc<dyn TrackRemote>>>>,
    plis_received: Arc<AtomicU64>,
    /// While set, the camera track sends nothing (a publisher whose video stalled).
    video_paused: Arc<AtomicBool>,
    /// While set, the camera's packets are VP8 delta frames; otherwise each starts a key
    /// frame.
    video_deltas: Arc<AtomicBool>,
    /// Serialises subscriber negotiations; holds whether the TCP candidate was handed over.
    negotiation: tokio::sync::Mutex<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Client {
    async fn new(id: &str, tcp: bool) -> Arc<Client> {
        Self::with_report_delay(id, tcp, None).await
    }

    /// A client whose subscriber connection holds its receiver reports back for `delay`.
    async fn with_report_delay(id: &str, tcp: bool, delay: Option<Duration>) -> Arc<Client> {
        let received = Arc::new(Received::default());
        let remote_tracks = Arc::new(Mutex::new(Vec::new()));
        let (publisher, publisher_state) =
            build_pc(tcp, received.clone(), remote_tracks.clone(), None).await;
        let (subscriber, subscriber_state) =
            build_pc(tcp, received.clone(), remote_tracks.clone(), delay).await;
        Arc::new(Client {
            id: id.to_owned(),
            tcp,
            publisher,
            subscriber,
            publisher_state,
            subscriber_state,
            received,
            remote_tracks,
            plis_received: Arc::new(AtomicU64::new(0)),
            video_paused: Arc::new(AtomicBool::new(false)),
            video_deltas: Arc::new(AtomicBool::new(false)),
            negotiation: tokio::sync::Mutex::new(false),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// Adds an Opus and a VP8 track, negotiates the publisher connection and starts sending.
    async fn publish(self: &Arc<Self>, sfu: &Sfu) {
        self.publish_with(sfu, Duration::from_millis(33), 600).await;
    }

    /// Adds an Opus and a VP8 track, negotiates the publisher connection and starts sending
    /// video packets of `video_len` bytes every `video_period` (audio: 50 packets/s).
    async fn publish_with(self: &Arc<Self>, sfu: &Sfu, video_period: Duration, video_len: usize) {
        let audio_ssrc = rand::random::<u32>() | 1;
        let video_ssrc = rand::random::<u32>() | 1;
        let track = |kind, name: &str, ssrc, codec| {
            Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                self.id.clone(),
                format!("{}-{name}", self.id),
                name.to_owned(),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec,
                    ..Default::default()
                }],
            )))
        };
        let audio = track(RtpCodecKind::Audio, "mic", audio_ssrc, opus());
        let video = track(RtpCodecKind::Video, "camera", video_ssrc, vp8());
        self.publisher
            .add_track(audio.clone() as Arc<dyn TrackLocal>)
            .await
            .expect("add audio");
        self.publisher
            .add_track(video.clone() as Arc<dyn TrackLocal>)
            .await
            .expect("add video");
        self.negotiate_publisher(sfu).await;

        // Count keyframe requests the SFU relays to us for our camera.
        watch_plis(self, video.clone());
        let video_step = (90_000.0 * video_period.as_secs_f64()) as u32;
        let tasks = [
            tokio::spawn(send_media(
                video,
                SendSpec {
                    payload_type: 96,
                    ssrc: video_ssrc,
                    timestamp_step: video_step,
                    period: video_period,
                    payload_len: video_len,
                    audio_level: false,
                    deltas: Some(self.video_deltas.clone()),
                },
                self.video_paused.clone(),
            )),
            tokio::spawn(send_media(
                audio,
                SendSpec {
                    payload_type: 111,
                    ssrc: audio_ssrc,
                    timestamp_step: 960,
                    period: Duration::from_millis(20),
                    payload_len: 80,
                    audio_level: true,
                    deltas: None,
                },
                Arc::default(),
            )),
        ];
        self.tasks.lock().expect("lock").extend(tasks);
    }

    /// Offer from the client, answer from the SFU.
    async fn negotiate_publisher(&self, sfu: &Sfu) {
        let offer = self.publisher.create_offer(None).await.expect("offer");
        self.publisher
            .set_local_description(offer)
            .await
            .expect("set local");
        let offer = self
            .publisher
            .local_description()
            .await
            .expect("local description");
        let answer = sfu
            .publisher_answer(&self.id, offer.sdp)
            .await
            .expect("publisher answer");
        self.publisher
            .set_remote_description(
                RTCSessionDescription::answer(answer.clone()).expect("parse answer"),
            )
            .await
            .expect("set remote");
        if self.tcp {
            add_tcp_candidates(&self.publisher, &answer).await;
        }
    }

    /// Stops publishing the microphone; returns the mid it had.
    async fn unpublish_audio(&self, sfu: &Sfu) -> String {
        for transceiver in self.publisher.get_transceivers().await {
            let Ok(Some(sender)) = transceiver.sender().await else {
                continue;
            };
            if sender.track().kind().await != RtpCodecKind::Audio {
                continue;
            }
            let mid = transceiver.mid().await.ok().flatten().expect("audio mid");
            self.publisher
                .remove_track(&sender)
                .await
                .expect("remove track");
            self.negotiate_publisher(sfu).await;
            return mid;
        }
        panic!("{} publishes no audio", self.id);
    }

    /// Offer from the SFU, answer from the client.
    async fn negotiate_subscriber(&self, sfu: &Sfu) {
        let mut tcp_candidate_added = self.negotiation.lock().await;
        let offer = match sfu.subscriber_offer(&self.id).await {
            Ok(offer) => offer,
            // The answer to the previous offer will bring a fresh RenegotiationNeeded.
            Err(SfuError::NegotiationInProgress) => return,
            Err(error) => panic!("subscriber offer for {}: {error}", self.id),
        };
        self.subscriber
            .set_remote_description(
                RTCSessionDescription::offer(offer.clone()).expect("parse offer"),
            )
            .await
            .expect("set remote offer");
        if self.tcp && !*tcp_candidate_added {
            add_tcp_candidates(&self.subscriber, &offer).await;
            *tcp_candidate_added = true;
        }
        let answer = local_answer(&self.subscriber).await;
        sfu.subscriber_answer(&self.id, answer)
            .await
            .expect("subscriber answer");
    }

    /// The latest video track received from `publisher` (stream ids are publisher ids).
    async fn remote_video_from(&self, publisher: &str) -> Option<Arc<dyn TrackRemote>> {
        let tracks = self.remote_tracks.lock().expect("lock").clone();
        for track in tracks.into_iter().rev() {
            if track.stream_id().await == publisher && track.kind().await == RtpCodecKind::Video {
                return Some(track);
            }
        }
        None
    }

    async fn close(&self) {
        for task in self.tasks.lock().expect("lock").drain(..) {
            task.abort();
        }
        let _ = self.publisher.close().await;
        let _ = self.subscriber.close().await;
    }
}

/// Creates and applies the answer to the remote offer `pc` holds; returns its SDP.
async fn local_answer(pc: &Arc<dyn PeerConnection>) -> String {
    let answer = pc.create_answer(None).await.expect("answer");
    pc.set_local_description(answer)
        .await
        .expect("set local answer");
    pc.local_description().await.expect("local answer").sdp
}

/// One outgoing RTP stream of a test client: what to put in its packets and how often.
struct SendSpec {
    payload_type: u8,
    ssrc: u32,
    timestamp_step: u32,
    period: Duration,
    payload_len: usize,
    /// Audio: every packet carries an audio level (25 dBov, voice).
    audio_level: bool,
    /// Video: while set, packets are VP8 delta frames. The payload (all 0x90) otherwise
    /// reads as the start of a key frame: S=1, PID=0, and a clear P bit at byte 5.
    deltas: Option<Arc<AtomicBool>>,
}

async fn send_media(track: Arc<TrackLocalStaticRTP>, spec: SendSpec, paused: Arc<AtomicBool>) {
    let SendSpec {
        payload_type,
        ssrc,
        timestamp_step,
        period,
        payload_len,
        audio_level,
        deltas,
    } = spec;
    let mut tick = tokio::time::interval(period);
    let mut seq: u16 = rand::random();
    let mut timestamp: u32 = rand::random();
    let keyframe = Bytes::from(vec![0x90u8; payload_len]);
    let mut delta = vec![0x90u8; payload_len];
    if let Some(header) = delta.get_mut(5) {
        *header |= 0x01;
    }
    let delta = Bytes::from(delta);
    loop {
        tick.tick().await;
        if paused.load(Ordering::Relaxed) {
            continue;
        }
        let payload = match &deltas {
            Some(deltas) if deltas.load(Ordering::Relaxed) => &delta,
            _ => &keyframe,
        };
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                marker: true,
                payload_type,
                sequence_number: seq,
                timestamp,
                ssrc,
                ..Default::default()
            },
            payload: payload.clone(),
        };
        // Errors before the connection is up are expected: the track is not bound yet.
        let _ = if audio_level {
            track
                .write_rtp_with_extensions(
                    packet,
                    &[HeaderExtension::AudioLevel(AudioLevelExtension {
                        level: 25,
                        voice: true,
                    })],
                )
                .await
        } else {
            track.write_rtp(packet).await
        };
        seq = seq.wrapping_add(1);
        timestamp = timestamp.wrapping_add(timestamp_step);
    }
}

/// Counts PLIs the publisher's client receives on its camera track.
fn watch_plis(client: &Arc<Client>, video: Arc<TrackLocalStaticRTP>) {
    let plis = client.plis_received.clone();
    let task = tokio::spawn(async move {
        while let Some(event) = video.poll().await {
            if let TrackLocalEvent::OnRtcpPacket(packets) = event
                && packets
                    .iter()
                    .any(|p| p.as_any().is::<PictureLossIndication>())
            {
                plis.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    client.tasks.lock().expect("lock").push(task);
}

/// The test clients by peer id, for the signaling task to negotiate with.
type Clients = Arc<Mutex<HashMap<PeerId, Arc<Client>>>>;

/// Plays the signaling layer's part: every `RenegotiationNeeded` becomes a subscriber
/// offer/answer round with the client [`join`] registered for that peer. Returns the (empty)
/// client table and the log of every event, for later assertions.
fn spawn_signaling(sfu: &Sfu) -> (Clients, Arc<Mutex<Vec<SfuEvent>>>) {
    let clients = Clients::default();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut events = sfu.events();
    let (sfu, log_out, clients_out) = (sfu.clone(), log.clone(), clients.clone());
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let SfuEvent::RenegotiationNeeded { peer } = &event {
                        let client = clients.lock().expect("lock").get(peer).cloned();
                        if let Some(client) = client {
                            let sfu = sfu.clone();
                            tokio::spawn(async move { client.negotiate_subscriber(&sfu).await });
                        }
                    }
                    log.lock().expect("lock").push(event);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    (clients_out, log_out)
}

/// Plays the HTTP listener's part: connections whose first byte is neither TLS (0x16) nor an
/// ASCII letter are ICE-TCP and go to the SFU with that byte as the prefix.
async fn spawn_ice_tcp_listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind((LOCALHOST, 0))
        .await
        .expect("tcp listener");
    let port = listener.local_addr().expect("addr").port();
    (listener, port)
}

fn serve_listener(listener: TcpListener, sfu: Sfu) {
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let sfu = sfu.clone();
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                if stream.read_exact(&mut first).await.is_err() {
                    return;
                }
                if first[0] == 0x16 || first[0].is_ascii_alphabetic() {
                    return; // TLS or HTTP: not ours in this test
                }
                sfu.serve_ice_tcp(stream, first.to_vec()).await;
            });
        }
    });
}

/// The remote end of the client's selected candidate pair, read from its ICE transport. (The
/// client's stats report has the selected pair but no entry for its remote candidate.)
async fn client_selected_remote(pc: &Arc<dyn PeerConnection>) -> Option<SocketAddr> {
    let transceiver = pc.get_transceivers().await.into_iter().next()?;
    let from_sender = match transceiver.sender().await.ok()? {
        Some(sender) => sender.transport().await.ok()?,
        None => None,
    };
    let transport = match from_sender {
        Some(transport) => transport,
        None => transceiver
            .receiver()
            .await
            .ok()??
            .transport()
            .await
            .ok()??,
    };
    let pair = transport
        .ice_transport()
        .get_selected_candidate_pair()
        .await
        .ok()??;
    let ip: IpAddr = pair.remote().address.parse().ok()?;
    Some(SocketAddr::new(ip, pair.remote().port))
}

async fn flood_udp(target: SocketAddr, count: usize) {
    let socket = UdpSocket::bind((LOCALHOST, 0)).await.expect("bind");
    let mut sent = 0;
    while sent < count {
        let batch: Vec<Vec<u8>> = {
            let mut rng = rand::thread_rng();
            (0..200)
                .map(|i| {
                    let len = rng.gen_range(1..1200);
                    let mut data: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
                    // Make some of it look like each protocol the driver demultiplexes.
                    match i % 4 {
                        0 if len >= 20 => {
                            data[0] = 0;
                            data[1] = 1;
                            data[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
                        }
                        1 => data[0] = 22,
                        2 => data[0] = 0x80,
                        _ => {}
                    }
                    data
                })
                .collect()
        };
        for datagram in batch {
            let _ = socket.send_to(&datagram, target).await;
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Half the connections announce a frame longer than the limit, half send a frame no WebRTC
/// peer would send; both must be closed and counted.
async fn flood_tcp(port: u16, count: usize) {
    let mut tasks = Vec::new();
    for i in 0..count {
        tasks.push(tokio::spawn(async move {
            let Ok(mut stream) = TcpStream::connect((LOCALHOST, port)).await else {
                return;
            };
            let junk: Vec<u8> = {
                let mut rng = rand::thread_rng();
                (0..64).map(|_| rng.r#gen()).collect()
            };
            let mut bytes = if i % 2 == 0 {
                vec![0xff, 0xff]
            } else {
                vec![0x00, 0x40, 0xee]
            };
            bytes.extend_from_slice(&junk);
            let _ = stream.write_all(&bytes).await;
            // The SFU closes it; wait for that (or give up).
            let mut sink = [0u8; 64];
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut sink)).await;
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

async fn start_sfu(tcp_port: Option<u16>, udp_enabled: bool) -> Sfu {
    start_sfu_with(tcp_port, udp_enabled, rounds_server::sfu::CONNECT_DEADLINE).await
}

async fn start_sfu_with(
    tcp_port: Option<u16>,
    udp_enabled: bool,
    connect_deadline: Duration,
) -> Sfu {
    Sfu::start(SfuConfig {
        udp_listen: SocketAddr::new(LOCALHOST, 0),
        advertise_ip: LOCALHOST,
        tcp_port,
        udp_enabled,
        video_codec: rounds_server::sfu::VideoCodec::Vp8,
        connect_deadline,
    })
    .await
    .expect("sfu starts")
}

async fn join(clients: &Clients, id: &str, tcp: bool) -> Arc<Client> {
    join_with(clients, Client::new(id, tcp).await)
}

fn join_with(clients: &Clients, client: Arc<Client>) -> Arc<Client> {
    let id = client.id.clone();
    clients
        .lock()
        .expect("lock")
        .insert(id.to_owned(), client.clone());
    client
}

async fn connected(state: &watch::Receiver<RTCPeerConnectionState>, what: &str) {
    let mut state = state.clone();
    tokio::time::timeout(
        Duration::from_secs(15),
        state.wait_for(|s| *s == RTCPeerConnectionState::Connected),
    )
    .await
    .unwrap_or_else(|_| panic!("{what} did not connect"))
    .expect("state channel");
}

// ---- Tests -------------------------------------------------------------------------------------

/// Requirements 1, 2, 3 and 5: two admitted peers exchange audio and video over one UDP port
/// while a third, not admitted, receives nothing until admitted and stops within a second when
/// the gate closes again; all while the port and the TCP listener are flooded with garbage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_call_forwards_gates_and_survives_garbage() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(60), async {
        let (listener, tcp_port) = spawn_ice_tcp_listener().await;
        let sfu = start_sfu(Some(tcp_port), true).await;
        serve_listener(listener, sfu.clone());
        let (clients, events) = spawn_signaling(&sfu);

        let (alice, bob, carol) = ("alice".to_owned(), "bob".to_owned(), "carol".to_owned());
        sfu.set_allowed(&alice, true).await;
        sfu.set_allowed(&bob, true).await;
        sfu.set_subscriptions(&alice, vec![bob.clone()]).await;
        sfu.set_subscriptions(&bob, vec![alice.clone()]).await;
        // Carol is in the lobby: subscribed to Alice, but not admitted.
        sfu.set_subscriptions(&carol, vec![alice.clone()]).await;

        let a = join(&clients, &alice, false).await;
        let b = join(&clients, &bob, false).await;
        let c = join(&clients, &carol, false).await;
        for client in [&a, &b, &c] {
            client.publish(&sfu).await;
            client.negotiate_subscriber(&sfu).await;
        }
        connected(&a.publisher_state, "alice publisher").await;
        connected(&b.publisher_state, "bob publisher").await;
        connected(&a.subscriber_state, "alice subscriber").await;
        connected(&b.subscriber_state, "bob subscriber").await;
        connected(&c.subscriber_state, "carol subscriber").await;

        // Garbage while the call runs.
        let garbage = tokio::spawn({
            let target = sfu.udp_addr();
            async move {
                tokio::join!(flood_udp(target, 10_000), flood_tcp(tcp_port, 50));
            }
        });

        // 1. Each receives more than 100 packets of each kind from the other.
        wait_until("alice and bob to exchange media", Duration::from_secs(25), || {
            a.received.get(&bob, true) > 100
                && a.received.get(&bob, false) > 100
                && b.received.get(&alice, true) > 100
                && b.received.get(&alice, false) > 100
        })
        .await;
        garbage.await.expect("garbage task");
        let counters = sfu.counters();
        assert!(counters.dropped_datagrams >= 9_000, "dropped {counters:?}");
        wait_until("garbage TCP connections to be closed", Duration::from_secs(10), || {
            sfu.counters().garbage_tcp_frames >= 50
        })
        .await;
        assert_eq!(sfu.counters().poisoned_connections, 0);
        // The call is still flowing after the flood.
        let before = b.received.get(&alice, true);
        wait_until("media to keep flowing after the flood", Duration::from_secs(5), || {
            b.received.get(&alice, true) > before + 30
        })
        .await;

        // 2. One UDP port: every selected pair ends at the SFU's one port.
        let port = sfu.udp_addr().port();
        for peer in [&alice, &bob] {
            let stats = sfu.stats(peer).await.expect("stats");
            for (kind, pc) in [(PcKind::Publisher, stats.publisher), (PcKind::Subscriber, stats.subscriber)] {
                let pc = pc.unwrap_or_else(|| panic!("{peer} {kind:?} stats"));
                let pair = pc.selected_pair.expect("selected pair");
                assert_eq!(pair.local.port(), port, "{peer} {kind:?}");
                assert_eq!(pair.protocol, IceProtocol::Udp);
                // Both DTLS roles occur (we answer the publisher, offer the subscriber); the
                // AEAD profile wins either way against a peer that lists it first.
                assert_eq!(
                    pc.srtp_cipher.as_deref(),
                    Some("SRTP_AEAD_AES_128_GCM"),
                    "{peer} {kind:?}"
                );
            }
        }
        for client in [&a, &b] {
            for pc in [&client.publisher, &client.subscriber] {
                let remote = client_selected_remote(pc).await.expect("client selected pair");
                assert_eq!(remote, SocketAddr::new(LOCALHOST, port), "{}", client.id);
            }
        }

        // 3. The admission gate. Carol, subscribed but not admitted, has received nothing.
        assert_eq!(c.received.total(), 0, "carol received media before admission");
        let carol_stats = sfu.stats(&carol).await.expect("carol stats");
        assert_eq!(carol_stats.subscriber.map(|s| s.rtp_packets), Some(0));

        sfu.set_allowed(&carol, true).await;
        wait_until("carol to receive alice once admitted", Duration::from_secs(10), || {
            c.received.get(&alice, true) > 20 && c.received.get(&alice, false) > 20
        })
        .await;
        assert_eq!(c.received.get(&bob, true), 0, "carol is not subscribed to bob");

        sfu.set_allowed(&carol, false).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let frozen = c.received.total();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(c.received.total(), frozen, "carol kept receiving after the gate closed");
        // Bob, still admitted, keeps receiving.
        let bob_before = b.received.get(&alice, true);
        wait_until("bob to keep receiving", Duration::from_secs(5), || {
            b.received.get(&alice, true) > bob_before + 20
        })
        .await;

        // Keyframes: a new video subscriber triggered a PLI, and Bob's own PLI is relayed to
        // Alice's client.
        let track = b.remote_video_from(&alice).await.expect("bob has alice's video");
        let ssrc = track.ssrcs().await.first().copied().expect("ssrc");
        let relayed_before = a.plis_received.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            track
                .write_rtcp(vec![Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc })])
                .await
                .expect("send pli");
            let seen = events.lock().expect("lock").iter().any(|e| {
                matches!(e, SfuEvent::KeyframeRequested { publisher, reason: KeyframeReason::SubscriberRequest { subscriber }, .. }
                    if publisher == &alice && subscriber == &bob)
            });
            if seen && a.plis_received.load(Ordering::Relaxed) > relayed_before {
                break;
            }
            assert!(Instant::now() < deadline, "bob's PLI was not relayed to alice's client");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        {
            let events = events.lock().expect("lock");
            assert!(events.iter().any(|e| matches!(e, SfuEvent::KeyframeRequested { reason: KeyframeReason::NewSubscriber { .. }, .. })));
            assert!(events.iter().any(|e| matches!(e, SfuEvent::AudioLevel { peer, level_dbov: 25 } if peer == &alice)));
            assert!(events.iter().any(|e| matches!(e, SfuEvent::TrackPublished { peer, .. } if peer == &bob)));
            assert!(events.iter().any(|e| matches!(e, SfuEvent::PeerConnected { peer, pc: PcKind::Subscriber } if peer == &alice)));
        }

        // The gate applies to publishers too: with Alice not admitted nobody gets her media
        // and she gets nobody's; admitted again, both directions resume.
        sfu.set_allowed(&alice, false).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (bob_from_alice, alice_total) = (b.received.get(&alice, true), a.received.total());
        let alice_from_bob = a.received.get(&bob, true);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(b.received.get(&alice, true), bob_from_alice, "bob still gets alice");
        assert_eq!(a.received.total(), alice_total, "alice still gets media");
        sfu.set_allowed(&alice, true).await;
        wait_until("both directions to resume", Duration::from_secs(10), || {
            b.received.get(&alice, true) > bob_from_alice + 20
                && a.received.get(&bob, true) > alice_from_bob + 20
        })
        .await;

        // A publisher renegotiation that drops a track unpublishes it.
        let mid = a.unpublish_audio(&sfu).await;
        wait_until("alice's microphone to be unpublished", Duration::from_secs(5), || {
            events.lock().expect("lock").iter().any(|e| {
                matches!(e, SfuEvent::TrackUnpublished { peer, mid: m, .. } if peer == &alice && m == &mid)
            })
        })
        .await;
        assert_eq!(sfu.stats(&alice).await.expect("stats").published_tracks, 1);

        // Leaving: Bob's tracks are unpublished and Alice is told to renegotiate.
        sfu.remove_peer(&bob).await;
        wait_until("bob's tracks to be unpublished", Duration::from_secs(5), || {
            events.lock().expect("lock").iter().any(|e| matches!(e, SfuEvent::TrackUnpublished { peer, .. } if peer == &bob))
        })
        .await;
        for client in [&a, &b, &c] {
            client.close().await;
        }
    })
    .await
    .expect("test finished in time");
}

/// A subscriber connection whose handshake never finishes is replaced. Bob answers his first
/// subscriber offer from a connection that then goes silent (as one does whose DTLS stalled
/// for good after a lost flight); once the connect deadline passes, the SFU offers a new
/// connection, with new ICE credentials, and Alice's media reaches Bob on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_connection_that_never_connects_is_replaced() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = start_sfu_with(None, true, Duration::from_secs(2)).await;
        let (clients, events) = spawn_signaling(&sfu);
        let (alice, bob) = ("alice".to_owned(), "bob".to_owned());
        sfu.set_allowed(&alice, true).await;
        let a = join(&clients, &alice, false).await;
        a.publish(&sfu).await;
        wait_until(
            "alice's two tracks to be published",
            Duration::from_secs(15),
            || {
                let events = events.lock().expect("lock");
                events
                    .iter()
                    .filter(
                        |e| matches!(e, SfuEvent::TrackPublished { peer, .. } if *peer == alice),
                    )
                    .count()
                    == 2
            },
        )
        .await;

        // Bob is not handed to the signaling task yet: his first round is played by hand.
        sfu.set_allowed(&bob, true).await;
        sfu.set_subscriptions(&bob, vec![alice.clone()]).await;
        let first = sfu.subscriber_offer(&bob).await.expect("first offer");
        let (silent, _) = build_pc(false, Arc::default(), Arc::default(), None).await;
        silent
            .set_remote_description(RTCSessionDescription::offer(first.clone()).expect("offer"))
            .await
            .expect("set remote offer");
        let answer = local_answer(&silent).await;
        silent.close().await.expect("close");
        sfu.subscriber_answer(&bob, answer)
            .await
            .expect("subscriber answer");
        let answered_at = events.lock().expect("lock").len();
        // TWCC only where the SFU receives: the publisher's send-side bandwidth estimate runs
        // on its feedback; as a sender the SFU would only have to throw the feedback away.
        let publisher_answer = a
            .publisher
            .remote_description()
            .await
            .expect("alice's answer")
            .sdp;
        for twcc in ["transport-cc", "transport-wide-cc"] {
            assert!(
                publisher_answer.contains(twcc),
                "publisher answer lacks {twcc}"
            );
            assert!(!first.contains(twcc), "subscriber offer has {twcc}");
        }

        let b = join(&clients, &bob, false).await;
        wait_until(
            "a new subscriber offer for bob",
            Duration::from_secs(10),
            || {
                events.lock().expect("lock")[answered_at..]
                    .iter()
                    .any(|e| matches!(e, SfuEvent::RenegotiationNeeded { peer } if *peer == bob))
            },
        )
        .await;
        connected(&b.subscriber_state, "bob's new subscriber connection").await;
        wait_until(
            "alice's media to reach bob",
            Duration::from_secs(15),
            || b.received.get(&alice, true) > 20 && b.received.get(&alice, false) > 20,
        )
        .await;
        let second = b
            .subscriber
            .remote_description()
            .await
            .expect("bob's subscriber has the new offer")
            .sdp;
        // Clients tell a new connection from a renegotiation by the DTLS fingerprint.
        for attribute in ["a=ice-ufrag:", "a=fingerprint:"] {
            let value = |sdp: &str| {
                sdp.lines()
                    .find_map(|l| l.trim().strip_prefix(attribute).map(str::to_owned))
            };
            assert!(value(&first).is_some(), "the offer has {attribute}");
            assert_ne!(
                value(&first),
                value(&second),
                "the replacement is a new connection, not the stalled one offered again"
            );
        }
        for client in [&a, &b] {
            client.close().await;
        }
    })
    .await
    .expect("test finished in time");
}

/// A subscriber is asked a keyframe for as soon as its connection can carry one, not when
/// the next video packet happens to come: Alice's camera stalls after publishing, Bob then
/// subscribes and connects, and Alice's client is asked for a keyframe though no packet of
/// hers has been forwarded to Bob; Carol, connected in the lobby, gets hers when admitted;
/// and both get one when the host lets Alice's camera through again. (A joining patient's
/// first frame waits on that keyframe.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_subscriber_is_asked_a_keyframe_for_before_any_packet() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = start_sfu(None, true).await;
        let (clients, events) = spawn_signaling(&sfu);
        let (alice, bob, carol) = ("alice".to_owned(), "bob".to_owned(), "carol".to_owned());
        sfu.set_allowed(&alice, true).await;
        let a = join(&clients, &alice, false).await;
        a.publish(&sfu).await;
        wait_until("alice's camera to be published", Duration::from_secs(15), || {
            events.lock().expect("lock").iter().any(
                |e| matches!(e, SfuEvent::TrackPublished { peer, kind: MediaKind::Video, .. } if *peer == alice),
            )
        })
        .await;
        a.video_paused.store(true, Ordering::Relaxed);
        // Let requests from the publishing settle, so only Bob's can count below.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let plis_before = a.plis_received.load(Ordering::Relaxed);

        sfu.set_allowed(&bob, true).await;
        sfu.set_subscriptions(&bob, vec![alice.clone()]).await;
        let b = join(&clients, &bob, false).await;
        b.negotiate_subscriber(&sfu).await;
        connected(&b.subscriber_state, "bob subscriber").await;
        wait_until(
            "alice's client to be asked for a keyframe for bob",
            Duration::from_secs(10),
            || a.plis_received.load(Ordering::Relaxed) > plis_before,
        )
        .await;
        assert_eq!(b.received.get(&alice, true), 0, "alice's camera is stalled");
        assert!(events.lock().expect("lock").iter().any(|e| matches!(
            e,
            SfuEvent::KeyframeRequested { publisher, reason: KeyframeReason::NewSubscriber { subscriber }, .. }
                if *publisher == alice && *subscriber == bob
        )));

        // Carol's connection comes up while she waits in the lobby, where nothing is sent to
        // her; admitting her asks at once, still before any packet.
        sfu.set_subscriptions(&carol, vec![alice.clone()]).await;
        let c = join(&clients, &carol, false).await;
        c.negotiate_subscriber(&sfu).await;
        connected(&c.subscriber_state, "carol subscriber").await;
        let asked_for = |who: &PeerId| {
            events
                .lock()
                .expect("lock")
                .iter()
                .filter(|e| matches!(e, SfuEvent::KeyframeRequested { publisher, reason: KeyframeReason::NewSubscriber { subscriber }, .. } if *publisher == alice && subscriber == who))
                .count()
        };
        assert_eq!(asked_for(&carol), 0, "nothing is asked for someone in the lobby");
        let plis_before = a.plis_received.load(Ordering::Relaxed);
        sfu.set_allowed(&carol, true).await;
        wait_until(
            "alice's client to be asked for a keyframe for carol",
            Duration::from_secs(10),
            || asked_for(&carol) == 1 && a.plis_received.load(Ordering::Relaxed) > plis_before,
        )
        .await;
        assert_eq!(c.received.get(&alice, true), 0, "alice's camera is stalled");

        // The host turns Alice's camera off and on again: nothing is renegotiated, her video
        // is only wanted again, and that asks at once too.
        sfu.set_host_muted(&alice, MediaKind::Video, true).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        let plis_before = a.plis_received.load(Ordering::Relaxed);
        sfu.set_host_muted(&alice, MediaKind::Video, false).await;
        wait_until(
            "alice's client to be asked for a keyframe once her camera is allowed again",
            Duration::from_secs(10),
            || {
                a.plis_received.load(Ordering::Relaxed) > plis_before
                    && asked_for(&bob) == 2
                    && asked_for(&carol) == 2
            },
        )
        .await;

        // The camera comes back: both get it, and their first packets ask for no second
        // keyframe.
        let asked = (asked_for(&bob), asked_for(&carol));
        a.video_paused.store(false, Ordering::Relaxed);
        wait_until("alice's video to reach bob and carol", Duration::from_secs(10), || {
            b.received.get(&alice, true) > 20 && c.received.get(&alice, true) > 20
        })
        .await;
        assert_eq!(
            (asked_for(&bob), asked_for(&carol)),
            asked,
            "the first packets asked for keyframes again"
        );
        for client in [&a, &b, &c] {
            client.close().await;
        }
    })
    .await
    .expect("test finished in time");
}

/// A guest leaves and another joins while the host stays. The host's connection gives the
/// new guest's tracks the transceivers the departed guest's used, and each keeps its SSRC, so
/// that a host who sees guest after guest all day does not collect one stream (and one
/// statistics record in the SFU) per guest. On that SSRC the numbering goes on where it
/// stopped, and video waits for a key frame: the host's decoder still holds the departed
/// guest's pictures, and a delta frame of someone else's would be decoded against them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_guest_continues_the_departed_guests_streams() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(60), async {
        let sfu = start_sfu(None, true).await;
        let (clients, events) = spawn_signaling(&sfu);
        let (host, bob, carol) = ("host".to_owned(), "bob".to_owned(), "carol".to_owned());
        sfu.set_allowed(&host, true).await;
        sfu.set_allowed(&bob, true).await;
        sfu.set_subscriptions(&host, vec![bob.clone()]).await;
        let h = join(&clients, &host, false).await;
        h.negotiate_subscriber(&sfu).await;
        connected(&h.subscriber_state, "host subscriber").await;
        let b = join(&clients, &bob, false).await;
        b.publish(&sfu).await;
        wait_until(
            "bob's media to reach the host",
            Duration::from_secs(15),
            || h.received.get(&bob, true) > 20 && h.received.get(&bob, false) > 20,
        )
        .await;

        sfu.remove_peer(&bob).await;
        b.close().await;
        wait_until(
            "bob's tracks to be unpublished",
            Duration::from_secs(5),
            || {
                events
                    .lock()
                    .expect("lock")
                    .iter()
                    .filter(
                        |e| matches!(e, SfuEvent::TrackUnpublished { peer, .. } if *peer == bob),
                    )
                    .count()
                    == 2
            },
        )
        .await;
        // Nothing more of Bob's is in flight once the host has stopped hearing from him.
        let mut seen = (0, 0);
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = (h.received.get(&bob, true), h.received.get(&bob, false));
            if now == seen {
                break;
            }
            seen = now;
        }
        let (_, bob_video_last) = h.received.ends(&bob, true).expect("bob's video");
        let (_, bob_audio_last) = h.received.ends(&bob, false).expect("bob's audio");

        // Carol's camera sends only delta frames at first.
        sfu.set_allowed(&carol, true).await;
        sfu.set_subscriptions(&host, vec![carol.clone()]).await;
        let c = join(&clients, &carol, false).await;
        c.video_deltas.store(true, Ordering::Relaxed);
        let plis_before = c.plis_received.load(Ordering::Relaxed);
        c.publish(&sfu).await;
        wait_until(
            "carol's audio to reach the host, and her client to be asked for a key frame",
            Duration::from_secs(15),
            || {
                h.received.get(&carol, false) > 20
                    && c.plis_received.load(Ordering::Relaxed) > plis_before
            },
        )
        .await;
        let (audio_first, _) = h.received.ends(&carol, false).expect("carol's audio");
        assert_eq!(
            audio_first.0, bob_audio_last.0,
            "carol's audio is on bob's audio SSRC"
        );
        assert_eq!(
            audio_first.1,
            bob_audio_last.1.wrapping_add(1),
            "carol's audio continues the numbering of bob's"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            h.received.get(&carol, true),
            0,
            "delta frames reached the host before any key frame"
        );

        c.video_deltas.store(false, Ordering::Relaxed);
        wait_until(
            "carol's video to reach the host",
            Duration::from_secs(10),
            || h.received.get(&carol, true) > 20,
        )
        .await;
        let (video_first, _) = h.received.ends(&carol, true).expect("carol's video");
        assert_eq!(
            video_first.0, bob_video_last.0,
            "carol's video is on bob's video SSRC"
        );
        assert_eq!(
            video_first.1,
            bob_video_last.1.wrapping_add(1),
            "carol's video continues the numbering of bob's"
        );
        for client in [&h, &c] {
            client.close().await;
        }
    })
    .await
    .expect("test finished in time");
}

/// Network quality from receiver reports: on loopback both peers score 5 (excellent), until
/// one's reports come back 800 ms late. The SFU measures the round trip itself from LSR/DLSR
/// against its own sender reports (`rtc` does not), and that peer's score falls while the
/// other's stays where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_return_path_lowers_the_network_score() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(90), async {
        let sfu = start_sfu(None, true).await;
        let (clients, events) = spawn_signaling(&sfu);
        let (alice, bob) = ("alice".to_owned(), "bob".to_owned());
        for (me, other) in [(&alice, &bob), (&bob, &alice)] {
            sfu.set_allowed(me, true).await;
            sfu.set_subscriptions(me, vec![other.clone()]).await;
        }
        let a = join(&clients, &alice, false).await;
        let b = join_with(
            &clients,
            Client::with_report_delay(&bob, false, Some(Duration::from_millis(800))).await,
        );
        for client in [&a, &b] {
            client.publish(&sfu).await;
            client.negotiate_subscriber(&sfu).await;
        }
        let latest = |peer: &str| {
            events
                .lock()
                .expect("lock")
                .iter()
                .rev()
                .find_map(|e| match e {
                    SfuEvent::NetworkScore { peer: p, score } if p == peer => Some(*score),
                    _ => None,
                })
        };
        wait_until("alice to score excellent", Duration::from_secs(40), || {
            latest(&alice) == Some(5)
        })
        .await;
        wait_until(
            "bob's score to fall with his round trip",
            Duration::from_secs(40),
            || latest(&bob).is_some_and(|score| (1..=2).contains(&score)),
        )
        .await;
        assert_eq!(latest(&alice), Some(5), "alice's network did not change");
        for client in [&a, &b] {
            client.close().await;
        }
    })
    .await
    .expect("test finished in time");
}

/// Requirement 4: with UDP not advertised, both peers connect over ICE-TCP (RFC 4571) through
/// the listener hand-over and exchange media.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_only_call_over_ice_tcp() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(60), async {
        let (listener, tcp_port) = spawn_ice_tcp_listener().await;
        let sfu = start_sfu(Some(tcp_port), false).await;
        serve_listener(listener, sfu.clone());
        let (clients, _events) = spawn_signaling(&sfu);

        let (alice, bob) = ("alice".to_owned(), "bob".to_owned());
        for (me, other) in [(&alice, &bob), (&bob, &alice)] {
            sfu.set_allowed(me, true).await;
            sfu.set_subscriptions(me, vec![other.clone()]).await;
        }
        let a = join(&clients, &alice, true).await;
        let b = join(&clients, &bob, true).await;
        for client in [&a, &b] {
            client.publish(&sfu).await;
            client.negotiate_subscriber(&sfu).await;
        }
        wait_until(
            "alice and bob to exchange media over TCP",
            Duration::from_secs(30),
            || {
                a.received.get(&bob, true) > 100
                    && a.received.get(&bob, false) > 100
                    && b.received.get(&alice, true) > 100
                    && b.received.get(&alice, false) > 100
            },
        )
        .await;
        for peer in [&alice, &bob] {
            let stats = sfu.stats(peer).await.expect("stats");
            for pc in [stats.publisher, stats.subscriber] {
                let pair = pc.and_then(|p| p.selected_pair).expect("selected pair");
                assert_eq!(pair.protocol, IceProtocol::Tcp);
                assert_eq!(pair.local.port(), tcp_port);
            }
        }
        for client in [&a, &b] {
            client.close().await;
        }
    })
    .await
    .expect("test finished in time");
}

/// RFC 4571 framing and routing with a raw TCP client: a framed binding request with our ufrag
/// and password is answered on the same connection; one with a wrong password gets the
/// connection closed without an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_ice_tcp_binding_request_is_routed_by_ufrag() {
    use rtc::ice::attributes::control::AttrControlling;
    use rtc::ice::attributes::priority::PriorityAttr;
    use rtc::stun::attributes::ATTR_USERNAME;
    use rtc::stun::fingerprint::FINGERPRINT;
    use rtc::stun::integrity::MessageIntegrity;
    use rtc::stun::message::{BINDING_REQUEST, Message, TransactionId};
    use rtc::stun::textattrs::Username;

    init_tracing();
    tokio::time::timeout(Duration::from_secs(30), async {
        let (listener, tcp_port) = spawn_ice_tcp_listener().await;
        let sfu = start_sfu(Some(tcp_port), false).await;
        serve_listener(listener, sfu.clone());

        // An offer from a sans-IO peer that never touches the network: we only want the
        // credentials the SFU answers with.
        let mut media = MediaEngine::default();
        media.register_default_codecs().expect("codecs");
        let mut offerer = rtc::peer_connection::RTCPeerConnectionBuilder::new()
            .with_media_engine(media)
            .build(Instant::now())
            .expect("offerer");
        offerer
            .add_transceiver_from_kind(RtpCodecKind::Audio, None)
            .expect("transceiver");
        let offer = offerer.create_offer(None).expect("offer");
        let remote_ufrag = offer
            .sdp
            .lines()
            .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
            .unwrap_or_else(|| panic!("offer ufrag in {}", offer.sdp))
            .to_owned();
        let peer = "raw".to_owned();
        let answer = sfu
            .publisher_answer(&peer, offer.sdp)
            .await
            .expect("answer");
        let attr = |name: &str| {
            answer
                .lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix(&format!("a={name}:"))
                        .map(str::to_owned)
                })
                .expect("answer attribute")
        };
        let (ufrag, pwd) = (attr("ice-ufrag"), attr("ice-pwd"));
        assert!(
            answer.contains("tcptype passive"),
            "TCP candidate advertised"
        );
        assert!(
            !answer.contains(" udp "),
            "UDP not advertised when disabled"
        );

        let crypto = rtc::crypto::default_provider().expect("crypto");
        let request = |password: &str| {
            let mut msg = Message::new();
            msg.build(&[
                Box::new(BINDING_REQUEST),
                Box::new(TransactionId::new()),
                Box::new(Username::new(
                    ATTR_USERNAME,
                    format!("{ufrag}:{remote_ufrag}"),
                )),
                Box::new(AttrControlling(7)),
                Box::new(PriorityAttr(1_000)),
                Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
                    password.to_owned(),
                    crypto.crypto(),
                )),
                Box::new(FINGERPRINT),
            ])
            .expect("build request");
            let mut framed = (msg.raw.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&msg.raw);
            framed
        };

        // Right password: a framed success response comes back.
        let mut stream = TcpStream::connect((LOCALHOST, tcp_port))
            .await
            .expect("connect");
        stream.write_all(&request(&pwd)).await.expect("write");
        let mut len = [0u8; 2];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut len))
            .await
            .expect("response in time")
            .expect("read length");
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut body).await.expect("read body");
        assert_eq!(&body[0..2], &[0x01, 0x01], "binding success response");

        // Wrong password: closed, nothing answered.
        let before = sfu.counters().garbage_tcp_frames;
        let mut stream = TcpStream::connect((LOCALHOST, tcp_port))
            .await
            .expect("connect");
        stream
            .write_all(&request("not-the-password"))
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("closed in time");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "connection closed without an answer"
        );
        wait_until(
            "the unauthenticated connection to be counted",
            Duration::from_secs(5),
            || sfu.counters().garbage_tcp_frames > before,
        )
        .await;
    })
    .await
    .expect("test finished in time");
}

/// Plain STUN binding requests (no USERNAME: a page's or `rounds-server check`'s reachability
/// probe) are answered on the UDP port and over ICE-TCP, decoded here with `rtc`'s own STUN
/// code, while a call over the same UDP port keeps flowing. With UDP media off, the UDP port
/// stays silent and the TCP fallback still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_stun_probes_are_answered_beside_a_call() {
    use rtc::stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Getter, Message, TransactionId};
    use rtc::stun::xoraddr::XorMappedAddress;

    fn request() -> (Vec<u8>, TransactionId) {
        let mut m = Message::new();
        m.set_type(BINDING_REQUEST);
        m.transaction_id = TransactionId::new();
        m.write_header();
        (m.raw.clone(), m.transaction_id)
    }

    /// The address a binding success for `txid` reports.
    fn mapped(answer: &[u8], txid: TransactionId) -> SocketAddr {
        let mut m = Message {
            raw: answer.to_vec(),
            ..Message::default()
        };
        m.decode().expect("a STUN message");
        assert_eq!(m.typ, BINDING_SUCCESS);
        assert_eq!(m.transaction_id, txid);
        let mut xor = XorMappedAddress::default();
        xor.get_from(&m).expect("XOR-MAPPED-ADDRESS");
        SocketAddr::new(xor.ip, xor.port)
    }

    async fn tcp_probe(port: u16) -> (SocketAddr, SocketAddr) {
        let mut stream = TcpStream::connect((LOCALHOST, port))
            .await
            .expect("connect");
        let (req, txid) = request();
        let mut framed = (req.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&req);
        stream.write_all(&framed).await.expect("send");
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.expect("a framed answer");
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut answer).await.expect("answer");
        (mapped(&answer, txid), stream.local_addr().expect("addr"))
    }

    init_tracing();
    tokio::time::timeout(Duration::from_secs(60), async {
        let (listener, tcp_port) = spawn_ice_tcp_listener().await;
        let sfu = start_sfu(Some(tcp_port), true).await;
        serve_listener(listener, sfu.clone());
        let (clients, _events) = spawn_signaling(&sfu);
        let (alice, bob) = ("alice".to_owned(), "bob".to_owned());
        for (me, other) in [(&alice, &bob), (&bob, &alice)] {
            sfu.set_allowed(me, true).await;
            sfu.set_subscriptions(me, vec![other.clone()]).await;
        }
        let a = join(&clients, &alice, false).await;
        let b = join(&clients, &bob, false).await;
        for client in [&a, &b] {
            client.publish(&sfu).await;
            client.negotiate_subscriber(&sfu).await;
        }
        wait_until("media both ways", Duration::from_secs(30), || {
            a.received.get(&bob, true) > 50 && b.received.get(&alice, true) > 50
        })
        .await;

        // Probes from one socket, during the call: each answered with where it came from.
        let probe = UdpSocket::bind((LOCALHOST, 0)).await.expect("bind");
        let me = probe.local_addr().expect("addr");
        let mut buf = [0u8; 1500];
        for _ in 0..10 {
            let (req, txid) = request();
            probe.send_to(&req, sfu.udp_addr()).await.expect("send");
            let (n, from) = tokio::time::timeout(Duration::from_secs(5), probe.recv_from(&mut buf))
                .await
                .expect("an answer in time")
                .expect("recv");
            assert_eq!(from, sfu.udp_addr());
            assert!(n <= 44, "a small fixed-size answer: {n} bytes");
            assert_eq!(mapped(&buf[..n], txid), me);
        }
        // A flood from the same source is cut to its burst, not answered in full.
        for _ in 0..200 {
            let (req, _) = request();
            let _ = probe.send_to(&req, sfu.udp_addr()).await;
        }
        let mut answered = 0;
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(500), probe.recv_from(&mut buf)).await
        {
            answered += 1;
        }
        assert!(
            answered < 100,
            "{answered} of 200 flooded probes were answered"
        );
        let (seen, local) = tcp_probe(tcp_port).await;
        assert_eq!(
            seen, local,
            "the ICE-TCP answer names the connection's address"
        );

        // The call never noticed.
        let (from_bob, from_alice) = (a.received.get(&bob, true), b.received.get(&alice, true));
        wait_until("media keeps flowing", Duration::from_secs(20), || {
            a.received.get(&bob, true) > from_bob + 50
                && b.received.get(&alice, true) > from_alice + 50
        })
        .await;
        assert_eq!(sfu.counters().poisoned_connections, 0);
        for client in [&a, &b] {
            client.close().await;
        }

        // UDP media off: silence on UDP (media would not take it), the fallback answers.
        let (listener, tcp_port) = spawn_ice_tcp_listener().await;
        let tcp_only = start_sfu(Some(tcp_port), false).await;
        serve_listener(listener, tcp_only.clone());
        let (req, _) = request();
        probe
            .send_to(&req, tcp_only.udp_addr())
            .await
            .expect("send");
        let silent =
            tokio::time::timeout(Duration::from_millis(700), probe.recv_from(&mut buf)).await;
        assert!(silent.is_err(), "UDP answered with UDP media off");
        let (seen, local) = tcp_probe(tcp_port).await;
        assert_eq!(seen, local);
    })
    .await
    .expect("test finished in time");
}

// ---- ICE: a nomination that comes before our own check -----------------------------------------

/// `a=<name>:<value>` from an SDP.
fn sdp_attribute<'a>(sdp: &'a str, name: &str) -> &'a str {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("a={name}:")))
        .unwrap_or_else(|| panic!("no a={name} in:\n{sdp}"))
}

/// A STUN message received on `socket` within `wait`, decoded, with its sender.
async fn stun_from(
    socket: &UdpSocket,
    wait: Duration,
) -> Option<(rtc::stun::message::Message, SocketAddr)> {
    let mut buf = vec![0u8; 1500];
    loop {
        let (n, from) = tokio::time::timeout(wait, socket.recv_from(&mut buf))
            .await
            .ok()?
            .expect("recv");
        let mut message = rtc::stun::message::Message {
            raw: buf[..n].to_vec(),
            ..Default::default()
        };
        if message.decode().is_ok() {
            return Some((message, from));
        }
    }
}

/// RFC 8445, section 7.3.1.5, on the server's (controlled) side, as Chromium exercises it: a
/// client may nominate a pair (a check with USE-CANDIDATE) before the server's own check of
/// that pair has succeeded. The nomination then takes effect when the server's check
/// succeeds, and the client's request is answered. The client here speaks raw STUN and
/// nominates exactly once; had the server forgotten the early nomination, ICE would wait for
/// another one that never comes (Chromium sends it at its ping interval, up to 2.5 s later).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nomination_before_our_own_check_takes_effect_when_the_check_succeeds() {
    use rtc::ice::attributes::control::AttrControlling;
    use rtc::ice::attributes::priority::PriorityAttr;
    use rtc::ice::attributes::use_candidate::UseCandidateAttr;
    use rtc::stun::attributes::ATTR_USERNAME;
    use rtc::stun::fingerprint::FINGERPRINT;
    use rtc::stun::integrity::MessageIntegrity;
    use rtc::stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Message, Setter, TransactionId};
    use rtc::stun::textattrs::Username;
    use rtc::stun::xoraddr::XorMappedAddress;

    init_tracing();
    tokio::time::timeout(Duration::from_secs(30), async {
        let sfu = start_sfu(None, true).await;
        let alice = "alice".to_owned();
        sfu.set_allowed(&alice, true).await;

        // An offer from a real client library, whose ICE agent is never started: the test
        // plays the client's ICE by hand.
        let client = Client::new(&alice, false).await;
        let mic = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            alice.clone(),
            "alice-mic".to_owned(),
            "mic".to_owned(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(4242),
                    ..Default::default()
                },
                codec: opus(),
                ..Default::default()
            }],
        )));
        client
            .publisher
            .add_track(mic as Arc<dyn TrackLocal>)
            .await
            .expect("add audio");
        let offer = client.publisher.create_offer(None).await.expect("offer");
        let answer = sfu
            .publisher_answer(&alice, offer.sdp.clone())
            .await
            .expect("publisher answer");
        let (our_ufrag, our_pwd) = (
            sdp_attribute(&offer.sdp, "ice-ufrag").to_owned(),
            sdp_attribute(&offer.sdp, "ice-pwd").to_owned(),
        );
        let (server_ufrag, server_pwd) = (
            sdp_attribute(&answer, "ice-ufrag").to_owned(),
            sdp_attribute(&answer, "ice-pwd").to_owned(),
        );
        let server: SocketAddr = {
            let candidate = sdp_attribute(&answer, "candidate");
            let fields: Vec<&str> = candidate.split_whitespace().collect();
            assert_eq!(
                fields[2].to_ascii_lowercase(),
                "udp",
                "a UDP candidate: {candidate}"
            );
            format!("{}:{}", fields[4], fields[5])
                .parse()
                .expect("candidate address")
        };
        let provider = rtc::crypto::default_provider().expect("crypto provider");
        let crypto = provider.crypto();

        // The client's one nominating check, from an address the server has not seen.
        let socket = UdpSocket::bind((LOCALHOST, 0)).await.expect("bind");
        /// A STUN message with `parts`, signed with `pwd` (ICE's short-term credential).
        fn signed<'a>(
            mut parts: Vec<Box<dyn Setter + 'a>>,
            pwd: &str,
            crypto: &'a dyn rtc::crypto::RTCCrypto,
        ) -> Message {
            parts.push(Box::new(
                MessageIntegrity::new_short_term_integrity_with_provider(pwd.to_owned(), crypto),
            ));
            parts.push(Box::new(FINGERPRINT));
            let mut message = Message::new();
            message.build(&parts).expect("a STUN message");
            message
        }
        let nomination = signed(
            vec![
                Box::new(BINDING_REQUEST),
                Box::new(TransactionId::new()),
                Box::new(Username::new(
                    ATTR_USERNAME,
                    format!("{server_ufrag}:{our_ufrag}"),
                )),
                Box::new(AttrControlling(7)),
                Box::new(UseCandidateAttr),
                Box::new(PriorityAttr(1_853_817_087)),
            ],
            &server_pwd,
            crypto,
        );
        socket
            .send_to(&nomination.raw, server)
            .await
            .expect("send the nomination");

        // The server checks the pair itself before it answers.
        let (check, from) = stun_from(&socket, Duration::from_secs(5))
            .await
            .expect("the server's own check of the pair");
        assert_eq!(from, server);
        assert_eq!(
            check.typ, BINDING_REQUEST,
            "the server checks the pair before answering the nomination"
        );
        let reply = signed(
            vec![
                Box::new(BINDING_SUCCESS),
                Box::new(check.transaction_id),
                Box::new(XorMappedAddress {
                    ip: server.ip(),
                    port: server.port(),
                }),
            ],
            &our_pwd,
            crypto,
        );
        socket
            .send_to(&reply.raw, server)
            .await
            .expect("answer the server's check");

        // Now the nomination is answered, though the client never sent it again.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some((message, _)) = stun_from(&socket, left).await else {
                panic!("the client's nomination was never answered");
            };
            if message.typ == BINDING_SUCCESS && message.transaction_id == nomination.transaction_id
            {
                break;
            }
        }
        client.close().await;
    })
    .await
    .expect("test timed out");
}
