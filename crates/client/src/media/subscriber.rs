//! The subscriber connection: the server offers everyone else's tracks, we answer, and every
//! remote track is read, counted and (optionally) decoded.
//!
//! Remote tracks are attributed to participants by their msid stream id, which the SFU sets to
//! the publisher's participant id. VP8 is reassembled with `rounds_media::Vp8Depacketizer`
//! and decoded on a thread per track (libvpx takes milliseconds per 720p frame); a PLI goes
//! back, at most every 500 ms, while the depacketizer waits for a keyframe or a hole has
//! stayed open too long.
//!
//! With a [`VideoSink`] the decoded pictures go to the application; with an [`AudioSink`]
//! each remote person's Opus is decoded into 20 ms frames, lost packets rebuilt from the next
//! packet's FEC or concealed, so the sink gets continuous audio. Both kinds pass a
//! `ReorderBuffer` first: video waits there for retransmissions, audio only for packets a
//! jittery path delivered out of order.

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rounds_media::{
    OpusDecoder, ReorderBuffer, Vp8Decoder, Vp8Depacketizer, audio_level_dbov, vp8_is_keyframe,
    vp8_packet_starts_keyframe,
};
use rounds_proto::PcKind;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit, RTCSessionDescription};

use super::external::{AudioSink, VideoSink};
use super::pc::{self, MediaEvent, NetOptions, PcHandler, RemoteCandidates};
use super::sdp;
use crate::ClientError;
use crate::stats::StatsHub;

/// How long a missing video packet is waited for before the frames behind it are given up.
/// A NACK goes out within 100 ms of the gap and is repeated every 100 ms until the packet
/// comes; each answer takes a round trip, and a packet the publisher's own link lost takes
/// two (the SFU has to ask for it first). On a 200 ms round trip with 10 % loss each way a
/// hole is usually filled within 250-450 ms, but one NACK or retransmission in five is lost
/// too; this leaves room for several tries. Waiting is only ever for a hole: packets in
/// order pass straight through.
const RETRANSMISSION_WAIT: Duration = Duration::from_millis(900);
/// A hole still open after this long probably will not be filled in time: a keyframe is
/// asked for while still waiting, and when it arrives the wait ends there (a keyframe needs
/// nothing before it). So a freeze from an unrecoverable loss is about this plus a keyframe
/// round trip, not the whole wait plus one.
const KEYFRAME_REQUEST_AFTER: Duration = Duration::from_millis(450);
/// Minimum spacing of our keyframe requests per track.
const PLI_INTERVAL: Duration = Duration::from_millis(500);
/// How long a missing audio packet is waited for before the packets behind it are played
/// and it is concealed. Audio is never resent, so this only puts back in order packets that a
/// jittery network delivered out of order: two packets 20 ms apart on a path whose delay
/// varies by ±30 ms swap places about a third of the time, and without this the earlier one
/// would arrive "from the past" and be thrown away. Only a hole holds anything up.
const AUDIO_REORDER_WAIT: Duration = Duration::from_millis(80);
/// Frames waiting for the decoder thread before we start dropping. When a hole fills, every
/// frame held behind it arrives at once, so this holds a whole retransmission wait of frames
/// (about 2 s at 15 fps).
const DECODE_QUEUE: usize = 32;

/// Frames (with their RTP timestamps) on their way to a decoder thread.
type DecodeQueue = std_mpsc::SyncSender<(Vec<u8>, u32)>;

/// Maps a remote track (its msid stream id and track id) to a participant id, and whether
/// it is that participant's screen share rather than their camera.
pub(crate) type Resolver = Arc<dyn Fn(&str, &str) -> (String, bool) + Send + Sync>;

/// Shared by the subscriber's event handler and its track readers.
pub(crate) struct ReceiveContext {
    pub(crate) stats: Arc<StatsHub>,
    pub(crate) decode_video: bool,
    pub(crate) decode_audio: bool,
    pub(crate) resolve: Resolver,
    video_sink: Option<VideoSink>,
    audio_sink: Option<AudioSink>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// At most this many lost audio packets in a row are filled in; a longer gap is a pause.
const MAX_CONCEALED: u16 = 5;

impl ReceiveContext {
    pub(crate) fn new(
        stats: Arc<StatsHub>,
        decode_video: bool,
        decode_audio: bool,
        resolve: Resolver,
    ) -> Self {
        ReceiveContext {
            stats,
            decode_video,
            decode_audio,
            resolve,
            video_sink: None,
            audio_sink: None,
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Where decoded remote video and audio go (each decodes even when the matching
    /// `decode_*` flag is off).
    pub(crate) fn with_sinks(mut self, video: Option<VideoSink>, audio: Option<AudioSink>) -> Self {
        self.video_sink = video;
        self.audio_sink = audio;
        self
    }

    pub(crate) fn spawn_reader(self: &Arc<Self>, track: Arc<dyn TrackRemote>) {
        let ctx = self.clone();
        let task = tokio::spawn(async move { ctx.read(track).await });
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    fn stop(&self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }

    async fn read(&self, track: Arc<dyn TrackRemote>) {
        let kind = track.kind().await;
        let stream_id = track.stream_id().await;
        let track_id = track.track_id().await;
        let (participant, _) = (self.resolve)(&stream_id, &track_id);
        self.stats.track_opened(&participant);
        tracing::debug!(participant = %participant, kind = ?kind, "remote track");
        match kind {
            RtpCodecKind::Video => {
                self.read_video(track, &participant, &stream_id, &track_id)
                    .await
            }
            RtpCodecKind::Audio => self.read_audio(track, &participant).await,
            _ => while track.poll().await.is_some() {},
        }
        tracing::debug!(participant = %participant, kind = ?kind, "remote track ended");
    }

    async fn read_video(
        &self,
        track: Arc<dyn TrackRemote>,
        participant: &str,
        stream_id: &str,
        track_id: &str,
    ) {
        let mut reorder = ReorderBuffer::new(RETRANSMISSION_WAIT);
        let mut depacketizer = Vp8Depacketizer::new();
        // The decoder starts with the first packet: by then the publisher's announcement of
        // what the track is (camera or screen) has arrived, since the SFU forwards a track
        // only after it was published.
        let mut decoder: Option<Option<DecodeQueue>> = None;
        let mut last_pli: Option<Instant> = None;
        // After dropping a frame for a busy decoder, skip to the next keyframe.
        let mut skip_to_keyframe = false;
        let mut ssrc = None;
        loop {
            // The next packet, or the moment a hole is given up on.
            let released = match next_event(&track, reorder.deadline()).await {
                Polled::Deadline => reorder.poll(Instant::now()),
                Polled::Ended => break,
                Polled::Event(TrackRemoteEvent::OnRtpPacket(packet)) => {
                    if decoder.is_none() {
                        let (_, screen) = (self.resolve)(stream_id, track_id);
                        decoder = Some(if self.decode_video || self.video_sink.is_some() {
                            spawn_decoder(
                                self.stats.clone(),
                                participant,
                                screen,
                                self.video_sink.clone(),
                            )
                        } else {
                            None
                        });
                    }
                    self.stats.rtp(participant, true, packet.payload.len());
                    ssrc = Some(packet.header.ssrc);
                    let recovered = reorder.stats().recovered;
                    let seq = packet.header.sequence_number;
                    let keyframe_starts = vp8_packet_starts_keyframe(&packet.payload);
                    let now = Instant::now();
                    let mut out = reorder.push(seq, packet, now);
                    if keyframe_starts && reorder.held() > 0 {
                        // A keyframe behind a hole: nothing before it is needed any more.
                        out.extend(reorder.skip_to(seq, now));
                    }
                    if reorder.stats().recovered != recovered {
                        self.stats
                            .video_packets_recovered(participant, reorder.stats().recovered);
                    }
                    out
                }
                Polled::Event(_) => continue,
            };
            for (_, packet) in released {
                let header = &packet.header;
                let Some(frame) = depacketizer.push(
                    header.sequence_number,
                    header.timestamp,
                    header.marker,
                    &packet.payload,
                ) else {
                    continue;
                };
                let lost = depacketizer.stats().packets_lost;
                match decoder.as_ref().and_then(Option::as_ref) {
                    None => self.stats.video_frame_received(participant, true, lost),
                    Some(tx) => {
                        self.stats.video_frame_received(participant, false, lost);
                        if skip_to_keyframe && vp8_is_keyframe(&frame) {
                            skip_to_keyframe = false;
                        }
                        if !skip_to_keyframe && tx.try_send((frame, header.timestamp)).is_err() {
                            self.stats.frame_dropped(participant);
                            skip_to_keyframe = true;
                        }
                    }
                }
            }
            let hole_too_old = reorder
                .waiting_since()
                .is_some_and(|since| since.elapsed() >= KEYFRAME_REQUEST_AFTER);
            let wants_keyframe = depacketizer.needs_keyframe() || skip_to_keyframe || hole_too_old;
            if let Some(media_ssrc) = ssrc
                && wants_keyframe
                && last_pli.is_none_or(|t| t.elapsed() >= PLI_INTERVAL)
            {
                last_pli = Some(Instant::now());
                let pli = PictureLossIndication {
                    sender_ssrc: 0,
                    media_ssrc,
                };
                match track.write_rtcp(vec![Box::new(pli)]).await {
                    Ok(()) => self.stats.pli_sent(participant),
                    Err(error) => tracing::debug!(%error, "keyframe request not sent"),
                }
            }
        }
    }

    async fn read_audio(&self, track: Arc<dyn TrackRemote>, participant: &str) {
        let sink = self.audio_sink.as_ref();
        let decoder = if self.decode_audio || sink.is_some() {
            match OpusDecoder::new() {
                Ok(d) => Some(d),
                Err(error) => {
                    tracing::warn!(%error, "could not start an Opus decoder");
                    None
                }
            }
        } else {
            None
        };
        let mut playout = AudioPlayout {
            decoder,
            last_seq: None,
        };
        let mut reorder = ReorderBuffer::new(AUDIO_REORDER_WAIT);
        loop {
            let released = match next_event(&track, reorder.deadline()).await {
                Polled::Deadline => reorder.poll(Instant::now()),
                Polled::Ended => break,
                Polled::Event(TrackRemoteEvent::OnRtpPacket(packet)) => {
                    self.stats.rtp(participant, false, packet.payload.len());
                    reorder.push(packet.header.sequence_number, packet, Instant::now())
                }
                Polled::Event(_) => continue,
            };
            for (seq, packet) in released {
                playout.play(self, participant, seq, &packet.payload);
            }
        }
    }
}

/// What waiting on a remote track gave.
enum Polled {
    Event(TrackRemoteEvent),
    /// The track ended.
    Ended,
    /// The reorder buffer's deadline passed first.
    Deadline,
}

/// The next event of `track`, or [`Polled::Deadline`] once `deadline` passes.
async fn next_event(track: &Arc<dyn TrackRemote>, deadline: Option<Instant>) -> Polled {
    let event = match deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline.into(), track.poll()).await {
            Ok(event) => event,
            Err(_) => return Polled::Deadline,
        },
        None => track.poll().await,
    };
    event.map_or(Polled::Ended, Polled::Event)
}

/// One remote person's audio, packets in sequence order: decoded, and gaps filled in.
struct AudioPlayout {
    decoder: Option<OpusDecoder>,
    last_seq: Option<u16>,
}

impl AudioPlayout {
    fn play(&mut self, ctx: &ReceiveContext, participant: &str, seq: u16, payload: &[u8]) {
        let sink = ctx.audio_sink.as_ref();
        let step = self.last_seq.map(|last| seq.wrapping_sub(last));
        if step.is_some_and(|s| s == 0 || s > u16::MAX / 2) {
            // A duplicate or a packet from the past: already played or concealed.
            return;
        }
        self.last_seq = Some(seq);
        let Some(decoder) = self.decoder.as_mut() else {
            return;
        };
        if payload.is_empty() {
            return;
        }
        if let (Some(sink), Some(step)) = (sink, step)
            && (2..=MAX_CONCEALED + 1).contains(&step)
        {
            // Packets lost: conceal all but the last, rebuild the last from this packet's FEC.
            for i in 1..step {
                let next = (i + 1 == step).then_some(payload);
                match decoder.conceal(next) {
                    Ok(pcm) => sink.deliver(participant, pcm),
                    Err(error) => tracing::trace!(%error, "Opus concealment failed"),
                }
            }
        }
        match decoder.decode(payload) {
            Ok(pcm) => {
                ctx.stats.audio_decoded(participant, audio_level_dbov(&pcm));
                if let Some(sink) = sink {
                    sink.deliver(participant, pcm);
                }
            }
            Err(error) => tracing::trace!(%error, "Opus packet not decodable"),
        }
    }
}

/// A decoder thread for one video track; frames (with their RTP timestamps) go in through the
/// returned sender and the thread ends when it is dropped. Decoded pictures go to `sink`,
/// a screen share's under [`crate::screen_key`] of its participant.
fn spawn_decoder(
    stats: Arc<StatsHub>,
    participant: &str,
    screen: bool,
    sink: Option<VideoSink>,
) -> Option<DecodeQueue> {
    let (tx, rx) = std_mpsc::sync_channel::<(Vec<u8>, u32)>(DECODE_QUEUE);
    let participant = participant.to_owned();
    let sink_key = if screen {
        crate::screen_key(&participant)
    } else {
        participant.clone()
    };
    let spawned = std::thread::Builder::new()
        .name("rounds-vp8-decode".into())
        .spawn(move || {
            let mut decoder = match Vp8Decoder::new() {
                Ok(d) => d,
                Err(error) => {
                    tracing::warn!(%error, "could not start a VP8 decoder");
                    return;
                }
            };
            decoder.set_output_frames(sink.is_some());
            while let Ok((frame, rtp_timestamp)) = rx.recv() {
                match decoder.decode(&frame) {
                    Ok(Some(info)) => {
                        if screen {
                            stats.screen_frame_decoded(&participant, info.width, info.height);
                        } else {
                            stats.video_frame_decoded(
                                &participant,
                                info.width,
                                info.height,
                                info.keyframe,
                            );
                        }
                        if let (Some(sink), Some(mut picture)) = (sink.as_ref(), info.frame) {
                            // The 90 kHz RTP clock in milliseconds: only differences mean
                            // anything.
                            picture.pts_ms = u64::from(rtp_timestamp / 90);
                            sink.deliver(&sink_key, picture);
                        }
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::debug!(%error, "VP8 frame not decodable");
                        stats.decode_error(&participant);
                    }
                }
            }
        });
    match spawned {
        Ok(_) => Some(tx),
        Err(error) => {
            tracing::warn!(%error, "could not start the video decoder thread");
            None
        }
    }
}

pub(crate) struct Subscriber {
    pub(crate) generation: u64,
    pc: Arc<dyn PeerConnection>,
    receive: Arc<ReceiveContext>,
    remote: RemoteCandidates,
    fingerprint: Option<String>,
    first_mid: Option<String>,
}

impl Subscriber {
    pub(crate) async fn create(
        generation: u64,
        net: NetOptions,
        events: mpsc::UnboundedSender<MediaEvent>,
        receive: Arc<ReceiveContext>,
    ) -> Result<Subscriber, ClientError> {
        let handler = PcHandler {
            kind: PcKind::Subscriber,
            generation,
            events,
            receive: Some(receive.clone()),
        };
        // The SFU never asks a subscriber to resend: nothing to count.
        let pc = pc::build(net, handler, Arc::default()).await?;
        Ok(Subscriber {
            generation,
            pc,
            receive,
            remote: RemoteCandidates::new(net.tcp_only),
            fingerprint: None,
            first_mid: None,
        })
    }

    /// Whether an offer comes from the server connection we are already talking to (a
    /// renegotiation) rather than a new one (the server started over).
    pub(crate) fn continues(&self, offer: &str) -> bool {
        match (&self.fingerprint, sdp::fingerprint(offer)) {
            (Some(ours), Some(theirs)) => *ours == theirs,
            _ => true,
        }
    }

    /// Applies the server's offer and returns our answer.
    pub(crate) async fn answer(&mut self, offer: String) -> Result<String, ClientError> {
        let fingerprint = sdp::fingerprint(&offer);
        self.pc
            .set_remote_description(RTCSessionDescription::offer(offer.clone())?)
            .await?;
        self.fingerprint = fingerprint;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer).await?;
        let local = self.pc.local_description().await.ok_or_else(|| {
            ClientError::WebRtc("no local description after set_local_description".into())
        })?;
        self.first_mid = sdp::first_mid(&local.sdp);
        self.remote
            .ready(&self.pc, &offer, self.first_mid.clone())
            .await;
        Ok(local.sdp)
    }

    pub(crate) fn first_mid(&self) -> Option<String> {
        self.first_mid.clone()
    }

    pub(crate) async fn add_remote_candidate(&mut self, candidate: RTCIceCandidateInit) {
        self.remote.add(&self.pc, candidate).await;
    }

    pub(crate) fn pc(&self) -> &Arc<dyn PeerConnection> {
        &self.pc
    }

    pub(crate) async fn close(&mut self) {
        self.receive.stop();
        if let Err(error) = self.pc.close().await {
            tracing::debug!(%error, "closing the subscriber connection");
        }
    }
}
