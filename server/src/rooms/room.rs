//! The room task: one per live visit, the only owner of who is connected, in which state,
//! publishing what. Everything else talks to it through [`Rooms`] and its channel.
//!
//! What a participant learns is decided here: people in the lobby get their own state and
//! nothing else (no names, no tracks, no count); staff also get the list of who is waiting;
//! admitted people get the admitted room. A dropped connection keeps its place for
//! [`RESUME_WINDOW`], so a reconnect takes it back without anyone seeing a leave and a join.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rounds_proto::{
    ChatMessage, ErrorCode, MediaKind, ParticipantState, Phi, Role, RoomClaims, RoomParticipant,
    ServerMessage, TrackInfo, VideoConstraints,
};
use tokio::sync::{mpsc, oneshot};

use crate::sfu::engine::Engine;
use crate::sfu::{Sfu, SfuError, SfuEvent};

use crate::store::ParticipantRow;

/// How long a dropped participant keeps their place.
pub const RESUME_WINDOW: Duration = Duration::from_secs(30);
/// How often the server pings; clients should reconnect after twice this without a word.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// What the room sends to one connection.
#[derive(Debug)]
pub enum Outbound {
    Message(ServerMessage),
    /// Send this, then close the socket.
    Close(ServerMessage),
}

pub type ConnId = u64;

/// A request from a connection, already authenticated and parsed.
#[derive(Debug)]
pub enum Request {
    Publish(TrackInfo),
    Unpublish(String),
    SetMuted(MediaKind, bool),
    /// How large the client draws each participant's camera: (participant, width, height).
    RenderSizes(Vec<(String, u32, u32)>),
}

/// What a request leaves for the SFU, done after the room's own bookkeeping.
enum MediaFollowUp {
    /// The participant turned their own microphone or camera back on: a host mute is lifted.
    SelfUnmuted(String, MediaKind),
    RenderSizes(String, Vec<(String, u32, u32)>),
}

// Connect carries a whole participant row once per connection; boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    Connect {
        claims: RoomClaims,
        participant: ParticipantRow,
        options: JoinOptions,
        out: mpsc::Sender<Outbound>,
        reply: oneshot::Sender<Result<Connected, ServerMessage>>,
    },
    Disconnect {
        conn: ConnId,
    },
    Request {
        conn: ConnId,
        request: Request,
    },
    Admission {
        participant: String,
        state: ParticipantState,
    },
    HostMute {
        participant: String,
        kind: MediaKind,
    },
    Chat(ChatMessage),
    RunningLate(u32),
    Ended,
    Snapshot(oneshot::Sender<Vec<RoomParticipant>>),
    MediaAccess {
        participant: String,
        reply: oneshot::Sender<MediaAccess>,
    },
    Media(SfuEvent),
    /// A subscriber offer the SFU made, to go out on the member's connection of the moment.
    SubscriberOffer {
        participant: String,
        sdp: String,
    },
}

/// What a client asked for in its `join`, beyond its token.
#[derive(Debug, Clone, Default)]
pub struct JoinOptions {
    /// The session id of an earlier `joined`, to take back one's place after a reconnect.
    pub resume: Option<String>,
    /// Set up the subscriber connection while waiting in the lobby. It carries no track until
    /// admission, when the server adds them; what admission saves is the handshake (ICE and
    /// DTLS), which is then already done.
    pub prepare_media: bool,
}

/// What a participant may negotiate with the SFU, as the room task knows them now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaAccess {
    /// In the room: both connections.
    Admitted,
    /// In the lobby, with [`JoinOptions::prepare_media`]: only the subscriber connection, to
    /// answer the server's offer and trickle candidates for it. The SFU's gate gives that
    /// connection no track until admission.
    Preparing,
    /// Nothing.
    None,
}

/// A successful connection to a room.
#[derive(Debug, Clone)]
pub struct Connected {
    pub conn: ConnId,
    pub session: String,
    pub state: ParticipantState,
}

struct Conn {
    id: ConnId,
    out: mpsc::Sender<Outbound>,
}

struct Member {
    id: String,
    role: Role,
    name: Phi<String>,
    state: ParticipantState,
    audio_muted: bool,
    video_muted: bool,
    tracks: Vec<TrackInfo>,
    conn: Option<Conn>,
    session: String,
    dropped_at: Option<Instant>,
    /// What the SFU last asked this participant's camera to send.
    video: Option<VideoConstraints>,
    network_score: u8,
    /// The last subscriber offer sent, and on which connection.
    offer_sent: Option<(ConnId, String)>,
    /// The page takes a subscriber offer in the lobby ([`JoinOptions::prepare_media`]).
    prepare_media: bool,
    /// The lobby offer was asked of the SFU for the current page.
    prepared: bool,
}

impl Member {
    fn view(&self) -> RoomParticipant {
        RoomParticipant {
            id: self.id.clone(),
            name: self.name.clone(),
            role: self.role,
            state: self.state,
            audio_muted: self.audio_muted,
            video_muted: self.video_muted,
            connected: self.conn.is_some(),
            tracks: self.tracks.clone(),
        }
    }

    fn in_room(&self) -> bool {
        self.state == ParticipantState::Admitted
    }

    fn media_access(&self) -> MediaAccess {
        match self.state {
            ParticipantState::Admitted => MediaAccess::Admitted,
            ParticipantState::Lobby if self.prepare_media => MediaAccess::Preparing,
            _ => MediaAccess::None,
        }
    }

    fn send(&self, message: ServerMessage) {
        if let Some(conn) = &self.conn
            && conn.out.try_send(Outbound::Message(message)).is_err()
        {
            // A client that cannot keep up is disconnected rather than buffered without bound.
            tracing::warn!(participant = %self.id, "signaling queue full; dropping the connection");
            let _ = conn.out.try_send(Outbound::Close(ServerMessage::error(
                ErrorCode::Internal,
                "Your connection is too slow to keep up; reconnecting.",
            )));
        }
    }
}

/// Room-wide settings the room task needs.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    pub running_late_minutes: Option<u32>,
}

struct Room {
    id: String,
    members: BTreeMap<String, Member>,
    next_conn: ConnId,
    running_late: Option<u32>,
    ended: bool,
    sfu: Option<Sfu>,
    /// The dominant speaker as the SFU's engine last announced it.
    dominant: Option<String>,
    /// What the SFU was last told, to send it only changes.
    media_gate: BTreeMap<String, (bool, Vec<String>)>,
    /// Members whose peer connections belong to a page that is gone.
    media_reset: Vec<String>,
    /// Members back on a new signaling connection from the same page: an offer that went out
    /// on the old one may never have arrived.
    media_resend: Vec<String>,
    /// This room's own queue, for work finished off the room task.
    commands: mpsc::WeakSender<Command>,
    /// Shared with [`Rooms`]: which room each participant's media events go to.
    routes: Routes,
}

/// Participant id → room id, for routing the SFU's events to the right room task.
type Routes = Arc<Mutex<HashMap<String, String>>>;

impl Room {
    fn admitted(&self) -> Vec<RoomParticipant> {
        self.members
            .values()
            .filter(|m| m.in_room())
            .map(Member::view)
            .collect()
    }

    fn waiting(&self) -> Vec<RoomParticipant> {
        self.members
            .values()
            .filter(|m| m.state == ParticipantState::Lobby && m.conn.is_some())
            .map(Member::view)
            .collect()
    }

    /// The camera settings the SFU asked of `id`, or the engine's default for a two-party call
    /// until it has asked (in the lobby, or with media disabled).
    fn video(&self, id: &str) -> VideoConstraints {
        self.members
            .get(id)
            .and_then(|m| m.video.clone())
            .unwrap_or_else(|| {
                let mut engine = Engine::new();
                if let Some(sfu) = &self.sfu {
                    engine.set_video_codec(sfu.video_codec());
                }
                wire_constraints(&engine.video_constraints())
            })
    }

    fn to_room(&self, message: &ServerMessage, except: Option<&str>) {
        for m in self
            .members
            .values()
            .filter(|m| m.in_room() && Some(m.id.as_str()) != except)
        {
            m.send(message.clone());
        }
    }

    fn to_staff(&self, message: &ServerMessage) {
        for m in self.members.values().filter(|m| m.role.is_staff()) {
            m.send(message.clone());
        }
    }

    fn lobby_changed(&self) {
        self.to_staff(&ServerMessage::LobbyUpdated {
            waiting: self.waiting(),
        });
    }

    // The error is the message the client is refused with; it is built once per connection.
    #[allow(clippy::result_large_err)]
    fn connect(
        &mut self,
        claims: RoomClaims,
        participant: ParticipantRow,
        options: JoinOptions,
        out: mpsc::Sender<Outbound>,
    ) -> Result<(Connected, ServerMessage), ServerMessage> {
        if self.ended {
            return Err(ServerMessage::error(
                ErrorCode::RoomClosed,
                "This visit has ended.",
            ));
        }
        self.next_conn += 1;
        let conn = Conn {
            id: self.next_conn,
            out,
        };
        let id = participant.id.clone();
        let resumed;
        match self.members.get_mut(&id) {
            Some(member) => {
                // The same identity again: a reconnect, a reload, or a second tab. Either way
                // there is one participant; the newest connection wins.
                let same_page = options.resume.as_deref() == Some(member.session.as_str());
                resumed = same_page || member.dropped_at.is_some();
                if same_page {
                    self.media_resend.push(id.clone());
                } else {
                    // A new page (reload, another device) has none of the old peer
                    // connections: they must be rebuilt, not waited on.
                    self.media_reset.push(id.clone());
                    member.prepared = false;
                }
                member.prepare_media = options.prepare_media;
                if let Some(old) = member.conn.take() {
                    let _ = old.out.try_send(Outbound::Close(ServerMessage::error(
                        ErrorCode::Replaced,
                        "You joined this visit from another window or device.",
                    )));
                }
                member.conn = Some(conn);
                member.dropped_at = None;
                member.state = participant.state;
                member.name = participant.display_name.clone();
            }
            None => {
                resumed = false;
                self.members.insert(
                    id.clone(),
                    Member {
                        id: id.clone(),
                        role: claims.role,
                        name: participant.display_name.clone(),
                        state: participant.state,
                        audio_muted: false,
                        video_muted: false,
                        tracks: Vec::new(),
                        conn: Some(conn),
                        session: rounds_auth::random_id(),
                        dropped_at: None,
                        video: None,
                        network_score: 0,
                        offer_sent: None,
                        prepare_media: options.prepare_media,
                        prepared: false,
                    },
                );
            }
        }
        let member = &self.members[&id];
        let (conn_id, session, state, view, in_room, role) = (
            member.conn.as_ref().map(|c| c.id).unwrap_or_default(),
            member.session.clone(),
            member.state,
            member.view(),
            member.in_room(),
            member.role,
        );
        if in_room {
            let message = if resumed {
                ServerMessage::ParticipantUpdated {
                    participant: view.clone(),
                }
            } else {
                ServerMessage::ParticipantJoined {
                    participant: view.clone(),
                }
            };
            self.to_room(&message, Some(&id));
        } else {
            self.lobby_changed();
        }
        let joined = ServerMessage::Joined {
            v: rounds_proto::PROTOCOL_VERSION,
            session: session.clone(),
            room: self.id.clone(),
            me: view,
            participants: if in_room { self.admitted() } else { Vec::new() },
            waiting: if role.is_staff() {
                self.waiting()
            } else {
                Vec::new()
            },
            video: self.video(&id),
            heartbeat_secs: HEARTBEAT.as_secs() as u32,
            resume_secs: RESUME_WINDOW.as_secs() as u32,
            running_late_minutes: self.running_late,
            resumed,
        };
        Ok((
            Connected {
                conn: conn_id,
                session,
                state,
            },
            joined,
        ))
    }

    fn member_by_conn(&mut self, conn: ConnId) -> Option<&mut Member> {
        self.members
            .values_mut()
            .find(|m| m.conn.as_ref().is_some_and(|c| c.id == conn))
    }

    fn disconnect(&mut self, conn: ConnId, now: Instant) {
        let Some(member) = self.member_by_conn(conn) else {
            return;
        };
        member.conn = None;
        member.dropped_at = Some(now);
        let (view, in_room) = (member.view(), member.in_room());
        if in_room {
            self.to_room(
                &ServerMessage::ParticipantUpdated { participant: view },
                None,
            );
        } else {
            self.lobby_changed();
        }
    }

    /// Forgets people who dropped and did not come back in time.
    fn expire(&mut self, now: Instant) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.dropped_at
                    .is_some_and(|t| now.duration_since(t) >= RESUME_WINDOW)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            if let Some(member) = self.members.remove(&id) {
                if member.in_room() {
                    self.to_room(&ServerMessage::ParticipantLeft { participant_id: id }, None);
                } else {
                    self.lobby_changed();
                }
            }
        }
    }

    fn request(&mut self, conn: ConnId, request: Request) -> Option<MediaFollowUp> {
        let member = self.member_by_conn(conn)?;
        if !member.in_room() {
            member.send(ServerMessage::error(
                ErrorCode::NotAdmitted,
                "You can share audio and video once the clinic lets you in.",
            ));
            return None;
        }
        let id = member.id.clone();
        let mut follow_up = None;
        let message = match request {
            Request::Publish(mut track) => {
                track.muted = false;
                member.tracks.retain(|t| t.id != track.id);
                member.tracks.push(track.clone());
                ServerMessage::TrackPublished {
                    participant_id: id.clone(),
                    track,
                }
            }
            Request::Unpublish(track_id) => {
                member.tracks.retain(|t| t.id != track_id);
                ServerMessage::TrackUnpublished {
                    participant_id: id.clone(),
                    track_id,
                }
            }
            Request::SetMuted(kind, muted) => {
                match kind {
                    MediaKind::Audio => member.audio_muted = muted,
                    MediaKind::Video => member.video_muted = muted,
                }
                if !muted {
                    follow_up = Some(MediaFollowUp::SelfUnmuted(id.clone(), kind));
                }
                ServerMessage::ParticipantUpdated {
                    participant: member.view(),
                }
            }
            Request::RenderSizes(sizes) => {
                // Only sizes of people in the room: nothing here may name someone else.
                let sizes = sizes
                    .into_iter()
                    .filter(|(p, _, _)| {
                        *p != id && self.members.get(p).is_some_and(Member::in_room)
                    })
                    .collect();
                return Some(MediaFollowUp::RenderSizes(id, sizes));
            }
        };
        self.to_room(&message, Some(&id));
        follow_up
    }

    async fn media_follow_up(&self, follow_up: MediaFollowUp) {
        let Some(sfu) = &self.sfu else { return };
        match follow_up {
            MediaFollowUp::SelfUnmuted(id, kind) => {
                sfu.set_host_muted(&id, media_kind(kind), false).await;
            }
            MediaFollowUp::RenderSizes(id, sizes) => sfu.set_render_sizes(&id, sizes),
        }
    }

    fn admission(&mut self, id: &str, state: ParticipantState) {
        let Some(member) = self.members.get_mut(id) else {
            // Not connected: nothing to tell them; staff's lobby list may still change.
            self.lobby_changed();
            return;
        };
        let was_in_room = member.in_room();
        member.state = state;
        match state {
            ParticipantState::Admitted if !was_in_room => {
                let view = member.view();
                self.to_room(
                    &ServerMessage::ParticipantJoined { participant: view },
                    Some(id),
                );
                let admitted = ServerMessage::Admitted {
                    participants: self.admitted(),
                };
                if let Some(m) = self.members.get(id) {
                    m.send(admitted);
                    // Someone admitted mid-visit learns who is speaking now, not at the next change.
                    if let Some(speaker) = &self.dominant {
                        m.send(ServerMessage::DominantSpeaker {
                            participant_id: Some(speaker.clone()),
                        });
                    }
                }
                // Camera settings for everyone follow from the SFU once it has admitted them.
                self.lobby_changed();
            }
            ParticipantState::Denied | ParticipantState::Removed | ParticipantState::Left => {
                let Some(member) = self.members.remove(id) else {
                    return;
                };
                let goodbye = match state {
                    ParticipantState::Denied => Some(ServerMessage::Denied {
                        message: "The clinic could not see you in this visit. If you think this is a mistake, call the clinic.".into(),
                    }),
                    ParticipantState::Removed => Some(ServerMessage::Removed {
                        message: "The clinician has removed you from this visit. If you think this is a mistake, call the clinic.".into(),
                    }),
                    _ => None,
                };
                if let (Some(conn), Some(goodbye)) = (&member.conn, goodbye) {
                    let _ = conn.out.try_send(Outbound::Close(goodbye));
                }
                if was_in_room {
                    self.to_room(
                        &ServerMessage::ParticipantLeft {
                            participant_id: id.to_owned(),
                        },
                        None,
                    );
                }
                self.lobby_changed();
            }
            _ => {}
        }
    }

    fn host_mute(&mut self, id: &str, kind: MediaKind) -> bool {
        let Some(member) = self.members.get_mut(id) else {
            return false;
        };
        let message = match kind {
            MediaKind::Audio => {
                member.audio_muted = true;
                "The clinician muted your microphone. You can unmute yourself when you are ready to speak."
            }
            MediaKind::Video => {
                member.video_muted = true;
                "The clinician turned off your camera. You can turn it back on yourself."
            }
        };
        member.send(ServerMessage::MuteRequested {
            kind,
            message: message.into(),
        });
        let view = member.view();
        self.to_room(
            &ServerMessage::ParticipantUpdated { participant: view },
            Some(id),
        );
        true
    }

    fn chat(&self, message: ChatMessage) {
        let wire = ServerMessage::Chat {
            message: message.clone(),
        };
        for m in self.members.values() {
            let visible = m.role.is_staff()
                || m.id == message.from
                || message.to.as_deref() == Some(m.id.as_str())
                || (m.in_room() && message.to.is_none());
            if visible {
                m.send(wire.clone());
            }
        }
    }

    fn end(&mut self) {
        self.ended = true;
        for m in self.members.values() {
            if let Some(conn) = &m.conn {
                let _ = conn
                    .out
                    .try_send(Outbound::Close(ServerMessage::VisitEnded {
                        message: "The visit has ended. Thank you.".into(),
                    }));
            }
        }
        self.members.clear();
    }

    /// Tells the SFU who may exchange media and who receives whom. This is where admission
    /// becomes forwarding: only admitted members are allowed, and each receives every other
    /// admitted member.
    async fn sync_media(&mut self) {
        for id in std::mem::take(&mut self.media_reset) {
            if let Some(sfu) = &self.sfu {
                sfu.remove_peer(&id).await;
            }
            // Forgetting what the SFU was told makes the loop below tell it again.
            self.media_gate.remove(&id);
        }
        for id in std::mem::take(&mut self.media_resend) {
            let Some(sfu) = &self.sfu else { break };
            if let Some(sdp) = sfu.signaling_resumed(&id).await {
                self.send_subscriber_offer(&id, sdp);
            }
        }
        let admitted: Vec<String> = self
            .members
            .values()
            .filter(|m| m.in_room())
            .map(|m| m.id.clone())
            .collect();
        let mut wanted: BTreeMap<String, (bool, Vec<String>)> = BTreeMap::new();
        for m in self.members.values() {
            let allowed = m.in_room();
            let subs = if allowed {
                admitted.iter().filter(|id| **id != m.id).cloned().collect()
            } else {
                Vec::new()
            };
            wanted.insert(m.id.clone(), (allowed, subs));
        }
        let gone: Vec<String> = self
            .media_gate
            .keys()
            .filter(|id| !wanted.contains_key(*id))
            .cloned()
            .collect();
        {
            let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
            for id in &gone {
                if routes.get(id) == Some(&self.id) {
                    routes.remove(id);
                }
            }
        }
        let Some(sfu) = &self.sfu else {
            self.media_gate = wanted;
            return;
        };
        for (id, gate) in &wanted {
            if !self.media_gate.contains_key(id) {
                // This room's engine decides for them from now on.
                sfu.join_room(id, &self.id).await;
            }
            if self.media_gate.get(id) != Some(gate) {
                sfu.set_allowed(id, gate.0).await;
                sfu.set_subscriptions(id, gate.1.clone()).await;
            }
        }
        for id in &gone {
            sfu.remove_peer(id).await;
        }
        self.media_gate = wanted;
        // Pages waiting in the lobby that asked for it get their subscriber connection now,
        // with no track on it: admission then only has to add them.
        let preparing: Vec<String> = self
            .members
            .values_mut()
            .filter(|m| {
                m.media_access() == MediaAccess::Preparing && m.conn.is_some() && !m.prepared
            })
            .map(|m| {
                m.prepared = true;
                m.id.clone()
            })
            .collect();
        for id in preparing {
            tracing::debug!(participant = %id, "preparing the lobby's subscriber connection");
            self.offer_subscriber(id);
        }
    }

    /// Asks the SFU for a subscriber offer for `peer`, off the room task (the driver may take
    /// a moment); the room sends it on whichever connection the member has by then.
    fn offer_subscriber(&self, peer: String) {
        let Some(sfu) = self.sfu.clone() else {
            return;
        };
        let commands = self.commands.clone();
        tokio::spawn(async move {
            match sfu.subscriber_offer(&peer).await {
                Ok(sdp) => {
                    if let Some(commands) = commands.upgrade() {
                        let _ = commands
                            .send(Command::SubscriberOffer {
                                participant: peer,
                                sdp,
                            })
                            .await;
                    }
                }
                // An offer still unanswered: its answer re-checks what the connection should
                // carry, and a new offer follows from there.
                Err(SfuError::NegotiationInProgress) => {
                    tracing::debug!(participant = %peer, "subscriber offer deferred until the last one is answered")
                }
                Err(e) => {
                    tracing::warn!(participant = %peer, error = %e, "could not offer the subscriber connection")
                }
            }
        });
    }

    /// Sends a subscriber offer on the member's current connection, once per connection: the
    /// same offer can reach here both from the SFU and from a resume that found it unanswered.
    fn send_subscriber_offer(&mut self, participant: &str, sdp: String) {
        let Some(member) = self.members.get_mut(participant) else {
            return;
        };
        let Some(conn) = member.conn.as_ref().map(|c| c.id) else {
            return;
        };
        if let Some((sent_on, sent)) = &member.offer_sent
            && *sent == sdp
        {
            if *sent_on == conn {
                return;
            }
            tracing::info!(%participant, "subscriber offer sent again on the new signaling connection");
        }
        member.send(ServerMessage::Offer {
            pc: rounds_proto::PcKind::Subscriber,
            sdp: sdp.clone(),
        });
        member.offer_sent = Some((conn, sdp));
    }

    fn media(&mut self, event: SfuEvent) {
        match event {
            SfuEvent::RenegotiationNeeded { peer }
                if self.members.get(&peer).is_some_and(|m| m.conn.is_some()) =>
            {
                self.offer_subscriber(peer);
            }
            SfuEvent::RenegotiationNeeded { .. } => {}
            SfuEvent::DominantSpeaker { peer, .. } => {
                // Only someone in the room holds the floor as far as anyone is told.
                let peer = peer.filter(|p| self.members.get(p).is_some_and(Member::in_room));
                if peer != self.dominant {
                    self.dominant = peer.clone();
                    self.to_room(
                        &ServerMessage::DominantSpeaker {
                            participant_id: peer,
                        },
                        None,
                    );
                }
            }
            SfuEvent::NetworkScore { peer, score } => {
                let Some(member) = self.members.get_mut(&peer) else {
                    return;
                };
                member.network_score = score;
                let scores = self
                    .members
                    .values()
                    .filter(|m| m.in_room())
                    .map(|m| rounds_proto::ParticipantQuality {
                        participant_id: m.id.clone(),
                        score: m.network_score,
                    })
                    .collect();
                self.to_room(&ServerMessage::NetworkQuality { scores }, None);
            }
            SfuEvent::VideoConstraints { peer, constraints } => {
                let Some(member) = self.members.get_mut(&peer) else {
                    return;
                };
                let video = wire_constraints(&constraints);
                member.video = Some(video.clone());
                if member.in_room() {
                    member.send(ServerMessage::VideoConstraints { video });
                }
            }
            _ => {}
        }
    }

    fn connected(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.conn.is_some() || m.dropped_at.is_some())
            .count()
    }
}

async fn run(mut room: Room, mut rx: mpsc::Receiver<Command>, registry: Arc<Registry>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut idle_since: Option<Instant> = None;
    loop {
        tokio::select! {
            command = rx.recv() => {
                let Some(command) = command else { break };
                match command {
                    Command::Connect { claims, participant, options, out, reply } => {
                        let sub = participant.id.clone();
                        match room.connect(claims, participant, options, out) {
                            Ok((connected, joined)) => {
                                // Inserted here, in order with this room's leaves, so that a
                                // quick rejoin is never unrouted by its own earlier leave.
                                room.routes.lock().unwrap_or_else(|e| e.into_inner()).insert(sub, room.id.clone());
                                if let Some(m) = room.members.values().find(|m| m.conn.as_ref().is_some_and(|c| c.id == connected.conn)) {
                                    m.send(joined);
                                }
                                let _ = reply.send(Ok(connected));
                                room.sync_media().await;
                            }
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                        }
                    }
                    Command::Disconnect { conn } => room.disconnect(conn, Instant::now()),
                    Command::Request { conn, request } => {
                        if let Some(follow_up) = room.request(conn, request) {
                            room.media_follow_up(follow_up).await;
                        }
                    }
                    Command::Admission { participant, state } => {
                        room.admission(&participant, state);
                        room.sync_media().await;
                    }
                    Command::Media(event) => room.media(event),
                    Command::SubscriberOffer { participant, sdp } => {
                        room.send_subscriber_offer(&participant, sdp);
                    }
                    Command::HostMute { participant, kind } => {
                        if room.host_mute(&participant, kind)
                            && let Some(sfu) = &room.sfu
                        {
                            // Nobody receives the track until the participant turns it back on.
                            sfu.set_host_muted(&participant, media_kind(kind), true).await;
                        }
                    }
                    Command::Chat(message) => room.chat(message),
                    Command::RunningLate(minutes) => {
                        room.running_late = (minutes > 0).then_some(minutes);
                        for m in room.members.values() {
                            m.send(ServerMessage::RunningLate { minutes });
                        }
                    }
                    Command::Ended => {
                        room.end();
                        room.sync_media().await;
                    }
                    Command::Snapshot(reply) => {
                        let _ = reply.send(room.members.values().map(Member::view).collect());
                    }
                    Command::MediaAccess { participant, reply } => {
                        let access = room.members.get(&participant).map_or(MediaAccess::None, Member::media_access);
                        let _ = reply.send(access);
                    }
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let before = room.members.len();
                room.expire(now);
                if room.members.len() != before {
                    room.sync_media().await;
                }
                if room.connected() == 0 {
                    let since = *idle_since.get_or_insert(now);
                    if room.ended || now.duration_since(since) > Duration::from_secs(5) {
                        // Close the door first so nobody sends into a finished task.
                        if registry.retire(&room.id, &rx) {
                            break;
                        }
                    }
                } else {
                    idle_since = None;
                }
            }
        }
    }
    tracing::debug!(room = %room.id, "room task finished");
}

#[derive(Default)]
struct Registry {
    rooms: Mutex<HashMap<String, mpsc::Sender<Command>>>,
}

impl Registry {
    /// Removes the room if nothing is queued for it; false means "keep running".
    fn retire(&self, id: &str, rx: &mpsc::Receiver<Command>) -> bool {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if !rx.is_empty() {
            return false;
        }
        rooms.remove(id);
        true
    }
}

/// The live rooms of this server.
#[derive(Default, Clone)]
pub struct Rooms {
    registry: Arc<Registry>,
    sfu: Arc<std::sync::OnceLock<Sfu>>,
    /// Which room each connected participant is in, to route media events. A room task
    /// removes its members once they are gone for good.
    peers: Routes,
}

impl std::fmt::Debug for Rooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rooms")
    }
}

impl Rooms {
    fn sender(&self, room: &str, settings: &RoomSettings) -> mpsc::Sender<Command> {
        let mut rooms = self
            .registry
            .rooms
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = rooms.get(room)
            && !tx.is_closed()
        {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(1024);
        let task = Room {
            id: room.to_owned(),
            members: BTreeMap::new(),
            next_conn: 0,
            running_late: settings.running_late_minutes,
            ended: false,
            sfu: self.sfu.get().cloned(),
            dominant: None,
            media_gate: BTreeMap::new(),
            media_reset: Vec::new(),
            media_resend: Vec::new(),
            commands: tx.downgrade(),
            routes: self.peers.clone(),
        };
        tokio::spawn(run(task, rx, self.registry.clone()));
        rooms.insert(room.to_owned(), tx.clone());
        metrics::gauge!("rounds_rooms_live").set(rooms.len() as f64);
        tx
    }

    fn existing(&self, room: &str) -> Option<mpsc::Sender<Command>> {
        self.registry
            .rooms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(room)
            .cloned()
    }

    pub async fn connect(
        &self,
        settings: &RoomSettings,
        claims: RoomClaims,
        participant: ParticipantRow,
        options: JoinOptions,
        out: mpsc::Sender<Outbound>,
    ) -> Result<Connected, ServerMessage> {
        let room = claims.room.clone();
        let (reply, wait) = oneshot::channel();
        let command = Command::Connect {
            claims,
            participant,
            options,
            out,
            reply,
        };
        if let Err(mpsc::error::SendError(command)) =
            self.sender(&room, settings).send(command).await
        {
            // The task retired between lookup and send: start a fresh one.
            self.sender(&room, settings)
                .send(command)
                .await
                .map_err(|_| unavailable())?;
        }
        wait.await.map_err(|_| unavailable())?
    }

    async fn tell(&self, room: &str, command: Command) {
        if let Some(tx) = self.existing(room) {
            let _ = tx.send(command).await;
        }
    }

    pub async fn disconnect(&self, room: &str, conn: ConnId) {
        self.tell(room, Command::Disconnect { conn }).await;
    }

    pub async fn request(&self, room: &str, conn: ConnId, request: Request) {
        self.tell(room, Command::Request { conn, request }).await;
    }

    pub async fn admission(&self, room: &str, participant: &str, state: ParticipantState) {
        self.tell(
            room,
            Command::Admission {
                participant: participant.to_owned(),
                state,
            },
        )
        .await;
    }

    pub async fn host_mute(&self, room: &str, participant: &str, kind: MediaKind) {
        self.tell(
            room,
            Command::HostMute {
                participant: participant.to_owned(),
                kind,
            },
        )
        .await;
    }

    pub async fn chat(&self, room: &str, message: ChatMessage) {
        self.tell(room, Command::Chat(message)).await;
    }

    pub async fn running_late(&self, room: &str, minutes: u32) {
        self.tell(room, Command::RunningLate(minutes)).await;
    }

    pub async fn ended(&self, room: &str) {
        self.tell(room, Command::Ended).await;
    }

    /// What `participant` may negotiate, as the room task knows them now. Media negotiation
    /// asks this for every offer, answer and candidate.
    pub async fn media_access(&self, room: &str, participant: &str) -> MediaAccess {
        let Some(tx) = self.existing(room) else {
            return MediaAccess::None;
        };
        let (reply, wait) = oneshot::channel();
        let ask = Command::MediaAccess {
            participant: participant.to_owned(),
            reply,
        };
        if tx.send(ask).await.is_err() {
            return MediaAccess::None;
        }
        wait.await.unwrap_or(MediaAccess::None)
    }

    /// Everyone the room task knows (tests use it to prove a reconnect made no duplicate).
    pub async fn snapshot(&self, room: &str) -> Vec<RoomParticipant> {
        let Some(tx) = self.existing(room) else {
            return Vec::new();
        };
        let (reply, wait) = oneshot::channel();
        if tx.send(Command::Snapshot(reply)).await.is_err() {
            return Vec::new();
        }
        wait.await.unwrap_or_default()
    }

    /// Attaches the SFU (once, at start) and routes its events to the rooms.
    pub fn attach_sfu(&self, sfu: Sfu) {
        let mut events = sfu.events();
        if self.sfu.set(sfu).is_err() {
            return;
        }
        let rooms = self.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        let room = match &event {
                            SfuEvent::DominantSpeaker { room, .. } => Some(room.clone()),
                            SfuEvent::RenegotiationNeeded { peer }
                            | SfuEvent::NetworkScore { peer, .. }
                            | SfuEvent::VideoConstraints { peer, .. } => rooms
                                .peers
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get(peer)
                                .cloned(),
                            _ => continue,
                        };
                        if let Some(room) = room {
                            rooms.tell(&room, Command::Media(event)).await;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "room media events lagged");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }

    pub fn sfu(&self) -> Option<&Sfu> {
        self.sfu.get()
    }
}

fn media_kind(kind: MediaKind) -> crate::sfu::MediaKind {
    match kind {
        MediaKind::Audio => crate::sfu::MediaKind::Audio,
        MediaKind::Video => crate::sfu::MediaKind::Video,
    }
}

/// The engine's camera settings as the signaling protocol carries them.
fn wire_constraints(c: &crate::sfu::VideoConstraints) -> VideoConstraints {
    VideoConstraints {
        width: c.width,
        height: c.height,
        fps: c.fps,
        max_bitrate_kbps: c.max_bitrate_kbps,
        simulcast: c.simulcast,
        codec: c.codec.as_str().to_owned(),
    }
}

fn unavailable() -> ServerMessage {
    ServerMessage::error(
        ErrorCode::Internal,
        "The visit could not be opened just now. Try again.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(room: &str, sub: &str, role: Role) -> RoomClaims {
        RoomClaims {
            iss: "rounds".into(),
            aud: "rounds-room".into(),
            sub: sub.into(),
            name: "someone".into(),
            room: room.into(),
            role,
            grants: Vec::new(),
            iat: 0,
            nbf: 0,
            exp: i64::MAX,
            jti: format!("jti-{sub}"),
        }
    }

    fn row(room: &str, id: &str, role: Role, state: ParticipantState) -> ParticipantRow {
        ParticipantRow {
            id: id.into(),
            visit_id: room.into(),
            role,
            invitee_id: None,
            clinician_id: None,
            display_name: Phi::new("someone".into()),
            state,
            joined_at: chrono::Utc::now(),
            admitted_at: None,
        }
    }

    const NO_LATENESS: RoomSettings = RoomSettings {
        running_late_minutes: None,
    };

    /// Connects `who` to room v1 with the role and state given.
    async fn connect(
        rooms: &Rooms,
        who: &str,
        role: Role,
        state: ParticipantState,
        resume: Option<String>,
        out: mpsc::Sender<Outbound>,
    ) -> Result<Connected, ServerMessage> {
        rooms
            .connect(
                &NO_LATENESS,
                claims("v1", who, role),
                row("v1", who, role, state),
                JoinOptions {
                    resume,
                    prepare_media: false,
                },
                out,
            )
            .await
    }

    fn routed(rooms: &Rooms) -> Vec<String> {
        let mut ids: Vec<String> = rooms
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        ids.sort();
        ids
    }

    /// A server that runs for months sees every participant once: the routing table for
    /// media events must forget each one when they leave, or it grows with every visit.
    #[tokio::test]
    async fn participants_who_leave_are_no_longer_routed() {
        let rooms = Rooms::default();
        let (out, _keep) = mpsc::channel(64);
        connect(
            &rooms,
            "clinician",
            Role::Provider,
            ParticipantState::Admitted,
            None,
            out.clone(),
        )
        .await
        .expect("the clinician connects");
        for guest in ["guest-1", "guest-2"] {
            connect(
                &rooms,
                guest,
                Role::Guest,
                ParticipantState::Lobby,
                None,
                out.clone(),
            )
            .await
            .expect("a guest connects");
        }
        // The snapshot is answered after everything queued before it.
        rooms.snapshot("v1").await;
        assert_eq!(routed(&rooms), ["clinician", "guest-1", "guest-2"]);

        rooms
            .admission("v1", "guest-1", ParticipantState::Left)
            .await;
        rooms
            .admission("v1", "guest-2", ParticipantState::Denied)
            .await;
        rooms.snapshot("v1").await;
        assert_eq!(routed(&rooms), ["clinician"]);
    }

    /// The subscriber offers that reached a connection, in order.
    fn offers(rx: &mut mpsc::Receiver<Outbound>) -> Vec<String> {
        let mut sdps = Vec::new();
        while let Ok(out) = rx.try_recv() {
            if let Outbound::Message(ServerMessage::Offer { sdp, .. }) = out {
                sdps.push(sdp);
            }
        }
        sdps
    }

    /// The same subscriber offer can reach the room twice (from the SFU, and from a resume
    /// that found it unanswered): the participant gets it once per signaling connection, so
    /// a browser never sees an offer again in the middle of answering it.
    #[tokio::test]
    async fn a_subscriber_offer_goes_out_once_per_connection() {
        let rooms = Rooms::default();
        let clinician = |out: mpsc::Sender<Outbound>, resume: Option<String>| {
            let rooms = &rooms;
            async move {
                connect(
                    rooms,
                    "clinician",
                    Role::Provider,
                    ParticipantState::Admitted,
                    resume,
                    out,
                )
                .await
            }
        };
        let offer = |sdp: &str| Command::SubscriberOffer {
            participant: "clinician".into(),
            sdp: sdp.into(),
        };
        let (first_out, mut first) = mpsc::channel(64);
        let connected = clinician(first_out, None).await.expect("connects");
        rooms.tell("v1", offer("offer-1")).await;
        rooms.tell("v1", offer("offer-1")).await;
        rooms.snapshot("v1").await;
        assert_eq!(offers(&mut first), ["offer-1"]);

        // The same page comes back on a new socket: the unanswered offer goes out there once.
        let (second_out, mut second) = mpsc::channel(64);
        clinician(second_out, Some(connected.session))
            .await
            .expect("resumes");
        rooms.tell("v1", offer("offer-1")).await;
        rooms.tell("v1", offer("offer-1")).await;
        rooms.snapshot("v1").await;
        assert_eq!(offers(&mut second), ["offer-1"]);
        assert!(
            offers(&mut first).is_empty(),
            "the replaced socket got an offer"
        );

        // A new offer is sent even though one went out on this connection already.
        rooms.tell("v1", offer("offer-2")).await;
        rooms.snapshot("v1").await;
        assert_eq!(offers(&mut second), ["offer-2"]);
    }
}
