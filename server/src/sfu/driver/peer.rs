//! One `rtc` peer connection, configured the way the SFU needs it, and the bookkeeping the
//! driver keeps beside it (routing credentials, counters, published receivers, subscriber
//! senders).
//!
//! Every connection is ICE-lite: the server never sends connectivity checks, it answers the
//! client's. That keeps routing simple (every STUN request we see names our ufrag, and we only
//! ever reply to addresses that proved they know our password) and is what SFUs normally do.
//!
//! Calls into `rtc` go through [`guard`]: `rtc` is a large dependency processing bytes from the
//! network, and a bug there must cost one connection, not the process.

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use rand::Rng;
use rand::distributions::Alphanumeric;
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::interceptor::{
    NackGeneratorBuilder, NackResponderBuilder, ReceiverReportBuilder, SenderReportBuilder,
};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::{
    Registry, Slot, configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability,
    RtpCodecKind, TYPE_RTCP_FB_NACK,
};
use rtc::shared::TransportContext;

use super::feedback::{FeedbackTap, SharedFeedback, TAP_SLOT};
use super::rewrite::StreamRewriter;
use super::{Layer, MediaKind, PcId, PcKind, PcState, PeerId, SfuError, VideoCodec};

/// RFC 6464 client-to-mixer audio level.
pub(crate) const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// Runs `f`, turning a panic inside `rtc` into an error for this connection only.
pub(crate) fn guard<T>(f: impl FnOnce() -> T) -> Result<T, SfuError> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|_| SfuError::Poisoned)
}

/// ICE credentials we choose, so that the ufrag routes STUN to this connection. ICE allows
/// `[A-Za-z0-9+/]`; alphanumerics keep them safe in every log and SDP parser.
pub(crate) fn random_credential(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn video_feedback() -> Vec<RTCPFeedback> {
    // nack / nack pli / transport-cc are added by the interceptor helpers below.
    vec![RTCPFeedback {
        typ: "ccm".to_owned(),
        parameter: "fir".to_owned(),
    }]
}

/// Registers Opus, VP8 and H.264 (packetization mode 1, constrained baseline). The room's
/// codec goes first: it is the one an answer picks when the client offers both.
fn register_codecs(media: &mut MediaEngine, video: VideoCodec) -> Result<(), SfuError> {
    let mut codecs = [
        (
            RtpCodecKind::Audio,
            111,
            RTCRtpCodec {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48_000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                rtcp_feedback: vec![],
            },
        ),
        (
            RtpCodecKind::Video,
            96,
            RTCRtpCodec {
                mime_type: MIME_TYPE_VP8.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: video_feedback(),
            },
        ),
        (
            RtpCodecKind::Video,
            102,
            RTCRtpCodec {
                mime_type: MIME_TYPE_H264.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line:
                    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
                        .to_owned(),
                rtcp_feedback: video_feedback(),
            },
        ),
    ];
    if video == VideoCodec::H264 {
        codecs.swap(1, 2);
    }
    for (kind, payload_type, rtp_codec) in codecs {
        media.register_codec(
            RTCRtpCodecParameters {
                rtp_codec,
                payload_type,
            },
            kind,
        )?;
    }
    Ok(())
}

/// Builds one ICE-lite peer connection that answers STUN for `ufrag`/`pwd`, and the cell its
/// RTCP feedback lands in.
///
/// Media goes one way on each connection, and each carries only the interceptors of its
/// direction: every packet the SFU forwards passes through each interceptor of its subscriber
/// leg, moved from queue to queue, so one that has nothing to do there still costs.
/// - A publisher connection receives: NACKs for lost packets, receiver reports, and
///   transport-wide congestion control (TWCC) feedback, which the client's send-side bandwidth
///   estimate runs on.
/// - A subscriber connection sends: it answers NACKs from the send history and sends sender
///   reports. No TWCC: nothing here would read the client's feedback (downlinks are estimated
///   from receiver reports, engine/bandwidth.rs); negotiating it would cost a sequence-number
///   extension in every forwarded packet, and a stream of feedback packets from every
///   subscriber to decrypt and throw away.
pub(crate) fn build_peer_connection(
    ufrag: &str,
    pwd: &str,
    kind: PcKind,
    video: VideoCodec,
    now: Instant,
) -> Result<(RTCPeerConnection, SharedFeedback), SfuError> {
    let mut media = MediaEngine::default();
    // Codecs first: the interceptor helpers add their RTCP feedback to codecs already present.
    register_codecs(&mut media, video)?;
    media.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: AUDIO_LEVEL_URI.to_owned(),
        },
        RtpCodecKind::Audio,
        None,
    )?;
    configure_simulcast_extension_headers(&mut media)?;
    // The NACK feedback both legs advertise; rtc's `configure_nack` would also put both NACK
    // interceptors on every leg.
    for parameter in ["", "pli"] {
        media.register_feedback(
            RTCPFeedback {
                typ: TYPE_RTCP_FB_NACK.to_owned(),
                parameter: parameter.to_owned(),
            },
            RtpCodecKind::Video,
        );
    }
    // No congestion-control (GCC) interceptor on either leg: over TWCC it recorded every packet
    // sent to every subscriber, which made the forwarding loop fall behind under load.
    let registry = match kind {
        PcKind::Publisher => configure_twcc_receiver_only(Registry::new(), &mut media)?
            .with(Slot::NackGenerator, NackGeneratorBuilder::new().build())
            .with(Slot::ReceiverReport, ReceiverReportBuilder::new().build()),
        PcKind::Subscriber => Registry::new()
            .with(Slot::NackResponder, NackResponderBuilder::new().build())
            .with(Slot::SenderReport, SenderReportBuilder::new().build()),
    };
    let feedback = SharedFeedback::default();
    let registry = registry.with(
        Slot::from(TAP_SLOT),
        FeedbackTap::new(feedback.clone(), now),
    );

    let settings = SettingEngineBuilder::new()
        .with_lite(true)
        .with_ice_credentials(ufrag.to_owned(), pwd.to_owned())
        // AEAD only (docs/adr/0004): every current browser offers AES-GCM. Which of the two
        // is used depends on who is the DTLS server, whose list order wins: rtc-dtls follows
        // the client's order, so Chrome (256 before 128) ends up on AES-256-GCM.
        .with_srtp_protection_profiles(vec![
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
            SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm,
        ])
        .build();

    let pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .build(now)?;
    Ok((pc, feedback))
}

/// Which published track a subscriber sender carries: the publisher and the track's mid on the
/// publisher's connection (unique per connection, unlike client-chosen track ids).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TrackKey {
    pub(crate) publisher: PeerId,
    pub(crate) mid: String,
}

/// Negotiated values a sender needs per packet, valid for one negotiation generation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SendParams {
    pub(crate) generation: u64,
    pub(crate) payload_type: Option<u8>,
    pub(crate) audio_level_id: Option<u8>,
}

/// One track we send on a subscriber connection.
#[derive(Debug)]
pub(crate) struct SendSlot {
    pub(crate) sender_id: RTCRtpSenderId,
    pub(crate) track_id: String,
    pub(crate) ssrc: u32,
    pub(crate) kind: MediaKind,
    pub(crate) mime_type: String,
    /// Whether the last packet of this track was forwarded; a false-to-true edge on a video
    /// track asks the publisher for a keyframe.
    pub(crate) forwarding: bool,
    /// When a keyframe was asked for because this leg became able to receive (connected and
    /// negotiated), before its first packet; the first packet forwarded soon after then does
    /// not ask again.
    pub(crate) keyframe_primed: Option<Instant>,
    /// The client answered an offer that lists this sender.
    pub(crate) negotiated: bool,
    pub(crate) params: Option<SendParams>,
    /// Keeps this sender's sequence numbers and timestamps continuous when its source
    /// changes: a simulcast layer switch, or a publisher that rebuilt its connection.
    pub(crate) rewrite: StreamRewriter,
    /// The engine's answer for this leg (`Engine::stream_for`), cached so that no decision is
    /// looked up per packet: `None` nothing, `Some(None)` the track's only stream,
    /// `Some(Some(layer))` that simulcast layer. Refreshed after every change.
    pub(crate) want: Option<Option<Layer>>,
    /// The stream being forwarded. It differs from `want` while a layer switch waits for a
    /// keyframe of the new layer, so the picture never stops in between.
    pub(crate) current: Option<Option<Layer>>,
    /// When the layer switch under way started, to ask again if its keyframe is slow.
    pub(crate) switch_since: Option<Instant>,
    /// The sender carries on an SSRC another track used on this connection (see
    /// `PcEntry::idle_senders`): the client's decoder still holds that track's pictures, so
    /// video starts at a keyframe, as a layer switch does.
    pub(crate) continues: bool,
}

impl SendSlot {
    /// The stream this sender gets, if its leg can carry it now: the engine wants it sent,
    /// the connection is up (`connected`), and the client has answered an offer listing the
    /// sender, so it knows the SSRC (before that, the packets and the keyframe they would
    /// trigger are lost).
    pub(crate) fn receivable(&self, connected: bool) -> Option<Option<Layer>> {
        self.want.filter(|_| connected && self.negotiated)
    }
}

/// A subscriber transceiver with no sender, waiting to carry the next track of its kind.
#[derive(Debug)]
pub(crate) struct IdleSender {
    pub(crate) kind: MediaKind,
    pub(crate) ssrc: u32,
    pub(crate) rewrite: StreamRewriter,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PcCounters {
    pub(crate) packets_in: u64,
    pub(crate) bytes_in: u64,
    pub(crate) packets_out: u64,
    pub(crate) bytes_out: u64,
    pub(crate) rtp_packets: u64,
}

/// Candidates that arrive before the remote description are kept, up to this many.
pub(crate) const MAX_PENDING_CANDIDATES: usize = 32;

pub(crate) struct PcEntry {
    pub(crate) id: PcId,
    pub(crate) peer: PeerId,
    pub(crate) kind: PcKind,
    pub(crate) pc: RTCPeerConnection,
    pub(crate) ufrag: String,
    pub(crate) pwd: String,
    pub(crate) state: PcState,
    pub(crate) candidates_added: bool,
    /// Subscriber: our offer waiting for its answer (signaling state have-local-offer;
    /// `rtc` does not expose the signaling state, so we track it), kept to be sent again if
    /// the signaling connection it went out on died.
    pub(crate) pending_offer: Option<String>,
    pub(crate) has_remote_description: bool,
    pub(crate) pending_candidates: Vec<RTCIceCandidateInit>,
    /// The client's DTLS fingerprint; a different one in a new offer means a new connection.
    pub(crate) remote_fingerprint: Option<String>,
    pub(crate) counters: PcCounters,
    pub(crate) last_transport: Option<TransportContext>,
    /// Bumped whenever negotiation completes, invalidating every [`SendParams`].
    pub(crate) generation: u64,
    /// Publisher: receiving track id -> mid.
    pub(crate) receivers: HashMap<String, String>,
    /// Subscriber: what we send, by published track.
    pub(crate) slots: BTreeMap<TrackKey, SendSlot>,
    /// Subscriber: our track id -> published track, to route RTCP feedback.
    pub(crate) slot_by_track_id: HashMap<String, TrackKey>,
    /// Subscriber: the transceivers whose sender was removed, by index, with the SSRC they
    /// carried and where its numbering stopped. `rtc` gives the next track of the same kind
    /// the free transceiver with the lowest index; the track keeps that SSRC and continues
    /// its numbering, so `rtc`'s per-SSRC statistics (which nothing removes) and the
    /// client's receive stream are reused instead of growing by one per departed
    /// participant. A publisher that rebuilds its connection gets its slots back the same
    /// way, so the client's stream goes on without a jump. At most one per transceiver.
    pub(crate) idle_senders: BTreeMap<usize, IdleSender>,
    /// What the RTCP tap gathered (receiver reports, the bandwidth estimate).
    pub(crate) feedback: SharedFeedback,
    /// Subscriber: the last round trip measured, carried over reports that have none.
    pub(crate) last_rtt_ms: Option<f64>,
    /// Subscriber: how its first attempt to connect stands, to give up on one that stalled.
    pub(crate) first_connect: FirstConnect,
    /// Whether ICE has a selected pair (connected or completed).
    pub(crate) ice_connected: bool,
    /// The client's last nominating check (USE-CANDIDATE) that came before ICE connected,
    /// to be handed to `rtc` again once our own check on that pair succeeds (see
    /// `Driver::nomination_after_stun`).
    pub(crate) early_nomination: Option<EarlyNomination>,
}

/// A nominating binding request kept until our own check on its pair succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EarlyNomination {
    pub(crate) from: std::net::SocketAddr,
    pub(crate) request: Vec<u8>,
}

/// A subscriber connection's first attempt to connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FirstConnect {
    /// The client has not answered yet.
    Unanswered,
    /// Answered: given up on if not connected by then.
    Due(Instant),
    /// Connected at least once; a later drop is the client's to notice.
    Connected,
    /// Given up on: the next offer builds a new connection in its place.
    Abandoned,
}

impl PcEntry {
    pub(crate) fn new(
        id: PcId,
        peer: PeerId,
        kind: PcKind,
        pc: RTCPeerConnection,
        feedback: SharedFeedback,
        ufrag: String,
        pwd: String,
    ) -> Self {
        Self {
            id,
            peer,
            kind,
            pc,
            ufrag,
            pwd,
            state: PcState::New,
            candidates_added: false,
            pending_offer: None,
            has_remote_description: false,
            pending_candidates: Vec::new(),
            remote_fingerprint: None,
            counters: PcCounters::default(),
            last_transport: None,
            generation: 0,
            receivers: HashMap::new(),
            slots: BTreeMap::new(),
            slot_by_track_id: HashMap::new(),
            idle_senders: BTreeMap::new(),
            feedback,
            last_rtt_ms: None,
            first_connect: FirstConnect::Unanswered,
            ice_connected: false,
            early_nomination: None,
        }
    }

    /// Whether a new offer from the client can be applied to this connection, or whether the
    /// client has started over (reload, new `RTCPeerConnection`) and we must too.
    pub(crate) fn is_reusable_for(&self, offer_fingerprint: Option<&str>) -> bool {
        let alive = !matches!(self.state, PcState::Failed | PcState::Closed)
            && self.first_connect != FirstConnect::Abandoned;
        let same_client = match (&self.remote_fingerprint, offer_fingerprint) {
            (Some(ours), Some(theirs)) => ours.eq_ignore_ascii_case(theirs),
            _ => true,
        };
        alive && same_client
    }
}

pub(crate) fn pc_state(state: RTCPeerConnectionState) -> PcState {
    match state {
        RTCPeerConnectionState::Connecting => PcState::Connecting,
        RTCPeerConnectionState::Connected => PcState::Connected,
        RTCPeerConnectionState::Disconnected => PcState::Disconnected,
        RTCPeerConnectionState::Failed => PcState::Failed,
        RTCPeerConnectionState::Closed => PcState::Closed,
        _ => PcState::New,
    }
}

/// The first value of `a=<name>:` in an SDP, session or media level.
pub(crate) fn sdp_attribute<'a>(sdp: &'a str, name: &str) -> Option<&'a str> {
    sdp.lines().find_map(|line| {
        let value = line.trim_end().strip_prefix("a=")?.strip_prefix(name)?;
        value.strip_prefix(':').map(str::trim)
    })
}

/// The fingerprint value (without the hash name) of an SDP, for telling clients apart.
pub(crate) fn sdp_fingerprint(sdp: &str) -> Option<String> {
    sdp_attribute(sdp, "fingerprint").map(|v| v.split_whitespace().last().unwrap_or(v).to_owned())
}

/// Keeps an identifier safe to put in an SDP `msid` (RFC 8830 token characters) and short.
pub(crate) fn sdp_token(raw: &str) -> String {
    let token: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`{|}~".contains(*c))
        .take(64)
        .collect();
    if token.is_empty() {
        "x".to_owned()
    } else {
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\na=fingerprint:sha-256 AB:CD\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:abcd\r\na=ice-pwd:secretsecret\r\na=mid:0\r\n";

    #[test]
    fn reads_sdp_attributes() {
        assert_eq!(sdp_attribute(SDP, "ice-ufrag"), Some("abcd"));
        assert_eq!(sdp_attribute(SDP, "ice-pwd"), Some("secretsecret"));
        assert_eq!(sdp_attribute(SDP, "ice"), None);
        assert_eq!(sdp_fingerprint(SDP).as_deref(), Some("AB:CD"));
    }

    #[test]
    fn tokens_are_sanitised() {
        assert_eq!(sdp_token("peer 1:video"), "peer1video");
        assert_eq!(sdp_token(""), "x");
        assert_eq!(sdp_token(&"a".repeat(100)).len(), 64);
    }

    #[test]
    fn builds_a_connection() {
        for kind in [PcKind::Publisher, PcKind::Subscriber] {
            let pc = build_peer_connection(
                "ufrag",
                &random_credential(32),
                kind,
                VideoCodec::Vp8,
                Instant::now(),
            );
            assert!(pc.is_ok(), "{kind:?}");
        }
    }
}
