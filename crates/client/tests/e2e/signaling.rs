//! Joining, the lobby, admission, chat, leaving and resuming, through the real `/rtc`.

use std::time::Duration;

use rounds_client::{Client, ClientConfig, ClientError, SignalingState};
use rounds_proto::{ClientMessage, ErrorCode, HostAction, ParticipantState, Phi, ServerMessage};
use tokio::sync::broadcast;

use crate::harness::{TestServer, admitted_pair, init_tracing};

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
            .send(ClientMessage::Join { v: 1, token: patient_token.token.clone(), resume: None })
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
