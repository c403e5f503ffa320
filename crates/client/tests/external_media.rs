//! The desktop app's media path through a real rounds-server in this process: the app side
//! publishes frames it pushes itself ([`ExternalVideo`], [`ExternalAudio`]) and receives
//! decoded media through sinks ([`VideoSink`], [`AudioSink`]); a plain client is the other
//! person. The app side's frames come from `rounds_media`'s live synthetic sources (paced
//! test card and tone on capture threads), the same path a camera and microphone take.

#[path = "e2e/harness.rs"]
mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rounds_client::{AudioSink, AudioSource, ExternalAudio, ExternalVideo, VideoSink, VideoSource};
use rounds_media::{FRAME_SAMPLES_20MS, I420Frame, SyntheticAudio, SyntheticVideo};
use tokio::sync::mpsc;

use harness::{TestServer, admitted_pair, init_tracing, zero_crossing_hz};

/// Goertzel power at `freq` as a share of the total (1.0 is a pure tone).
fn tone_share(samples: &[i16], freq: f64) -> f64 {
    let w = std::f64::consts::TAU * freq / 48_000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let energy: f64 = samples.iter().map(|&x| f64::from(x).powi(2)).sum();
    if energy == 0.0 {
        return 0.0;
    }
    2.0 * power / (samples.len() as f64 * energy)
}

/// Moves frames from a live source into a client handle on a thread, until stopped.
struct Pump {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pump {
    fn video(source: SyntheticVideo, into: ExternalVideo) -> Pump {
        Self::spawn(move |stop| {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(frame) = source.frames().recv_timeout(Duration::from_millis(100)) {
                    into.push(frame);
                }
            }
        })
    }

    fn audio(source: SyntheticAudio, into: ExternalAudio) -> Pump {
        Self::spawn(move |stop| {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(frame) = source.frames().recv_timeout(Duration::from_millis(100)) {
                    into.push(&frame);
                }
            }
        })
    }

    fn spawn(body: impl FnOnce(Arc<AtomicBool>) + Send + 'static) -> Pump {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        Pump {
            stop,
            thread: Some(std::thread::spawn(move || body(flag))),
        }
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One second of one person's audio from a sink, after skipping the first 200 ms.
async fn one_second_from(
    rx: &mut mpsc::Receiver<(String, Vec<i16>)>,
    participant: &str,
) -> Vec<i16> {
    let mut samples = Vec::new();
    let mut skipped = 0;
    while samples.len() < 50 * FRAME_SAMPLES_20MS {
        let (from, frame) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("decoded audio in time")
            .expect("the sink is open");
        assert_eq!(frame.len(), FRAME_SAMPLES_20MS, "20 ms of decoded audio");
        if from != participant {
            continue;
        }
        if skipped < 10 {
            skipped += 1;
            continue;
        }
        samples.extend(frame);
    }
    samples
}

/// Video frames from a sink until one of `width` x `height` from `participant` arrives.
async fn frame_of_size(
    rx: &mut mpsc::Receiver<(String, I420Frame)>,
    participant: &str,
    width: u32,
    height: u32,
) -> I420Frame {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (from, frame) = tokio::time::timeout(left, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {width}x{height} frame from {participant} in time"))
            .expect("the sink is open");
        if from == participant && (frame.width, frame.height) == (width, height) {
            assert!(frame.is_well_formed());
            return frame;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_side_sends_pushed_media_and_receives_through_sinks() {
    init_tracing();
    tokio::time::timeout(Duration::from_secs(120), async {
        let server = TestServer::start().await;
        let (_visit, provider_token, patient_token) = server.visit().await;

        // The app side (the clinician's desktop app): pushed video and audio, sinks on.
        let video = ExternalVideo::new(320, 240, 15, 300);
        let audio = ExternalAudio::new();
        let (video_sink, mut app_video) = VideoSink::channel(64);
        let (audio_sink, mut app_audio) = AudioSink::channel(1024);
        let mut app_cfg = server.config(&provider_token, 1);
        app_cfg.video = VideoSource::External(video.clone());
        app_cfg.audio = AudioSource::External(audio.clone());
        app_cfg.video_sink = Some(video_sink);
        app_cfg.audio_sink = Some(audio_sink);
        assert!(!app_cfg.video.is_synthetic() && !app_cfg.audio.is_synthetic());

        // The other person: a plain client with the test pattern and a 660 Hz tone, plus an
        // audio sink so the test can hear what it receives.
        let (peer_sink, mut peer_audio) = AudioSink::channel(1024);
        let mut peer_cfg = server.config(&patient_token, 2);
        peer_cfg.tone_hz = 660.0;
        peer_cfg.audio_sink = Some(peer_sink);

        // The camera is 640x360; the limit of 320x240 makes it 320x180 on the wire.
        let camera = SyntheticVideo::start(640, 360, 15, 7).expect("synthetic camera");
        let mic = SyntheticAudio::start(440.0, -20.0).expect("synthetic microphone");
        let video_pump = Pump::video(camera, video.clone());
        let _audio_pump = Pump::audio(mic, audio.clone());

        let (app, peer) = admitted_pair(&server, app_cfg, peer_cfg).await;
        let (app_id, peer_id) = (
            app.participant_id().to_owned(),
            peer.participant_id().to_owned(),
        );

        // (a) app side -> SFU -> plain client: video at the scaled size, audio at 440 Hz.
        let stats = peer
            .wait_stats(Duration::from_secs(30), |s| {
                s.frames_decoded_from(&app_id) > 10
                    && s.remote(&app_id)
                        .is_some_and(|r| r.audio_frames_decoded > 25)
            })
            .await
            .unwrap_or_else(|_| panic!("the peer got no media from the app: {:#?}", peer.stats()));
        let r = stats.remote(&app_id).expect("remote stats");
        assert_eq!(
            (r.width, r.height),
            (320, 180),
            "scaled to fit, aspect kept"
        );
        assert_eq!(r.decode_errors, 0);
        let sent = app.stats().sent;
        assert!(sent.audio_level_negotiated, "RFC 6464 levels go out");
        assert!(sent.video_frames > 10 && sent.audio_frames > 25);
        let heard = one_second_from(&mut peer_audio, &app_id).await;
        let (hz, share) = (zero_crossing_hz(&heard), tone_share(&heard, 440.0));
        println!("the peer hears {hz:.1} Hz ({share:.3} of the power at 440 Hz)");
        assert!((hz - 440.0).abs() < 5.0, "the peer hears {hz} Hz");
        assert!(share > 0.9, "440 Hz share {share}");

        // (b) plain client -> SFU -> app side sinks: 320x240 pictures and the 660 Hz tone.
        let picture = frame_of_size(&mut app_video, &peer_id, 320, 240).await;
        assert!(
            (30.0..220.0).contains(&picture.mean_luma()),
            "a real picture, mean luma {}",
            picture.mean_luma()
        );
        let thumb = picture.scale_to(160, 120).expect("thumbnail");
        assert_eq!((thumb.width, thumb.height), (160, 120));
        let heard = one_second_from(&mut app_audio, &peer_id).await;
        let (hz, share) = (zero_crossing_hz(&heard), tone_share(&heard, 660.0));
        println!("the app hears {hz:.1} Hz ({share:.3} of the power at 660 Hz)");
        assert!((hz - 660.0).abs() < 5.0, "the app hears {hz} Hz");
        assert!(share > 0.9, "660 Hz share {share}");

        // Switching input mid-call: another "camera" (240x160) into the same handle. The
        // encoder follows with a keyframe; no rejoin, no renegotiation.
        drop(video_pump);
        let second = SyntheticVideo::start(240, 160, 15, 9).expect("second camera");
        let _second_pump = Pump::video(second, video.clone());
        peer.wait_stats(Duration::from_secs(20), |s| {
            s.remote(&app_id)
                .is_some_and(|r| (r.width, r.height) == (240, 160))
        })
        .await
        .unwrap_or_else(|_| panic!("the switch did not reach the peer: {:#?}", peer.stats()));
        assert_eq!(
            app.stats().publisher.generation,
            1,
            "same publisher connection"
        );

        peer.leave().await;
        app.leave().await;
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_source_without_samples_sends_silence() {
    // Nothing pushed: the publisher still sends 20 ms packets (silence at level 127), so the
    // SFU and the receivers see a live track.
    init_tracing();
    tokio::time::timeout(Duration::from_secs(90), async {
        let server = TestServer::start().await;
        let (_visit, provider_token, patient_token) = server.visit().await;
        let mut app_cfg = server.config(&provider_token, 1);
        app_cfg.audio = AudioSource::External(ExternalAudio::new());
        app_cfg.publish_video = false;
        let peer_cfg = server.config(&patient_token, 2);
        let (app, peer) = admitted_pair(&server, app_cfg, peer_cfg).await;
        let app_id = app.participant_id().to_owned();
        let stats = peer
            .wait_stats(Duration::from_secs(30), |s| {
                s.remote(&app_id)
                    .is_some_and(|r| r.audio_frames_decoded > 25)
            })
            .await
            .unwrap_or_else(|_| panic!("no audio from the app: {:#?}", peer.stats()));
        let r = stats.remote(&app_id).expect("remote");
        // Decoded Opus silence is not bit-exact zero, but far below anything audible.
        let level = r.audio_level_dbov.expect("a level");
        assert!(level >= 100, "silence expected, got -{level} dBov");
        peer.leave().await;
        app.leave().await;
    })
    .await
    .expect("test finished in time");
}
