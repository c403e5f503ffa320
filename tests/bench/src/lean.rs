//! Lightweight WebRTC peers for capacity runs, driven the way the server drives `rtc`: one
//! UDP socket per peer, one task, no threads.
//!
//! A **publisher** replays a pre-encoded [`Clip`], stamping each packet's RTP timestamp with
//! the moment it is sent (on a clock shared by every peer of the run). A **subscriber** only
//! counts: RTP headers travel in the clear under SRTP, so it reads sequence numbers and
//! timestamps straight off the datagram and never hands the packet to `rtc` (no decryption,
//! no jitter buffer). Everything else (STUN, DTLS, RTCP) goes to `rtc`, which keeps ICE
//! consent and DTLS alive. That makes a subscriber cost a fraction of what the SFU spends on
//! the same packet, so the generator is not the bottleneck of the measure.
//!
//! Loss comes from sequence-number gaps per SSRC. Delay is one-way and relative: arrival
//! time minus the RTP timestamp (converted to time), minus the smallest such value seen on
//! that stream, so an SFU's timestamp offset cancels out and what remains is queueing in the
//! SFU and the network path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use bytes::{Bytes, BytesMut};
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::configure_rtcp_reports;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::clip::Clip;

const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

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

fn build_pc() -> anyhow::Result<RTCPeerConnection> {
    let mut media = MediaEngine::default();
    media.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: opus(),
            payload_type: 111,
        },
        RtpCodecKind::Audio,
    )?;
    media.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: vp8(),
            payload_type: 96,
        },
        RtpCodecKind::Video,
    )?;
    let registry = configure_rtcp_reports(Registry::new());
    Ok(RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .build(Instant::now())?)
}

fn bind_socket(ip: std::net::IpAddr) -> anyhow::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::new(ip, 0).into())?;
    Ok(UdpSocket::from_std(socket.into())?)
}

fn host_candidate(addr: SocketAddr) -> anyhow::Result<RTCIceCandidateInit> {
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: addr.ip().to_string(),
            port: addr.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()?;
    Ok(RTCIceCandidate::from(&candidate).to_json()?)
}

/// Payload type → clock rate, from the `a=rtpmap` lines of an SDP.
fn clock_rates(sdp: &str) -> HashMap<u8, u32> {
    sdp.lines()
        .filter_map(|l| l.trim().strip_prefix("a=rtpmap:"))
        .filter_map(|rest| {
            let (pt, codec) = rest.split_once(' ')?;
            let rate = codec.split('/').nth(1)?.parse().ok()?;
            Some((pt.parse().ok()?, rate))
        })
        .collect()
}

/// What every subscriber of a run saw, merged. Counters only grow; callers take differences.
#[derive(Default)]
pub struct RecvStats {
    pub packets: u64,
    pub bytes: u64,
    /// Packets that a sequence gap showed missing (net of late arrivals).
    pub expected: u64,
    /// Relative one-way delays of packets since the last [`RecvStats::take_delays`], in µs.
    delays: Vec<u32>,
}

impl RecvStats {
    pub fn take_delays(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.delays)
    }
}

#[derive(Clone, Default)]
pub struct SharedStats(Arc<Mutex<RecvStats>>);

impl SharedStats {
    pub fn lock(&self) -> MutexGuard<'_, RecvStats> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Per-SSRC receive state of one subscriber.
struct Stream {
    clock: u32,
    first_ts: u32,
    /// Highest extended sequence number seen.
    highest: u64,
    min_offset_us: i64,
}

/// Extends a 16-bit sequence number next to `highest`.
fn extend_seq(highest: u64, seq: u16) -> u64 {
    let cycle = highest & !0xffff;
    let candidates = [cycle.wrapping_sub(0x1_0000), cycle, cycle + 0x1_0000];
    candidates
        .into_iter()
        .map(|c| c.wrapping_add(u64::from(seq)))
        .min_by_key(|&c| c.abs_diff(highest))
        .unwrap_or(u64::from(seq))
}

/// How the peer behaves once connected.
pub enum Role {
    Publisher { clip: Arc<Clip>, audio: bool },
    Subscriber { stats: SharedStats },
}

enum Cmd {
    /// Build and return our offer (publisher).
    Offer(oneshot::Sender<anyhow::Result<String>>),
    /// The remote answer to our offer.
    Answer(String, oneshot::Sender<anyhow::Result<()>>),
    /// A remote offer; reply with our answer (subscriber).
    RemoteOffer(String, oneshot::Sender<anyhow::Result<String>>),
    Candidate(RTCIceCandidateInit),
}

/// Handle to a peer's task. Dropping it ends the task.
pub struct LeanPeer {
    cmds: mpsc::UnboundedSender<Cmd>,
    connected: tokio::sync::watch::Receiver<bool>,
    pub local: SocketAddr,
}

struct Sender {
    id: RTCRtpSenderId,
    ssrc: u32,
    seq: u16,
    payload_type: Option<u8>,
}

struct Task {
    pc: RTCPeerConnection,
    socket: UdpSocket,
    local: SocketAddr,
    epoch: Instant,
    role: Role,
    video: Option<Sender>,
    audio: Option<Sender>,
    connected: tokio::sync::watch::Sender<bool>,
    clocks: HashMap<u8, u32>,
    streams: HashMap<u32, Stream>,
    /// RTP received since the last merge into the shared statistics.
    pending: (u64, u64, u64, Vec<u32>),
}

impl LeanPeer {
    /// Starts a peer. `epoch` is the clock its RTP timestamps (publisher) or delays
    /// (subscriber) are measured against; every peer of a run shares it. The socket binds
    /// to `ip`, which must be an address the SFU's candidates can reach.
    pub fn spawn(role: Role, epoch: Instant, ip: std::net::IpAddr) -> anyhow::Result<LeanPeer> {
        let socket = bind_socket(ip)?;
        let local = socket.local_addr()?;
        let mut pc = build_pc()?;
        let (mut video, mut audio) = (None, None);
        if let Role::Publisher {
            audio: with_audio, ..
        } = &role
        {
            let mut add = |kind, codec: RTCRtpCodec, id: &str| -> anyhow::Result<Sender> {
                let ssrc = loop {
                    let s = rand::random::<u32>();
                    if s != 0 {
                        break s;
                    }
                };
                let track = MediaStreamTrack::new(
                    "bench".to_owned(),
                    id.to_owned(),
                    id.to_owned(),
                    kind,
                    vec![RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters {
                            ssrc: Some(ssrc),
                            ..Default::default()
                        },
                        codec,
                        ..Default::default()
                    }],
                );
                let id = pc.add_track(track)?;
                let ssrc = pc
                    .rtp_sender(id)
                    .and_then(|s| s.track().ssrcs().next())
                    .unwrap_or(ssrc);
                Ok(Sender {
                    id,
                    ssrc,
                    seq: rand::random(),
                    payload_type: None,
                })
            };
            if *with_audio {
                audio = Some(add(RtpCodecKind::Audio, opus(), "audio0")?);
            }
            video = Some(add(RtpCodecKind::Video, vp8(), "video0")?);
        }
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let (connected_tx, connected) = tokio::sync::watch::channel(false);
        let task = Task {
            pc,
            socket,
            local,
            epoch,
            role,
            video,
            audio,
            connected: connected_tx,
            clocks: HashMap::new(),
            streams: HashMap::new(),
            pending: Default::default(),
        };
        tokio::spawn(task.run(cmd_rx));
        Ok(LeanPeer {
            cmds,
            connected,
            local,
        })
    }

    pub async fn offer(&self) -> anyhow::Result<String> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Offer(tx))
            .map_err(|_| anyhow!("peer gone"))?;
        rx.await?
    }

    pub async fn set_answer(&self, sdp: String) -> anyhow::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Answer(sdp, tx))
            .map_err(|_| anyhow!("peer gone"))?;
        rx.await?
    }

    pub async fn answer(&self, offer: String) -> anyhow::Result<String> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::RemoteOffer(offer, tx))
            .map_err(|_| anyhow!("peer gone"))?;
        rx.await?
    }

    pub fn add_candidate(&self, candidate: String, mid: Option<String>, index: Option<u16>) {
        let _ = self.cmds.send(Cmd::Candidate(RTCIceCandidateInit {
            candidate,
            sdp_mid: mid,
            sdp_mline_index: index,
            ..Default::default()
        }));
    }

    pub async fn wait_connected(&self, timeout: Duration) -> anyhow::Result<()> {
        let mut rx = self.connected.clone();
        tokio::time::timeout(timeout, rx.wait_for(|c| *c))
            .await
            .context("peer connection timed out")?
            .map_err(|_| anyhow!("peer task ended"))?;
        Ok(())
    }

    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }
}

fn is_rtp(data: &[u8]) -> bool {
    data.len() >= 12 && (128..=191).contains(&data[0]) && !(192..=223).contains(&data[1])
}

impl Task {
    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
        let mut buf = vec![0u8; 2048];
        let frame_interval = match &self.role {
            Role::Publisher { clip, .. } => Duration::from_secs(1) / clip.fps,
            Role::Subscriber { .. } => Duration::from_secs(3600),
        };
        let audio_interval = Duration::from_millis(20);
        let start = Instant::now();
        let mut next_frame = start;
        let mut next_audio = start;
        let (mut frame_index, mut audio_index) = (0usize, 0usize);
        let mut merge = tokio::time::interval(Duration::from_millis(100));
        loop {
            let now = Instant::now();
            let deadline = self
                .pc
                .poll_timeout()
                .unwrap_or(now + Duration::from_secs(1))
                .min(now + Duration::from_secs(1));
            let sending = matches!(self.role, Role::Publisher { .. }) && *self.connected.borrow();
            let media_at = if sending {
                next_frame.min(if self.audio.is_some() {
                    next_audio
                } else {
                    next_frame
                })
            } else {
                now + Duration::from_secs(3600)
            };
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => {
                    let Ok((n, from)) = received else { return };
                    self.on_datagram(&buf[..n], from);
                    // Drain what else is queued without going back to the reactor.
                    for _ in 0..64 {
                        match self.socket.try_recv_from(&mut buf) {
                            Ok((n, from)) => self.on_datagram(&buf[..n], from),
                            Err(_) => break,
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let _ = self.pc.handle_timeout(Instant::now());
                }
                _ = tokio::time::sleep_until(media_at.into()), if sending => {
                    let now = Instant::now();
                    if now >= next_frame {
                        self.send_frame(frame_index, now);
                        frame_index += 1;
                        next_frame += frame_interval;
                        // After a stall, skip rather than burst.
                        if next_frame < now {
                            next_frame = now + frame_interval;
                        }
                    }
                    if self.audio.is_some() && now >= next_audio {
                        self.send_audio(audio_index, now);
                        audio_index += 1;
                        next_audio += audio_interval;
                        if next_audio < now {
                            next_audio = now + audio_interval;
                        }
                    }
                }
                _ = merge.tick() => self.merge_stats(),
                cmd = cmds.recv() => {
                    let Some(cmd) = cmd else { return };
                    self.on_cmd(cmd);
                }
            }
            self.service().await;
        }
    }

    fn on_cmd(&mut self, cmd: Cmd) {
        let now = Instant::now();
        match cmd {
            Cmd::Offer(reply) => {
                let result = (|| {
                    let offer = self.pc.create_offer(None)?;
                    self.pc.set_local_description(now, offer)?;
                    self.pc.add_local_candidate(host_candidate(self.local)?)?;
                    self.pc
                        .add_local_candidate(RTCIceCandidateInit::default())?;
                    self.pc
                        .local_description()
                        .map(|d| d.sdp)
                        .ok_or_else(|| anyhow!("no local description"))
                })();
                let _ = reply.send(result);
            }
            Cmd::Answer(sdp, reply) => {
                let result = (|| {
                    self.pc
                        .set_remote_description(now, RTCSessionDescription::answer(sdp)?)?;
                    for sender in [self.video.as_mut(), self.audio.as_mut()]
                        .into_iter()
                        .flatten()
                    {
                        sender.payload_type = self.pc.rtp_sender(sender.id).and_then(|mut s| {
                            s.get_parameters()
                                .rtp_parameters
                                .codecs
                                .first()
                                .map(|c| c.payload_type)
                        });
                    }
                    Ok(())
                })();
                let _ = reply.send(result);
            }
            Cmd::RemoteOffer(sdp, reply) => {
                self.clocks.extend(clock_rates(&sdp));
                let first = self.pc.local_description().is_none();
                let result = (|| {
                    self.pc
                        .set_remote_description(now, RTCSessionDescription::offer(sdp)?)?;
                    if first {
                        self.pc.add_local_candidate(host_candidate(self.local)?)?;
                        self.pc
                            .add_local_candidate(RTCIceCandidateInit::default())?;
                    }
                    let answer = self.pc.create_answer(None)?;
                    self.pc.set_local_description(now, answer)?;
                    self.pc
                        .local_description()
                        .map(|d| d.sdp)
                        .ok_or_else(|| anyhow!("no local description"))
                })();
                let _ = reply.send(result);
            }
            Cmd::Candidate(candidate) => {
                let _ = self.pc.add_remote_candidate(candidate);
            }
        }
    }

    fn on_datagram(&mut self, data: &[u8], from: SocketAddr) {
        let now = Instant::now();
        if is_rtp(data) && matches!(self.role, Role::Subscriber { .. }) {
            self.count_rtp(data, now);
            return;
        }
        let _ = self.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.local,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(data),
        });
    }

    fn count_rtp(&mut self, data: &[u8], now: Instant) {
        let pt = data[1] & 0x7f;
        let seq = u16::from_be_bytes([data[2], data[3]]);
        let ts = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        let ssrc = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        let clock = self.clocks.get(&pt).copied().unwrap_or(90_000);
        let arrival_us = now.saturating_duration_since(self.epoch).as_micros() as i64;
        let stream = self.streams.entry(ssrc).or_insert_with(|| Stream {
            clock,
            first_ts: ts,
            highest: u64::from(seq) + 0x1_0000,
            min_offset_us: i64::MAX,
        });
        let ext = extend_seq(stream.highest, seq);
        let mut expected = 0;
        if stream.min_offset_us == i64::MAX {
            expected = 1;
            stream.highest = ext;
        } else if ext > stream.highest {
            expected = ext - stream.highest;
            stream.highest = ext;
        }
        let media_us = i64::from(ts.wrapping_sub(stream.first_ts) as i32) * 1_000_000
            / i64::from(stream.clock.max(1));
        let offset = arrival_us - media_us;
        stream.min_offset_us = stream.min_offset_us.min(offset);
        let delay = (offset - stream.min_offset_us).clamp(0, i64::from(u32::MAX)) as u32;
        self.pending.0 += 1;
        self.pending.1 += data.len() as u64;
        self.pending.2 += expected;
        self.pending.3.push(delay);
    }

    fn merge_stats(&mut self) {
        let Role::Subscriber { stats } = &self.role else {
            return;
        };
        if self.pending.0 == 0 {
            return;
        }
        let (packets, bytes, expected, delays) = std::mem::take(&mut self.pending);
        let mut s = stats.lock();
        s.packets += packets;
        s.bytes += bytes;
        s.expected += expected;
        s.delays.extend(delays);
    }

    fn write(&mut self, video: bool, payload: Bytes, marker: bool, clock: u32, now: Instant) {
        let sender = if video {
            self.video.as_mut()
        } else {
            self.audio.as_mut()
        };
        let Some(sender) = sender else { return };
        let Some(payload_type) = sender.payload_type else {
            return;
        };
        let elapsed = now.saturating_duration_since(self.epoch);
        let timestamp = (elapsed.as_micros() as u64 * u64::from(clock) / 1_000_000) as u32;
        sender.seq = sender.seq.wrapping_add(1);
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                marker,
                payload_type,
                sequence_number: sender.seq,
                timestamp,
                ssrc: sender.ssrc,
                ..Default::default()
            },
            payload,
        };
        let id = sender.id;
        if let Some(mut s) = self.pc.rtp_sender(id) {
            let _ = s.write_rtp(now, packet);
        }
    }

    fn send_frame(&mut self, index: usize, now: Instant) {
        let Role::Publisher { clip, .. } = &self.role else {
            return;
        };
        let clip = clip.clone();
        let frame = &clip.frames[index % clip.frames.len()];
        let picture_id = (index & 0x7fff) as u16;
        let last = frame.payloads.len().saturating_sub(1);
        for (i, payload) in frame.payloads.iter().enumerate() {
            let mut p = payload.clone();
            if p.len() >= 4 {
                p[2] = 0x80 | (picture_id >> 8) as u8;
                p[3] = (picture_id & 0xff) as u8;
            }
            self.write(true, Bytes::from(p), i == last, 90_000, now);
        }
    }

    fn send_audio(&mut self, index: usize, now: Instant) {
        let Role::Publisher { clip, .. } = &self.role else {
            return;
        };
        let packet = Bytes::from(clip.audio[index % clip.audio.len()].clone());
        self.write(false, packet, false, 48_000, now);
    }

    /// Drains events and messages, and sends what the connection queued.
    async fn service(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = event {
                let _ = self
                    .connected
                    .send(state == RTCPeerConnectionState::Connected);
            }
        }
        while self.pc.poll_read().is_some() {}
        while let Some(msg) = self.pc.poll_write() {
            if self
                .socket
                .try_send_to(&msg.message, msg.transport.peer_addr)
                .is_err()
            {
                let _ = self
                    .socket
                    .send_to(&msg.message, msg.transport.peer_addr)
                    .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_extend_across_wraps() {
        assert_eq!(extend_seq(0x1_fffe, 0xffff), 0x1_ffff);
        assert_eq!(extend_seq(0x1_ffff, 0), 0x2_0000);
        assert_eq!(extend_seq(0x2_0001, 0xffff), 0x1_ffff);
    }

    #[test]
    fn rtp_is_told_from_rtcp_stun_and_dtls() {
        let mut rtp = [0u8; 12];
        rtp[0] = 0x80;
        rtp[1] = 96;
        assert!(is_rtp(&rtp));
        rtp[1] = 200; // sender report
        assert!(!is_rtp(&rtp));
        assert!(!is_rtp(&[0x16; 20]));
        assert!(!is_rtp(&[0x00; 20]));
    }

    #[test]
    fn clock_rates_come_from_rtpmap() {
        let rates = clock_rates("a=rtpmap:111 opus/48000/2\r\na=rtpmap:96 VP8/90000\r\n");
        assert_eq!(rates.get(&111), Some(&48_000));
        assert_eq!(rates.get(&96), Some(&90_000));
    }
}
