//! A media clip encoded once and replayed by every publisher of a capacity run: 720p VP8 at
//! 24 fps (about 1.5 Mbit/s) from the synthetic test pattern, and a 440 Hz Opus tone in
//! 20 ms packets. Encoding once keeps the load generator cheap, so that what a run measures
//! is the SFU and not libvpx.

use rounds_media::{OpusEncoder, TestPattern, Tone, Vp8Config, Vp8Encoder, vp8_payloads};

/// Largest RTP payload, as the Rounds client sends it.
pub const MAX_RTP_PAYLOAD: usize = 1150;

/// One encoded video frame, already split into RTP payloads (VP8 descriptor included).
pub struct ClipFrame {
    pub payloads: Vec<Vec<u8>>,
    pub keyframe: bool,
}

pub struct Clip {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub frames: Vec<ClipFrame>,
    /// Opus packets of 20 ms each.
    pub audio: Vec<Vec<u8>>,
}

impl Clip {
    /// Encodes `seconds` of video at `width`×`height`, `fps` and `kbps`, starting with a
    /// keyframe (so the loop point is a keyframe), and as many seconds of audio.
    pub fn encode(
        seconds: u32,
        width: u32,
        height: u32,
        fps: u32,
        kbps: u32,
    ) -> anyhow::Result<Clip> {
        let mut pattern = TestPattern::with_seed(width, height, fps, 7);
        let mut encoder = Vp8Encoder::new(Vp8Config {
            width,
            height,
            fps,
            bitrate_kbps: kbps,
            threads: 2,
        })?;
        let mut frames = Vec::new();
        for i in 0..seconds * fps {
            for encoded in encoder.encode(&pattern.next_frame(), i == 0)? {
                frames.push(ClipFrame {
                    payloads: vp8_payloads(&encoded, MAX_RTP_PAYLOAD, 0),
                    keyframe: encoded.keyframe,
                });
            }
        }
        let mut opus = OpusEncoder::new()?;
        opus.set_bitrate_bps(32_000)?;
        let mut tone = Tone::with_dbfs(440.0, -20.0);
        let audio = (0..seconds * 50)
            .map(|_| opus.encode(&tone.next_20ms()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Clip {
            width,
            height,
            fps,
            frames,
            audio,
        })
    }

    /// The 720p clip of the capacity benchmark.
    pub fn hd() -> anyhow::Result<Clip> {
        Clip::encode(4, 1280, 720, 24, 1500)
    }

    /// Video bit rate of the clip's RTP payloads, in kbit/s.
    pub fn video_kbps(&self) -> f64 {
        let bytes: usize = self
            .frames
            .iter()
            .flat_map(|f| f.payloads.iter().map(Vec::len))
            .sum();
        bytes as f64 * 8.0 / (self.frames.len() as f64 / self.fps as f64) / 1000.0
    }

    /// RTP packets per second one publisher sends (video and audio).
    pub fn packets_per_second(&self) -> f64 {
        let video: usize = self.frames.iter().map(|f| f.payloads.len()).sum();
        video as f64 / (self.frames.len() as f64 / self.fps as f64) + 50.0
    }
}
