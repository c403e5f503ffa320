//! Signaling adapters that put [`LeanPeer`]s into rooms: Rounds (its `/rtc` WebSocket and
//! REST API) and Janus (the VideoRoom plugin over the Janus WebSocket API). The capacity
//! benchmark drives both through the same calls, so the load and the method are the same.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use rounds_client::Api;
use rounds_proto::{
    ClientMessage, PROTOCOL_VERSION, ParticipantState, PcKind, Role as RoomRole, ServerMessage,
    TrackInfo, TrackKind,
};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::lean::LeanPeer;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A participant of either SFU; dropping it leaves (its tasks end with its channels).
pub struct Member {
    /// The peer it publishes through, or else the one it receives through.
    pub peer: Arc<LeanPeer>,
    /// The peer it receives through, when it also publishes (a whole participant).
    pub receiver: Option<Arc<LeanPeer>>,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Rounds signaling, to say `leave`.
    rounds_out: Option<mpsc::UnboundedSender<ClientMessage>>,
}

impl Member {
    /// Leaves the room the way a client does (Rounds: a `leave` message), then closes.
    pub async fn leave(self) {
        if let Some(out) = &self.rounds_out {
            let _ = out.send(ClientMessage::Leave);
            // Let the writer put it on the wire before the socket closes.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every peer of this member is connected.
    pub async fn wait_connected(&self, timeout: Duration) -> anyhow::Result<()> {
        self.peer.wait_connected(timeout).await?;
        if let Some(receiver) = &self.receiver {
            receiver.wait_connected(timeout).await?;
        }
        Ok(())
    }
}

/// The peers one Rounds participant brings to a room: one to publish through, one to
/// receive through, or both (the publisher and subscriber connections of a real client).
#[derive(Default)]
pub struct Peers {
    pub publisher: Option<LeanPeer>,
    pub subscriber: Option<LeanPeer>,
}

impl Peers {
    pub fn publish(peer: LeanPeer) -> Peers {
        Peers {
            publisher: Some(peer),
            subscriber: None,
        }
    }

    pub fn receive(peer: LeanPeer) -> Peers {
        Peers {
            publisher: None,
            subscriber: Some(peer),
        }
    }
}

// ---- Rounds ------------------------------------------------------------------------------

/// A Rounds server: the clinician who creates the visits, and one visit per room.
pub struct RoundsSfu {
    api: Api,
    server: url::Url,
    access: String,
    rooms: Vec<RoundsRoom>,
}

struct RoundsRoom {
    visit_id: String,
    provider_token: String,
    room: String,
}

fn ws_url(server: &url::Url) -> anyhow::Result<String> {
    let mut url = server.clone();
    url.set_scheme(if server.scheme() == "https" {
        "wss"
    } else {
        "ws"
    })
    .map_err(|()| anyhow!("bad server URL"))?;
    url.set_path("/rtc");
    Ok(url.to_string())
}

impl RoundsSfu {
    pub async fn new(
        server: url::Url,
        email: &str,
        password: &str,
        rooms: usize,
    ) -> anyhow::Result<RoundsSfu> {
        let api = Api::new(server.clone())?;
        let access = api.login(email, password).await?.access_token;
        let mut list = Vec::new();
        for _ in 0..rooms {
            let visit = api.create_visit_now(&access, 240, "Capacity").await?;
            let token = api.provider_token(&access, &visit.visit.id).await?;
            list.push(RoundsRoom {
                visit_id: visit.visit.id,
                provider_token: token.token,
                room: token.room,
            });
        }
        Ok(RoundsSfu {
            api,
            server,
            access,
            rooms: list,
        })
    }

    /// The clinician of room `room` joins and publishes `peer`'s tracks.
    pub async fn publish(&self, room: usize, peer: LeanPeer) -> anyhow::Result<Member> {
        self.host(room, Peers::publish(peer)).await
    }

    /// The clinician of room `room` joins with `peers`.
    pub async fn host(&self, room: usize, peers: Peers) -> anyhow::Result<Member> {
        let token = self.rooms[room].provider_token.clone();
        Ok(self.join_inner(token, peers).await?.0)
    }

    /// A guest joins room `room`, is admitted, and receives through `peer`.
    pub async fn subscribe(&self, room: usize, peer: LeanPeer, n: usize) -> anyhow::Result<Member> {
        self.guest_with(room, Peers::receive(peer), n).await
    }

    /// A guest joins room `room` and is admitted; it publishes `peer`'s tracks when
    /// `publish`, and receives through it otherwise.
    pub async fn guest(
        &self,
        room: usize,
        peer: LeanPeer,
        n: usize,
        publish: bool,
    ) -> anyhow::Result<Member> {
        let peers = if publish {
            Peers::publish(peer)
        } else {
            Peers::receive(peer)
        };
        self.guest_with(room, peers, n).await
    }

    /// A guest joins room `room` with `peers` and is admitted.
    pub async fn guest_with(&self, room: usize, peers: Peers, n: usize) -> anyhow::Result<Member> {
        let r = &self.rooms[room];
        let guest = self
            .api
            .guest_token(
                &r.provider_token,
                &r.room,
                &format!("Load {n}"),
                RoomRole::Guest,
            )
            .await?;
        let (member, id) = self.join_inner(guest.token, peers).await?;
        self.api.admit(&self.access, &r.visit_id, &id).await?;
        Ok(member)
    }

    async fn join_inner(&self, token: String, peers: Peers) -> anyhow::Result<(Member, String)> {
        let publisher = peers.publisher.map(Arc::new);
        let subscriber = peers.subscriber.map(Arc::new);
        let (peer, receiver) = match (&publisher, &subscriber) {
            (Some(p), s) => (p.clone(), s.clone()),
            (None, Some(s)) => (s.clone(), None),
            (None, None) => bail!("a member needs a peer to publish or receive through"),
        };
        let url = ws_url(&self.server)?;
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        let (mut sink, mut stream) = ws.split();
        let send = |m: &ClientMessage| -> anyhow::Result<Message> {
            Ok(Message::Text(serde_json::to_string(m)?.into()))
        };
        sink.send(send(&ClientMessage::Join {
            v: PROTOCOL_VERSION,
            token,
            resume: None,
            prepare_media: false,
        })?)
        .await?;
        let joined = loop {
            let Some(frame) = stream.next().await else {
                bail!("the server closed during join");
            };
            if let Message::Text(text) = frame? {
                break serde_json::from_str::<ServerMessage>(&text)?;
            }
        };
        let ServerMessage::Joined { me, .. } = joined else {
            bail!("join refused");
        };
        let (out, mut out_rx) = mpsc::unbounded_channel::<ClientMessage>();
        let writer = tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let Ok(text) = serde_json::to_string(&m) else {
                    continue;
                };
                if sink.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
        });
        let start_publishing = {
            let publisher = publisher.clone();
            let out = out.clone();
            move || async move {
                let Some(peer) = publisher else { return };
                for (id, kind) in [("audio0", TrackKind::Audio), ("video0", TrackKind::Video)] {
                    let _ = out.send(ClientMessage::Publish {
                        track: TrackInfo {
                            id: id.into(),
                            kind,
                            mid: None,
                            simulcast: false,
                            muted: false,
                        },
                    });
                }
                match peer.offer().await {
                    Ok(sdp) => {
                        let _ = out.send(ClientMessage::Offer {
                            pc: PcKind::Publisher,
                            sdp,
                            offer_id: None,
                        });
                    }
                    Err(error) => eprintln!("publisher offer failed: {error:#}"),
                }
            }
        };
        if me.state == ParticipantState::Admitted {
            start_publishing.clone()().await;
        }
        let leave_out = out.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                let Message::Text(text) = frame else { continue };
                let Ok(message) = serde_json::from_str::<ServerMessage>(&text) else {
                    continue;
                };
                match message {
                    ServerMessage::Ping { t } => {
                        let _ = out.send(ClientMessage::Pong { t });
                    }
                    ServerMessage::Admitted { .. } => start_publishing.clone()().await,
                    ServerMessage::Answer {
                        pc: PcKind::Publisher,
                        sdp,
                        ..
                    } => {
                        if let Some(peer) = &publisher
                            && let Err(error) = peer.set_answer(sdp).await
                        {
                            eprintln!("publisher answer rejected: {error:#}");
                        }
                    }
                    ServerMessage::Offer {
                        pc: PcKind::Subscriber,
                        sdp,
                    } => {
                        let Some(peer) = &subscriber else { continue };
                        match peer.answer(sdp).await {
                            Ok(sdp) => {
                                let _ = out.send(ClientMessage::Answer {
                                    pc: PcKind::Subscriber,
                                    sdp,
                                });
                            }
                            Err(error) => eprintln!("subscriber answer failed: {error:#}"),
                        }
                    }
                    ServerMessage::Ice { pc, candidate } if !candidate.candidate.is_empty() => {
                        let peer = match pc {
                            PcKind::Publisher => &publisher,
                            PcKind::Subscriber => &subscriber,
                        };
                        if let Some(peer) = peer {
                            peer.add_candidate(
                                candidate.candidate,
                                candidate.sdp_mid,
                                candidate.sdp_mline_index,
                            );
                        }
                    }
                    _ => {}
                }
            }
        });
        Ok((
            Member {
                peer,
                receiver,
                _tasks: vec![reader, writer],
                rounds_out: Some(leave_out),
            },
            me.id,
        ))
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        for t in &self._tasks {
            t.abort();
        }
    }
}

// ---- Janus -------------------------------------------------------------------------------

/// Debian's `janus`, configured at run time in a temporary folder: the VideoRoom plugin and
/// the WebSocket transport on loopback only, nothing else loaded.
pub struct JanusProcess {
    pub child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

const JANUS_LIB: &str = "/usr/lib/x86_64-linux-gnu/janus";

impl JanusProcess {
    /// Starts `janus`, pinned to `core` with `taskset` when given.
    pub async fn start(core: Option<usize>, ip: std::net::IpAddr) -> anyhow::Result<JanusProcess> {
        let bin = PathBuf::from("/usr/bin/janus");
        if !bin.exists() {
            bail!("janus is not installed (apt-get install janus)");
        }
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        for (sub, lib) in [
            ("plugins", "plugins/libjanus_videoroom.so"),
            ("transports", "transports/libjanus_websockets.so"),
        ] {
            std::fs::create_dir_all(d.join(sub))?;
            let target = Path::new(JANUS_LIB).join(lib);
            let name = target.file_name().context("library name")?;
            std::os::unix::fs::symlink(&target, d.join(sub).join(name))?;
        }
        std::fs::create_dir_all(d.join("events"))?;
        std::fs::create_dir_all(d.join("loggers"))?;
        let port = crate::free_port()?;
        let p = d.display();
        std::fs::write(
            d.join("janus.jcfg"),
            format!(
                "general: {{\n configs_folder = \"{p}\"\n plugins_folder = \"{p}/plugins\"\n \
                 transports_folder = \"{p}/transports\"\n events_folder = \"{p}/events\"\n \
                 loggers_folder = \"{p}/loggers\"\n debug_level = 3\n session_timeout = 120\n}}\n\
                 media: {{ rtp_port_range = \"20000-60000\" }}\n\
                 nat: {{ ice_enforce_list = \"{ip}\" }}\nplugins: {{ }}\ntransports: {{ }}\nevents: {{ }}\n"
            ),
        )?;
        std::fs::write(
            d.join("janus.transport.websockets.jcfg"),
            format!(
                "general: {{ json = \"plain\" ws = true ws_port = {port} ws_ip = \"127.0.0.1\" wss = false }}\n\
                 admin: {{ admin_ws = false }}\n"
            ),
        )?;
        std::fs::write(d.join("janus.plugin.videoroom.jcfg"), "general: { }\n")?;
        let config = d.join("janus.jcfg");
        let mut command = match core {
            Some(core) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(core.to_string()).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        // ROUNDS_BENCH_JANUS_LOG=<file> keeps Janus' own log for troubleshooting.
        let log = match std::env::var_os("ROUNDS_BENCH_JANUS_LOG") {
            Some(path) => Stdio::from(std::fs::File::create(path)?),
            None => Stdio::null(),
        };
        let child = command
            .arg("-C")
            .arg(&config)
            .arg("-F")
            .arg(d)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .context("starting janus")?;
        let url = format!("ws://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("janus did not open its WebSocket port");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(JanusProcess {
            child,
            url,
            _dir: dir,
        })
    }

    pub fn version() -> String {
        Command::new("janus")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .find(|l| l.starts_with("Janus version"))
                    .and_then(|l| l.split('(').nth(1))
                    .map(|v| v.trim_end_matches(')').to_owned())
            })
            .unwrap_or_else(|| "unknown".into())
    }
}

impl Drop for JanusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// One Janus session over its own WebSocket, with one VideoRoom handle.
struct JanusSession {
    out: mpsc::UnboundedSender<Value>,
    waiters: Waiters,
    session: u64,
    handle: u64,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

static TRANSACTION: AtomicU64 = AtomicU64::new(1);

impl JanusSession {
    async fn open(url: &str) -> anyhow::Result<JanusSession> {
        let mut request = url.into_client_request()?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "janus-protocol".parse()?);
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        let (mut sink, mut stream) = ws.split();
        let waiters: Waiters = Arc::default();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Value>();
        let writer = tokio::spawn(async move {
            while let Some(v) = out_rx.recv().await {
                if sink
                    .send(Message::Text(v.to_string().into()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let w = waiters.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                let Message::Text(text) = frame else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if v["janus"] == "ack" || v["janus"] == "keepalive" {
                    continue;
                }
                let Some(t) = v["transaction"].as_str() else {
                    continue;
                };
                if let Some(tx) = w.lock().await.remove(t) {
                    let _ = tx.send(v);
                }
            }
        });
        let mut s = JanusSession {
            out,
            waiters,
            session: 0,
            handle: 0,
            tasks: vec![writer, reader],
        };
        let created = s.call(json!({"janus": "create"})).await?;
        s.session = created["data"]["id"].as_u64().context("no session id")?;
        let attached = s
            .call(json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}))
            .await?;
        s.handle = attached["data"]["id"].as_u64().context("no handle id")?;
        let (out, session) = (s.out.clone(), s.session);
        s.tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(20));
            loop {
                tick.tick().await;
                let keepalive = json!({"janus": "keepalive", "session_id": session,
                    "transaction": format!("k{}", TRANSACTION.fetch_add(1, Ordering::Relaxed))});
                if out.send(keepalive).is_err() {
                    return;
                }
            }
        }));
        Ok(s)
    }

    /// Sends a request and waits for its reply (the event, for plugin messages).
    async fn call(&self, mut request: Value) -> anyhow::Result<Value> {
        let t = format!("t{}", TRANSACTION.fetch_add(1, Ordering::Relaxed));
        request["transaction"] = json!(t);
        if self.session != 0 {
            request["session_id"] = json!(self.session);
        }
        if self.handle != 0 {
            request["handle_id"] = json!(self.handle);
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().await.insert(t, tx);
        self.out
            .send(request)
            .map_err(|_| anyhow!("janus closed"))?;
        let reply = tokio::time::timeout(CONNECT_TIMEOUT, rx)
            .await
            .context("janus did not reply")??;
        if reply["janus"] == "error" {
            bail!("janus error: {}", reply["error"]);
        }
        if let Some(error) = reply["plugindata"]["data"]["error"].as_str() {
            return Err(VideoRoomError {
                code: reply["plugindata"]["data"]["error_code"]
                    .as_u64()
                    .unwrap_or(0),
                reason: error.to_owned(),
            }
            .into());
        }
        Ok(reply)
    }

    async fn message(&self, body: Value, jsep: Option<Value>) -> anyhow::Result<Value> {
        let mut request = json!({"janus": "message", "body": body});
        if let Some(jsep) = jsep {
            request["jsep"] = jsep;
        }
        self.call(request).await
    }
}

/// An error the VideoRoom plugin answered with (its `error_code` and `error`).
#[derive(Debug)]
struct VideoRoomError {
    code: u64,
    reason: String,
}

impl VideoRoomError {
    /// `JANUS_VIDEOROOM_ERROR_NO_SUCH_FEED`.
    const NO_SUCH_FEED: u64 = 428;
}

impl std::fmt::Display for VideoRoomError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "videoroom error {}: {}", self.code, self.reason)
    }
}

impl std::error::Error for VideoRoomError {}

/// Janus with one VideoRoom room per benchmark room.
pub struct JanusSfu {
    url: String,
    rooms: Vec<u64>,
    /// Publisher feed id per room, once published.
    feeds: Mutex<HashMap<usize, u64>>,
}

impl JanusSfu {
    pub async fn new(url: String, rooms: usize) -> anyhow::Result<JanusSfu> {
        let admin = JanusSession::open(&url).await?;
        let mut ids = Vec::new();
        for i in 0..rooms {
            let room = 4000 + i as u64;
            admin
                .message(
                    json!({"request": "create", "room": room, "publishers": 6,
                           "audiocodec": "opus", "videocodec": "vp8", "bitrate": 0}),
                    None,
                )
                .await?;
            ids.push(room);
        }
        for t in admin.tasks {
            t.abort();
        }
        Ok(JanusSfu {
            url,
            rooms: ids,
            feeds: Mutex::default(),
        })
    }

    pub async fn publish(&self, room: usize, peer: LeanPeer) -> anyhow::Result<Member> {
        let s = JanusSession::open(&self.url).await?;
        let joined = s
            .message(
                json!({"request": "join", "ptype": "publisher", "room": self.rooms[room],
                       "display": "publisher"}),
                None,
            )
            .await?;
        let feed = joined["plugindata"]["data"]["id"]
            .as_u64()
            .context("no publisher id")?;
        let offer = peer.offer().await?;
        if std::env::var_os("ROUNDS_BENCH_JANUS_LOG").is_some() {
            eprintln!("--- offer to janus\n{offer}");
        }
        let reply = s
            .message(
                json!({"request": "publish", "audio": true, "video": true}),
                Some(json!({"type": "offer", "sdp": offer, "trickle": false})),
            )
            .await?;
        let answer = reply["jsep"]["sdp"]
            .as_str()
            .context("janus sent no answer")?;
        if std::env::var_os("ROUNDS_BENCH_JANUS_LOG").is_some() {
            eprintln!("--- answer from janus\n{answer}");
        }
        peer.set_answer(answer.to_owned()).await?;
        self.feeds.lock().await.insert(room, feed);
        Ok(Member {
            peer: Arc::new(peer),
            receiver: None,
            _tasks: s.tasks,
            rounds_out: None,
        })
    }

    pub async fn subscribe(
        &self,
        room: usize,
        peer: LeanPeer,
        _n: usize,
    ) -> anyhow::Result<Member> {
        let feed = *self
            .feeds
            .lock()
            .await
            .get(&room)
            .context("nobody publishes in this room yet")?;
        let s = JanusSession::open(&self.url).await?;
        // Janus lists a publisher only once its own side of the media is up, which can come a
        // moment after our side of the publisher's connection is: until then, "No such feed"
        // (error 428).
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        let attached = loop {
            let joined = s
                .message(
                    json!({"request": "join", "ptype": "subscriber", "room": self.rooms[room],
                           "streams": [{"feed": feed}]}),
                    None,
                )
                .await;
            match joined {
                Err(e)
                    if e.downcast_ref::<VideoRoomError>()
                        .is_some_and(|v| v.code == VideoRoomError::NO_SUCH_FEED)
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => break other?,
            }
        };
        let offer = attached["jsep"]["sdp"]
            .as_str()
            .context("janus sent no offer")?;
        let answer = peer.answer(offer.to_owned()).await?;
        s.message(
            json!({"request": "start"}),
            Some(json!({"type": "answer", "sdp": answer, "trickle": false})),
        )
        .await?;
        Ok(Member {
            peer: Arc::new(peer),
            receiver: None,
            _tasks: s.tasks,
            rounds_out: None,
        })
    }
}
