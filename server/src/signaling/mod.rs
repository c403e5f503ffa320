//! The signaling WebSocket at `/rtc`: decodes messages, checks them, and hands them to the
//! room task or the domain. Every refusal is a typed [`ServerMessage::Error`]; nothing a
//! client sends can take a room down.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use rounds_proto::{
    ClientMessage, ErrorCode, HostAction, MAX_SIGNAL_BYTES, PROTOCOL_VERSION, PostChatRequest,
    ROOM_AUDIENCE, RoomClaims, ServerMessage,
};
use tokio::sync::mpsc;

use crate::AppState;
use crate::access::{Actor, check_participant};
use crate::error::ApiError;
use crate::http::extract::{ClientIp, token_problem};
use crate::rooms::admission::Action;
use crate::rooms::room::{HEARTBEAT, JoinOptions, Outbound, Request, RoomSettings};

/// The initial read buffer of each signaling socket (it grows for a larger message).
const SIGNAL_READ_BUFFER: usize = 8 * 1024;
/// A client must say `join` this soon after connecting.
const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Silence for this long means the socket is dead.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages a client may send per second, sustained (bursts of twice that are fine).
const MESSAGES_PER_SEC: f64 = 20.0;

/// Upgrades to the signaling WebSocket.
#[utoipa::path(get, path = "/rtc", tag = "signaling",
    responses((status = 101, description = "Switching to the signaling WebSocket; see docs/protocol.md")))]
pub async fn rtc(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ws: WebSocketUpgrade,
) -> Response {
    // Signaling messages are small. tungstenite's default 128 KiB read buffer per socket
    // let 1,000 connections that never say `join` cost the server about 90 MB.
    ws.max_message_size(MAX_SIGNAL_BYTES * 4)
        .max_frame_size(MAX_SIGNAL_BYTES * 4)
        .read_buffer_size(SIGNAL_READ_BUFFER)
        .on_upgrade(move |socket| async move {
            metrics::gauge!("rounds_signaling_connections").increment(1.0);
            session(state, socket, ip).await;
            metrics::gauge!("rounds_signaling_connections").decrement(1.0);
        })
}

fn encode(message: &ServerMessage) -> Message {
    Message::Text(serde_json::to_string(message).unwrap_or_default().into())
}

async fn refuse(mut socket: WebSocket, message: ServerMessage) {
    let _ = socket.send(encode(&message)).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 4000,
            reason: "refused".into(),
        })))
        .await;
}

// The error is the typed message sent back to the client.
#[allow(clippy::result_large_err)]
fn parse(text: &str) -> Result<ClientMessage, ServerMessage> {
    if text.len() > MAX_SIGNAL_BYTES {
        return Err(ServerMessage::error(
            ErrorCode::TooLarge,
            format!("Signaling messages must be at most {MAX_SIGNAL_BYTES} bytes."),
        ));
    }
    serde_json::from_str(text).map_err(|e| {
        ServerMessage::error(
            ErrorCode::BadMessage,
            format!("That message was not understood: {e}."),
        )
    })
}

fn problem_to_error(e: ApiError) -> ServerMessage {
    let code = match e.status.as_u16() {
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::Forbidden,
        409 | 410 => ErrorCode::RoomClosed,
        429 => ErrorCode::RateLimited,
        400 | 404 | 422 => ErrorCode::BadMessage,
        _ => ErrorCode::Internal,
    };
    ServerMessage::error(code, e.detail)
}

/// Waits for `join` and checks its token.
#[allow(clippy::result_large_err)]
async fn await_join(
    state: &AppState,
    socket: &mut WebSocket,
) -> Result<(RoomClaims, JoinOptions), ServerMessage> {
    let first = tokio::time::timeout(JOIN_TIMEOUT, socket.recv())
        .await
        .map_err(|_| {
            ServerMessage::error(
                ErrorCode::NotJoined,
                "Send a join message with your token first.",
            )
        })?;
    let text = match first {
        Some(Ok(Message::Text(text))) => text,
        _ => {
            return Err(ServerMessage::error(
                ErrorCode::NotJoined,
                "Send a join message with your token first.",
            ));
        }
    };
    let ClientMessage::Join {
        v,
        token,
        resume,
        prepare_media,
    } = parse(&text)?
    else {
        return Err(ServerMessage::error(
            ErrorCode::NotJoined,
            "The first message must be join.",
        ));
    };
    if v != PROTOCOL_VERSION {
        return Err(ServerMessage::error(
            ErrorCode::UnsupportedVersion,
            format!(
                "This server speaks signaling version {PROTOCOL_VERSION}; update the app or reload the page."
            ),
        ));
    }
    let claims = state
        .tokens
        .verify::<RoomClaims>(&token, ROOM_AUDIENCE)
        .map_err(|e| ServerMessage::error(ErrorCode::Unauthorized, token_problem(e).detail))?;
    Ok((
        claims,
        JoinOptions {
            resume,
            prepare_media,
        },
    ))
}

async fn session(state: AppState, mut socket: WebSocket, ip: IpAddr) {
    let (claims, options) = match await_join(&state, &mut socket).await {
        Ok(joined) => joined,
        Err(message) => {
            tracing::debug!(%ip, "signaling join refused");
            return refuse(socket, message).await;
        }
    };
    let room = claims.room.clone();
    let loaded = async {
        let participant = check_participant(&claims, state.store.participant(&claims.sub).await?)?;
        let visit = crate::visits::load(&state, &room).await?;
        if !visit.is_live() {
            return Err(ApiError::gone("visit-ended", "This visit has ended."));
        }
        Ok::<_, ApiError>((participant, visit))
    }
    .await;
    let (participant, visit) = match loaded {
        Ok(v) => v,
        Err(e) => return refuse(socket, problem_to_error(e)).await,
    };
    let (out_tx, mut out_rx) = mpsc::channel::<Outbound>(256);
    let settings = RoomSettings {
        running_late_minutes: visit.running_late_minutes,
    };
    let connected = match state
        .rooms
        .connect(&settings, claims.clone(), participant, options, out_tx)
        .await
    {
        Ok(c) => c,
        Err(message) => return refuse(socket, message).await,
    };
    tracing::info!(room = %room, participant = %claims.sub, role = claims.role.as_str(), state = connected.state.as_str(), "signaling connected");

    let (mut sink, mut stream) = socket.split();
    let mut ping = tokio::time::interval(HEARTBEAT);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut allowance = MESSAGES_PER_SEC * 2.0;
    let mut last_refill = Instant::now();
    let reason = loop {
        tokio::select! {
            outbound = out_rx.recv() => match outbound {
                Some(Outbound::Message(m)) => {
                    if sink.send(encode(&m)).await.is_err() { break "send failed"; }
                }
                Some(Outbound::Close(m)) => {
                    let _ = sink.send(encode(&m)).await;
                    let _ = sink.send(Message::Close(Some(CloseFrame { code: 4001, reason: "closed by the server".into() }))).await;
                    break "closed by the room";
                }
                None => break "room gone",
            },
            incoming = stream.next() => {
                let Some(Ok(frame)) = incoming else { break "client went away" };
                last_heard = Instant::now();
                let text = match frame {
                    Message::Text(text) => text,
                    Message::Close(_) => break "client closed",
                    Message::Binary(_) => {
                        let e = ServerMessage::error(ErrorCode::BadMessage, "Signaling messages are JSON text.");
                        if sink.send(encode(&e)).await.is_err() { break "send failed"; }
                        continue;
                    }
                    _ => continue,
                };
                let now = Instant::now();
                allowance = (allowance + now.duration_since(last_refill).as_secs_f64() * MESSAGES_PER_SEC).min(MESSAGES_PER_SEC * 2.0);
                last_refill = now;
                if allowance < 1.0 {
                    let e = ServerMessage::error(ErrorCode::RateLimited, "Too many messages; slow down.");
                    if sink.send(encode(&e)).await.is_err() { break "send failed"; }
                    continue;
                }
                allowance -= 1.0;
                let reply = match parse(&text) {
                    Ok(message) => handle(&state, &claims, connected.conn, message).await,
                    Err(e) => Some(Reply::Error(e)),
                };
                match reply {
                    Some(Reply::Send(m) | Reply::Error(m)) if sink.send(encode(&m)).await.is_err() => break "send failed",
                    Some(Reply::Leave) => break "left",
                    _ => {}
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > IDLE_TIMEOUT {
                    break "heartbeat timeout";
                }
                if sink.send(Message::Ping(Vec::new().into())).await.is_err() { break "send failed"; }
            }
        }
    };
    tracing::info!(room = %room, participant = %claims.sub, reason, "signaling disconnected");
    state.rooms.disconnect(&room, connected.conn).await;
}

enum Reply {
    Send(ServerMessage),
    Error(ServerMessage),
    Leave,
}

impl From<ServerMessage> for Reply {
    fn from(m: ServerMessage) -> Self {
        Reply::Error(m)
    }
}

#[allow(clippy::result_large_err)]
async fn actor(state: &AppState, claims: &RoomClaims) -> Result<Actor, ServerMessage> {
    let participant = state
        .store
        .participant(&claims.sub)
        .await
        .map_err(|e| problem_to_error(e.into()))?;
    let participant = check_participant(claims, participant).map_err(problem_to_error)?;
    Ok(Actor::Participant {
        claims: claims.clone(),
        participant,
    })
}

async fn handle(
    state: &AppState,
    claims: &RoomClaims,
    conn: u64,
    message: ClientMessage,
) -> Option<Reply> {
    let room = claims.room.as_str();
    match message {
        ClientMessage::Join { .. } => Some(Reply::Error(ServerMessage::error(
            ErrorCode::NotJoined,
            "You have already joined.",
        ))),
        ClientMessage::Ping { t } => Some(Reply::Send(ServerMessage::Pong { t })),
        ClientMessage::Pong { .. } => None,
        ClientMessage::Publish { track } => {
            state
                .rooms
                .request(room, conn, Request::Publish(track))
                .await;
            None
        }
        ClientMessage::Unpublish { track_id } => {
            state
                .rooms
                .request(room, conn, Request::Unpublish(track_id))
                .await;
            None
        }
        ClientMessage::SetMuted { kind, muted } => {
            state
                .rooms
                .request(room, conn, Request::SetMuted(kind, muted))
                .await;
            None
        }
        ClientMessage::RenderSizes { sizes } => {
            if sizes.len() > rounds_proto::MAX_RENDER_SIZES {
                return Some(Reply::Error(ServerMessage::error(
                    ErrorCode::BadMessage,
                    format!(
                        "Send at most {} render sizes at a time.",
                        rounds_proto::MAX_RENDER_SIZES
                    ),
                )));
            }
            let sizes = sizes
                .into_iter()
                .map(|s| (s.participant_id, s.width, s.height))
                .collect();
            state
                .rooms
                .request(room, conn, Request::RenderSizes(sizes))
                .await;
            None
        }
        ClientMessage::Offer { .. } | ClientMessage::Answer { .. } | ClientMessage::Ice { .. } => {
            match crate::media::negotiate(state, claims, message).await {
                Ok(reply) => reply.map(Reply::Send),
                Err(e) => Some(Reply::Error(e)),
            }
        }
        ClientMessage::Chat { text, to } => {
            let actor = match actor(state, claims).await {
                Ok(a) => a,
                Err(e) => return Some(Reply::Error(e)),
            };
            match crate::chat::post(state, &actor, room, PostChatRequest { text, to }).await {
                Ok(_) => None,
                Err(e) => Some(Reply::Error(problem_to_error(e))),
            }
        }
        ClientMessage::Host {
            participant,
            action,
        } => {
            let actor = match actor(state, claims).await {
                Ok(a) => a,
                Err(e) => return Some(Reply::Error(e)),
            };
            let result = match action {
                HostAction::Admit => {
                    crate::visits::decide(state, &actor, room, &participant, Action::Admit)
                        .await
                        .map(|_| ())
                }
                HostAction::Deny => {
                    crate::visits::decide(state, &actor, room, &participant, Action::Deny)
                        .await
                        .map(|_| ())
                }
                HostAction::Remove => {
                    crate::visits::decide(state, &actor, room, &participant, Action::Remove)
                        .await
                        .map(|_| ())
                }
                HostAction::MuteAudio | HostAction::StopVideo => {
                    crate::visits::host_mute(state, &actor, room, &participant, action).await
                }
            };
            result.err().map(|e| Reply::Error(problem_to_error(e)))
        }
        ClientMessage::Leave => {
            let actor = match actor(state, claims).await {
                Ok(a) => a,
                Err(e) => return Some(Reply::Error(e)),
            };
            let _ = crate::visits::leave(state, &actor, room).await;
            Some(Reply::Leave)
        }
    }
}
