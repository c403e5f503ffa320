//! Signaling over `/rtc` with real WebSocket clients.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Client {
    ws: Ws,
}

impl Client {
    pub async fn connect(server: &Server) -> Client {
        let url = format!("ws://127.0.0.1:{}/rtc", server.port);
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Client { ws }
    }

    pub async fn join(server: &Server, token: &str) -> (Client, Value) {
        let mut c = Client::connect(server).await;
        c.send(json!({ "type": "join", "v": 1, "token": token }))
            .await;
        let joined = c.expect("joined").await;
        (c, joined)
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, text: String) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    /// The next JSON message, or None when the socket closes or nothing comes in 8 s.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            match tokio::time::timeout(Duration::from_secs(8), self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => {
                    return None;
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Skips messages until one of `kind` arrives; panics if it does not.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let mut seen = vec![];
        while let Some(m) = self.next().await {
            if m["type"] == kind {
                return m;
            }
            seen.push(m["type"].as_str().unwrap_or("?").to_owned());
        }
        panic!("no {kind} message; saw {seen:?}");
    }

    /// Everything that arrives within `wait`.
    pub async fn drain(&mut self, wait: Duration) -> Vec<Value> {
        let mut out = vec![];
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            if let Message::Text(t) = m {
                out.push(serde_json::from_str(&t).unwrap());
            }
        }
        out
    }

    /// Drains for `wait` and fails if a message of any of `kinds` arrived.
    pub async fn receives_none_of(&mut self, kinds: &[&str], wait: Duration) {
        let seen = self.drain(wait).await;
        assert!(
            seen.iter()
                .all(|m| kinds.iter().all(|kind| m["type"] != *kind)),
            "expected none of {kinds:?}: {seen:?}"
        );
    }

    pub async fn closed(&mut self) -> bool {
        loop {
            match tokio::time::timeout(Duration::from_secs(15), self.ws.next()).await {
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => continue,
                Err(_) => return false,
            }
        }
    }
}

struct Visit {
    server: Server,
    access: String,
    id: String,
    code: String,
    provider: String,
    patient: String,
    patient_id: String,
}

async fn visit() -> Visit {
    let server = Server::start().await;
    let access = server.access_token().await;
    let (visit, code) = server.create_visit(&access, 5, "Grace Hopper").await;
    let id = visit["id"].as_str().unwrap().to_owned();
    let (_, p) = server
        .post(
            &format!("/api/v1/visits/{id}/token"),
            Some(&access),
            json!({}),
        )
        .await;
    let (_, lobby) = server.join(&code, None).await;
    Visit {
        access,
        id,
        code,
        provider: p["token"].as_str().unwrap().to_owned(),
        patient: lobby["token"].as_str().unwrap().to_owned(),
        patient_id: lobby["participant_id"].as_str().unwrap().to_owned(),
        server,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lobby_learns_nothing_until_admitted() {
    let v = visit().await;
    let (mut provider, joined) = Client::join(&v.server, &v.provider).await;
    assert_eq!(joined["me"]["state"], "admitted");
    assert_eq!(joined["video"]["width"], 1280);
    assert_eq!(joined["video"]["fps"], 24);
    assert_eq!(joined["video"]["simulcast"], false);

    let (mut patient, joined) = Client::join(&v.server, &v.patient).await;
    assert_eq!(joined["me"]["state"], "lobby");
    assert_eq!(
        joined["participants"],
        json!([]),
        "no one in the room is named to the lobby"
    );
    assert_eq!(joined["waiting"], json!([]));
    let text = joined.to_string();
    assert!(
        !text.contains("Okafor"),
        "the clinician's name leaked to the lobby: {text}"
    );

    // Staff see who is knocking.
    let lobby = provider.expect("lobby_updated").await;
    assert_eq!(lobby["waiting"][0]["id"], v.patient_id.as_str());

    // Nothing about the room reaches the patient while the provider publishes and chats.
    provider
        .send(json!({ "type": "publish", "track": { "id": "cam", "kind": "video" } }))
        .await;
    provider
        .send(json!({ "type": "set_muted", "kind": "audio", "muted": true }))
        .await;
    patient
        .receives_none_of(
            &[
                "track_published",
                "participant_updated",
                "participant_joined",
            ],
            Duration::from_millis(700),
        )
        .await;
    // And the lobby cannot publish.
    patient
        .send(json!({ "type": "publish", "track": { "id": "cam", "kind": "video" } }))
        .await;
    let e = patient.expect("error").await;
    assert_eq!(e["code"], "not_admitted");
    patient
        .send(json!({ "type": "offer", "pc": "publisher", "sdp": "v=0" }))
        .await;
    assert_eq!(patient.expect("error").await["type"], "error");

    // Admit over signaling.
    provider
        .send(json!({ "type": "host", "participant": v.patient_id, "action": "admit" }))
        .await;
    let admitted = patient.expect("admitted").await;
    let names: Vec<&str> = admitted["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Dr. Amara Okafor"), "{names:?}");
    let provider_view = admitted["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["role"] == "provider")
        .unwrap()
        .clone();
    assert_eq!(
        provider_view["tracks"][0]["id"], "cam",
        "the admitted patient sees the provider's tracks"
    );
    let joined = provider.expect("participant_joined").await;
    assert_eq!(joined["participant"]["id"], v.patient_id.as_str());
    let (_, me) = v
        .server
        .get(&format!("/api/v1/rooms/{}/me", v.id), Some(&v.patient))
        .await;
    assert_eq!(
        me["state"], "admitted",
        "admission over signaling is stored"
    );
}

/// The media sections of an SDP, by kind (`audio`, `video`, `application`).
fn media_sections(sdp: &str) -> Vec<String> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("m="))
        .map(|l| l.split(' ').next().unwrap_or_default().to_owned())
        .collect()
}

/// A lobby page that asks to prepare its media gets its subscriber connection offered while
/// it waits, with nothing on it but the data channel; it may answer that offer and nothing
/// else. A page that does not ask gets no offer. (That admission then brings the tracks over
/// the prepared connection is the browser test's: `tests/e2e/tests/journey.test.mjs`.)
#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_page_may_prepare_its_subscriber_connection_and_nothing_more() {
    let v = visit().await;
    let (mut provider, _) = Client::join(&v.server, &v.provider).await;
    provider
        .send(json!({ "type": "publish", "track": { "id": "cam", "kind": "video" } }))
        .await;

    // Without asking: no offer in the lobby, and no subscriber answer or candidate taken.
    let (mut plain, joined) = Client::join(&v.server, &v.patient).await;
    assert_eq!(joined["me"]["state"], "lobby");
    // A page that did not ask is offered no connection.
    plain
        .receives_none_of(&["offer"], Duration::from_millis(800))
        .await;
    plain
        .send(json!({ "type": "answer", "pc": "subscriber", "sdp": "v=0" }))
        .await;
    assert_eq!(plain.expect("error").await["code"], "not_admitted");
    drop(plain);

    // Asking: the offer comes while waiting and carries only the data channel.
    let mut patient = Client::connect(&v.server).await;
    patient
        .send(json!({ "type": "join", "v": 1, "token": v.patient, "prepare_media": true }))
        .await;
    assert_eq!(patient.expect("joined").await["me"]["state"], "lobby");
    let offer = tokio::time::timeout(Duration::from_secs(10), patient.expect("offer"))
        .await
        .expect("the waiting page is offered its subscriber connection");
    assert_eq!(offer["pc"], "subscriber");
    let sdp = offer["sdp"].as_str().unwrap();
    assert_eq!(
        media_sections(sdp),
        ["application"],
        "the lobby's connection carries no track: {sdp}"
    );
    assert!(
        !sdp.contains("msid") && !sdp.contains("ssrc"),
        "the lobby's offer names a stream: {sdp}"
    );

    // It may trickle for that connection, but not publish or offer.
    patient
        .send(json!({ "type": "ice", "pc": "subscriber", "candidate": {
            "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "sdpMid": "0" } }))
        .await;
    patient.send(json!({ "type": "ping", "t": 7 })).await;
    let mut before_pong = vec![];
    loop {
        let m = patient.next().await.expect("a pong");
        if m["type"] == "pong" {
            break;
        }
        before_pong.push(m);
    }
    assert!(
        before_pong.iter().all(|m| m["type"] != "error"),
        "the lobby's candidate for its own connection was refused: {before_pong:?}"
    );
    for refused in [
        json!({ "type": "offer", "pc": "publisher", "sdp": "v=0" }),
        json!({ "type": "ice", "pc": "publisher", "candidate": { "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host" } }),
        json!({ "type": "publish", "track": { "id": "cam", "kind": "video" } }),
    ] {
        patient.send(refused.clone()).await;
        assert_eq!(
            patient.expect("error").await["code"],
            "not_admitted",
            "{refused}"
        );
    }
    patient
        .receives_none_of(
            &["offer", "track_published", "participant_joined"],
            Duration::from_millis(500),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_messages_get_typed_errors_and_the_room_lives_on() {
    let v = visit().await;
    let (mut provider, _) = Client::join(&v.server, &v.provider).await;
    let cases = [
        ("not json".to_owned(), "bad_message"),
        (r#"{"type":"teleport"}"#.to_owned(), "bad_message"),
        (r#"{"type":"chat"}"#.to_owned(), "bad_message"),
        (
            r#"{"type":"chat","text":"hi","colour":"red"}"#.to_owned(),
            "bad_message",
        ),
        (
            r#"{"type":"join","v":1,"token":"x"}"#.to_owned(),
            "not_joined",
        ),
        (
            format!(r#"{{"type":"chat","text":"{}"}}"#, "a".repeat(70_000)),
            "too_large",
        ),
        (
            r#"{"type":"host","participant":"nobody","action":"remove"}"#.to_owned(),
            "bad_message",
        ),
        (r#"{"type":"chat","text":""}"#.to_owned(), "bad_message"),
    ];
    for (text, code) in cases {
        provider.send_raw(text.clone()).await;
        let e = provider.expect("error").await;
        assert_eq!(e["code"], code, "{}", &text[..text.len().min(60)]);
        assert!(e["message"].as_str().unwrap().len() > 5);
    }
    provider.send(json!({ "type": "ping", "t": 42 })).await;
    assert_eq!(
        provider.expect("pong").await["t"],
        42,
        "the connection is still alive"
    );

    // The patient cannot act as a host.
    let (mut patient, _) = Client::join(&v.server, &v.patient).await;
    patient
        .send(json!({ "type": "host", "participant": v.patient_id, "action": "admit" }))
        .await;
    assert_eq!(patient.expect("error").await["code"], "forbidden");
    let (_, me) = v
        .server
        .get(&format!("/api/v1/rooms/{}/me", v.id), Some(&v.patient))
        .await;
    assert_eq!(me["state"], "lobby");
}

#[tokio::test(flavor = "multi_thread")]
async fn joins_without_a_valid_token_are_refused() {
    let v = visit().await;
    for (first, code) in [
        (json!({ "type": "ping", "t": 1 }), "not_joined"),
        (
            json!({ "type": "join", "v": 1, "token": "garbage" }),
            "unauthorized",
        ),
        (
            json!({ "type": "join", "v": 2, "token": v.patient }),
            "unsupported_version",
        ),
        (
            json!({ "type": "join", "v": 1, "token": v.access }),
            "unauthorized",
        ),
    ] {
        let mut c = Client::connect(&v.server).await;
        c.send(first).await;
        let e = c.expect("error").await;
        assert_eq!(e["code"], code);
        assert!(c.closed().await);
    }
    // Saying nothing is also refused, promptly.
    let mut silent = Client::connect(&v.server).await;
    let e = silent.expect("error").await;
    assert_eq!(e["code"], "not_joined");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_participant_resumes_without_a_duplicate() {
    let v = visit().await;
    let (_, _) = v
        .server
        .post(
            &format!("/api/v1/visits/{}/admit/{}", v.id, v.patient_id),
            Some(&v.access),
            json!({}),
        )
        .await;
    let (mut provider, _) = Client::join(&v.server, &v.provider).await;
    let (patient, joined) = Client::join(&v.server, &v.patient).await;
    let session = joined["session"].as_str().unwrap().to_owned();
    assert_eq!(
        provider.expect("participant_joined").await["participant"]["id"],
        v.patient_id.as_str()
    );

    // The patient's socket dies without a goodbye.
    drop(patient);
    let update = provider.expect("participant_updated").await;
    assert_eq!(update["participant"]["connected"], false);

    // Reconnect with the session: same participant, no new join seen by others.
    let mut again = Client::connect(&v.server).await;
    again
        .send(json!({ "type": "join", "v": 1, "token": v.patient, "resume": session }))
        .await;
    let joined = again.expect("joined").await;
    assert_eq!(joined["resumed"], true);
    assert_eq!(joined["me"]["id"], v.patient_id.as_str());
    assert_eq!(joined["me"]["state"], "admitted");
    let seen = provider.drain(Duration::from_millis(800)).await;
    assert!(
        seen.iter().all(|m| m["type"] != "participant_joined"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|m| m["type"] == "participant_updated" && m["participant"]["connected"] == true)
    );
    let people = joined["participants"].as_array().unwrap();
    assert_eq!(
        people
            .iter()
            .filter(|p| p["id"] == v.patient_id.as_str())
            .count(),
        1,
        "no duplicate participant"
    );
    assert_eq!(people.len(), 2);

    // A second window for the same identity replaces the first.
    let (mut third, _) = Client::join(&v.server, &v.patient).await;
    let e = again.expect("error").await;
    assert_eq!(e["code"], "replaced");
    third.send(json!({ "type": "ping", "t": 7 })).await;
    assert_eq!(third.expect("pong").await["t"], 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_socket_is_noticed_within_ten_seconds() {
    let v = visit().await;
    let (_, _) = v
        .server
        .post(
            &format!("/api/v1/visits/{}/admit/{}", v.id, v.patient_id),
            Some(&v.access),
            json!({}),
        )
        .await;
    let (mut provider, _) = Client::join(&v.server, &v.provider).await;
    // A raw client that joins and then never reads or answers pings (a frozen laptop).
    let (mut patient, _) = Client::join(&v.server, &v.patient).await;
    provider.expect("participant_joined").await;
    let started = std::time::Instant::now();
    let update = loop {
        let m = provider.next().await;
        if let Some(m) = m
            && m["type"] == "participant_updated"
            && m["participant"]["connected"] == false
        {
            break m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the dead socket was never noticed"
        );
    };
    assert_eq!(update["participant"]["id"], v.patient_id.as_str());
    // Noticed by the heartbeat, not by a close: within the 10 s idle limit plus one ping period.
    assert!(
        started.elapsed() <= Duration::from_secs(16),
        "{:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "closed early: {:?}",
        started.elapsed()
    );
    let _ = patient.ws.get_mut();
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_host_actions_and_the_end_reach_the_right_people() {
    let v = visit().await;
    let (mut provider, _) = Client::join(&v.server, &v.provider).await;
    let (mut patient, _) = Client::join(&v.server, &v.patient).await;
    provider.expect("lobby_updated").await;

    // Lobby chat goes to the clinic only, and is stored.
    patient
        .send(json!({ "type": "chat", "text": "I can hear you but not see you" }))
        .await;
    let m = provider.expect("chat").await;
    assert_eq!(m["message"]["text"], "I can hear you but not see you");
    assert_eq!(m["message"]["to"], "staff");
    patient
        .send(json!({ "type": "chat", "text": "to someone", "to": "somebody-else" }))
        .await;
    assert_eq!(patient.expect("error").await["code"], "forbidden");
    let (_, log) = v
        .server
        .get(&format!("/api/v1/rooms/{}/chat", v.id), Some(&v.provider))
        .await;
    assert_eq!(log["messages"].as_array().unwrap().len(), 1);

    // Running late reaches the waiting patient live.
    let (status, _) = v
        .server
        .post(
            &format!("/api/v1/visits/{}/running-late", v.id),
            Some(&v.access),
            json!({ "minutes": 15 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patient.expect("running_late").await["minutes"], 15);

    // Admit, then the host mutes the patient: only the patient is asked, and everyone sees it.
    provider
        .send(json!({ "type": "host", "participant": v.patient_id, "action": "admit" }))
        .await;
    patient.expect("admitted").await;
    provider
        .send(json!({ "type": "host", "participant": v.patient_id, "action": "mute_audio" }))
        .await;
    let req = patient.expect("mute_requested").await;
    assert_eq!(req["kind"], "audio");
    assert!(req["message"].as_str().unwrap().contains("unmute yourself"));
    let upd = provider.expect("participant_updated").await;
    assert_eq!(upd["participant"]["audio_muted"], true);

    // A guest in the lobby does not see the room's chat.
    let (_, guest) = v
        .server
        .post(
            &format!("/api/v1/rooms/{}/guest-tokens", v.id),
            Some(&v.provider),
            json!({ "display_name": "Ada", "role": "guest" }),
        )
        .await;
    let (mut guest_ws, _) = Client::join(&v.server, guest["token"].as_str().unwrap()).await;
    patient
        .send(json!({ "type": "chat", "text": "everyone hello" }))
        .await;
    assert_eq!(
        provider.expect("chat").await["message"]["text"],
        "everyone hello"
    );
    let guest_saw = guest_ws.drain(Duration::from_millis(600)).await;
    assert!(
        guest_saw.iter().all(|m| m["type"] != "chat"),
        "{guest_saw:?}"
    );

    // Removing over REST closes the guest's socket with a reason.
    let guest_id = guest["participant_id"].as_str().unwrap();
    let (status, _) = v
        .server
        .post(
            &format!("/api/v1/visits/{}/deny/{guest_id}", v.id),
            Some(&v.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let denied = guest_ws.expect("denied").await;
    assert!(
        denied["message"]
            .as_str()
            .unwrap()
            .contains("call the clinic")
    );
    assert!(guest_ws.closed().await);

    // The end reaches everyone.
    let (status, _) = v
        .server
        .post(
            &format!("/api/v1/visits/{}/end", v.id),
            Some(&v.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(patient.expect("visit_ended").await["message"].is_string());
    assert!(provider.expect("visit_ended").await["message"].is_string());
    // And the room cannot be joined again.
    let mut late = Client::connect(&v.server).await;
    late.send(json!({ "type": "join", "v": 1, "token": v.provider }))
        .await;
    assert_eq!(late.expect("error").await["code"], "room_closed");
    let _ = &v.code;
}
