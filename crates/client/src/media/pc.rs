//! Building a `webrtc` 0.21 peer connection the way Rounds needs it, and the event handler
//! that turns its callbacks into [`MediaEvent`]s for the session task.

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rounds_proto::PcKind;
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::{
    Registry, register_default_interceptors,
};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::sansio::Protocol;
use tokio::sync::mpsc;
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceCandidateInit,
    RTCIceGatheringState, RTCPeerConnectionIceEvent, RTCPeerConnectionState, SrtpProtectionProfile,
};

use super::subscriber::ReceiveContext;
use crate::ClientError;
use crate::stats::{CandidatePair, IceProtocol, PcState};

/// RFC 6464 client-to-mixer audio level.
pub(crate) const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
/// Payload types we offer; the answer's choice is read back from the sender.
pub(crate) const OPUS_PT: u8 = 111;
pub(crate) const VP8_PT: u8 = 96;
/// Where our keyframe-request tap sits: after every standard interceptor (the largest
/// standard slot is 13 000), so NACK, reports and TWCC see the compound packet first.
const TAP_SLOT: usize = 20_000;

/// How often ICE checks the path with a STUN request (consent), on a connection in use.
///
/// `rtc` 0.21 counts only STUN as a sign of life, not the media flowing beside it: a
/// connection that hears no STUN for [`ICE_DISCONNECTED_AFTER`] is `Disconnected`, and a
/// publisher still so 3 s later is rebuilt (a freeze of several seconds). With its default
/// of one request every 2 s, three lost in a row on a 10 % lossy link (about one sequence in
/// a thousand, so about one call in ten) did exactly that to a connection carrying video
/// fine. Every 500 ms it takes ten in a row. The cost is two small packets a second.
const ICE_KEEPALIVE: Duration = Duration::from_millis(500);
/// No STUN heard for this long: `Disconnected` (the `rtc` default, kept: a real cut is still
/// noticed as soon as before).
const ICE_DISCONNECTED_AFTER: Duration = Duration::from_secs(5);
/// And this long after that: `Failed` (the `rtc` default).
const ICE_FAILED_AFTER: Duration = Duration::from_secs(25);

/// What a peer connection tells the session task. `generation` tells a current connection
/// from one that was replaced.
#[derive(Debug)]
pub(crate) enum MediaEvent {
    LocalCandidate {
        pc: PcKind,
        generation: u64,
        candidate: RTCIceCandidateInit,
    },
    GatheringComplete {
        pc: PcKind,
        generation: u64,
    },
    State {
        pc: PcKind,
        generation: u64,
        state: RTCPeerConnectionState,
    },
}

pub(crate) fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

pub(crate) fn vp8_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        // nack and nack pli are added by the NACK interceptor helper.
        rtcp_feedback: vec![RTCPFeedback {
            typ: "ccm".to_owned(),
            parameter: "fir".to_owned(),
        }],
    }
}

pub(crate) fn pc_state(state: RTCPeerConnectionState) -> PcState {
    match state {
        RTCPeerConnectionState::New => PcState::New,
        RTCPeerConnectionState::Connecting => PcState::Connecting,
        RTCPeerConnectionState::Connected => PcState::Connected,
        RTCPeerConnectionState::Disconnected => PcState::Disconnected,
        RTCPeerConnectionState::Failed => PcState::Failed,
        RTCPeerConnectionState::Closed => PcState::Closed,
        _ => PcState::New,
    }
}

/// Is this RTCP packet a keyframe request?
pub(crate) fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

/// Inbound RTCP ends in a no-op terminus in `rtc` unless an interceptor marks a packet
/// `DeliverToApplication`. This one keeps keyframe requests (so the publisher can answer a
/// PLI with a keyframe) and lets the rest, already acted on by the interceptors, stop there.
///
/// It also counts the packets NACKs ask to be sent again, for the client's stats.
#[derive(Default)]
struct KeyframeRequestTap {
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
    nack_requests: Arc<AtomicU64>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &mut msg.message.packet {
            let requested: usize = packets
                .iter()
                .filter_map(|p| p.as_any().downcast_ref::<TransportLayerNack>())
                .flat_map(|nack| nack.nacks.iter())
                .map(|pair| pair.packet_list().len())
                .sum();
            if requested > 0 {
                self.nack_requests
                    .fetch_add(requested as u64, Ordering::Relaxed);
            }
            packets.retain(|p| is_keyframe_request(p.as_ref()));
            if packets.is_empty() {
                return Ok(());
            }
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

impl Interceptor for KeyframeRequestTap {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

/// Turns peer connection callbacks into [`MediaEvent`]s. Callbacks run on the connection's
/// driver task, so nothing here waits: work goes to channels and spawned tasks.
pub(crate) struct PcHandler {
    pub(crate) kind: PcKind,
    pub(crate) generation: u64,
    pub(crate) events: mpsc::UnboundedSender<MediaEvent>,
    /// Subscriber connections: where remote tracks are read and counted.
    pub(crate) receive: Option<Arc<ReceiveContext>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for PcHandler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(candidate) => {
                let _ = self.events.send(MediaEvent::LocalCandidate {
                    pc: self.kind,
                    generation: self.generation,
                    candidate,
                });
            }
            Err(error) => {
                tracing::debug!(pc = ?self.kind, %error, "local candidate not serialisable")
            }
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.events.send(MediaEvent::GatheringComplete {
                pc: self.kind,
                generation: self.generation,
            });
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.events.send(MediaEvent::State {
            pc: self.kind,
            generation: self.generation,
            state,
        });
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Some(receive) = &self.receive {
            receive.spawn_reader(track);
        }
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        // Nothing rides on the SFU's data channel yet, but its events must be drained: while
        // any are left unread the driver stops reading from the connection, media included.
        tokio::spawn(async move { while channel.poll().await.is_some() {} });
    }
}

/// Where and how a peer connection gathers candidates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NetOptions {
    pub(crate) bind_ip: IpAddr,
    pub(crate) tcp_only: bool,
}

/// Builds a peer connection with VP8 and Opus, the audio-level extension, the default
/// interceptors (NACK, reports, TWCC feedback) plus our keyframe-request tap, AES-GCM SRTP
/// first, and host candidates on `bind_ip`: UDP, or (ICE-TCP) TCP only.
///
/// `nack_requests` counts the packets the remote end asks to have resent.
pub(crate) async fn build(
    net: NetOptions,
    handler: PcHandler,
    nack_requests: Arc<AtomicU64>,
) -> Result<Arc<dyn PeerConnection>, ClientError> {
    let mut media = MediaEngine::default();
    // Codecs first: the interceptor helpers add their feedback to codecs already present.
    media.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: opus_codec(),
            payload_type: OPUS_PT,
        },
        RtpCodecKind::Audio,
    )?;
    media.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: vp8_codec(),
            payload_type: VP8_PT,
        },
        RtpCodecKind::Video,
    )?;
    media.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: AUDIO_LEVEL_URI.to_owned(),
        },
        RtpCodecKind::Audio,
        None,
    )?;
    let registry = register_default_interceptors(Registry::new(), &mut media)?.with(
        Slot::from(TAP_SLOT),
        KeyframeRequestTap {
            nack_requests,
            ..KeyframeRequestTap::default()
        },
    );

    let mut settings = SettingEngineBuilder::new()
        .with_srtp_protection_profiles(vec![
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
            SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        ])
        .with_ice_timeouts(
            Some(ICE_DISCONNECTED_AFTER),
            Some(ICE_FAILED_AFTER),
            Some(ICE_KEEPALIVE),
        );
    // One transport or the other, never both: with UDP and TCP candidates together the
    // 0.21 agent sometimes nominates the TCP pair even though UDP works.
    {
        use rtc::ice::network_type::NetworkType;
        settings = settings.with_network_types(if net.tcp_only {
            vec![NetworkType::Tcp4, NetworkType::Tcp6]
        } else {
            vec![NetworkType::Udp4, NetworkType::Udp6]
        });
    }
    let local = SocketAddr::new(net.bind_ip, 0);
    let (udp, tcp) = if net.tcp_only {
        (vec![], vec![local])
    } else {
        (vec![local], vec![])
    };
    // The builder's future is about 20 kB; box it rather than every caller's future.
    let pc = Box::pin(
        PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_setting_engine(settings.build())
            .with_interceptor_registry(registry)
            // Without a handler, build() fails ("no event handler found").
            .with_handler(Arc::new(handler))
            .with_udp_addrs(udp)
            .with_tcp_addrs(tcp)
            .build(),
    )
    .await?;
    Ok(Arc::new(pc))
}

/// The selected candidate pair, from the ICE transport of the first transceiver (or of the
/// data channel's SCTP transport). The stats report names the pair but has no entry for its
/// remote candidate, so it is read from the transport instead.
pub(crate) async fn selected_pair(pc: &Arc<dyn PeerConnection>) -> Option<CandidatePair> {
    let mut transport = None;
    for transceiver in pc.get_transceivers().await {
        if let Ok(Some(sender)) = transceiver.sender().await
            && let Ok(Some(t)) = sender.transport().await
        {
            transport = Some(t);
            break;
        }
        if let Ok(Some(receiver)) = transceiver.receiver().await
            && let Ok(Some(t)) = receiver.transport().await
        {
            transport = Some(t);
            break;
        }
    }
    if transport.is_none()
        && let Some(sctp) = pc.sctp().await
    {
        transport = Some(sctp.transport());
    }
    let pair = transport?
        .ice_transport()
        .get_selected_candidate_pair()
        .await
        .ok()??;
    let addr = |c: &webrtc::peer_connection::RTCIceCandidate| -> Option<SocketAddr> {
        Some(SocketAddr::new(c.address.parse().ok()?, c.port))
    };
    let protocol = match pair.local().protocol {
        webrtc::peer_connection::RTCIceProtocol::Tcp => IceProtocol::Tcp,
        _ => IceProtocol::Udp,
    };
    Some(CandidatePair {
        local: addr(pair.local())?,
        remote: addr(pair.remote())?,
        protocol,
    })
}

/// The transport field of a candidate line (`candidate:<foundation> <component> <transport> ...`).
fn candidate_transport(candidate: &str) -> Option<&str> {
    candidate
        .trim()
        .strip_prefix("a=")
        .unwrap_or(candidate.trim())
        .split_whitespace()
        .nth(2)
}

/// Remote candidates of one connection: held until the remote description is set, limited to
/// the transport we gather, and each passive TCP candidate dialled once. (The `webrtc` client
/// dials a passive TCP candidate only when it comes through `add_ice_candidate`, so those in
/// the remote description are added again here.)
pub(crate) struct RemoteCandidates {
    tcp_only: bool,
    ready: bool,
    pending: Vec<RTCIceCandidateInit>,
    seen: HashSet<String>,
}

impl RemoteCandidates {
    pub(crate) fn new(tcp_only: bool) -> Self {
        RemoteCandidates {
            tcp_only,
            ready: false,
            pending: Vec::new(),
            seen: HashSet::new(),
        }
    }

    pub(crate) async fn add(
        &mut self,
        pc: &Arc<dyn PeerConnection>,
        candidate: RTCIceCandidateInit,
    ) {
        if !self.ready {
            if self.pending.len() < 64 {
                self.pending.push(candidate);
            }
            return;
        }
        let line = candidate.candidate.trim();
        if !line.is_empty() {
            let tcp = candidate_transport(line).is_some_and(|t| t.eq_ignore_ascii_case("tcp"));
            if tcp != self.tcp_only {
                return;
            }
            let key = line.strip_prefix("candidate:").unwrap_or(line).to_owned();
            if !self.seen.insert(key) {
                return;
            }
        }
        if let Err(error) = pc.add_ice_candidate(candidate).await {
            tracing::debug!(%error, "remote candidate not added");
        }
    }

    /// The remote description is set: add what waited, and (ICE-TCP) the passive TCP
    /// candidates the description carries.
    pub(crate) async fn ready(
        &mut self,
        pc: &Arc<dyn PeerConnection>,
        remote_sdp: &str,
        mid: Option<String>,
    ) {
        self.ready = true;
        for candidate in std::mem::take(&mut self.pending) {
            self.add(pc, candidate).await;
        }
        if self.tcp_only {
            for line in super::sdp::passive_tcp_candidates(remote_sdp) {
                let candidate = RTCIceCandidateInit {
                    candidate: line,
                    sdp_mid: mid.clone().or_else(|| Some("0".to_owned())),
                    sdp_mline_index: Some(0),
                    ..Default::default()
                };
                self.add(pc, candidate).await;
            }
        }
    }
}
