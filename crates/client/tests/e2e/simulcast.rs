//! Layers through the SFU: two people get one 720p stream; from three on everyone sends three
//! simulcast encodings and each viewer decodes the one that fits how large it draws each
//! person, switching on a keyframe without the picture stopping.

use std::time::Duration;

use rounds_client::{Client, ClientConfig, ClientStats, VideoSource};
use rounds_proto::RoomToken;

use crate::harness::{TestServer, admitted_pair, init_tracing, interpreter_token};

/// A camera that can send 720p: the server decides what actually goes out.
fn hd(server: &TestServer, token: &RoomToken, seed: u64) -> ClientConfig {
    let mut cfg = server.config(token, seed);
    cfg.video = VideoSource::TestPattern {
        width: 1280,
        height: 720,
        // Nine encoders on a shared test machine: fewer frames, the same layers.
        fps: 10,
        bitrate_kbps: 1500,
    };
    cfg
}

fn decoded_size(stats: &ClientStats, from: &str) -> (u32, u32) {
    stats.remote(from).map_or((0, 0), |r| (r.width, r.height))
}

async fn wait_for_size(client: &Client, from: &str, size: (u32, u32), what: &str) -> ClientStats {
    match client
        .wait_stats(Duration::from_secs(45), |s| {
            decoded_size(s, from) == size && s.frames_decoded_from(from) > 5
        })
        .await
    {
        Ok(stats) => stats,
        Err(_) => panic!(
            "{what}: wanted {size:?}, decoding {:?}: {:#?}",
            decoded_size(&client.stats(), from),
            client.stats()
        ),
    }
}

/// More frames from `from` decode after `since` (how long that takes depends on how busy the
/// machine is, not on the switch: a frozen picture never gets there).
async fn keeps_decoding(client: &Client, from: &str, since: u64, what: &str) -> ClientStats {
    match client
        .wait_stats(Duration::from_secs(45), |s| {
            s.frames_decoded_from(from) > since + 10
        })
        .await
    {
        Ok(stats) => stats,
        Err(_) => panic!(
            "frames stopped decoding {what}: {} since then: {:#?}",
            client.stats().frames_decoded_from(from) - since,
            client.stats()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_get_one_720p_stream_without_simulcast() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(90), async {
        let server = TestServer::start().await;
        let (_visit, provider_token, patient_token) = server.visit().await;
        let (provider, patient) = admitted_pair(
            &server,
            hd(&server, &provider_token, 1),
            hd(&server, &patient_token, 2),
        )
        .await;
        let (pid, tid) = (
            provider.participant_id().to_owned(),
            patient.participant_id().to_owned(),
        );
        wait_for_size(
            &provider,
            &tid,
            (1280, 720),
            "the provider sees the patient",
        )
        .await;
        wait_for_size(&patient, &pid, (1280, 720), "the patient sees the provider").await;
        for client in [&provider, &patient] {
            let video = client.video_constraints().expect("constraints");
            assert!(!video.simulcast);
            assert_eq!(
                (video.width, video.height, video.codec.as_str()),
                (1280, 720, "VP8")
            );
            assert!(
                !client.stats().sent.simulcast,
                "one encoding with two people"
            );
        }
        patient.leave().await;
        provider.leave().await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_people_each_get_the_layer_their_tile_needs() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(300), async {
        let server = TestServer::start().await;
        let (_visit, provider_token, patient_token) = server.visit().await;
        let (provider, patient) = admitted_pair(
            &server,
            hd(&server, &provider_token, 1),
            hd(&server, &patient_token, 2),
        )
        .await;
        let guest_token = interpreter_token(&server, &provider_token).await;
        let mut guest_cfg = hd(&server, &guest_token, 3);
        // The third person only sends: nobody checks what they decode, and the machine is
        // busy enough with nine encoders.
        guest_cfg.decode_video = false;
        guest_cfg.decode_audio = false;
        let guest = Client::join(guest_cfg).await.expect("guest joins");
        let (pid, tid, gid) = (
            provider.participant_id().to_owned(),
            patient.participant_id().to_owned(),
            guest.participant_id().to_owned(),
        );
        provider
            .wait_until(Duration::from_secs(10), |c| {
                c.waiting().iter().any(|p| p.id == gid)
            })
            .await
            .expect("the guest waits");
        provider
            .host(&gid, rounds_proto::HostAction::Admit)
            .await
            .expect("admit");
        guest
            .wait_admitted(Duration::from_secs(10))
            .await
            .expect("admitted");

        // Three people: everyone is asked for simulcast and sends three encodings.
        for client in [&provider, &patient, &guest] {
            let sent = client
                .wait_stats(Duration::from_secs(30), |s| {
                    s.sent.simulcast && s.sent.video_frames > 10
                })
                .await;
            assert!(
                sent.is_ok(),
                "{} sends simulcast: {:#?}",
                client.participant_id(),
                client.stats()
            );
            assert!(client.video_constraints().is_some_and(|v| v.simulcast));
        }

        // The provider shows the patient large and the guest as a thumbnail; the patient
        // shows both others as thumbnails.
        provider
            .set_render_sizes(&[(&tid, 1280, 720), (&gid, 320, 180)])
            .await
            .expect("sizes");
        patient
            .set_render_sizes(&[(&pid, 320, 180), (&gid, 320, 180)])
            .await
            .expect("sizes");
        wait_for_size(&provider, &tid, (1280, 720), "the provider's large tile").await;
        wait_for_size(&provider, &gid, (320, 180), "the provider's thumbnail").await;
        wait_for_size(&patient, &pid, (320, 180), "the patient's thumbnail").await;

        // The provider makes the patient a thumbnail: the SFU switches to the low layer on a
        // keyframe of it, and the picture carries on.
        let before = provider.stats();
        let keyframes = before.remote(&tid).map_or(0, |r| r.keyframes_decoded);
        provider
            .set_render_sizes(&[(&tid, 320, 180)])
            .await
            .expect("sizes");
        let switched = wait_for_size(&provider, &tid, (320, 180), "after shrinking the tile").await;
        let at_switch = switched.frames_decoded_from(&tid);
        let after = keeps_decoding(&provider, &tid, at_switch, "after switching down").await;
        let remote = after.remote(&tid).expect("remote");
        assert!(
            remote.keyframes_decoded > keyframes,
            "a keyframe started the new layer"
        );
        assert_eq!(remote.decode_errors, 0);
        assert_eq!(decoded_size(&after, &tid), (320, 180));

        // And large again: back to 1280x720, once the higher layer has fitted for a while.
        provider
            .set_render_sizes(&[(&tid, 1280, 720)])
            .await
            .expect("sizes");
        let back = wait_for_size(&provider, &tid, (1280, 720), "after growing the tile").await;
        let at_back = back.frames_decoded_from(&tid);
        keeps_decoding(&provider, &tid, at_back, "after switching up").await;
        assert_eq!(
            provider.stats().remote(&tid).map(|r| r.decode_errors),
            Some(0)
        );

        guest.leave().await;
        patient.leave().await;
        provider.leave().await;
    })
    .await
    .expect("test finished in time");
}
