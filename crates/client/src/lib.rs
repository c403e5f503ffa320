//! `rounds-client`: a Rust WebRTC client for Rounds rooms.
//!
//! A [`Client`] joins a room through the signaling WebSocket at `/rtc` with a room token,
//! waits in the lobby until admitted, then publishes synthetic media over its **publisher**
//! peer connection (it offers, the server answers) and receives everyone else's over its
//! **subscriber** connection (the server offers, it answers). Received VP8 is reassembled
//! and decoded with libvpx and counted per remote participant; see [`ClientStats`].
//!
//! It is the client of the end-to-end tests and the load generator, and the media core the
//! desktop app builds on. [`Api`] wraps the REST calls that produce room tokens.
//!
//! ```no_run
//! # async fn demo(server: url::Url, token: String) -> Result<(), rounds_client::ClientError> {
//! use std::time::Duration;
//! use rounds_client::{Client, ClientConfig};
//!
//! let client = Client::join(ClientConfig::new(server, token)).await?;
//! client.wait_admitted(Duration::from_secs(30)).await?;
//! let stats = client
//!     .wait_stats(Duration::from_secs(10), |s| s.frames_decoded > 0)
//!     .await?;
//! println!("first frame after {:?} ms", stats.join_ms);
//! client.leave().await;
//! # Ok(())
//! # }
//! ```
//!
//! The media is synthetic and says so: the video is `rounds_media::TestPattern` (labelled
//! SYNTHETIC) and the audio a sine tone. Logs carry participant ids only, never names or
//! chat text.

mod api;
mod config;
mod error;
mod media;
mod proxy;
mod room;
mod session;
mod signaling;
mod stats;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rounds_proto::{
    ClientMessage, HostAction, MediaKind, ParticipantState, RoomParticipant, ServerMessage,
    VideoConstraints,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use api::{Api, link_code};
pub use config::{AudioSource, ClientConfig, VideoSource};
pub use error::ClientError;
pub use media::{AudioSink, ExternalAudio, ExternalVideo, VideoSink};
pub use proxy::{NoProxy, ProxyConfig};
pub use stats::{
    CandidatePair, ClientStats, IceProtocol, PcState, PcStats, RemoteStats, SentStats,
};

use media::Media;
use room::Roster;
use session::{Command, Session};
use stats::StatsHub;

/// The key a remote participant's screen share is delivered under to a [`VideoSink`] (their
/// camera comes under their participant id).
pub fn screen_key(participant: &str) -> String {
    format!("{participant}/screen")
}

/// How many signaling events a slow [`Client::events`] receiver may fall behind.
pub const EVENT_CAPACITY: usize = 1024;

/// The signaling connection, as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalingState {
    Connected,
    /// The socket dropped; reconnecting with `resume` (media keeps flowing).
    Reconnecting,
    /// Left, removed, refused, or the client was dropped.
    Closed,
}

/// State shared by the [`Client`] handle and its session task.
pub(crate) struct Shared {
    pub(crate) cfg: ClientConfig,
    pub(crate) participant_id: String,
    pub(crate) room: String,
    pub(crate) stats: Arc<StatsHub>,
    roster: Arc<Mutex<Roster>>,
    pub(crate) events: broadcast::Sender<ServerMessage>,
    pub(crate) state: watch::Sender<ParticipantState>,
    pub(crate) signaling: watch::Sender<SignalingState>,
}

impl Shared {
    pub(crate) fn roster(&self) -> MutexGuard<'_, Roster> {
        self.roster.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A participant in a Rounds room. Cheap to share behind an `Arc`; every method takes
/// `&self` except [`Client::leave`].
pub struct Client {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("participant_id", &self.shared.participant_id)
            .field("room", &self.shared.room)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the signaling server and joins with the token. Returns once the server
    /// said `joined`: in the lobby, or already admitted (then publishing starts at once).
    /// A refused token is [`ClientError::Refused`].
    pub async fn join(cfg: ClientConfig) -> Result<Client, ClientError> {
        cfg.validate()?;
        let url = cfg.signaling_url()?;
        let stats = Arc::new(StatsHub::default());
        stats.join_sent(Instant::now());
        let (ws, joined) =
            signaling::connect_and_join(&url, &cfg.token, None, cfg.connect_timeout, &cfg.proxy)
                .await?;
        let ServerMessage::Joined { me, room, .. } = &joined else {
            return Err(ClientError::Protocol(
                "the handshake did not end in joined".into(),
            ));
        };
        let (participant_id, room, state) = (me.id.clone(), room.clone(), me.state);
        stats.set_participant(&participant_id);
        tracing::info!(participant = %participant_id, room = %room, state = state.as_str(), "joined");

        let mut roster = Roster::default();
        roster.apply(&joined);
        let roster = Arc::new(Mutex::new(roster));
        let resolver_roster = roster.clone();
        let resolve: media::Resolver = Arc::new(move |stream_id: &str, track_id: &str| {
            let roster = resolver_roster.lock().unwrap_or_else(|e| e.into_inner());
            let participant = roster.resolve(stream_id);
            let screen = roster.is_screen(&participant, track_id);
            (participant, screen)
        });
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let (state_tx, _) = watch::channel(state);
        let (signaling_tx, _) = watch::channel(SignalingState::Connected);
        let shared = Arc::new(Shared {
            cfg: cfg.clone(),
            participant_id: participant_id.clone(),
            room,
            stats: stats.clone(),
            roster,
            events,
            state: state_tx,
            signaling: signaling_tx,
        });
        let (commands, command_rx) = mpsc::channel(64);
        let (media_tx, media_rx) = mpsc::unbounded_channel();
        let session = Session {
            shared: shared.clone(),
            commands: command_rx,
            media_events: media_rx,
            media: Media::new(cfg, participant_id, stats, resolve, media_tx),
            session_id: String::new(),
            heartbeat: Duration::from_secs(5),
            leave_replies: Vec::new(),
            media_rejected: false,
            publisher_deadline: None,
        };
        let task = tokio::spawn(session.run(ws, joined));
        Ok(Client {
            shared,
            commands,
            task,
        })
    }

    /// Our participant id in this room.
    pub fn participant_id(&self) -> &str {
        &self.shared.participant_id
    }

    /// The room id.
    pub fn room(&self) -> &str {
        &self.shared.room
    }

    /// Lobby, admitted, denied, removed, or left.
    pub fn state(&self) -> ParticipantState {
        *self.shared.state.borrow()
    }

    pub fn signaling_state(&self) -> SignalingState {
        *self.shared.signaling.borrow()
    }

    /// Waits until admitted. Fails at once if denied or removed, and after `timeout`.
    pub async fn wait_admitted(&self, timeout: Duration) -> Result<(), ClientError> {
        let mut rx = self.shared.state.subscribe();
        let wait = async {
            loop {
                let state = *rx.borrow_and_update();
                match state {
                    ParticipantState::Admitted => return Ok(()),
                    ParticipantState::Lobby => {}
                    other => return Err(ClientError::NotAdmitted(other)),
                }
                if rx.changed().await.is_err() {
                    return Err(ClientError::Closed);
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ClientError::Timeout("admission"))?
    }

    /// A snapshot of what was sent and received so far.
    pub fn stats(&self) -> ClientStats {
        self.shared.stats.snapshot()
    }

    /// Polls [`Client::stats`] until `done` holds; returns that snapshot.
    pub async fn wait_stats(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&ClientStats) -> bool,
    ) -> Result<ClientStats, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.stats();
            if done(&stats) {
                return Ok(stats);
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Timeout("the expected media statistics"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until `done` holds for this client (its state, participants, ...).
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Client) -> bool,
    ) -> Result<(), ClientError> {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            if Instant::now() >= deadline {
                return Err(ClientError::Timeout("the expected room state"));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(())
    }

    /// Raw signaling events from the server, from now on: `dominant_speaker`, `admitted`,
    /// `removed`, `chat`, ... (after the client has acted on them).
    pub fn events(&self) -> broadcast::Receiver<ServerMessage> {
        self.shared.events.subscribe()
    }

    /// Sends a signaling message (chat, host actions, `set_muted`, ...). `set_muted` also
    /// mutes or unmutes the local synthetic source; `leave` is the same as [`Client::leave`]
    /// without waiting; `join` is refused.
    pub async fn send(&self, message: ClientMessage) -> Result<(), ClientError> {
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::Send(message, reply))
            .await
            .map_err(|_| ClientError::Closed)?;
        result.await.map_err(|_| ClientError::Closed)?
    }

    /// Turns our microphone or camera off or on: the source stops (audio sends silence at
    /// level 127) and the server is told with `set_muted`.
    pub async fn set_muted(&self, kind: MediaKind, muted: bool) -> Result<(), ClientError> {
        self.send(ClientMessage::SetMuted { kind, muted }).await
    }

    /// Starts sending a screen share fed through `screen` (beside the camera, as its own
    /// track announced as `screen`), or stops it with `None`. The publisher connection is
    /// renegotiated; audio and camera keep flowing meanwhile. Before admission the share
    /// waits and goes out with the rest once admitted.
    pub async fn share_screen(&self, screen: Option<ExternalVideo>) -> Result<(), ClientError> {
        let (reply, result) = oneshot::channel();
        self.commands
            .send(Command::Screen(screen, reply))
            .await
            .map_err(|_| ClientError::Closed)?;
        result.await.map_err(|_| ClientError::Closed)?
    }

    /// A host action on another participant (admit, deny, mute, remove).
    /// Tells the server how large this client draws each participant's camera (0 × 0: not
    /// shown), so that it forwards the simulcast layer that fills the tile and no more.
    pub async fn set_render_sizes(&self, sizes: &[(&str, u32, u32)]) -> Result<(), ClientError> {
        let sizes = sizes
            .iter()
            .map(|(participant, width, height)| rounds_proto::RenderSize {
                participant_id: (*participant).to_owned(),
                width: *width,
                height: *height,
            })
            .collect();
        self.send(ClientMessage::RenderSizes { sizes }).await
    }

    pub async fn host(&self, participant: &str, action: HostAction) -> Result<(), ClientError> {
        self.send(ClientMessage::Host {
            participant: participant.to_owned(),
            action,
        })
        .await
    }

    /// Admitted participants (me included once admitted), as last told by the server.
    pub fn participants(&self) -> Vec<RoomParticipant> {
        self.shared
            .roster()
            .participants
            .values()
            .cloned()
            .collect()
    }

    /// Staff only: who waits in the lobby.
    pub fn waiting(&self) -> Vec<RoomParticipant> {
        self.shared.roster().waiting.clone()
    }

    /// The last `dominant_speaker` the server announced.
    pub fn dominant_speaker(&self) -> Option<String> {
        self.shared.roster().dominant_speaker.clone()
    }

    /// The video constraints in force.
    pub fn video_constraints(&self) -> Option<VideoConstraints> {
        self.shared.roster().video.clone()
    }

    /// Test hook: closes the signaling socket without a goodbye, like a network drop. With
    /// `auto_reconnect` the client comes back with `resume`; media keeps flowing meanwhile.
    pub async fn drop_connection(&self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Drop(reply)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Says `leave`, closes both peer connections and stops. Waits at most a few seconds.
    pub async fn leave(self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Leave(reply)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), done).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}

    /// The load generator spawns many clients and shares them across tasks.
    #[test]
    fn clients_can_be_spawned_and_shared() {
        send_sync::<Client>();
        send_sync::<ClientStats>();
        let cfg = ClientConfig::new(url::Url::parse("http://127.0.0.1:9").expect("url"), "t");
        let join = Client::join(cfg);
        send(&join);
    }
}
