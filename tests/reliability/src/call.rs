//! A two-person visit through the real REST API and signaling: the clinician creates a visit,
//! the patient opens the link and waits in the lobby, the clinician admits them, and both
//! send synthetic audio and video.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use rounds_client::{Api, Client, ClientConfig, ClientStats, VideoSource, link_code};
use rounds_proto::{HostAction, RoomToken};

use crate::server::{EMAIL, PASSWORD};

/// A visit and the two room tokens for it.
pub struct Visit {
    pub id: String,
    pub provider: RoomToken,
    pub patient: RoomToken,
}

/// Signs in as the test clinician and creates a visit starting now.
pub async fn new_visit(api: &Api) -> anyhow::Result<Visit> {
    let access = api.login(EMAIL, PASSWORD).await?.access_token;
    let visit = api.create_visit_now(&access, 60, "Pat Example").await?;
    let code = link_code(&visit.patient_link.url)
        .context("a link code")?
        .to_owned();
    let patient = api.join_link(&code, Some("Pat Example")).await?;
    let provider = api.provider_token(&access, &visit.visit.id).await?;
    Ok(Visit {
        id: visit.visit.id.clone(),
        provider,
        patient,
    })
}

/// A light client: 320x240 at 15 fps, 250 kbps, decoding everything it receives, its media
/// sockets bound to `bind` (the client namespace's address).
pub fn config(server: &url::Url, token: &RoomToken, seed: u64, bind: IpAddr) -> ClientConfig {
    let mut cfg = ClientConfig::new(server.clone(), token.token.clone());
    cfg.video = VideoSource::TestPattern {
        width: 320,
        height: 240,
        fps: 15,
        bitrate_kbps: 250,
    };
    cfg.pattern_seed = seed;
    cfg.bind_ip = Some(bind);
    cfg
}

/// The provider joins, the patient joins the lobby, the provider admits them.
pub async fn admitted_pair(
    provider: ClientConfig,
    patient: ClientConfig,
) -> anyhow::Result<(Client, Client)> {
    let provider = Client::join(provider).await.context("the provider joins")?;
    let patient = Client::join(patient).await.context("the patient joins")?;
    let patient_id = patient.participant_id().to_owned();
    provider
        .wait_until(Duration::from_secs(15), |c| {
            c.waiting().iter().any(|p| p.id == patient_id)
        })
        .await
        .context("the provider sees the patient waiting")?;
    provider.host(&patient_id, HostAction::Admit).await?;
    patient
        .wait_admitted(Duration::from_secs(15))
        .await
        .context("the patient is admitted")?;
    Ok((provider, patient))
}

/// Waits until `client` has decoded at least `frames` more video frames and `audio` more audio
/// frames from `from` than in `since`. Returns the snapshot.
pub async fn wait_media(
    client: &Client,
    from: &str,
    since: &ClientStats,
    frames: u64,
    audio: u64,
    timeout: Duration,
) -> anyhow::Result<ClientStats> {
    let base = since.remote(from).cloned().unwrap_or_default();
    client
        .wait_stats(timeout, |s| {
            s.remote(from).is_some_and(|r| {
                r.frames_decoded >= base.frames_decoded + frames
                    && r.audio_frames_decoded >= base.audio_frames_decoded + audio
            })
        })
        .await
        .with_context(|| {
            let now = client.stats();
            let r = now.remote(from).cloned().unwrap_or_default();
            format!(
                "{} did not get {frames} video and {audio} audio frames from {from} within {timeout:?} \
                 (had {} video, {} audio; signaling {:?}; publisher {:?}, subscriber {:?}; \
                 from them in all: {} video RTP packets, {} frames reassembled, {} decoded, \
                 {} keyframes, {} lost, {} PLIs sent)",
                client.participant_id(),
                r.frames_decoded - base.frames_decoded.min(r.frames_decoded),
                r.audio_frames_decoded - base.audio_frames_decoded.min(r.audio_frames_decoded),
                client.signaling_state(),
                now.publisher.state,
                now.subscriber.state,
                r.video_rtp_packets,
                r.video_frames_received,
                r.frames_decoded,
                r.keyframes_decoded,
                r.video_packets_lost,
                r.plis_sent,
            )
        })
}

/// Both directions of a pair carry decoded video and audio: `frames` new frames each way.
pub async fn both_ways(
    a: &Client,
    b: &Client,
    frames: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let (sa, sb) = (a.stats(), b.stats());
    wait_media(a, b.participant_id(), &sa, frames, frames, timeout).await?;
    wait_media(b, a.participant_id(), &sb, frames, frames, timeout).await?;
    Ok(())
}

/// Samples `last_frame_at` of one remote participant every `every` for `duration` and
/// returns the longest time between two decoded frames, and the frames decoded meanwhile.
/// The sampling interval bounds how much a gap can be over-estimated (never under).
pub async fn longest_freeze(
    client: &Client,
    from: &str,
    duration: Duration,
    every: Duration,
) -> (Duration, u64) {
    let start = Instant::now();
    let first = client.stats().remote(from).cloned().unwrap_or_default();
    let mut last_seen = first.last_frame_at.unwrap_or(start);
    let mut worst = Duration::ZERO;
    let mut decoded = first.frames_decoded;
    while start.elapsed() < duration {
        tokio::time::sleep(every).await;
        let r = client.stats().remote(from).cloned().unwrap_or_default();
        decoded = r.frames_decoded;
        let now = Instant::now();
        match r.last_frame_at {
            Some(at) if at > last_seen => {
                worst = worst.max(at.saturating_duration_since(last_seen));
                last_seen = at;
            }
            _ => worst = worst.max(now.saturating_duration_since(last_seen)),
        }
    }
    (worst, decoded - first.frames_decoded)
}
