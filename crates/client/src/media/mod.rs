//! The client's two peer connections and what flows over them.
//!
//! [`Media`] belongs to the session task, which hands it every media-related signaling
//! message and every [`MediaEvent`] from the connections, and sends whatever it returns. The
//! publisher is built once the participant is admitted and rebuilt if it fails; the
//! subscriber is built on the server's first offer and rebuilt when the server starts over
//! (an offer with a new DTLS fingerprint).

mod external;
mod pc;
mod publisher;
mod sdp;
mod subscriber;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rounds_proto::{ClientMessage, IceCandidate, MediaKind, PcKind, VideoConstraints};
use tokio::sync::mpsc;
use webrtc::peer_connection::RTCIceCandidateInit;

pub use external::{AudioSink, ExternalAudio, ExternalVideo, VideoSink};
pub(crate) use pc::MediaEvent;
pub(crate) use publisher::PublishOptions;
pub(crate) use subscriber::{ReceiveContext, Resolver};

use crate::ClientError;
use crate::config::{AudioSource, ClientConfig, VideoParams, VideoSource};
use crate::stats::{PcState, StatsHub};
use pc::NetOptions;
use publisher::Publisher;
use subscriber::Subscriber;

/// A publisher that stays disconnected or failed this long is rebuilt.
const PUBLISHER_GRACE: Duration = Duration::from_secs(3);

pub(crate) struct Media {
    cfg: ClientConfig,
    participant_id: String,
    stats: Arc<StatsHub>,
    resolve: Resolver,
    events: mpsc::UnboundedSender<MediaEvent>,
    publisher: Option<Publisher>,
    subscriber: Option<Subscriber>,
    next_generation: u64,
    constraints: Option<VideoConstraints>,
    audio_muted: bool,
    video_muted: bool,
    /// The screen share to send, if any. The publisher follows it, renegotiating.
    screen: Option<ExternalVideo>,
    /// Since when the publisher has been disconnected or failed.
    publisher_trouble: Option<Instant>,
}

impl Media {
    pub(crate) fn new(
        cfg: ClientConfig,
        participant_id: String,
        stats: Arc<StatsHub>,
        resolve: Resolver,
        events: mpsc::UnboundedSender<MediaEvent>,
    ) -> Self {
        Media {
            cfg,
            participant_id,
            stats,
            resolve,
            events,
            publisher: None,
            subscriber: None,
            next_generation: 1,
            constraints: None,
            audio_muted: false,
            video_muted: false,
            screen: None,
            publisher_trouble: None,
        }
    }

    fn net(&self) -> NetOptions {
        NetOptions {
            bind_ip: self.cfg.media_bind_ip(),
            tcp_only: self.cfg.ice_tcp_only,
        }
    }

    fn video_params(&self) -> VideoParams {
        self.cfg
            .video
            .params()
            .constrained(self.constraints.as_ref())
    }

    fn generation(&mut self) -> u64 {
        let g = self.next_generation;
        self.next_generation += 1;
        g
    }

    pub(crate) fn wants_to_publish(&self) -> bool {
        self.cfg.publish_audio || self.cfg.publish_video || self.screen.is_some()
    }

    /// Starts, replaces or stops the screen share. With a publisher, returns what its
    /// renegotiation sends (`unpublish`/`publish`, then the offer); while an earlier offer
    /// waits for its answer, the change goes out with that answer ([`Media::on_answer`]).
    pub(crate) async fn set_screen(
        &mut self,
        screen: Option<ExternalVideo>,
    ) -> Result<Vec<ClientMessage>, ClientError> {
        self.screen = screen;
        match self.publisher.as_mut() {
            Some(p) => p.set_screen(self.screen.clone()).await,
            None => Ok(Vec::new()),
        }
    }

    pub(crate) fn is_publishing(&self) -> bool {
        self.publisher.is_some()
    }

    /// Builds the publisher (if we publish and have none) and returns the `publish`
    /// announcements followed by the offer.
    pub(crate) async fn publish(&mut self) -> Result<Vec<ClientMessage>, ClientError> {
        if !self.wants_to_publish() || self.publisher.is_some() {
            return Ok(Vec::new());
        }
        let generation = self.generation();
        let opts = PublishOptions {
            net: self.net(),
            audio: self.cfg.publish_audio,
            video: self.cfg.publish_video,
            video_params: self.video_params(),
            tone_hz: self.cfg.tone_hz,
            tone_dbfs: self.cfg.tone_dbfs,
            seed: self.cfg.pattern_seed,
            stream_id: self.participant_id.clone(),
            external_video: match &self.cfg.video {
                VideoSource::External(v) => Some(v.clone()),
                VideoSource::TestPattern { .. } => None,
            },
            external_audio: match &self.cfg.audio {
                AudioSource::External(a) => Some(a.clone()),
                AudioSource::Tone => None,
            },
            screen: self.screen.clone(),
            simulcast: self.wants_simulcast(),
        };
        let (publisher, offer, tracks) =
            Publisher::create(generation, opts, self.events.clone(), self.stats.clone()).await?;
        publisher.set_muted(false, self.audio_muted);
        publisher.set_muted(true, self.video_muted);
        self.publisher = Some(publisher);
        self.publisher_trouble = None;
        self.stats.pc(PcKind::Publisher, |p| {
            p.state = PcState::New;
            p.selected_pair = None;
            p.generation = generation;
        });
        tracing::debug!(generation, tracks = tracks.len(), "publishing");
        let mut out: Vec<ClientMessage> = tracks
            .into_iter()
            .map(|track| ClientMessage::Publish { track })
            .collect();
        out.push(ClientMessage::Offer {
            pc: PcKind::Publisher,
            sdp: offer,
            offer_id: self.publisher.as_ref().and_then(Publisher::pending_offer),
        });
        Ok(out)
    }

    /// The server's answer to our publisher offer; returns a follow-up offer when the screen
    /// share changed while that one waited.
    pub(crate) async fn on_answer(
        &mut self,
        pc: PcKind,
        sdp: String,
        offer_id: Option<u32>,
    ) -> Result<Vec<ClientMessage>, ClientError> {
        match (pc, self.publisher.as_mut()) {
            (PcKind::Publisher, Some(publisher))
                if !publisher.awaiting_answer()
                    || offer_id.is_some_and(|id| publisher.pending_offer() != Some(id)) =>
            {
                // The answer to an offer of a publisher since rebuilt (or of a renegotiation
                // already answered): the current one waits for the answer to its own.
                tracing::debug!(?offer_id, "answer to an earlier offer; ignored");
                Ok(Vec::new())
            }
            (PcKind::Publisher, Some(publisher)) => {
                publisher.apply_answer(sdp).await?;
                publisher.set_screen(self.screen.clone()).await
            }
            (PcKind::Publisher, None) => {
                tracing::debug!("answer without a publisher; ignored");
                Ok(Vec::new())
            }
            (PcKind::Subscriber, _) => Err(ClientError::Protocol(
                "the server sent an answer for the subscriber connection".into(),
            )),
        }
    }

    /// The server's offer for the subscriber connection; returns our answer.
    pub(crate) async fn on_offer(
        &mut self,
        pc: PcKind,
        sdp: String,
    ) -> Result<ClientMessage, ClientError> {
        if pc != PcKind::Subscriber {
            return Err(ClientError::Protocol(
                "the server sent an offer for the publisher connection".into(),
            ));
        }
        if self.subscriber.as_ref().is_some_and(|s| !s.continues(&sdp)) {
            tracing::debug!("the server started a new subscriber connection");
            self.close_subscriber().await;
        }
        if self.subscriber.is_none() {
            let generation = self.generation();
            let receive = Arc::new(
                ReceiveContext::new(
                    self.stats.clone(),
                    self.cfg.decode_video,
                    self.cfg.decode_audio,
                    self.resolve.clone(),
                )
                .with_sinks(self.cfg.video_sink.clone(), self.cfg.audio_sink.clone()),
            );
            let subscriber =
                Subscriber::create(generation, self.net(), self.events.clone(), receive).await?;
            self.stats.pc(PcKind::Subscriber, |p| {
                p.state = PcState::New;
                p.selected_pair = None;
                p.generation = generation;
            });
            self.subscriber = Some(subscriber);
        }
        let subscriber = self
            .subscriber
            .as_mut()
            .ok_or_else(|| ClientError::WebRtc("subscriber connection missing".into()))?;
        let answer = subscriber.answer(sdp).await?;
        Ok(ClientMessage::Answer {
            pc: PcKind::Subscriber,
            sdp: answer,
        })
    }

    pub(crate) async fn on_remote_candidate(&mut self, pc: PcKind, candidate: IceCandidate) {
        let init = RTCIceCandidateInit {
            candidate: candidate.candidate,
            sdp_mid: candidate.sdp_mid,
            sdp_mline_index: candidate.sdp_mline_index,
            ..Default::default()
        };
        match pc {
            PcKind::Publisher => {
                if let Some(p) = self.publisher.as_mut() {
                    p.add_remote_candidate(init).await;
                }
            }
            PcKind::Subscriber => {
                if let Some(s) = self.subscriber.as_mut() {
                    s.add_remote_candidate(init).await;
                }
            }
        }
    }

    fn current(&self, pc: PcKind, generation: u64) -> bool {
        match pc {
            PcKind::Publisher => self
                .publisher
                .as_ref()
                .is_some_and(|p| p.generation == generation),
            PcKind::Subscriber => self
                .subscriber
                .as_ref()
                .is_some_and(|s| s.generation == generation),
        }
    }

    fn first_mid(&self, pc: PcKind) -> Option<String> {
        match pc {
            PcKind::Publisher => self.publisher.as_ref().and_then(Publisher::first_mid),
            PcKind::Subscriber => self.subscriber.as_ref().and_then(Subscriber::first_mid),
        }
    }

    /// Handles a connection event; returns a message to send (a trickled candidate).
    pub(crate) async fn on_event(&mut self, event: MediaEvent) -> Option<ClientMessage> {
        match event {
            MediaEvent::LocalCandidate {
                pc,
                generation,
                candidate,
            } => {
                if !self.current(pc, generation) {
                    return None;
                }
                Some(ClientMessage::Ice {
                    pc,
                    candidate: IceCandidate {
                        candidate: candidate.candidate,
                        // rtc's toJSON says mid "" and index 0; with BUNDLE one real mid will do.
                        sdp_mid: self.first_mid(pc),
                        sdp_mline_index: Some(0),
                    },
                })
            }
            MediaEvent::GatheringComplete { pc, generation } => {
                if !self.current(pc, generation) {
                    return None;
                }
                Some(ClientMessage::Ice {
                    pc,
                    candidate: IceCandidate {
                        candidate: String::new(),
                        sdp_mid: self.first_mid(pc),
                        sdp_mline_index: Some(0),
                    },
                })
            }
            MediaEvent::State {
                pc,
                generation,
                state,
            } => {
                if !self.current(pc, generation) {
                    return None;
                }
                let state = pc::pc_state(state);
                tracing::debug!(pc = ?pc, generation, state = ?state, "peer connection state");
                self.stats.pc(pc, |p| p.state = state);
                if pc == PcKind::Publisher {
                    match state {
                        PcState::Connected => {
                            self.publisher_trouble = None;
                            if let Some(p) = self.publisher.as_mut() {
                                p.on_connected().await;
                            }
                        }
                        PcState::Disconnected | PcState::Failed | PcState::Closed => {
                            self.publisher_trouble.get_or_insert_with(Instant::now);
                        }
                        _ => {}
                    }
                }
                None
            }
        }
    }

    /// Periodic work: rebuilds a publisher that stayed broken (returns its new offer), and
    /// refreshes the selected candidate pairs.
    pub(crate) async fn tick(&mut self, admitted: bool) -> Vec<ClientMessage> {
        for (kind, pc) in [
            (
                PcKind::Publisher,
                self.publisher.as_ref().map(|p| p.pc().clone()),
            ),
            (
                PcKind::Subscriber,
                self.subscriber.as_ref().map(|s| s.pc().clone()),
            ),
        ] {
            if let Some(pc) = pc
                && let Some(pair) = pc::selected_pair(&pc).await
            {
                self.stats.pc(kind, |p| p.selected_pair = Some(pair));
            }
        }
        let broken = self
            .publisher_trouble
            .is_some_and(|since| since.elapsed() >= PUBLISHER_GRACE);
        if !(broken && admitted) {
            return Vec::new();
        }
        tracing::info!("the publisher connection broke; publishing again");
        self.close_publisher().await;
        match self.publish().await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, "could not publish again");
                self.publisher_trouble = Some(Instant::now());
                Vec::new()
            }
        }
    }

    /// Whether the video should go out as simulcast: the room asks for it and the video is
    /// the test pattern (frames the application pushes go as one encoding).
    fn wants_simulcast(&self) -> bool {
        // A camera smaller than the top layer has no larger pictures to offer: one encoding.
        let (_, top_w, top_h, _) =
            publisher::SIMULCAST_LAYERS[publisher::SIMULCAST_LAYERS.len() - 1];
        self.cfg.publish_video
            && self.constraints.as_ref().is_some_and(|c| c.simulcast)
            && matches!(self.cfg.video, VideoSource::TestPattern { width, height, .. }
                if width >= top_w && height >= top_h)
    }

    /// Follows the server's camera settings. Simulcast is fixed when a track is made, so
    /// starting or stopping it rebuilds the publisher; returns what to send for that.
    pub(crate) async fn set_constraints(
        &mut self,
        constraints: VideoConstraints,
    ) -> Vec<ClientMessage> {
        if !constraints.codec.eq_ignore_ascii_case("vp8") {
            tracing::warn!(codec = %constraints.codec, "only VP8 is supported; sending VP8");
        }
        self.constraints = Some(constraints);
        let simulcast = self.wants_simulcast();
        match self.publisher.as_ref() {
            Some(p) if p.is_simulcast() != simulcast && self.cfg.publish_video => {
                tracing::debug!(simulcast, "the room changed simulcast; publishing again");
                let mut out: Vec<ClientMessage> = p
                    .track_ids()
                    .iter()
                    .map(|id| ClientMessage::Unpublish {
                        track_id: id.clone(),
                    })
                    .collect();
                self.close_publisher().await;
                match self.publish().await {
                    Ok(messages) => {
                        out.extend(messages);
                        out
                    }
                    Err(error) => {
                        tracing::warn!(%error, "could not publish again");
                        self.publisher_trouble = Some(Instant::now());
                        Vec::new()
                    }
                }
            }
            Some(p) => {
                p.set_video_params(self.video_params());
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    pub(crate) fn set_muted(&mut self, kind: MediaKind, muted: bool) {
        match kind {
            MediaKind::Audio => self.audio_muted = muted,
            MediaKind::Video => self.video_muted = muted,
        }
        if let Some(p) = self.publisher.as_ref() {
            p.set_muted(kind == MediaKind::Video, muted);
        }
    }

    pub(crate) async fn close_publisher(&mut self) {
        if let Some(mut p) = self.publisher.take() {
            p.close().await;
        }
        self.publisher_trouble = None;
        self.stats.pc(PcKind::Publisher, |p| {
            p.state = PcState::None;
            p.selected_pair = None;
        });
    }

    pub(crate) async fn close_subscriber(&mut self) {
        if let Some(mut s) = self.subscriber.take() {
            s.close().await;
        }
        self.stats.pc(PcKind::Subscriber, |p| {
            p.state = PcState::None;
            p.selected_pair = None;
        });
    }

    pub(crate) async fn close(&mut self) {
        self.close_publisher().await;
        self.close_subscriber().await;
    }

    /// A new signaling connection: answers to offers sent on an earlier one never come. A
    /// publisher still waiting for one (rebuilt while the old connection was already dead) is
    /// closed, so the caller publishes afresh on the new connection; kept, it would wait for
    /// nothing and never make another offer.
    pub(crate) async fn signaling_restarted(&mut self) {
        if self.publisher.as_ref().is_some_and(|p| p.awaiting_answer()) {
            tracing::debug!(
                "publisher offer lost with the old signaling connection; publishing anew"
            );
            self.close_publisher().await;
        }
    }
}
