//! The session task: owns the signaling socket and the peer connections, reacts to the server,
//! and reconnects with `resume` after a drop.
//!
//! Everything that changes the client's state happens here, on one task, so the media and
//! signaling state never race. The [`crate::Client`] handle talks to it through [`Command`]s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rounds_proto::{ClientMessage, ErrorCode, ParticipantState, PcKind, ServerMessage};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::media::{Media, MediaEvent};
use crate::signaling::{self, Ws};
use crate::{ClientError, PcState, Shared, SignalingState};

/// What the [`crate::Client`] handle asks of the session task.
pub(crate) enum Command {
    Send(ClientMessage, oneshot::Sender<Result<(), ClientError>>),
    /// Start (with a source) or stop (`None`) the screen share.
    Screen(
        Option<crate::ExternalVideo>,
        oneshot::Sender<Result<(), ClientError>>,
    ),
    /// Close the socket without a word, as a network drop would.
    Drop(oneshot::Sender<()>),
    Leave(oneshot::Sender<()>),
}

/// How one signaling connection ended.
enum Outcome {
    /// The socket broke (or was dropped on purpose): reconnect if configured.
    Dropped,
    /// The server ended our part (denied, removed, replaced, visit over).
    Terminal,
    /// We left.
    Left,
    /// The client handle was dropped.
    Gone,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long a publisher may take to connect before it is rebuilt.
const PUBLISHER_CONNECT_DEADLINE: Duration = Duration::from_secs(15);

pub(crate) struct Session {
    pub(crate) shared: Arc<Shared>,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) media_events: mpsc::UnboundedReceiver<MediaEvent>,
    pub(crate) media: Media,
    pub(crate) session_id: String,
    pub(crate) heartbeat: Duration,
    /// Replies owed to `leave()` once everything is closed.
    pub(crate) leave_replies: Vec<oneshot::Sender<()>>,
    /// The server refused media (`media_rejected`): do not keep rebuilding the publisher.
    pub(crate) media_rejected: bool,
    pub(crate) publisher_deadline: Option<Instant>,
}

async fn send(ws: &mut Ws, message: &ClientMessage) -> Result<(), ClientError> {
    ws.send(signaling::encode(message)?)
        .await
        .map_err(|e| ClientError::Connect(e.to_string()))
}

fn is_terminal_refusal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::Unauthorized
            | ErrorCode::Forbidden
            | ErrorCode::RoomClosed
            | ErrorCode::UnsupportedVersion
            | ErrorCode::Replaced
            | ErrorCode::BadMessage
    )
}

impl Session {
    fn state(&self) -> ParticipantState {
        *self.shared.state.borrow()
    }

    fn set_state(&self, state: ParticipantState) {
        self.shared.state.send_replace(state);
    }

    pub(crate) async fn run(mut self, ws: Ws, joined: ServerMessage) {
        let mut next = Some((ws, joined, false));
        while let Some((ws, joined, reconnect)) = next.take() {
            self.shared
                .signaling
                .send_replace(SignalingState::Connected);
            let outcome = self.connection(ws, joined, reconnect).await;
            tracing::debug!(participant = %self.shared.participant_id, outcome = outcome.name(), "signaling connection ended");
            if let Outcome::Dropped = outcome
                && self.shared.cfg.auto_reconnect
            {
                next = self
                    .reconnect()
                    .await
                    .map(|(ws, joined)| (ws, joined, true));
            }
        }
        self.shared.signaling.send_replace(SignalingState::Closed);
        self.media.close().await;
        if self.state() == ParticipantState::Admitted || self.state() == ParticipantState::Lobby {
            self.set_state(ParticipantState::Left);
        }
        for reply in self.leave_replies.drain(..) {
            let _ = reply.send(());
        }
        tracing::debug!(participant = %self.shared.participant_id, "session finished");
    }

    /// Serves one signaling connection until it ends.
    async fn connection(&mut self, mut ws: Ws, joined: ServerMessage, reconnect: bool) -> Outcome {
        if let Err(outcome) = self.on_joined(&mut ws, joined, reconnect).await {
            return outcome;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                frame = ws.next() => {
                    let frame = match frame {
                        Some(Ok(frame)) => frame,
                        Some(Err(error)) => {
                            tracing::debug!(%error, "signaling socket error");
                            return Outcome::Dropped;
                        }
                        None => return Outcome::Dropped,
                    };
                    last_heard = Instant::now();
                    match frame {
                        Message::Text(text) => match signaling::decode(&text) {
                            Ok(message) => {
                                if let Err(outcome) = self.on_server(&mut ws, message).await {
                                    return outcome;
                                }
                            }
                            Err(error) => tracing::warn!(%error, "ignoring a server message"),
                        },
                        Message::Close(_) => return Outcome::Dropped,
                        _ => {}
                    }
                }
                command = self.commands.recv() => {
                    let Some(command) = command else {
                        let _ = ws.close(Some(CloseFrame { code: CloseCode::Away, reason: "client closed".into() })).await;
                        return Outcome::Gone;
                    };
                    if let Err(outcome) = self.on_command(&mut ws, command).await {
                        return outcome;
                    }
                }
                Some(event) = self.media_events.recv() => {
                    if let Some(message) = self.media.on_event(event).await {
                        if matches!(message, ClientMessage::Offer { .. }) {
                            self.publisher_deadline = Some(Instant::now() + PUBLISHER_CONNECT_DEADLINE);
                        }
                        if send(&mut ws, &message).await.is_err() {
                            return Outcome::Dropped;
                        }
                    }
                    if self.shared.stats.pc_state(PcKind::Publisher) == PcState::Connected {
                        self.publisher_deadline = None;
                    }
                }
                _ = tick.tick() => {
                    if last_heard.elapsed() > self.heartbeat * 2 {
                        tracing::info!(participant = %self.shared.participant_id, "signaling silent for two heartbeats; reconnecting");
                        return Outcome::Dropped;
                    }
                    if let Err(outcome) = self.on_tick(&mut ws).await {
                        return outcome;
                    }
                }
            }
        }
    }

    async fn send_all(&mut self, ws: &mut Ws, messages: Vec<ClientMessage>) -> Result<(), Outcome> {
        for message in messages {
            if matches!(message, ClientMessage::Offer { .. }) {
                self.publisher_deadline = Some(Instant::now() + PUBLISHER_CONNECT_DEADLINE);
            }
            if send(ws, &message).await.is_err() {
                return Err(Outcome::Dropped);
            }
        }
        Ok(())
    }

    async fn publish(&mut self, ws: &mut Ws) -> Result<(), Outcome> {
        if self.media.is_publishing() || !self.media.wants_to_publish() {
            return Ok(());
        }
        match self.media.publish().await {
            Ok(messages) => self.send_all(ws, messages).await,
            Err(error) => {
                tracing::warn!(%error, "could not start publishing");
                Ok(())
            }
        }
    }

    async fn on_tick(&mut self, ws: &mut Ws) -> Result<(), Outcome> {
        let admitted = self.state() == ParticipantState::Admitted;
        let mut messages = self.media.tick(admitted).await;
        if self.shared.stats.pc_state(PcKind::Publisher) == PcState::Connected {
            self.publisher_deadline = None;
        }
        let overdue = self.publisher_deadline.is_some_and(|d| Instant::now() >= d);
        if messages.is_empty() && overdue && admitted && !self.media_rejected {
            tracing::info!("the publisher did not connect; publishing again");
            self.media.close_publisher().await;
            self.publisher_deadline = None;
            match self.media.publish().await {
                Ok(m) => messages = m,
                Err(error) => tracing::warn!(%error, "could not publish again"),
            }
        }
        self.send_all(ws, messages).await
    }

    async fn on_joined(
        &mut self,
        ws: &mut Ws,
        joined: ServerMessage,
        reconnect: bool,
    ) -> Result<(), Outcome> {
        let ServerMessage::Joined {
            session,
            me,
            video,
            heartbeat_secs,
            resumed,
            ..
        } = &joined
        else {
            return Err(Outcome::Dropped);
        };
        self.session_id = session.clone();
        self.media.signaling_restarted().await;
        self.heartbeat = Duration::from_secs(u64::from((*heartbeat_secs).max(1)));
        let state = me.state;
        let resumed = *resumed;
        // Before admission nothing is published yet, so nothing needs sending.
        let _ = self.media.set_constraints(video.clone()).await;
        self.shared.roster().apply(&joined);
        if reconnect && !resumed {
            // The server forgot us (the resume window passed): start media over.
            tracing::info!(participant = %self.shared.participant_id, "rejoined as a new session");
            self.media.close().await;
            self.publisher_deadline = None;
        }
        self.set_state(state);
        let _ = self.shared.events.send(joined);
        if state == ParticipantState::Admitted {
            self.publish(ws).await?;
        }
        Ok(())
    }

    async fn on_server(&mut self, ws: &mut Ws, message: ServerMessage) -> Result<(), Outcome> {
        tracing::trace!(kind = signaling::message_type(&message), "server message");
        let changed = self.shared.roster().apply(&message);
        let mut end = None;
        match &message {
            ServerMessage::Joined { .. } => {
                tracing::warn!("unexpected second joined message; ignored");
            }
            ServerMessage::Admitted { .. } => {
                self.set_state(ParticipantState::Admitted);
                let _ = self.shared.events.send(message);
                return self.publish(ws).await;
            }
            ServerMessage::Denied { .. }
            | ServerMessage::Removed { .. }
            | ServerMessage::VisitEnded { .. } => {
                let state = changed.unwrap_or(ParticipantState::Left);
                self.set_state(state);
                self.media.close().await;
                end = Some(Outcome::Terminal);
            }
            ServerMessage::Offer { pc, sdp } => match self.media.on_offer(*pc, sdp.clone()).await {
                Ok(answer) => {
                    if send(ws, &answer).await.is_err() {
                        return Err(Outcome::Dropped);
                    }
                }
                Err(error) => tracing::warn!(%error, "could not answer the server's offer"),
            },
            ServerMessage::Answer { pc, sdp, offer_id } => {
                match self.media.on_answer(*pc, sdp.clone(), *offer_id).await {
                    // A change asked for while the last offer waited goes out now.
                    Ok(messages) => self.send_all(ws, messages).await?,
                    Err(error) => tracing::warn!(%error, "could not apply the server's answer"),
                }
            }
            ServerMessage::Ice { pc, candidate } => {
                self.media.on_remote_candidate(*pc, candidate.clone()).await;
            }
            ServerMessage::VideoConstraints { video } => {
                let messages = self.media.set_constraints(video.clone()).await;
                self.send_all(ws, messages).await?;
            }
            ServerMessage::MuteRequested { kind, .. } => self.media.set_muted(*kind, true),
            ServerMessage::Ping { t }
                if send(ws, &ClientMessage::Pong { t: *t }).await.is_err() =>
            {
                return Err(Outcome::Dropped);
            }
            ServerMessage::Error { code, .. } => {
                tracing::debug!(participant = %self.shared.participant_id, code = ?code, "server error");
                match code {
                    ErrorCode::MediaRejected => self.media_rejected = true,
                    ErrorCode::Replaced => end = Some(Outcome::Terminal),
                    _ => {}
                }
            }
            _ => {}
        }
        let _ = self.shared.events.send(message);
        end.map_or(Ok(()), Err)
    }

    async fn on_command(&mut self, ws: &mut Ws, command: Command) -> Result<(), Outcome> {
        match command {
            Command::Send(ClientMessage::Join { .. }, reply) => {
                let _ = reply.send(Err(ClientError::Protocol(
                    "join is sent by the client itself".into(),
                )));
                Ok(())
            }
            Command::Send(ClientMessage::Leave, reply) => {
                let _ = reply.send(Ok(()));
                self.leave(ws).await;
                Err(Outcome::Left)
            }
            Command::Send(message, reply) => {
                if let ClientMessage::SetMuted { kind, muted } = &message {
                    self.media.set_muted(*kind, *muted);
                }
                let result = send(ws, &message).await;
                let failed = result.is_err();
                let _ = reply.send(result);
                if failed {
                    Err(Outcome::Dropped)
                } else {
                    Ok(())
                }
            }
            Command::Screen(screen, reply) => {
                let admitted = self.state() == ParticipantState::Admitted;
                let result = match self.media.set_screen(screen).await {
                    Ok(messages) => self.send_all(ws, messages).await,
                    Err(error) => {
                        let _ = reply.send(Err(error));
                        return Ok(());
                    }
                };
                // Nothing was published yet (no camera, no microphone): the share starts it.
                let result = match result {
                    Ok(()) if admitted && !self.media_rejected => self.publish(ws).await,
                    other => other,
                };
                let _ = reply.send(if result.is_ok() {
                    Ok(())
                } else {
                    Err(ClientError::NotConnected)
                });
                result
            }
            Command::Drop(reply) => {
                tracing::debug!(participant = %self.shared.participant_id, "dropping the signaling socket");
                let _ = reply.send(());
                Err(Outcome::Dropped)
            }
            Command::Leave(reply) => {
                self.leave_replies.push(reply);
                self.leave(ws).await;
                Err(Outcome::Left)
            }
        }
    }

    /// Says goodbye and waits (briefly) for the server to close.
    async fn leave(&mut self, ws: &mut Ws) {
        self.set_state(ParticipantState::Left);
        if send(ws, &ClientMessage::Leave).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Some(Ok(frame)) = ws.next().await {
                    if let Message::Close(_) = frame {
                        break;
                    }
                }
            })
            .await;
        }
        let _ = ws.close(None).await;
    }

    /// Reconnects with `resume`, backing off between attempts, while still serving commands
    /// and connection events. `None` when the client should stop instead.
    async fn reconnect(&mut self) -> Option<(Ws, ServerMessage)> {
        self.shared
            .signaling
            .send_replace(SignalingState::Reconnecting);
        let url = self.shared.cfg.signaling_url().ok()?;
        let mut delay = FIRST_BACKOFF;
        loop {
            let wake = tokio::time::Instant::now() + delay;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(wake) => break,
                    command = self.commands.recv() => match command {
                        None => return None,
                        Some(Command::Leave(reply)) => {
                            self.set_state(ParticipantState::Left);
                            self.leave_replies.push(reply);
                            return None;
                        }
                        Some(Command::Drop(reply)) => { let _ = reply.send(()); }
                        Some(Command::Send(ClientMessage::Leave, reply)) => {
                            self.set_state(ParticipantState::Left);
                            let _ = reply.send(Ok(()));
                            return None;
                        }
                        Some(Command::Send(message, reply)) => {
                            if let ClientMessage::SetMuted { kind, muted } = &message {
                                self.media.set_muted(*kind, *muted);
                            }
                            let _ = reply.send(Err(ClientError::NotConnected));
                        }
                        Some(Command::Screen(_, reply)) => {
                            let _ = reply.send(Err(ClientError::NotConnected));
                        }
                    },
                    Some(event) = self.media_events.recv() => {
                        // Candidates cannot be sent now; the server learns our address from
                        // our connectivity checks anyway.
                        let _ = self.media.on_event(event).await;
                    }
                }
            }
            let attempt = signaling::connect_and_join(
                &url,
                &self.shared.cfg.token,
                Some(self.session_id.clone()),
                self.shared.cfg.connect_timeout,
                &self.shared.cfg.proxy,
            )
            .await;
            match attempt {
                Ok((ws, joined)) => {
                    self.shared.stats.reconnected();
                    tracing::info!(participant = %self.shared.participant_id, "signaling reconnected");
                    return Some((ws, joined));
                }
                Err(ClientError::Refused { code, .. }) if is_terminal_refusal(code) => {
                    tracing::info!(participant = %self.shared.participant_id, code = ?code, "reconnect refused");
                    return None;
                }
                Err(error) => {
                    tracing::debug!(%error, "reconnect attempt failed");
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

impl Outcome {
    fn name(&self) -> &'static str {
        match self {
            Outcome::Dropped => "dropped",
            Outcome::Terminal => "terminal",
            Outcome::Left => "left",
            Outcome::Gone => "gone",
        }
    }
}
