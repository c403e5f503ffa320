//! The driver task: the socket loop, routing, timers and the ICE-TCP connections.
//!
//! One task owns everything. Each wake-up is one of: a datagram (then up to [`RECV_BATCH`]
//! more without yielding), a command from a [`super::Sfu`] handle, a frame from an ICE-TCP
//! connection, a connection's deadline, or the housekeeping tick. After each, every due
//! connection timer runs. Negotiation and forwarding live in `negotiation.rs` and
//! `forward.rs` as further `impl Driver` blocks.
//!
//! Sending never waits: UDP datagrams written while one wake-up is handled (a packet's whole
//! fan-out, say) go to the kernel together in one non-blocking `sendmmsg` (`batch.rs`), and
//! ICE-TCP has a bounded queue per connection. A full socket buffer drops the packet, as the
//! network would; waiting would stall every other participant behind one slow one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::crypto::RTCCryptoProvider;
use rtc::ice::tcp_type::TcpType;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::state::RTCIceConnectionState;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::rtp_transceiver::RTCRtpReceiverId;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::MissedTickBehavior;

use super::batch::UdpBatch;
use super::demux::{
    PacketClass, Routes, binding_request_is_authentic, binding_request_nominates,
    binding_request_ufrag, classify, is_binding_success,
};
use super::feedback::KeyframeFormat;
use super::latency::ForwardDelay;
use super::peer::{EarlyNomination, FirstConnect, PcEntry, TrackKey, guard, pc_state};
use super::probe::{ProbeTransport, Prober, Verdict};
use super::rooms::RoomMedia;
use super::timers::TimerHeap;
use super::{
    Command, ConnId, Counters, KeyframeReason, Layer, MediaKind, PcId, PcKind, PcState, PeerId,
    RoomId, SfuConfig, SfuError, SfuEvent, TcpInbound, VideoConstraints,
};

/// Datagrams read per wake-up before giving commands and timers a turn.
const RECV_BATCH: usize = 64;
/// Larger than any datagram a WebRTC peer sends; anything longer is truncated and then
/// rejected by SRTP authentication like any other garbage.
const RECV_BUF: usize = 4096;
/// Kernel buffers for the media socket: bursts of video from many peers arrive together.
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;
/// The engines' clocks (held upgrades, deferred keyframe requests, speaker hand-overs), RTCP
/// feedback and the ICE-TCP handshake deadline are served this often.
const HOUSEKEEPING: Duration = Duration::from_millis(100);
/// An ICE-TCP connection must authenticate (a valid binding request) within this time.
const TCP_HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// Connection limits for ICE-TCP: all connections, and those not yet authenticated.
const MAX_TCP_CONNS: usize = 2048;
const MAX_UNAUTHENTICATED_TCP_CONNS: usize = 256;
/// An `rtc` deadline at or before "now" is run this much later, so that a connection that keeps
/// reporting a past deadline cannot spin the loop.
const MIN_TIMER_DELAY: Duration = Duration::from_millis(1);

/// What the driver keeps per participant, beside its two connections. Admission and
/// subscriptions are the room engine's.
#[derive(Default)]
pub(super) struct PeerState {
    pub(super) room: RoomId,
    /// The publishers the room task said this peer receives. The engine holds the
    /// subscriptions; this is kept so they can be given again when a publisher that left the
    /// engine (a reload) comes back under the same id.
    pub(super) subscribed_to: BTreeSet<PeerId>,
    pub(super) publisher: Option<PcId>,
    pub(super) subscriber: Option<PcId>,
    /// The participant's tracks by mid on its publisher connection.
    pub(super) published: BTreeMap<String, PublishedTrack>,
    /// `RenegotiationNeeded` was raised and no offer has been made since.
    pub(super) renegotiation_signalled: bool,
    /// Senders were removed from the subscriber connection outside an offer (the gate
    /// closed), so the client's view is stale even if the track sets now agree.
    pub(super) subscriber_dirty: bool,
    /// The camera settings last announced for this peer, to announce only changes.
    pub(super) constraints: Option<VideoConstraints>,
}

/// One encoding of a published track: the only one, or one simulcast layer.
#[derive(Clone, Copy, Debug)]
pub(super) struct InboundStream {
    /// The simulcast layer its rid names; `None` for a track that is not simulcast.
    pub(super) layer: Option<Layer>,
    pub(super) ssrc: u32,
    /// Which of the engine's streams its packets are (`Engine::stream_of`), refreshed whenever
    /// the track's layers change; `None`: forwarded to nobody.
    pub(super) routed_as: Option<Option<Layer>>,
    /// When its last packet came. A browser stops sending its higher layers when its uplink
    /// or CPU cannot carry them, and a layer that is not arriving must not be chosen.
    pub(super) last_seen: Instant,
    /// Whether the engine counts it among the track's layers.
    pub(super) active: bool,
}

/// A simulcast layer with no packet for this long while the track's other layers keep coming
/// is taken off the engine's list until its packets come back: long enough not to flap, short
/// enough that a viewer moved off a paused layer does not stare at a frozen picture for long.
pub(super) const LAYER_IDLE: Duration = Duration::from_secs(2);

pub(super) struct PublishedTrack {
    pub(super) track_id: String,
    pub(super) kind: MediaKind,
    pub(super) codec: RTCRtpCodec,
    pub(super) keyframes: KeyframeFormat,
    /// Every encoding that has arrived, at most one per layer.
    pub(super) streams: Vec<InboundStream>,
    pub(super) receiver_id: RTCRtpReceiverId,
    pub(super) audio_level_id: Option<u8>,
    pub(super) last_level_event: Option<Instant>,
    /// Subscriber connections that have a sender for this track.
    pub(super) subscribers: Vec<PcId>,
}

impl PublishedTrack {
    /// The layers the engine should know this track by: those arriving.
    pub(super) fn layers(&self) -> Vec<Layer> {
        self.streams
            .iter()
            .filter(|s| s.active)
            .filter_map(|s| s.layer)
            .collect()
    }
}

pub(super) struct TcpConn {
    pub(super) remote: SocketAddr,
    pub(super) writer: mpsc::Sender<Bytes>,
    /// Dropping this ends the connection's reader.
    pub(super) _kill: oneshot::Sender<()>,
    /// The connection this TCP stream authenticated for.
    pub(super) pc: Option<PcId>,
    pub(super) opened: Instant,
}

/// The sending half of the driver, split from the connection table so that a connection can
/// be borrowed mutably while its output is written.
pub(super) struct Io {
    pub(super) udp: UdpSocket,
    /// UDP datagrams written during this wake-up, sent together by [`Driver::send_udp`].
    udp_out: UdpBatch,
    pub(super) conns: HashMap<ConnId, TcpConn>,
    pub(super) tcp_routes: HashMap<(PcId, SocketAddr), ConnId>,
}

impl Io {
    fn send(&self, entry: &mut PcEntry, msg: TaggedBytesMut) {
        let peer_addr = msg.transport.peer_addr;
        let len = msg.message.len() as u64;
        let sent = match msg.transport.transport_protocol {
            TransportProtocol::UDP => {
                // Counted as sent now; [`Driver::send_udp`] takes back any the kernel refuses.
                self.udp_out.push(entry.id, peer_addr, msg.message);
                true
            }
            TransportProtocol::TCP => {
                let conn = self
                    .tcp_routes
                    .get(&(entry.id, peer_addr))
                    .and_then(|id| self.conns.get(id));
                match conn {
                    Some(conn) => {
                        let queued = conn.writer.try_send(msg.message.freeze()).is_ok();
                        if !queued {
                            metrics::counter!("rounds_sfu_send_dropped_total", "transport" => "tcp")
                                .increment(1);
                        }
                        queued
                    }
                    None => false,
                }
            }
            _ => false,
        };
        if sent {
            entry.counters.packets_out += 1;
            entry.counters.bytes_out += len;
            entry.last_transport = Some(msg.transport);
        }
    }

    /// Gathers everything the connection has queued for sending.
    pub(super) fn flush(&self, entry: &mut PcEntry) -> Result<(), SfuError> {
        while let Some(msg) = guard(|| entry.pc.poll_write())? {
            self.send(entry, msg);
        }
        Ok(())
    }
}

/// Sends what the connection queued and re-arms its deadline; the tail of every interaction
/// with a connection.
pub(super) fn flush_and_rearm(
    io: &Io,
    timers: &mut TimerHeap,
    entry: &mut PcEntry,
) -> Result<(), SfuError> {
    io.flush(entry)?;
    let deadline = guard(|| entry.pc.poll_timeout())?;
    let now = Instant::now();
    timers.arm(entry.id, deadline.map(|at| at.max(now + MIN_TIMER_DELAY)));
    Ok(())
}

pub(crate) struct Driver {
    pub(super) io: Io,
    udp_addr: SocketAddr,
    /// The advertised addresses `rtc` knows its local candidates by.
    udp_local: SocketAddr,
    tcp_local: Option<SocketAddr>,
    pub(super) candidates: Vec<RTCIceCandidateInit>,
    crypto: Arc<dyn RTCCryptoProvider>,
    commands: mpsc::Receiver<Command>,
    tcp_rx: mpsc::Receiver<TcpInbound>,
    events: broadcast::Sender<SfuEvent>,
    pub(super) counters: Arc<Counters>,
    next_pc: u64,
    pub(super) pcs: HashMap<PcId, PcEntry>,
    pub(super) peers: HashMap<PeerId, PeerState>,
    pub(super) routes: Routes,
    pub(super) timers: TimerHeap,
    /// One engine per room, with who is in it.
    pub(super) rooms: HashMap<RoomId, RoomMedia>,
    /// The codec a new room's engine asks cameras for.
    pub(super) default_codec: super::VideoCodec,
    /// [`super::SfuConfig::connect_deadline`].
    pub(super) connect_deadline: Duration,
    /// Why a keyframe the engine deferred was wanted, for the event when it goes out.
    pub(super) keyframe_reasons: BTreeMap<TrackKey, KeyframeReason>,
    /// When the datagram being processed was read, while it is.
    pub(super) ingress: Option<Instant>,
    /// Copies of the packet in hand written since it arrived, not yet handed to the kernel.
    pub(super) forwarded_unsent: u64,
    pub(super) forward_delay: ForwardDelay,
    /// Answers plain STUN binding requests (reachability probes) on both media ports.
    prober: Prober,
}

fn host_candidate(
    network: &str,
    addr: SocketAddr,
    tcp_type: TcpType,
) -> Result<RTCIceCandidateInit, SfuError> {
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: network.to_owned(),
            address: addr.ip().to_string(),
            port: addr.port(),
            component: 1,
            ..Default::default()
        },
        tcp_type,
    }
    .new_candidate_host()?;
    Ok(RTCIceCandidate::from(&candidate).to_json()?)
}

fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, SfuError> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))
        .map_err(SfuError::Bind)?;
    // Best effort: the kernel may cap these (net.core.rmem_max); the defaults still work.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true).map_err(SfuError::Bind)?;
    socket.bind(&addr.into()).map_err(SfuError::Bind)?;
    UdpSocket::from_std(socket.into()).map_err(SfuError::Bind)
}

impl Driver {
    pub(super) fn bind(
        cfg: &SfuConfig,
        events: broadcast::Sender<SfuEvent>,
        counters: Arc<Counters>,
        commands: mpsc::Receiver<Command>,
        tcp_rx: mpsc::Receiver<TcpInbound>,
    ) -> Result<Self, SfuError> {
        let udp = bind_udp(cfg.udp_listen)?;
        let udp_addr = udp.local_addr().map_err(SfuError::Bind)?;
        let udp_local = SocketAddr::new(cfg.advertise_ip, udp_addr.port());
        let tcp_local = cfg
            .tcp_port
            .map(|port| SocketAddr::new(cfg.advertise_ip, port));

        let mut candidates = Vec::new();
        if cfg.udp_enabled {
            candidates.push(host_candidate("udp", udp_local, TcpType::Unspecified)?);
        }
        if let Some(tcp_local) = tcp_local {
            candidates.push(host_candidate("tcp", tcp_local, TcpType::Passive)?);
        }
        let crypto = rtc::crypto::default_provider()
            .map_err(|e| SfuError::Rtc(rtc::shared::error::Error::Other(e.to_string())))?;

        Ok(Self {
            io: Io {
                udp_out: UdpBatch::default(),
                udp,
                conns: HashMap::new(),
                tcp_routes: HashMap::new(),
            },
            udp_addr,
            udp_local,
            tcp_local,
            candidates,
            crypto,
            commands,
            tcp_rx,
            events,
            counters,
            next_pc: 1,
            pcs: HashMap::new(),
            peers: HashMap::new(),
            routes: Routes::default(),
            timers: TimerHeap::default(),
            rooms: HashMap::new(),
            default_codec: cfg.video_codec,
            connect_deadline: cfg.connect_deadline,
            keyframe_reasons: BTreeMap::new(),
            ingress: None,
            forwarded_unsent: 0,
            forward_delay: ForwardDelay::default(),
            prober: Prober::new(cfg.udp_enabled, Instant::now()),
        })
    }

    pub(super) fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    pub(crate) async fn run(mut self) {
        let mut buf = vec![0u8; RECV_BUF];
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        housekeeping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // One timer, re-aimed each turn, rather than a new one per wake-up.
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        loop {
            let deadline = self
                .timers
                .next_deadline()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            tokio::select! {
                received = self.io.udp.recv_from(&mut buf) => {
                    match received {
                        Ok((n, from)) => self.on_datagram(from, &buf[..n]),
                        Err(error) => tracing::debug!(%error, "UDP receive failed"),
                    }
                    for _ in 0..RECV_BATCH {
                        match self.io.udp.try_recv_from(&mut buf) {
                            Ok((n, from)) => self.on_datagram(from, &buf[..n]),
                            Err(_) => break,
                        }
                    }
                }
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some(inbound) = self.tcp_rx.recv() => self.on_tcp(inbound),
                _ = &mut sleep => {}
                _ = housekeeping.tick() => self.housekeeping(Instant::now()),
            }
            self.run_timers();
            self.send_udp();
        }
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let ids: Vec<PcId> = self.pcs.keys().copied().collect();
        for id in ids {
            self.drop_pc(id);
        }
        // The close_notify of each.
        self.send_udp();
        tracing::info!("SFU media driver stopped");
    }

    /// Hands the UDP datagrams gathered since the last call to the kernel, and takes those it
    /// would not take back out of their connections' counters.
    pub(super) fn send_udp(&mut self) {
        if self.io.udp_out.is_empty() {
            return;
        }
        let done = self.io.udp_out.flush(&self.io.udp);
        if done.dropped.is_empty() {
            return;
        }
        metrics::counter!("rounds_sfu_send_dropped_total", "transport" => "udp")
            .increment(done.dropped.len() as u64);
        for (id, len) in done.dropped {
            if let Some(entry) = self.pcs.get_mut(&id) {
                entry.counters.packets_out = entry.counters.packets_out.saturating_sub(1);
                entry.counters.bytes_out = entry.counters.bytes_out.saturating_sub(len as u64);
            }
        }
    }

    pub(super) fn emit(&self, event: SfuEvent) {
        // No receivers is fine: nobody is listening yet.
        let _ = self.events.send(event);
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::PublisherAnswer { peer, offer, reply } => {
                let _ = reply.send(self.publisher_answer(peer, offer));
            }
            Command::SubscriberOffer { peer, reply } => {
                let _ = reply.send(self.subscriber_offer(peer));
            }
            Command::SignalingResumed { peer, reply } => {
                let _ = reply.send(self.signaling_resumed(&peer));
            }
            Command::SubscriberAnswer {
                peer,
                answer,
                reply,
            } => {
                let _ = reply.send(self.subscriber_answer(peer, answer));
            }
            Command::AddIceCandidate {
                peer,
                pc,
                candidate,
                reply,
            } => {
                let _ = reply.send(self.add_ice_candidate(&peer, pc, candidate));
            }
            Command::SetAllowed {
                peer,
                allowed,
                reply,
            } => {
                self.set_allowed(peer, allowed);
                let _ = reply.send(());
            }
            Command::SetSubscriptions {
                peer,
                publishers,
                reply,
            } => {
                self.set_subscriptions(peer, publishers);
                let _ = reply.send(());
            }
            Command::JoinRoom { peer, room, reply } => {
                self.join_room(peer, room);
                let _ = reply.send(());
            }
            Command::SetVideoCodec { room, codec, reply } => {
                self.set_video_codec(&room, codec);
                let _ = reply.send(());
            }
            Command::RenderSizes { peer, sizes } => self.set_render_sizes(&peer, &sizes),
            Command::HostMute {
                peer,
                kind,
                muted,
                reply,
            } => {
                self.set_host_muted(&peer, kind, muted);
                let _ = reply.send(());
            }
            Command::RemovePeer { peer, reply } => {
                self.remove_peer(&peer);
                let _ = reply.send(());
            }
            Command::Stats { peer, reply } => {
                let _ = reply.send(self.peer_stats(&peer));
            }
            Command::TcpOpened {
                conn,
                remote,
                writer,
                kill,
                reply,
            } => {
                let accepted = self.on_tcp_opened(conn, remote, writer, kill);
                let _ = reply.send(accepted);
            }
        }
    }

    // ---- UDP ingress -------------------------------------------------------------------

    fn drop_datagram(&self, reason: &'static str) {
        self.counters
            .dropped_datagrams
            .fetch_add(1, Ordering::Relaxed);
        metrics::counter!("rounds_sfu_dropped_datagrams_total", "reason" => reason).increment(1);
    }

    fn on_datagram(&mut self, from: SocketAddr, data: &[u8]) {
        let class = classify(data);
        let target = match class {
            PacketClass::Stun => match binding_request_ufrag(data) {
                Some(ufrag) => match self.authenticate(ufrag, from, data) {
                    Ok(id) => Some(id),
                    Err(reason) => {
                        self.drop_datagram(reason);
                        return;
                    }
                },
                None => match self
                    .prober
                    .answer(ProbeTransport::Udp, from, data, Instant::now())
                {
                    Verdict::NotAProbe => self.routes.by_addr(&from),
                    Verdict::Answer(reply) => {
                        let _ = self.io.udp.try_send_to(reply.as_bytes(), from);
                        return;
                    }
                    Verdict::Ignore => return,
                },
            },
            PacketClass::Dtls | PacketClass::Rtp => self.routes.by_addr(&from),
            PacketClass::Other => {
                self.drop_datagram("not_webrtc");
                return;
            }
        };
        let Some(id) = target else {
            self.drop_datagram("unknown_sender");
            return;
        };
        let transport = TransportContext {
            local_addr: self.udp_local,
            peer_addr: from,
            transport_protocol: TransportProtocol::UDP,
            ecn: None,
        };
        self.deliver(id, transport, data);
        if class == PacketClass::Stun {
            self.nomination_after_stun(id, transport, data);
        }
    }

    /// Completes a nomination that came too early, after `data` went into connection `id`.
    ///
    /// RFC 8445, section 7.3.1.5: when the client nominates a pair (a check with
    /// USE-CANDIDATE) before our own check on that pair has succeeded, the nomination is to
    /// take effect once our check succeeds. `rtc`'s controlled agent starts that check but
    /// neither answers the nominating request nor remembers it, so ICE waits for the client
    /// to nominate again; Chromium does that at its ping interval for a connection it
    /// already uses, up to 2.5 s later, while its DTLS handshake goes unanswered. Seen as a
    /// clinician's or patient's connection taking 1 to 3 s on loopback. So the client's last
    /// early nomination is kept and handed to `rtc` again when our check on the same pair
    /// (the same client address) succeeds; `rtc` then selects the pair and answers it.
    fn nomination_after_stun(&mut self, id: PcId, transport: TransportContext, data: &[u8]) {
        let Some(entry) = self.pcs.get_mut(&id) else {
            return;
        };
        // Once ICE is connected there is nothing to complete (the state change cleared it).
        if entry.ice_connected {
            return;
        }
        let from = transport.peer_addr;
        if binding_request_nominates(data) {
            entry.early_nomination = Some(EarlyNomination {
                from,
                request: data.to_vec(),
            });
        } else if is_binding_success(data)
            && let Some(nomination) = entry.early_nomination.take_if(|n| n.from == from)
        {
            tracing::debug!(
                peer = %entry.peer,
                pc = ?entry.kind,
                "our check succeeded after the client nominated the pair: nominating it now"
            );
            self.deliver(id, transport, &nomination.request);
        }
    }

    /// Routes a binding request by our ufrag, learning `from` as a route for that connection
    /// once the request proves it knows the password.
    fn authenticate(
        &mut self,
        ufrag: &str,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<PcId, &'static str> {
        let id = self.routes.by_ufrag(ufrag).ok_or("unknown_ufrag")?;
        if self.routes.by_addr(&from) == Some(id) {
            return Ok(id);
        }
        let entry = self.pcs.get(&id).ok_or("unknown_ufrag")?;
        if !binding_request_is_authentic(data, &entry.pwd, self.crypto.crypto()) {
            return Err("stun_unauthenticated");
        }
        self.routes.learn_addr(id, from);
        Ok(id)
    }

    /// Feeds one datagram or frame into a connection and services it.
    fn deliver(&mut self, id: PcId, transport: TransportContext, data: &[u8]) {
        let Some(entry) = self.pcs.get_mut(&id) else {
            return;
        };
        entry.counters.packets_in += 1;
        entry.counters.bytes_in += data.len() as u64;
        let now = Instant::now();
        let msg = TaggedBytesMut {
            now,
            transport,
            message: BytesMut::from(data),
        };
        match guard(|| entry.pc.handle_read(msg)) {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::trace!(peer = %entry.peer, %error, "packet rejected"),
            Err(_) => {
                self.poison(id);
                return;
            }
        }
        self.ingress = Some(now);
        self.service(id);
        self.ingress = None;
        // The packet's whole fan-out goes to the kernel in one call; each copy is held until
        // then.
        self.send_udp();
        let held = now.elapsed();
        for _ in 0..std::mem::take(&mut self.forwarded_unsent) {
            self.forward_delay.record(held);
        }
    }

    // ---- Servicing a connection ----------------------------------------------------------

    /// Drains a connection's events and application messages, acts on them, sends what it
    /// queued and re-arms its deadline.
    pub(super) fn service(&mut self, id: PcId) {
        let Some(entry) = self.pcs.get_mut(&id) else {
            return;
        };
        let mut events = Vec::new();
        let mut messages = Vec::new();
        let drained = guard(|| {
            loop {
                let mut progressed = false;
                while let Some(event) = entry.pc.poll_event() {
                    events.push(event);
                    progressed = true;
                }
                while let Some(msg) = entry.pc.poll_read() {
                    messages.push(msg.message);
                    progressed = true;
                }
                if !progressed {
                    break;
                }
            }
        });
        if drained.is_err() || flush_and_rearm(&self.io, &mut self.timers, entry).is_err() {
            self.poison(id);
            return;
        }
        let now = Instant::now();
        // Events first: a track's "open" arrives together with its first packet.
        for event in events {
            self.on_pc_event(id, event);
        }
        for message in messages {
            match message {
                RTCMessage::RtpPacket(track_id, packet) => self.on_rtp(id, &track_id, packet, now),
                RTCMessage::RtcpPacket(track_id, packets) => {
                    self.on_rtcp(id, &track_id, &packets, now)
                }
                // The subscriber's data channel carries nothing yet.
                _ => {}
            }
        }
        if let Some(entry) = self.pcs.get_mut(&id)
            && flush_and_rearm(&self.io, &mut self.timers, entry).is_err()
        {
            self.poison(id);
        }
    }

    fn on_pc_event(&mut self, id: PcId, event: RTCPeerConnectionEvent) {
        match event {
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                let Some(entry) = self.pcs.get_mut(&id) else {
                    return;
                };
                let new = pc_state(state);
                let old = std::mem::replace(&mut entry.state, new);
                if new == old {
                    return;
                }
                let (peer, pc) = (entry.peer.clone(), entry.kind);
                tracing::info!(peer = %peer, pc = ?pc, state = ?new, "peer connection state");
                if new == PcState::Connected {
                    if entry.first_connect != FirstConnect::Abandoned {
                        entry.first_connect = FirstConnect::Connected;
                    }
                    self.emit(SfuEvent::PeerConnected { peer, pc });
                    self.prime_keyframes(id, Instant::now());
                } else if matches!(
                    new,
                    PcState::Disconnected | PcState::Failed | PcState::Closed
                ) && matches!(old, PcState::Connecting | PcState::Connected)
                {
                    self.emit(SfuEvent::PeerDisconnected { peer, pc });
                }
            }
            RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(state) => {
                if let Some(entry) = self.pcs.get_mut(&id) {
                    entry.ice_connected = matches!(
                        state,
                        RTCIceConnectionState::Connected | RTCIceConnectionState::Completed
                    );
                    if entry.ice_connected {
                        entry.early_nomination = None;
                    }
                }
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                self.on_track_open(id, init);
            }
            _ => {}
        }
    }

    // ---- Timers and housekeeping ---------------------------------------------------------

    fn run_timers(&mut self) {
        let now = Instant::now();
        while let Some(id) = self.timers.pop_due(now) {
            let Some(entry) = self.pcs.get_mut(&id) else {
                continue;
            };
            match guard(|| entry.pc.handle_timeout(now)) {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::trace!(peer = %entry.peer, %error, "timeout handling failed")
                }
                Err(_) => {
                    self.poison(id);
                    continue;
                }
            }
            self.service(id);
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        self.replace_stalled_subscribers(now);
        self.retire_idle_layers(now);
        self.collect_feedback(now);
        self.run_engines(now);
        self.forward_delay.export();
        let expired: Vec<ConnId> = self
            .io
            .conns
            .iter()
            .filter(|(_, c)| {
                c.pc.is_none() && now.saturating_duration_since(c.opened) > TCP_HANDSHAKE_DEADLINE
            })
            .map(|(id, _)| *id)
            .collect();
        for conn in expired {
            tracing::debug!(conn = conn.0, "closing ICE-TCP connection: no handshake");
            self.close_conn(conn);
        }
    }

    // ---- Connection lifecycle ------------------------------------------------------------

    pub(super) fn next_pc_id(&mut self) -> PcId {
        let id = PcId(self.next_pc);
        self.next_pc += 1;
        id
    }

    /// A connection `rtc` panicked on: drop it, keep everyone else.
    pub(super) fn poison(&mut self, id: PcId) {
        self.counters
            .poisoned_connections
            .fetch_add(1, Ordering::Relaxed);
        metrics::counter!("rounds_sfu_poisoned_connections_total").increment(1);
        if let Some(entry) = self.pcs.get(&id) {
            tracing::error!(peer = %entry.peer, pc = ?entry.kind, "peer connection dropped after an internal failure");
        }
        self.drop_pc(id);
    }

    /// Closes and forgets a connection, and everything routed to it.
    pub(super) fn drop_pc(&mut self, id: PcId) {
        let Some(mut entry) = self.pcs.remove(&id) else {
            return;
        };
        // Tell the client (DTLS close_notify) rather than leaving it to time out.
        if guard(|| entry.pc.close()).is_ok() {
            let _ = self.io.flush(&mut entry);
        }
        self.routes.forget(id);
        self.timers.disarm(id);
        let conns: Vec<ConnId> = self
            .io
            .conns
            .iter()
            .filter(|(_, c)| c.pc == Some(id))
            .map(|(conn, _)| *conn)
            .collect();
        for conn in conns {
            self.close_conn(conn);
        }
        if matches!(entry.state, PcState::Connecting | PcState::Connected) {
            self.emit(SfuEvent::PeerDisconnected {
                peer: entry.peer.clone(),
                pc: entry.kind,
            });
        }
        match entry.kind {
            PcKind::Publisher => {
                if let Some(state) = self.peers.get_mut(&entry.peer)
                    && state.publisher == Some(id)
                {
                    state.publisher = None;
                    let mids: Vec<String> = state.published.keys().cloned().collect();
                    for mid in mids {
                        self.unpublish(&entry.peer, &mid);
                    }
                }
            }
            PcKind::Subscriber => {
                if let Some(state) = self.peers.get_mut(&entry.peer)
                    && state.subscriber == Some(id)
                {
                    state.subscriber = None;
                }
                for state in self.peers.values_mut() {
                    for track in state.published.values_mut() {
                        track.subscribers.retain(|s| *s != id);
                    }
                }
            }
        }
    }

    // ---- ICE-TCP -------------------------------------------------------------------------

    fn on_tcp_opened(
        &mut self,
        conn: ConnId,
        remote: SocketAddr,
        writer: mpsc::Sender<Bytes>,
        kill: oneshot::Sender<()>,
    ) -> bool {
        let unauthenticated = self.io.conns.values().filter(|c| c.pc.is_none()).count();
        if self.tcp_local.is_none()
            || self.io.conns.len() >= MAX_TCP_CONNS
            || unauthenticated >= MAX_UNAUTHENTICATED_TCP_CONNS
        {
            self.counters
                .rejected_tcp_connections
                .fetch_add(1, Ordering::Relaxed);
            metrics::counter!("rounds_sfu_rejected_tcp_connections_total").increment(1);
            return false;
        }
        self.io.conns.insert(
            conn,
            TcpConn {
                remote,
                writer,
                _kill: kill,
                pc: None,
                opened: Instant::now(),
            },
        );
        true
    }

    fn close_conn(&mut self, conn: ConnId) {
        if self.io.conns.remove(&conn).is_some() {
            self.io.tcp_routes.retain(|_, c| *c != conn);
        }
    }

    fn tcp_garbage(&mut self, conn: ConnId) {
        self.counters
            .garbage_tcp_frames
            .fetch_add(1, Ordering::Relaxed);
        metrics::counter!("rounds_sfu_garbage_tcp_frames_total").increment(1);
        self.close_conn(conn);
    }

    fn on_tcp(&mut self, inbound: TcpInbound) {
        match inbound {
            TcpInbound::Frame { conn, frame } => self.on_tcp_frame(conn, &frame),
            TcpInbound::Closed { conn, garbage } => {
                if garbage && self.io.conns.contains_key(&conn) {
                    self.tcp_garbage(conn);
                } else {
                    self.close_conn(conn);
                }
            }
        }
    }

    fn on_tcp_frame(&mut self, conn: ConnId, frame: &[u8]) {
        let (Some(tcp_local), Some(state)) = (self.tcp_local, self.io.conns.get(&conn)) else {
            return;
        };
        let (remote, bound) = (state.remote, state.pc);
        match self
            .prober
            .answer(ProbeTransport::Tcp, remote, frame, Instant::now())
        {
            Verdict::NotAProbe => {}
            Verdict::Answer(reply) => {
                let _ = state
                    .writer
                    .try_send(Bytes::copy_from_slice(reply.as_bytes()));
                return;
            }
            Verdict::Ignore => return,
        }
        let target = match classify(frame) {
            PacketClass::Stun => match binding_request_ufrag(frame) {
                Some(ufrag) => match self.routes.by_ufrag(ufrag) {
                    Some(id) if bound == Some(id) => Some(id),
                    Some(id)
                        if self.pcs.get(&id).is_some_and(|entry| {
                            binding_request_is_authentic(frame, &entry.pwd, self.crypto.crypto())
                        }) =>
                    {
                        if let Some(state) = self.io.conns.get_mut(&conn) {
                            state.pc = Some(id);
                        }
                        self.io.tcp_routes.insert((id, remote), conn);
                        Some(id)
                    }
                    _ => None,
                },
                None => bound,
            },
            PacketClass::Dtls | PacketClass::Rtp => bound,
            PacketClass::Other => None,
        };
        let Some(id) = target else {
            // Before authentication anything unexpected closes the connection; afterwards a
            // stray frame is dropped, as the same bytes over UDP would be.
            if bound.is_none() || classify(frame) == PacketClass::Other {
                self.tcp_garbage(conn);
            }
            return;
        };
        let transport = TransportContext {
            local_addr: tcp_local,
            peer_addr: remote,
            transport_protocol: TransportProtocol::TCP,
            ecn: None,
        };
        self.deliver(id, transport, frame);
        if classify(frame) == PacketClass::Stun {
            self.nomination_after_stun(id, transport, frame);
        }
    }
}
