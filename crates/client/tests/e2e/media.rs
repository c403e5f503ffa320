//! Media through the server's SFU: two clients decode each other's video.

use std::time::Duration;

use rounds_client::{Client, ClientStats, IceProtocol, PcState};

use crate::harness::{TestServer, admitted_pair, init_tracing, interpreter_token};

fn both_ways(a: &ClientStats, b_id: &str) -> bool {
    a.frames_decoded_from(b_id) > 5 && a.remote(b_id).is_some_and(|r| r.audio_frames_decoded > 10)
}

async fn exchange(server: &TestServer, provider: &Client, patient: &Client) {
    let (pid, tid) = (
        provider.participant_id().to_owned(),
        patient.participant_id().to_owned(),
    );
    let wait = Duration::from_secs(30);
    let p = provider.wait_stats(wait, |s| both_ways(s, &tid)).await;
    let t = patient.wait_stats(wait, |s| both_ways(s, &pid)).await;
    let (p, t) = match (p, t) {
        (Ok(p), Ok(t)) => (p, t),
        _ => panic!(
            "no media both ways:\nprovider {:#?}\npatient {:#?}\nsfu {:?} / {:?}",
            provider.stats(),
            patient.stats(),
            server.sfu.stats(&pid).await,
            server.sfu.stats(&tid).await,
        ),
    };
    for (stats, other) in [(&p, &tid), (&t, &pid)] {
        let r = stats.remote(other).expect("remote stats");
        assert_eq!((r.width, r.height), (320, 240));
        assert!(r.keyframes_decoded >= 1);
        assert_eq!(r.decode_errors, 0);
        assert!(stats.join_ms.is_some(), "join time measured");
        assert!(
            stats.sent.audio_level_negotiated,
            "the SFU accepted the audio-level extension"
        );
        assert_eq!(stats.publisher.state, PcState::Connected);
        assert_eq!(stats.subscriber.state, PcState::Connected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_decode_each_other_over_udp() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(90), async {
        let server = TestServer::start().await;
        let (_visit, provider_token, patient_token) = server.visit().await;
        let (provider, patient) = admitted_pair(
            &server,
            server.config(&provider_token, 1),
            server.config(&patient_token, 2),
        )
        .await;
        exchange(&server, &provider, &patient).await;

        // Every selected pair ends at the SFU's one UDP port.
        let port = server.sfu.udp_addr().port();
        for client in [&provider, &patient] {
            let stats = client
                .wait_stats(Duration::from_secs(5), |s| {
                    s.publisher.selected_pair.is_some() && s.subscriber.selected_pair.is_some()
                })
                .await
                .expect("selected pairs");
            for pc in [&stats.publisher, &stats.subscriber] {
                let pair = pc.selected_pair.expect("pair");
                assert_eq!(pair.protocol, IceProtocol::Udp);
                assert_eq!(pair.remote.port(), port);
            }
        }
        patient.leave().await;
        provider.leave().await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_decode_each_other_over_ice_tcp() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(90), async {
        let server = TestServer::start().await;
        let (_visit, provider_token, patient_token) = server.visit().await;
        let mut provider_cfg = server.config(&provider_token, 1);
        let mut patient_cfg = server.config(&patient_token, 2);
        provider_cfg.ice_tcp_only = true;
        patient_cfg.ice_tcp_only = true;
        let (provider, patient) = admitted_pair(&server, provider_cfg, patient_cfg).await;
        exchange(&server, &provider, &patient).await;
        for client in [&provider, &patient] {
            let stats = client
                .wait_stats(Duration::from_secs(5), |s| {
                    s.publisher.selected_pair.is_some() && s.subscriber.selected_pair.is_some()
                })
                .await
                .expect("selected pairs");
            for pc in [&stats.publisher, &stats.subscriber] {
                let pair = pc.selected_pair.expect("pair");
                assert_eq!(pair.protocol, IceProtocol::Tcp);
                assert_eq!(
                    pair.remote.port(),
                    server.http_port,
                    "media rides the HTTP port"
                );
            }
        }
        patient.leave().await;
        provider.leave().await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_keeps_flowing_while_signaling_resumes() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(90), async {
        let server = TestServer::start().await;
        let (_visit, provider_token, patient_token) = server.visit().await;
        let (provider, patient) = admitted_pair(
            &server,
            server.config(&provider_token, 1),
            server.config(&patient_token, 2),
        )
        .await;
        exchange(&server, &provider, &patient).await;
        let pid = provider.participant_id().to_owned();
        let before = patient.stats();

        patient.drop_connection().await;
        patient
            .wait_stats(Duration::from_secs(5), |s| s.signaling_reconnects == 1)
            .await
            .expect("reconnected");
        let after = patient
            .wait_stats(Duration::from_secs(10), |s| {
                s.frames_decoded_from(&pid) > before.frames_decoded_from(&pid) + 15
            })
            .await
            .expect("video keeps arriving");
        // The same connections carried on: nothing was renegotiated from scratch.
        assert_eq!(after.publisher.generation, before.publisher.generation);
        assert_eq!(after.subscriber.generation, before.subscriber.generation);
        let tid = patient.participant_id().to_owned();
        let seen = provider.stats().frames_decoded_from(&tid);
        provider
            .wait_stats(Duration::from_secs(10), |s| {
                s.frames_decoded_from(&tid) > seen + 15
            })
            .await
            .expect("the patient's video keeps arriving");
        patient.leave().await;
        provider.leave().await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clients_and_the_loudest_speaks() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(120), async {
        let server = TestServer::start().await;
        let (_visit, provider_token, patient_token) = server.visit().await;
        let mut provider_cfg = server.config(&provider_token, 1);
        let mut patient_cfg = server.config(&patient_token, 2);
        provider_cfg.tone_dbfs = -45.0;
        patient_cfg.tone_dbfs = -3.0;
        let (provider, patient) = admitted_pair(&server, provider_cfg, patient_cfg).await;

        let guest_token = interpreter_token(&server, &provider_token).await;
        let mut guest_cfg = server.config(&guest_token, 3);
        guest_cfg.tone_dbfs = -45.0;
        // Like the load generator: count reassembled frames, decode nothing.
        guest_cfg.decode_video = false;
        guest_cfg.decode_audio = false;
        let guest = Client::join(guest_cfg).await.expect("guest joins");
        let guest_id = guest.participant_id().to_owned();
        provider
            .wait_until(Duration::from_secs(10), |c| {
                c.waiting().iter().any(|p| p.id == guest_id)
            })
            .await
            .expect("waiting");
        // While two people talk, the lobby gets no media at all.
        provider
            .wait_stats(Duration::from_secs(30), |s| {
                s.frames_decoded_from(patient.participant_id()) > 0
            })
            .await
            .expect("the call is under way");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let lobby = guest.stats();
        assert_eq!(lobby.rtp_packets, 0, "the lobby received media: {lobby:#?}");
        assert_eq!(
            lobby.publisher.state,
            PcState::None,
            "nothing is published from the lobby"
        );
        provider
            .host(&guest_id, rounds_proto::HostAction::Admit)
            .await
            .expect("admit guest");
        guest
            .wait_admitted(Duration::from_secs(10))
            .await
            .expect("guest admitted");

        let clients = [&provider, &patient, &guest];
        let ids: Vec<String> = clients
            .iter()
            .map(|c| c.participant_id().to_owned())
            .collect();
        for client in clients {
            let others: Vec<&String> = ids
                .iter()
                .filter(|id| id.as_str() != client.participant_id())
                .collect();
            let decodes = client.participant_id() != guest_id;
            let got = client
                .wait_stats(Duration::from_secs(30), |s| {
                    others.iter().all(|o| {
                        let r = s.remote(o).cloned().unwrap_or_default();
                        if decodes {
                            r.frames_decoded > 5
                        } else {
                            r.video_frames_received > 5
                                && r.frames_decoded == 0
                                && r.audio_frames_decoded == 0
                        }
                    })
                })
                .await;
            assert!(
                got.is_ok(),
                "{} did not decode everyone: {:#?}",
                client.participant_id(),
                client.stats()
            );
        }
        assert!(
            guest.stats().join_ms.is_some(),
            "join time counts reassembled frames without decoding"
        );
        // Three people: the server asks for simulcast (tests/e2e/simulcast.rs follows it); a
        // 320x240 camera has no larger layers to offer and keeps sending one encoding.
        assert!(guest.video_constraints().is_some_and(|v| v.simulcast));
        assert!(!guest.stats().sent.simulcast);

        let loud = patient.participant_id().to_owned();
        // Those in the room when the patient became the loudest are told so. (Someone
        // admitted later only hears of the next change: the server does not repeat the
        // current speaker on admission.)
        for (name, client) in [("provider", &provider), ("patient", &patient)] {
            let seen = client
                .wait_until(Duration::from_secs(15), |c| {
                    c.dominant_speaker().as_deref() == Some(loud.as_str())
                })
                .await;
            assert!(
                seen.is_ok(),
                "the {name} sees {:?} as the dominant speaker",
                client.dominant_speaker()
            );
        }
        guest.leave().await;
        patient.leave().await;
        provider.leave().await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_clients_decode_everyone_and_removal_cuts_media_at_once() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(150), async {
        let server = TestServer::start().await;
        let (_visit, provider_token, patient_token) = server.visit().await;
        let (provider, patient) = admitted_pair(
            &server,
            server.config(&provider_token, 1),
            server.config(&patient_token, 2),
        )
        .await;
        let mut guests = Vec::new();
        for (seed, name, role) in [
            (3, "Ana Interpreter", rounds_proto::Role::Interpreter),
            (4, "Luis Family", rounds_proto::Role::Guest),
        ] {
            let token = server
                .api
                .guest_token(&provider_token.token, &provider_token.room, name, role)
                .await
                .expect("guest token");
            let guest = Client::join(server.config(&token, seed))
                .await
                .expect("guest joins");
            let id = guest.participant_id().to_owned();
            provider
                .wait_until(Duration::from_secs(10), |c| {
                    c.waiting().iter().any(|p| p.id == id)
                })
                .await
                .expect("waiting");
            provider
                .host(&id, rounds_proto::HostAction::Admit)
                .await
                .expect("admit");
            guest
                .wait_admitted(Duration::from_secs(10))
                .await
                .expect("admitted");
            guests.push(guest);
        }
        let clients = [&provider, &patient, &guests[0], &guests[1]];
        let ids: Vec<String> = clients
            .iter()
            .map(|c| c.participant_id().to_owned())
            .collect();
        for client in clients {
            let others: Vec<&String> = ids
                .iter()
                .filter(|id| id.as_str() != client.participant_id())
                .collect();
            let got = client
                .wait_stats(Duration::from_secs(45), |s| {
                    others.iter().all(|o| s.frames_decoded_from(o) > 5)
                })
                .await;
            assert!(
                got.is_ok(),
                "{} did not decode all three others: {:#?}",
                client.participant_id(),
                client.stats()
            );
        }

        // Removing someone closes the SFU's door on them within a second, whatever their
        // client does; everyone else carries on.
        let removed = guests[1].participant_id().to_owned();
        assert!(server.sfu.stats(&removed).await.is_some_and(|s| s.allowed));
        provider
            .host(&removed, rounds_proto::HostAction::Remove)
            .await
            .expect("remove");
        let started = std::time::Instant::now();
        loop {
            let gate = server.sfu.stats(&removed).await;
            if gate.as_ref().is_none_or(|s| !s.allowed) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "still forwarding after 1 s: {gate:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let before = patient
            .stats()
            .frames_decoded_from(provider.participant_id());
        patient
            .wait_stats(Duration::from_secs(10), |s| {
                s.frames_decoded_from(provider.participant_id()) > before + 5
            })
            .await
            .expect("the rest of the visit continues");
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_quality_is_scored_for_each_participant() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(90), async {
        let server = TestServer::start().await;
        let (_visit, provider_token, patient_token) = server.visit().await;
        let (provider, patient) = admitted_pair(
            &server,
            server.config(&provider_token, 1),
            server.config(&patient_token, 2),
        )
        .await;
        let mut events = patient.events();
        let (pid, tid) = (
            provider.participant_id().to_owned(),
            patient.participant_id().to_owned(),
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        let mut seen = Vec::new();
        loop {
            let message = tokio::time::timeout_at(deadline, events.recv())
                .await
                .unwrap_or_else(|_| panic!("no good scores within 40 s: {seen:?}"))
                .expect("events");
            if let rounds_proto::ServerMessage::NetworkQuality { scores } = message {
                let score = |id: &str| {
                    scores
                        .iter()
                        .find(|s| s.participant_id == id)
                        .map(|s| s.score)
                };
                seen.push((score(&pid), score(&tid)));
                // On loopback there is no loss and no real round trip: both connections score
                // as excellent, or good when a busy machine delays packets (jitter).
                let good = |s: Option<u8>| s.is_some_and(|s| s >= 4);
                if good(score(&pid)) && good(score(&tid)) {
                    break;
                }
            }
        }
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_page_gets_media_again() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(90), async {
        let server = TestServer::start().await;
        let (_visit, provider_token, patient_token) = server.visit().await;
        let (provider, patient) = admitted_pair(
            &server,
            server.config(&provider_token, 1),
            server.config(&patient_token, 2),
        )
        .await;
        exchange(&server, &provider, &patient).await;
        let (pid, tid) = (
            provider.participant_id().to_owned(),
            patient.participant_id().to_owned(),
        );

        // A reload: the old page vanishes without a goodbye and a new one joins with the
        // same token and no session to resume.
        let mut cfg = server.config(&patient_token, 3);
        cfg.auto_reconnect = false;
        drop(patient);
        let reloaded = Client::join(cfg).await.expect("the reloaded page joins");
        assert_eq!(reloaded.participant_id(), tid, "the same participant");
        reloaded
            .wait_stats(Duration::from_secs(30), |s| s.frames_decoded_from(&pid) > 5)
            .await
            .expect("the reloaded page receives the clinician's video again");
        // And the clinician, whose subscriber connection the server renegotiated twice (the
        // old page's tracks gone, the new page's added), decodes the new page's video.
        let seen = provider.stats().frames_decoded_from(&tid);
        let got = provider
            .wait_stats(Duration::from_secs(30), |s| {
                s.frames_decoded_from(&tid) > seen + 15
            })
            .await;
        assert!(
            got.is_ok(),
            "the clinician decodes the reloaded page: {:#?}",
            provider.stats()
        );
        reloaded.leave().await;
        provider.leave().await;
    })
    .await
    .expect("test finished in time");
}
