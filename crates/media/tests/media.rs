//! End-to-end checks of the media pieces with the real codecs.

use std::time::{Duration, Instant};

use rounds_media::{
    EncodedFrame, I420Frame, OpusDecoder, OpusEncoder, TestPattern, Tone, Vp8Config, Vp8Decoder,
    Vp8Depacketizer, Vp8Encoder, audio_level_dbov, luma_psnr, vp8_is_keyframe, vp8_payloads,
};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Encode `n` frames of a test pattern, forcing keyframes at `force`.
fn encode_pattern(
    cfg: Vp8Config,
    n: usize,
    force: &[usize],
) -> (Vec<I420Frame>, Vec<EncodedFrame>) {
    let mut pattern = TestPattern::new(cfg.width, cfg.height, cfg.fps);
    let mut enc = Vp8Encoder::new(cfg).expect("encoder");
    let mut sources = Vec::with_capacity(n);
    let mut encoded = Vec::with_capacity(n);
    for i in 0..n {
        let src = pattern.next_frame();
        let mut out = enc.encode(&src, force.contains(&i)).expect("encode");
        assert_eq!(out.len(), 1, "one compressed frame per input (frame {i})");
        encoded.push(out.remove(0));
        sources.push(src);
    }
    (sources, encoded)
}

#[test]
fn vp8_720p_encode_decode() {
    let cfg = Vp8Config::default();
    assert_eq!(
        (
            cfg.width,
            cfg.height,
            cfg.fps,
            cfg.bitrate_kbps,
            cfg.threads
        ),
        (1280, 720, 24, 1200, Vp8Config::threads_for(1280, 720))
    );
    let mut pattern = TestPattern::new(cfg.width, cfg.height, cfg.fps);
    let mut enc = Vp8Encoder::new(cfg).expect("encoder");
    let mut dec = Vp8Decoder::new().expect("decoder");
    dec.set_output_frames(true);

    let (mut enc_time, mut dec_time) = (Duration::ZERO, Duration::ZERO);
    let mut total_bytes = 0usize;
    let mut keyframes = Vec::new();
    let mut psnr_sum = 0.0;
    let mut psnr_min = f64::INFINITY;
    for i in 0..48usize {
        let src = pattern.next_frame();
        let t = Instant::now();
        let out = enc.encode(&src, i == 30).expect("encode");
        enc_time += t.elapsed();
        assert_eq!(out.len(), 1);
        let frame = &out[0];
        assert_eq!(frame.pts_ms, src.pts_ms);
        assert_eq!(frame.keyframe, vp8_is_keyframe(&frame.data));
        if frame.keyframe {
            keyframes.push(i);
        }
        total_bytes += frame.data.len();

        let t = Instant::now();
        let info = dec.decode(&frame.data).expect("decode").expect("a picture");
        dec_time += t.elapsed();
        assert_eq!((info.width, info.height), (1280, 720));
        assert_eq!(info.keyframe, frame.keyframe);
        let pic = info.frame.expect("picture copy");
        assert!((pic.mean_luma() - info.mean_luma).abs() < 1e-9);
        let psnr = luma_psnr(&src, &pic).expect("same size");
        psnr_sum += psnr;
        psnr_min = psnr_min.min(psnr);
    }
    assert_eq!(dec.frames_decoded(), 48);
    assert_eq!(enc.frames_encoded(), 48);
    assert_eq!(keyframes, [0, 30], "first frame and the forced one only");
    assert_eq!(enc.keyframes_encoded(), 2);

    let kbps = total_bytes as f64 * 8.0 / 2.0 / 1000.0; // 48 frames at 24 fps = 2 s
    let psnr_avg = psnr_sum / 48.0;
    println!(
        "vp8 720p: {kbps:.0} kbps (target 1200), PSNR avg {psnr_avg:.1} dB min {psnr_min:.1} dB, \
         encode {:.2} ms/frame, decode {:.2} ms/frame",
        ms(enc_time) / 48.0,
        ms(dec_time) / 48.0
    );
    assert!((500.0..=1800.0).contains(&kbps), "bitrate {kbps:.0} kbps");
    assert!(psnr_min > 30.0, "PSNR min {psnr_min:.1} dB");
}

#[test]
fn vp8_bitrate_change_takes_effect() {
    let cfg = Vp8Config {
        width: 640,
        height: 360,
        fps: 24,
        bitrate_kbps: 1000,
        threads: 2,
    };
    let mut pattern = TestPattern::with_seed(640, 360, 24, 3);
    let mut enc = Vp8Encoder::new(cfg).expect("encoder");
    let mut bytes = [0usize; 2];
    for (phase, kbps) in [(0, 1000), (1, 200)] {
        enc.set_bitrate_kbps(kbps).expect("set bitrate");
        assert_eq!(enc.config().bitrate_kbps, kbps);
        for i in 0..48 {
            let out = enc.encode(&pattern.next_frame(), false).expect("encode");
            // Skip the frames where rate control is still settling.
            if i >= 12 {
                bytes[phase] += out.iter().map(|f| f.data.len()).sum::<usize>();
            }
        }
    }
    let rate = |b: usize| b as f64 * 8.0 / 1.5 / 1000.0;
    println!(
        "vp8 360p: {:.0} kbps at 1000, {:.0} kbps at 200",
        rate(bytes[0]),
        rate(bytes[1])
    );
    assert!(rate(bytes[1]) < 350.0, "{:.0} kbps", rate(bytes[1]));
    assert!(rate(bytes[0]) > 2.0 * rate(bytes[1]));
    assert!(enc.set_bitrate_kbps(0).is_err());
}

#[test]
fn rtp_round_trip_with_loss_and_keyframe_recovery() {
    let cfg = Vp8Config::default();
    // Keyframe forced at 20: the recovery point after the loss in frame 10.
    let (_, frames) = encode_pattern(cfg, 30, &[20]);
    let mut dec = Vp8Decoder::new().expect("decoder");
    let mut depack = Vp8Depacketizer::new();

    let mut seq: u16 = 65_000;
    let mut delivered = Vec::new();
    let mut packets = 0usize;
    for (i, frame) in frames.iter().enumerate() {
        let ts = (i as u32) * 90_000 / 24;
        let payloads = vp8_payloads(frame, 1200, i as u16);
        assert!(payloads.iter().all(|p| p.len() <= 1200));
        packets += payloads.len();
        if i == 10 {
            assert!(payloads.len() >= 2, "frame 10 should span packets");
        }
        for (j, p) in payloads.iter().enumerate() {
            let s = seq;
            seq = seq.wrapping_add(1);
            if i == 10 && j == 1 {
                continue; // lost on the wire
            }
            if let Some(data) = depack.push(s, ts, j + 1 == payloads.len(), p) {
                assert_eq!(data, frame.data, "frame {i} reassembled intact");
                delivered.push(i);
                let info = dec.decode(&data).expect("decode").expect("picture");
                assert_eq!((info.width, info.height), (1280, 720));
            }
        }
    }
    let expected: Vec<usize> = (0..10).chain(20..30).collect();
    assert_eq!(delivered, expected);
    assert_eq!(dec.frames_decoded(), 20);
    let s = depack.stats();
    assert_eq!(s.packets_lost, 1);
    assert_eq!(
        s.frames_dropped, 10,
        "frame 10 (incomplete) and 11..=19 (no keyframe)"
    );
    assert_eq!(s.keyframes, 2);
    assert!(!depack.needs_keyframe());
    println!(
        "rtp: 30 frames in {packets} packets, delivered {}",
        delivered.len()
    );
}

fn rms(s: &[i16]) -> f64 {
    (s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
}

/// Frequency estimate from rising zero crossings.
fn zero_crossing_hz(s: &[i16]) -> f64 {
    let rising = s.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
    rising as f64 * 48_000.0 / s.len() as f64
}

#[test]
fn opus_tone_round_trip() {
    let mut tone = Tone::new(440.0, 0.5);
    let mut enc = OpusEncoder::new().expect("encoder");
    let mut dec = OpusDecoder::new().expect("decoder");
    let mut input = Vec::new();
    let mut output = Vec::new();
    let mut bytes = 0;
    for _ in 0..50 {
        let pcm = tone.next_20ms();
        let packet = enc.encode(&pcm).expect("encode");
        bytes += packet.len();
        let out = dec.decode(&packet).expect("decode");
        assert_eq!(out.len(), 960);
        input.extend(pcm);
        output.extend(out);
    }
    assert_eq!(dec.frames_decoded(), 50);
    assert_eq!(enc.frames_encoded(), 50);
    // Skip the first 5 frames (codec start-up and look-ahead delay).
    let (i, o) = (&input[4800..], &output[4800..]);
    let ratio = rms(o) / rms(i);
    let hz = zero_crossing_hz(o);
    println!(
        "opus: {:.1} kbps, RMS ratio {ratio:.3}, {hz:.1} Hz",
        bytes as f64 * 8.0 / 1000.0
    );
    assert!((0.8..=1.2).contains(&ratio), "RMS ratio {ratio}");
    assert!((hz - 440.0).abs() < 440.0 * 0.02, "{hz} Hz");
    assert!((20.0..=45.0).contains(&(bytes as f64 * 8.0 / 1000.0)));
}

#[test]
fn opus_concealment_fills_a_lost_packet() {
    let mut tone = Tone::new(440.0, 0.5);
    let mut enc = OpusEncoder::new().expect("encoder");
    let mut dec = OpusDecoder::new().expect("decoder");
    let packets: Vec<Vec<u8>> = (0..30)
        .map(|_| enc.encode(&tone.next_20ms()).expect("encode"))
        .collect();
    let mut recovered = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        if i == 20 {
            // Lost: rebuild it from the FEC data in packet 21.
            recovered = dec.conceal(Some(&packets[21])).expect("fec");
            continue;
        }
        dec.decode(p).expect("decode");
    }
    assert_eq!(recovered.len(), 960);
    assert_eq!((dec.frames_decoded(), dec.frames_concealed()), (29, 1));
    let level = rms(&recovered) / (0.5 * 32767.0 / 2f64.sqrt());
    println!("opus FEC: recovered frame at {level:.2} of the input RMS");
    assert!(level > 0.5, "recovered RMS ratio {level}");
    // Plain loss concealment without a next packet also yields 20 ms.
    assert_eq!(dec.decode(&[]).expect("plc").len(), 960);
}

#[test]
fn audio_levels() {
    assert_eq!(audio_level_dbov(&[0; 960]), 127);
    let full = Tone::new(1000.0, 1.0).next_20ms();
    assert_eq!(audio_level_dbov(&full), 3);
    let quiet = Tone::with_dbfs(1000.0, -20.0).next_20ms();
    let l = audio_level_dbov(&quiet);
    assert!((21..=25).contains(&l), "-20 dBFS tone gave {l}");
    assert_eq!(l, 23);
    // A louder speaker has a smaller level value.
    let a = audio_level_dbov(&Tone::new(300.0, 0.6).next_20ms());
    let b = audio_level_dbov(&Tone::new(300.0, 0.06).next_20ms());
    assert!(a < b);
}

#[test]
fn test_pattern_moves_and_is_deterministic() {
    let mut a = TestPattern::new(320, 180, 24);
    let mut b = TestPattern::new(320, 180, 24);
    let mut c = TestPattern::with_seed(320, 180, 24, 99);
    let mut prev: Option<I420Frame> = None;
    for i in 0..24 {
        let (fa, fb, fc) = (a.next_frame(), b.next_frame(), c.next_frame());
        assert_eq!(fa, fb, "same seed, same frame {i}");
        assert_ne!(fa.data, fc.data, "different seed, different frame {i}");
        if let Some(p) = &prev {
            let changed = p.data.iter().zip(&fa.data).filter(|(x, y)| x != y).count();
            assert!(changed > 1000, "frame {i} changed only {changed} bytes");
        }
        prev = Some(fa);
    }
    let f = a.next_frame();
    assert_eq!((f.width, f.height, f.pts_ms), (320, 180, 1000));
    assert_eq!(a.frame_index(), 25);
}

#[test]
fn codecs_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Vp8Encoder>();
    assert_send::<Vp8Decoder>();
    assert_send::<OpusEncoder>();
    assert_send::<OpusDecoder>();
    assert_send::<Vp8Depacketizer>();
    assert_send::<TestPattern>();
    assert_send::<Tone>();
}
