//! The SFU media driver: the server's own I/O layer for WebRTC media.
//!
//! One task owns every participant's peer connections (the sans-IO `rtc` 0.21 state machines),
//! the one UDP socket they all share, and the ICE-TCP connections the HTTP listener hands over.
//! It demultiplexes each datagram to the connection it belongs to, feeds it in, drains what the
//! connection wants to send, and forwards RTP between participants. Nothing else touches media
//! state, so the media path takes no locks; the rest of the server talks to it through [`Sfu`],
//! a cheap handle whose methods are messages to that task.
//!
//! # Model
//!
//! Each participant has two peer connections, as in LiveKit, so that offers never collide:
//! - the **publisher** connection carries the participant's own tracks to us; the client offers
//!   ([`Sfu::publisher_answer`]);
//! - the **subscriber** connection carries other participants' tracks to the client; we offer
//!   ([`Sfu::subscriber_offer`]) and re-offer whenever [`SfuEvent::RenegotiationNeeded`] says
//!   the set of tracks changed. It always carries one data channel, so it connects before the
//!   first track exists and a later track only needs a renegotiation, not a new handshake.
//!
//! # Decisions
//!
//! Every decision about media is the engine's (`super::engine`): the driver keeps one
//! [`Engine`](super::engine::Engine) per room, tells it what happens (admission,
//! subscriptions, tracks and their simulcast layers, audio levels, receiver reports, bandwidth
//! estimates, render sizes, keyframe requests, the passing of time) and does what it says.
//! Peers belong to the room [`Sfu::join_room`] names (until then, to one shared unnamed room).
//!
//! A packet of publisher P's track reaches subscriber S iff the engine gives S a stream of that
//! track (both admitted, S subscribed to P, the track not host-muted) and the packet belongs to
//! that stream (the simulcast layer chosen for S). The engine's answer is cached on S's sender
//! and refreshed after every change, so [`Sfu::set_allowed`] stops (or permits) forwarding
//! with the next packet and nothing is looked up per packet. The subscriber's SDP only lists
//! tracks of admitted publishers, so a peer in the lobby learns nothing about who is in the
//! room either.
//!
//! A simulcast subscriber moves to a new layer only on a keyframe of that layer (asked of the
//! publisher by the engine's keyframe gate); until it comes the old layer keeps flowing, and
//! the sender's numbering stays continuous across the switch (`rewrite`).
//!
//! # Events
//!
//! [`Sfu::events`] hands out `tokio::sync::broadcast` receivers (capacity
//! [`EVENT_CAPACITY`]). A receiver that falls that far behind loses the oldest events and gets
//! `RecvError::Lagged`; the signaling layer should treat a lag as "re-offer every subscriber".
//!
//! # Modules
//! - `event_loop`: the driver task: socket loop, routing, timers, ICE-TCP connections.
//! - `negotiation`: offer/answer, the admission gate, subscriptions, removal, stats.
//! - `forward`: publishing tracks, forwarding RTP, keyframe relay, audio levels.
//! - `rooms`: the engine of each room, what the driver feeds it and how its answers are applied.
//! - `peer`: building an `rtc` connection the way we need it, and the state kept beside it.
//! - `demux`: classifying datagrams and the routing tables (ufrag, then address).
//! - `framing`, `tcp`: RFC 4571 ICE-TCP.
//! - `probe`: answering plain STUN binding requests, for reachability checks before a visit.
//! - `feedback`: getting PLI/FIR, receiver reports and the bandwidth estimate out of `rtc`;
//!   spotting keyframes.
//! - `rewrite`: continuous sequence numbers and timestamps per subscriber sender.
//! - `timers`: one deadline per connection in a heap.
//! - `batch`: outgoing UDP datagrams sent together with `sendmmsg`.

mod batch;
mod demux;
mod event_loop;
mod feedback;
mod forward;
mod framing;
mod latency;
mod negotiation;
mod peer;
mod probe;
mod rewrite;
mod rooms;
mod tcp;
mod timers;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot};

pub use super::engine::{Layer, VideoCodec, VideoConstraints};

/// Our participant id, as the room knows it. Only ever logged, never a name.
pub type PeerId = String;
/// A room (visit) id: the peers that share one engine.
pub type RoomId = String;

/// Which of a participant's two peer connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PcKind {
    /// The client offers; carries the client's own tracks to us.
    Publisher,
    /// We offer; carries everyone else's tracks to the client.
    Subscriber,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
}

/// Why a keyframe was asked of a publisher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyframeReason {
    /// A subscriber sent PLI or FIR (relayed as PLI).
    SubscriberRequest { subscriber: PeerId },
    /// A subscriber just started receiving this video track and needs a frame to start from.
    NewSubscriber { subscriber: PeerId },
    /// A subscriber moves to another simulcast layer, or its stream goes on with another
    /// participant's track (a reused SSRC), which it cannot decode before a keyframe.
    LayerSwitch,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SfuEvent {
    /// A peer connection completed ICE and DTLS.
    PeerConnected { peer: PeerId, pc: PcKind },
    /// A connecting or connected peer connection went to disconnected, failed or closed, or was
    /// removed.
    PeerDisconnected { peer: PeerId, pc: PcKind },
    /// The first packet of a publisher's track arrived; subscribers can now be offered it.
    TrackPublished {
        peer: PeerId,
        track_id: String,
        kind: MediaKind,
        mid: String,
    },
    /// A track stopped: the publisher renegotiated it away, or left.
    TrackUnpublished {
        peer: PeerId,
        track_id: String,
        mid: String,
    },
    /// The tracks this peer may receive changed: call [`Sfu::subscriber_offer`] and send the
    /// offer to the client. Raised once until that offer is made.
    RenegotiationNeeded { peer: PeerId },
    /// RFC 6464 level of a publisher's audio, 0 (loudest) to 127 (silence) in -dBov. At most
    /// one per audio track every [`AUDIO_LEVEL_INTERVAL`]. (The engine already has it; this is
    /// for observers.)
    AudioLevel { peer: PeerId, level_dbov: u8 },
    /// The room's dominant speaker changed; `None` when nobody holds the floor.
    DominantSpeaker { room: RoomId, peer: Option<PeerId> },
    /// A participant's network score changed: 5 excellent to 1 very poor, 0 no data.
    NetworkScore { peer: PeerId, score: u8 },
    /// What this admitted participant's camera should send now (sent on admission and whenever
    /// it changes, e.g. simulcast from three people on).
    VideoConstraints {
        peer: PeerId,
        constraints: VideoConstraints,
    },
    /// We sent a PLI to a publisher.
    KeyframeRequested {
        publisher: PeerId,
        track_id: String,
        mid: String,
        reason: KeyframeReason,
    },
}

/// How many events a receiver may fall behind before it lags.
pub const EVENT_CAPACITY: usize = 4096;
/// Minimum spacing of [`SfuEvent::AudioLevel`] per audio track.
pub const AUDIO_LEVEL_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Clone, Debug)]
pub struct SfuConfig {
    /// Where the media UDP socket binds, e.g. `0.0.0.0:3478`, or `127.0.0.1:0` in tests.
    pub udp_listen: SocketAddr,
    /// The address put in our host candidates: what clients send to.
    pub advertise_ip: IpAddr,
    /// The HTTP listener's port, advertised as a passive ICE-TCP candidate; `None` = no TCP.
    pub tcp_port: Option<u16>,
    /// `false` advertises TCP only (to exercise the fallback); the socket is still bound.
    pub udp_enabled: bool,
    /// The codec every room's cameras are asked for unless the room says otherwise
    /// ([`Sfu::set_video_codec`]).
    pub video_codec: VideoCodec,
    /// A subscriber connection the client answered but that has not connected this long after
    /// is given up and a new one offered. DTLS can stall for good when a flight is lost: a
    /// side that hears the other's retransmission while waiting forgets its own retransmit
    /// timer (`rtc-dtls` 0.21.1). [`CONNECT_DEADLINE`] unless a test needs it shorter.
    pub connect_deadline: Duration,
}

/// [`SfuConfig::connect_deadline`] in production: a handshake that takes a 10 % lossy link
/// several retransmissions still fits; one that has stalled is replaced well before a
/// patient gives up.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    #[error("binding the media socket: {0}")]
    Bind(#[source] std::io::Error),
    #[error("the media driver has stopped")]
    Stopped,
    #[error("no such peer or peer connection")]
    UnknownPeer,
    #[error("invalid session description: {0}")]
    InvalidSdp(String),
    #[error("invalid ICE candidate: {0}")]
    InvalidCandidate(String),
    #[error("an offer is already waiting for its answer")]
    NegotiationInProgress,
    #[error("no offer is waiting for an answer")]
    NoOfferPending,
    #[error("WebRTC: {0}")]
    Rtc(#[from] rtc::shared::error::Error),
    #[error("the peer connection failed internally and was dropped")]
    Poisoned,
}

/// The state of one peer connection, as `rtc` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PcState {
    #[default]
    New,
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IceProtocol {
    Udp,
    Tcp,
}

/// The path media actually takes: where our last packet to the client came from and went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelectedPair {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub protocol: IceProtocol,
}

#[derive(Clone, Debug, Default)]
pub struct PcStats {
    pub state: PcState,
    /// Datagrams (or ICE-TCP frames) received from the client, and their bytes.
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Datagrams (or frames) sent to the client, and their bytes.
    pub packets_out: u64,
    pub bytes_out: u64,
    /// Publisher: RTP packets received from the client. Subscriber: RTP packets forwarded to it.
    pub rtp_packets: u64,
    pub selected_pair: Option<SelectedPair>,
    /// The negotiated SRTP profile, e.g. `SRTP_AEAD_AES_128_GCM`.
    pub srtp_cipher: Option<String>,
    /// From RTCP receiver reports about what we send (subscriber connection).
    pub rtt: Option<Duration>,
    pub fraction_lost: Option<f64>,
    /// Cumulative loss of what the client sends us (publisher connection).
    pub packets_lost: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct PeerStats {
    pub allowed: bool,
    pub subscriptions: Vec<PeerId>,
    pub published_tracks: usize,
    pub publisher: Option<PcStats>,
    pub subscriber: Option<PcStats>,
}

/// Process-lifetime counters, also exported as `rounds_sfu_*` metrics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    dropped_datagrams: AtomicU64,
    garbage_tcp_frames: AtomicU64,
    rejected_tcp_connections: AtomicU64,
    forwarded_rtp: AtomicU64,
    poisoned_connections: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            dropped_datagrams: self.dropped_datagrams.load(Ordering::Relaxed),
            garbage_tcp_frames: self.garbage_tcp_frames.load(Ordering::Relaxed),
            rejected_tcp_connections: self.rejected_tcp_connections.load(Ordering::Relaxed),
            forwarded_rtp: self.forwarded_rtp.load(Ordering::Relaxed),
            poisoned_connections: self.poisoned_connections.load(Ordering::Relaxed),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// UDP datagrams we could not attribute to a peer connection, or that no WebRTC peer sends.
    pub dropped_datagrams: u64,
    /// ICE-TCP frames that closed their connection (bad framing, unauthenticated, not WebRTC).
    pub garbage_tcp_frames: u64,
    /// ICE-TCP connections refused because of the connection limits.
    pub rejected_tcp_connections: u64,
    /// RTP packets written to subscribers.
    pub forwarded_rtp: u64,
    /// Peer connections dropped because `rtc` panicked while handling them.
    pub poisoned_connections: u64,
}

/// Why Chromium-based browsers would drop our passive ICE-TCP candidate, if they would. They
/// refuse a TCP candidate on a port below 1024 other than 80 and 443, and one on 80 or 443 at
/// a private address (to keep web pages from probing the local network).
pub fn browsers_refuse_ice_tcp(ip: IpAddr, port: u16) -> Option<&'static str> {
    if port >= 1024 {
        return None;
    }
    if port != 80 && port != 443 {
        return Some("the port is below 1024 and neither 80 nor 443");
    }
    let private = match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local(),
    };
    private.then_some("the port is 80 or 443 and the advertised address is private")
}

/// Identifies one peer connection inside the driver. Never reused, so a stale timer or route
/// can never reach a newer connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PcId(pub(crate) u64);

/// Identifies one ICE-TCP connection inside the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ConnId(pub(crate) u64);

type Reply<T> = oneshot::Sender<Result<T, SfuError>>;

pub(crate) enum Command {
    PublisherAnswer {
        peer: PeerId,
        offer: String,
        reply: Reply<String>,
    },
    SubscriberOffer {
        peer: PeerId,
        reply: Reply<String>,
    },
    SignalingResumed {
        peer: PeerId,
        reply: oneshot::Sender<Option<String>>,
    },
    SubscriberAnswer {
        peer: PeerId,
        answer: String,
        reply: Reply<()>,
    },
    AddIceCandidate {
        peer: PeerId,
        pc: PcKind,
        candidate: rtc::peer_connection::transport::RTCIceCandidateInit,
        reply: Reply<()>,
    },
    SetAllowed {
        peer: PeerId,
        allowed: bool,
        reply: oneshot::Sender<()>,
    },
    SetSubscriptions {
        peer: PeerId,
        publishers: Vec<PeerId>,
        reply: oneshot::Sender<()>,
    },
    JoinRoom {
        peer: PeerId,
        room: RoomId,
        reply: oneshot::Sender<()>,
    },
    SetVideoCodec {
        room: RoomId,
        codec: VideoCodec,
        reply: oneshot::Sender<()>,
    },
    RenderSizes {
        peer: PeerId,
        sizes: Vec<(PeerId, u32, u32)>,
    },
    HostMute {
        peer: PeerId,
        kind: MediaKind,
        muted: bool,
        reply: oneshot::Sender<()>,
    },
    RemovePeer {
        peer: PeerId,
        reply: oneshot::Sender<()>,
    },
    Stats {
        peer: PeerId,
        reply: oneshot::Sender<Option<PeerStats>>,
    },
    TcpOpened {
        conn: ConnId,
        remote: SocketAddr,
        writer: mpsc::Sender<Bytes>,
        kill: oneshot::Sender<()>,
        reply: oneshot::Sender<bool>,
    },
}

/// What ICE-TCP connection tasks tell the driver.
pub(crate) enum TcpInbound {
    Frame { conn: ConnId, frame: Bytes },
    Closed { conn: ConnId, garbage: bool },
}

/// Handle to the media driver. Cheap to clone; the driver stops when the last handle (and the
/// last ICE-TCP connection) is gone.
#[derive(Clone)]
pub struct Sfu {
    commands: mpsc::Sender<Command>,
    tcp_inbound: mpsc::Sender<TcpInbound>,
    events: broadcast::Sender<SfuEvent>,
    udp_addr: SocketAddr,
    tcp_port: Option<u16>,
    video_codec: VideoCodec,
    counters: Arc<Counters>,
    next_conn: Arc<AtomicU64>,
}

impl Sfu {
    /// Binds the UDP socket and starts the driver task on the current tokio runtime.
    pub async fn start(cfg: SfuConfig) -> Result<Sfu, SfuError> {
        let counters = Arc::new(Counters::default());
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let (commands, command_rx) = mpsc::channel(1024);
        let (tcp_inbound, tcp_rx) = mpsc::channel(4096);
        let driver =
            event_loop::Driver::bind(&cfg, events.clone(), counters.clone(), command_rx, tcp_rx)?;
        let udp_addr = driver.udp_addr();
        tokio::spawn(driver.run());
        tracing::info!(%udp_addr, tcp_port = ?cfg.tcp_port, udp_enabled = cfg.udp_enabled, "SFU media driver started");
        if let Some(port) = cfg.tcp_port
            && let Some(why) = browsers_refuse_ice_tcp(cfg.advertise_ip, port)
        {
            tracing::warn!(
                advertise_ip = %cfg.advertise_ip,
                tcp_port = port,
                "browsers will not use the ICE-TCP fallback: {why}. Patients whose network \
                 blocks UDP will not get media. Advertise a public address, or serve Rounds on \
                 a port of 1024 or above."
            );
        }
        Ok(Sfu {
            commands,
            tcp_inbound,
            events,
            udp_addr,
            tcp_port: cfg.tcp_port,
            video_codec: cfg.video_codec,
            counters,
            next_conn: Arc::new(AtomicU64::new(1)),
        })
    }

    /// The address the media socket is actually bound to.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The HTTP listener's port when it also takes ICE-TCP media.
    pub fn ice_tcp_port(&self) -> Option<u16> {
        self.tcp_port
    }

    /// The codec rooms ask cameras for unless one says otherwise.
    pub fn video_codec(&self) -> VideoCodec {
        self.video_codec
    }

    /// Client's publisher offer -> our answer. Creates the publisher connection if needed;
    /// a later offer renegotiates it (or replaces it, if the client started a new connection).
    pub async fn publisher_answer(
        &self,
        peer: &PeerId,
        offer_sdp: String,
    ) -> Result<String, SfuError> {
        self.call(|reply| Command::PublisherAnswer {
            peer: peer.clone(),
            offer: offer_sdp,
            reply,
        })
        .await
    }

    /// An offer for the peer's subscriber connection carrying every track it is currently
    /// allowed to receive. Creates the connection if needed. Fails with
    /// [`SfuError::NegotiationInProgress`] while a previous offer awaits its answer; a new
    /// [`SfuEvent::RenegotiationNeeded`] follows that answer if still needed.
    pub async fn subscriber_offer(&self, peer: &PeerId) -> Result<String, SfuError> {
        self.call(|reply| Command::SubscriberOffer {
            peer: peer.clone(),
            reply,
        })
        .await
    }

    /// `peer` is back on a new signaling connection of the same page. Returns the subscriber
    /// offer that still waits for its answer: it went out on the old connection and may never
    /// have arrived, so the room sends it again (or the subscriber connection would wait for
    /// ever). With none, a [`SfuEvent::RenegotiationNeeded`] raised while the peer could not
    /// be told is raised again if still needed.
    pub async fn signaling_resumed(&self, peer: &PeerId) -> Option<String> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::SignalingResumed {
            peer: peer.clone(),
            reply,
        };
        if self.commands.send(cmd).await.is_err() {
            return None;
        }
        rx.await.ok().flatten()
    }

    pub async fn subscriber_answer(
        &self,
        peer: &PeerId,
        answer_sdp: String,
    ) -> Result<(), SfuError> {
        self.call(|reply| Command::SubscriberAnswer {
            peer: peer.clone(),
            answer: answer_sdp,
            reply,
        })
        .await
    }

    /// A trickled candidate from the client. We are ICE-lite and learn the client's addresses
    /// from its checks, so this is optional; candidates that arrive before the remote
    /// description are kept until it is set.
    pub async fn add_ice_candidate(
        &self,
        peer: &PeerId,
        pc: PcKind,
        candidate: String,
        sdp_mid: Option<String>,
        sdp_mline_index: Option<u16>,
    ) -> Result<(), SfuError> {
        let candidate = rtc::peer_connection::transport::RTCIceCandidateInit {
            candidate,
            sdp_mid,
            sdp_mline_index,
            ..Default::default()
        };
        self.call(|reply| Command::AddIceCandidate {
            peer: peer.clone(),
            pc,
            candidate,
            reply,
        })
        .await
    }

    /// The admission gate. A peer that is not allowed gets no RTP from anyone and its RTP is
    /// forwarded to no one, from the next packet on. Peers start not allowed.
    pub async fn set_allowed(&self, peer: &PeerId, allowed: bool) {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::SetAllowed {
            peer: peer.clone(),
            allowed,
            reply,
        };
        if self.commands.send(cmd).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Which publishers' tracks this peer receives (the room decides; default: none).
    pub async fn set_subscriptions(&self, peer: &PeerId, publishers: Vec<PeerId>) {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::SetSubscriptions {
            peer: peer.clone(),
            publishers,
            reply,
        };
        if self.commands.send(cmd).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Puts the peer's media in `room`: one engine decides for everyone in it (simulcast from
    /// three admitted, layers, dominant speaker). Call before admitting the peer.
    pub async fn join_room(&self, peer: &PeerId, room: &RoomId) {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::JoinRoom {
            peer: peer.clone(),
            room: room.clone(),
            reply,
        };
        if self.commands.send(cmd).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// The video codec a room's cameras are asked for (VP8 unless the room asks for H.264).
    pub async fn set_video_codec(&self, room: &RoomId, codec: VideoCodec) {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::SetVideoCodec {
            room: room.clone(),
            codec,
            reply,
        };
        if self.commands.send(cmd).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// How large `peer` draws each publisher's camera, in pixels (0 × 0: not at all). Layer
    /// choice follows; a full queue drops the update, as the next one replaces it anyway.
    pub fn set_render_sizes(&self, peer: &PeerId, sizes: Vec<(PeerId, u32, u32)>) {
        let _ = self.commands.try_send(Command::RenderSizes {
            peer: peer.clone(),
            sizes,
        });
    }

    /// A host turned off `peer`'s microphone or camera (`muted`), or the participant turned it
    /// back on themself (`!muted`): a host-muted track is not forwarded to anyone.
    pub async fn set_host_muted(&self, peer: &PeerId, kind: MediaKind, muted: bool) {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::HostMute {
            peer: peer.clone(),
            kind,
            muted,
            reply,
        };
        if self.commands.send(cmd).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Closes both of the peer's connections and forgets it.
    pub async fn remove_peer(&self, peer: &PeerId) {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::RemovePeer {
            peer: peer.clone(),
            reply,
        };
        if self.commands.send(cmd).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Takes over a TCP connection whose first byte showed it is ICE-TCP (RFC 4571 framing: not
    /// TLS 0x16, not an ASCII HTTP method). `prefix` holds the bytes already read from it.
    /// Returns at once; the connection is served by its own task until it closes, sends
    /// garbage, or fails to authenticate within the handshake deadline.
    pub async fn serve_ice_tcp(&self, stream: TcpStream, prefix: Vec<u8>) {
        let Ok(remote) = stream.peer_addr() else {
            return;
        };
        let conn = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        let (writer, writer_rx) = mpsc::channel(tcp::WRITE_QUEUE);
        let (kill, kill_rx) = oneshot::channel();
        let (reply, accepted) = oneshot::channel();
        let cmd = Command::TcpOpened {
            conn,
            remote,
            writer,
            kill,
            reply,
        };
        if self.commands.send(cmd).await.is_err() {
            return;
        }
        if !accepted.await.unwrap_or(false) {
            return;
        }
        tokio::spawn(tcp::serve(
            stream,
            prefix,
            conn,
            self.tcp_inbound.clone(),
            writer_rx,
            kill_rx,
        ));
    }

    /// A new receiver of driver events; see the module docs on lagging.
    pub fn events(&self) -> broadcast::Receiver<SfuEvent> {
        self.events.subscribe()
    }

    pub async fn stats(&self, peer: &PeerId) -> Option<PeerStats> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Stats {
            peer: peer.clone(),
            reply,
        };
        self.commands.send(cmd).await.ok()?;
        rx.await.ok().flatten()
    }

    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, SfuError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| SfuError::Stopped)?;
        rx.await.map_err(|_| SfuError::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    use super::browsers_refuse_ice_tcp;

    #[test]
    fn browsers_take_ice_tcp_on_443_only_at_a_public_address() {
        let public = "198.51.100.1".parse().unwrap();
        let private = "10.1.2.3".parse().unwrap();
        assert_eq!(browsers_refuse_ice_tcp(public, 443), None);
        assert_eq!(browsers_refuse_ice_tcp(private, 8443), None);
        assert!(browsers_refuse_ice_tcp(private, 443).is_some());
        assert!(browsers_refuse_ice_tcp("127.0.0.1".parse().unwrap(), 80).is_some());
        assert!(browsers_refuse_ice_tcp("fd00::1".parse().unwrap(), 443).is_some());
        assert!(browsers_refuse_ice_tcp(public, 444).is_some());
    }
}
