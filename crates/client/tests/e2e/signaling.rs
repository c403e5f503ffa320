//! Joining, the lobby, admission, chat, leaving and resuming, through the real `/rtc`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rounds_client::{Client, ClientConfig, ClientError, SignalingState};
use rounds_proto::{ClientMessage, ErrorCode, HostAction, ParticipantState, Phi, ServerMessage};
use serde_json::Value;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{
    TestServer, admit_when_waiting, admitted_pair, init_tracing, interpreter_token,
};

/// The next event matching `want` within `timeout`.
async fn next_event(
    rx: &mut broadcast::Receiver<ServerMessage>,
    timeout: Duration,
    mut want: impl FnMut(&ServerMessage) -> bool,
) -> Option<ServerMessage> {
    tokio::time::timeout(timeout, async {
        loop {
            match rx.recv().await {
                Ok(m) if want(&m) => return Some(m),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_refused_with_a_typed_error() {
    init_tracing();
    let server = TestServer::start().await;
    let err = Client::join(ClientConfig::new(server.url.clone(), "not-a-token"))
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            ClientError::Refused {
                code: ErrorCode::Unauthorized,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lobby_admission_chat_and_leave() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(60), async {
        let server = TestServer::start().await;
        let (_visit, provider_token, patient_token) = server.visit().await;
        // Signaling only: this test is about the room, not media.
        let provider = Client::join(server.config(&provider_token, 1).receive_only()).await.expect("provider");
        assert_eq!(provider.state(), ParticipantState::Admitted);
        assert_eq!(provider.participant_id(), provider_token.participant_id);

        let patient = Client::join(server.config(&patient_token, 2).receive_only()).await.expect("patient");
        assert_eq!(patient.state(), ParticipantState::Lobby);
        assert!(patient.participants().is_empty(), "the lobby learns nobody's name");
        let err = patient.wait_admitted(Duration::from_millis(300)).await.expect_err("still waiting");
        assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");

        let patient_id = patient.participant_id().to_owned();
        provider
            .wait_until(Duration::from_secs(10), |c| c.waiting().iter().any(|p| p.id == patient_id))
            .await
            .expect("the provider sees the patient waiting");
        let mut provider_events = provider.events();
        provider.host(&patient_id, HostAction::Admit).await.expect("admit");
        patient.wait_admitted(Duration::from_secs(10)).await.expect("admitted");
        assert!(patient.participants().iter().any(|p| p.id == provider_token.participant_id));
        next_event(&mut provider_events, Duration::from_secs(5), |m| {
            matches!(m, ServerMessage::ParticipantJoined { participant } if participant.id == patient_id)
        })
        .await
        .expect("the provider is told the patient joined");

        patient
            .send(ClientMessage::Chat { text: Phi::new("Hello, doctor".into()), to: None })
            .await
            .expect("chat");
        let chat = next_event(&mut provider_events, Duration::from_secs(5), |m| matches!(m, ServerMessage::Chat { .. }))
            .await
            .expect("chat arrives");
        let ServerMessage::Chat { message } = chat else { unreachable!() };
        assert_eq!(message.from, patient_id);
        assert_eq!(message.text.expose(), "Hello, doctor");

        // `join` cannot be sent by hand.
        let err = patient
            .send(ClientMessage::Join { v: 1, token: patient_token.token.clone(), resume: None, prepare_media: false })
            .await
            .expect_err("refused");
        assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");

        patient.leave().await;
        next_event(&mut provider_events, Duration::from_secs(5), |m| {
            matches!(m, ServerMessage::ParticipantLeft { participant_id } if *participant_id == patient_id)
        })
        .await
        .expect("the provider is told the patient left");
        provider.leave().await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_patient_is_told_and_stops() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(60), async {
        let server = TestServer::start().await;
        let (_visit, provider_token, patient_token) = server.visit().await;
        let provider = Client::join(server.config(&provider_token, 1).receive_only())
            .await
            .expect("provider");
        let patient = Client::join(server.config(&patient_token, 2))
            .await
            .expect("patient");
        let patient_id = patient.participant_id().to_owned();
        provider
            .wait_until(Duration::from_secs(10), |c| {
                c.waiting().iter().any(|p| p.id == patient_id)
            })
            .await
            .expect("waiting");
        provider
            .host(&patient_id, HostAction::Deny)
            .await
            .expect("deny");
        let err = patient
            .wait_admitted(Duration::from_secs(10))
            .await
            .expect_err("denied");
        assert!(
            matches!(err, ClientError::NotAdmitted(ParticipantState::Denied)),
            "{err:?}"
        );
        patient
            .wait_until(Duration::from_secs(5), |c| {
                c.signaling_state() == SignalingState::Closed
            })
            .await
            .expect("a denied client does not reconnect");
        assert_eq!(
            patient.stats().publisher.state,
            rounds_client::PcState::None,
            "nothing was published"
        );
        provider.leave().await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_socket_resumes_the_same_participant() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(60), async {
        let server = TestServer::start().await;
        let (visit, provider_token, patient_token) = server.visit().await;
        let (provider, patient) = admitted_pair(
            &server,
            server.config(&provider_token, 1).receive_only(),
            server.config(&patient_token, 2).receive_only(),
        )
        .await;
        let patient_id = patient.participant_id().to_owned();
        // Let the admission's own participant_joined reach the provider before listening.
        provider
            .wait_until(Duration::from_secs(5), |c| {
                c.participants().iter().any(|p| p.id == patient_id)
            })
            .await
            .expect("the provider sees the patient in the room");
        let mut provider_events = provider.events();

        let started = std::time::Instant::now();
        patient.drop_connection().await;
        patient
            .wait_until(Duration::from_secs(5), |c| {
                c.stats().signaling_reconnects == 1
                    && c.signaling_state() == SignalingState::Connected
            })
            .await
            .expect("reconnected within 5 s");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            patient.state(),
            ParticipantState::Admitted,
            "resumed in the room, not the lobby"
        );

        // Still one participant, connected; the provider saw updates, never a leave or a join.
        let room = &visit.visit.room;
        let members = server.state.rooms.snapshot(room).await;
        let mine: Vec<_> = members.iter().filter(|m| m.id == patient_id).collect();
        assert_eq!(mine.len(), 1, "{members:?}");
        provider
            .wait_until(Duration::from_secs(5), |c| {
                c.participants()
                    .iter()
                    .any(|p| p.id == patient_id && p.connected)
            })
            .await
            .expect("the provider sees the patient connected again");
        while let Ok(m) = provider_events.try_recv() {
            match m {
                ServerMessage::ParticipantLeft { participant_id } => {
                    assert_ne!(
                        participant_id, patient_id,
                        "a resume must not look like a leave"
                    );
                }
                ServerMessage::ParticipantJoined { participant } => {
                    assert_ne!(
                        participant.id, patient_id,
                        "a resume must not look like a join"
                    );
                }
                _ => {}
            }
        }

        // The resumed connection works: chat still flows.
        patient
            .send(ClientMessage::Chat {
                text: Phi::new("still here".into()),
                to: None,
            })
            .await
            .expect("chat after resume");
        next_event(&mut provider_events, Duration::from_secs(5), |m| {
            matches!(m, ServerMessage::Chat { .. })
        })
        .await
        .expect("chat arrives after resume");
        patient.leave().await;
        provider.leave().await;
    })
    .await
    .expect("test finished in time");
}

/// The server drops sockets it has not heard from for 10 s and pings every 5 s; answering
/// its pings (tungstenite does, as long as the socket is read) keeps an idle client in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_stays_connected() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(60), async {
        let server = TestServer::start().await;
        let (_visit, _provider_token, patient_token) = server.visit().await;
        let patient = Client::join(server.config(&patient_token, 2).receive_only())
            .await
            .expect("patient");
        tokio::time::sleep(Duration::from_secs(12)).await;
        assert_eq!(patient.signaling_state(), SignalingState::Connected);
        assert_eq!(
            patient.stats().signaling_reconnects,
            0,
            "the server dropped an idle client"
        );
        assert_eq!(patient.state(), ParticipantState::Lobby);
        patient.leave().await;
    })
    .await
    .expect("test finished in time");
}

/// A participant's signaling socket the test drives by hand: it hears what the server says,
/// answers its pings, and can vanish mid-negotiation the way a dead network makes it.
struct RawSocket {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl RawSocket {
    /// Joins with `token` (resuming `resume`) and returns the socket and the `joined` message.
    async fn join(server: &TestServer, token: &str, resume: Option<&str>) -> (RawSocket, Value) {
        let url = format!("ws://127.0.0.1:{}/rtc", server.http_port);
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket");
        let mut socket = RawSocket { ws };
        let join = ClientMessage::Join {
            v: rounds_proto::PROTOCOL_VERSION,
            token: token.to_owned(),
            resume: resume.map(str::to_owned),
            prepare_media: false,
        };
        socket.send(&join).await;
        let joined = socket
            .expect("joined", Duration::from_secs(5))
            .await
            .expect("joined");
        (socket, joined)
    }

    async fn send(&mut self, message: &ClientMessage) {
        let text = serde_json::to_string(message).expect("json");
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// The next message of type `kind` within `within`, answering pings on the way.
    async fn expect(&mut self, kind: &str, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next()).await;
            let Ok(Some(Ok(Message::Text(text)))) = next else {
                match next {
                    Ok(Some(Ok(_))) => continue,
                    _ => return None,
                }
            };
            let message: Value = serde_json::from_str(&text).expect("json from the server");
            if message["type"] == "ping" {
                let t = message["t"].as_u64().unwrap_or_default();
                self.send(&ClientMessage::Pong { t }).await;
            }
            if message["type"] == kind {
                return Some(message);
            }
        }
    }
}

/// Waits until `host` sees participant `id` as disconnected (the server noticed its socket
/// is gone).
async fn shown_disconnected(host: &Client, id: &str) {
    host.wait_until(Duration::from_secs(10), |c| {
        c.participants().iter().any(|p| p.id == id && !p.connected)
    })
    .await
    .unwrap_or_else(|e| panic!("{id} never showed as disconnected: {e}"));
}

/// Signaling that dies mid-negotiation must not leave a participant's subscriber connection
/// waiting for ever: an offer that came due while nobody could be told, and an offer that went
/// out on the connection that then died, both reach the participant when it resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_offers_missed_while_signaling_was_away_arrive_after_the_resume() {
    init_tracing();
    tokio::time::timeout(
        Duration::from_secs(90),
        Box::pin(async {
            let server = TestServer::start().await;
            let (_visit, provider_token, patient_token) = server.visit().await;
            let provider = Client::join(server.config(&provider_token, 1).receive_only())
                .await
                .expect("provider joins");
            let (mut patient, joined) = RawSocket::join(&server, &patient_token.token, None).await;
            let session = joined["session"].as_str().expect("session").to_owned();
            let patient_id = joined["me"]["id"].as_str().expect("id").to_owned();
            admit_when_waiting(&provider, &patient_id).await;
            patient
                .expect("admitted", Duration::from_secs(5))
                .await
                .expect("admitted");

            // The patient's network goes; the server notices the socket is gone.
            drop(patient);
            shown_disconnected(&provider, &patient_id).await;

            // Meanwhile an interpreter joins and publishes: the patient's subscriber connection
            // should now carry their tracks, but there is no socket to offer them on.
            let guest_token = interpreter_token(&server, &provider_token).await;
            let guest = Client::join(server.config(&guest_token, 3))
                .await
                .expect("guest joins");
            let guest_id = guest.participant_id().to_owned();
            admit_when_waiting(&provider, &guest_id).await;
            provider
                .wait_stats(Duration::from_secs(20), |s| {
                    s.frames_decoded_from(&guest_id) > 5
                })
                .await
                .expect("the guest's video is forwarded");

            // Back on the same page: the offer comes now.
            let (mut patient, joined) =
                RawSocket::join(&server, &patient_token.token, Some(&session)).await;
            assert_eq!(joined["resumed"], true);
            let offer = patient
                .expect("offer", Duration::from_secs(5))
                .await
                .expect("the subscriber offer that came due while away");
            assert_eq!(offer["pc"], "subscriber");
            let sdp = offer["sdp"].as_str().expect("sdp").to_owned();
            assert!(sdp.contains("m=video"), "it carries the guest's video");

            // The socket dies again before the answer: the same offer is made again on the next.
            drop(patient);
            shown_disconnected(&provider, &patient_id).await;
            let (mut patient, _) =
                RawSocket::join(&server, &patient_token.token, Some(&session)).await;
            let again = patient
                .expect("offer", Duration::from_secs(5))
                .await
                .expect("the unanswered offer, sent again");
            assert_eq!(again["sdp"].as_str(), Some(sdp.as_str()));

            drop(patient);
            guest.leave().await;
            provider.leave().await;
        }),
    )
    .await
    .expect("test finished in time");
}
