//! What a [`crate::Client`] is told before it joins: the server, the room token, and what it
//! sends and receives.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use rounds_proto::VideoConstraints;
use url::Url;

use crate::ClientError;
use crate::media::{AudioSink, ExternalAudio, ExternalVideo, VideoSink};

/// Where outgoing video comes from: the built-in synthetic test pattern (which carries the
/// word `SYNTHETIC`, so nobody mistakes it for a person), or frames the application pushes
/// (a camera, a screen, or the app's own synthetic source, which the app must label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoSource {
    /// The moving `rounds_media::TestPattern`, VP8-encoded with libvpx.
    TestPattern {
        width: u32,
        height: u32,
        fps: u32,
        bitrate_kbps: u32,
    },
    /// I420 frames pushed through the handle, VP8-encoded with libvpx. The encoded size
    /// follows the frames, within the handle's limits and the server's constraints.
    External(ExternalVideo),
}

/// Where outgoing audio comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AudioSource {
    /// The built-in synthetic sine ([`ClientConfig::tone_hz`], [`ClientConfig::tone_dbfs`]).
    #[default]
    Tone,
    /// 48 kHz mono samples pushed through the handle, Opus-encoded in 20 ms packets.
    External(ExternalAudio),
}

impl AudioSource {
    /// True for the built-in tone. (An external source is whatever the app pushes; the app
    /// knows whether that is synthetic.)
    pub fn is_synthetic(&self) -> bool {
        matches!(self, AudioSource::Tone)
    }
}

impl VideoSource {
    /// The two-person visit configuration: 1280x720 at 24 fps, 1200 kbps.
    pub fn hd() -> Self {
        VideoSource::TestPattern {
            width: 1280,
            height: 720,
            fps: 24,
            bitrate_kbps: 1200,
        }
    }

    /// A light source for tests and the load generator: 640x360 at 15 fps, 400 kbps.
    pub fn small() -> Self {
        VideoSource::TestPattern {
            width: 640,
            height: 360,
            fps: 15,
            bitrate_kbps: 400,
        }
    }

    /// True for the built-in test pattern. (An external source is whatever the app pushes;
    /// the app knows whether that is synthetic.)
    pub fn is_synthetic(&self) -> bool {
        matches!(self, VideoSource::TestPattern { .. })
    }

    /// The configured capture parameters (for an external source, its upper limits),
    /// before the server's constraints apply.
    pub(crate) fn params(&self) -> VideoParams {
        match self {
            VideoSource::TestPattern {
                width,
                height,
                fps,
                bitrate_kbps,
            } => VideoParams {
                width: *width,
                height: *height,
                fps: *fps,
                bitrate_kbps: *bitrate_kbps,
            },
            VideoSource::External(external) => {
                let (width, height, fps, bitrate_kbps) = external.limits();
                VideoParams {
                    width,
                    height,
                    fps,
                    bitrate_kbps,
                }
            }
        }
    }
}

/// Size, rate and bitrate of the video we encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VideoParams {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
}

impl VideoParams {
    /// The configured parameters narrowed by what the server asks for. The server can only
    /// lower them: the configuration is what this "device" can do. A smaller size keeps the
    /// aspect ratio (and even dimensions, which I420 needs).
    pub(crate) fn constrained(self, c: Option<&VideoConstraints>) -> VideoParams {
        let Some(c) = c else { return self };
        let mut out = self;
        if c.width > 0 && c.height > 0 && (self.width > c.width || self.height > c.height) {
            let scale = f64::min(
                f64::from(c.width) / f64::from(self.width),
                f64::from(c.height) / f64::from(self.height),
            );
            let even = |v: u32| -> u32 {
                let scaled = (f64::from(v) * scale).round() as u32;
                (scaled & !1).max(2)
            };
            out.width = even(self.width);
            out.height = even(self.height);
        }
        if c.fps > 0 {
            out.fps = out.fps.min(c.fps);
        }
        if c.max_bitrate_kbps > 0 {
            out.bitrate_kbps = out.bitrate_kbps.min(c.max_bitrate_kbps);
        }
        out
    }
}

/// Everything a client needs to join a room.
#[derive(Clone)]
pub struct ClientConfig {
    /// The server's base URL, e.g. `http://127.0.0.1:8080`. The signaling WebSocket is
    /// derived from it: `ws://127.0.0.1:8080/rtc` (`wss://` for `https://`).
    pub server: Url,
    /// The room token (from `POST /api/v1/join/{code}`, `/visits/{id}/token` or a guest token).
    pub token: String,
    /// Send a synthetic Opus tone once admitted.
    pub publish_audio: bool,
    /// Send VP8 video (from [`ClientConfig::video`]) once admitted.
    pub publish_video: bool,
    pub video: VideoSource,
    /// Where the audio comes from when [`ClientConfig::publish_audio`] is on.
    pub audio: AudioSource,
    /// Receives every decoded remote video frame. Setting it decodes video even when
    /// [`ClientConfig::decode_video`] is off.
    pub video_sink: Option<VideoSink>,
    /// Receives decoded remote audio in 20 ms frames. Setting it decodes audio even when
    /// [`ClientConfig::decode_audio`] is off.
    pub audio_sink: Option<AudioSink>,
    /// Frequency of the synthetic voice.
    pub tone_hz: f32,
    /// Loudness of the synthetic voice, dB relative to a full-scale sine (0 is loudest). Its
    /// RFC 6464 level goes out in the audio-level header extension, so tests can make one
    /// speaker louder than another.
    pub tone_dbfs: f32,
    /// Decode received VP8 with libvpx and count decoded frames. Off, only packets and
    /// reassembled frames are counted (cheaper, for the load generator).
    pub decode_video: bool,
    /// Decode received Opus and count decoded audio frames.
    pub decode_audio: bool,
    /// Gather only TCP candidates (ICE-TCP, RFC 6544 active), to exercise the TCP fallback.
    /// Otherwise only UDP is gathered: unlike a browser, this client does not fall back to
    /// TCP by itself (with both, the `webrtc` 0.21 agent sometimes picks TCP over working UDP).
    pub ice_tcp_only: bool,
    /// After the signaling socket drops, reconnect with `resume`, backing off from 100 ms to
    /// 2 s between attempts. Media keeps flowing meanwhile.
    pub auto_reconnect: bool,
    /// The local address media sockets bind to. `None`: loopback when the server is on
    /// loopback, else every interface.
    pub bind_ip: Option<IpAddr>,
    /// Varies the test pattern (box colour, path, stripes) to tell synthetic people apart.
    pub pattern_seed: u64,
    /// How long connecting and the `join` handshake may take.
    pub connect_timeout: Duration,
    /// The HTTP proxy the signaling WebSocket goes through (a `CONNECT` tunnel), by the
    /// server's address. Media does not: it goes to the server's UDP port or ICE-TCP.
    /// (Shared: a configuration is copied into every task of the client.)
    pub proxy: std::sync::Arc<crate::ProxyConfig>,
}

impl ClientConfig {
    /// Defaults: publish audio and the small test pattern, decode everything, 440 Hz tone at
    /// -20 dBFS, UDP candidates, reconnect automatically.
    pub fn new(server: Url, token: impl Into<String>) -> Self {
        ClientConfig {
            server,
            token: token.into(),
            publish_audio: true,
            publish_video: true,
            video: VideoSource::small(),
            audio: AudioSource::Tone,
            video_sink: None,
            audio_sink: None,
            tone_hz: 440.0,
            tone_dbfs: -20.0,
            decode_video: true,
            decode_audio: true,
            ice_tcp_only: false,
            auto_reconnect: true,
            bind_ip: None,
            pattern_seed: 0,
            connect_timeout: Duration::from_secs(10),
            proxy: std::sync::Arc::default(),
        }
    }

    /// Neither audio nor video: signaling only (a staff member watching, a lobby test).
    pub fn receive_only(mut self) -> Self {
        self.publish_audio = false;
        self.publish_video = false;
        self
    }

    /// The signaling WebSocket URL: the server's scheme mapped to `ws`/`wss`, path `/rtc`
    /// appended to any base path.
    pub fn signaling_url(&self) -> Result<Url, ClientError> {
        let scheme = match self.server.scheme() {
            "http" | "ws" => "ws",
            "https" | "wss" => "wss",
            other => {
                return Err(ClientError::Config(format!(
                    "the server URL must be http or https, not {other}"
                )));
            }
        };
        let mut url = self.server.clone();
        url.set_scheme(scheme)
            .map_err(|()| ClientError::Config("the server URL cannot carry a ws scheme".into()))?;
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/rtc"));
        url.set_query(None);
        url.set_fragment(None);
        Ok(url)
    }

    /// The address media sockets bind to (see [`ClientConfig::bind_ip`]).
    pub(crate) fn media_bind_ip(&self) -> IpAddr {
        if let Some(ip) = self.bind_ip {
            return ip;
        }
        let loopback = match self.server.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        if loopback {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ClientError> {
        self.signaling_url()?;
        if self.token.trim().is_empty() {
            return Err(ClientError::Config("the room token is empty".into()));
        }
        let VideoParams {
            width,
            height,
            fps,
            bitrate_kbps,
        } = self.video.params();
        if width < 2 || height < 2 || width % 2 != 0 || height % 2 != 0 {
            let what = if self.video.is_synthetic() {
                "the test pattern"
            } else {
                "the external video's size limit"
            };
            return Err(ClientError::Config(format!(
                "{what} must have even dimensions of at least 2x2, not {width}x{height}"
            )));
        }
        if fps == 0 || fps > 60 {
            return Err(ClientError::Config(format!(
                "video fps must be 1..=60, not {fps}"
            )));
        }
        if bitrate_kbps < 30 {
            return Err(ClientError::Config(format!(
                "video bitrate must be at least 30 kbps, not {bitrate_kbps}"
            )));
        }
        if !(20.0..=20_000.0).contains(&self.tone_hz) {
            return Err(ClientError::Config(format!(
                "the tone must be 20..=20000 Hz, not {}",
                self.tone_hz
            )));
        }
        if !(self.tone_dbfs <= 0.0 && self.tone_dbfs >= -127.0) {
            return Err(ClientError::Config(format!(
                "the tone level must be -127..=0 dBFS, not {}",
                self.tone_dbfs
            )));
        }
        Ok(())
    }
}

/// The token is a bearer credential: it is never printed.
impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("server", &self.server.as_str())
            .field("token", &"[redacted]")
            .field("publish_audio", &self.publish_audio)
            .field("publish_video", &self.publish_video)
            .field("video", &self.video)
            .field("audio", &self.audio)
            .field("video_sink", &self.video_sink.is_some())
            .field("audio_sink", &self.audio_sink.is_some())
            .field("tone_hz", &self.tone_hz)
            .field("tone_dbfs", &self.tone_dbfs)
            .field("decode_video", &self.decode_video)
            .field("decode_audio", &self.decode_audio)
            .field("ice_tcp_only", &self.ice_tcp_only)
            .field("auto_reconnect", &self.auto_reconnect)
            .field("bind_ip", &self.bind_ip)
            .field("pattern_seed", &self.pattern_seed)
            .field("connect_timeout", &self.connect_timeout)
            .field("proxy", &self.proxy)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(server: &str) -> ClientConfig {
        ClientConfig::new(Url::parse(server).expect("url"), "t")
    }

    #[test]
    fn signaling_url_follows_the_scheme_and_base_path() {
        assert_eq!(
            cfg("http://127.0.0.1:8080")
                .signaling_url()
                .expect("ws")
                .as_str(),
            "ws://127.0.0.1:8080/rtc"
        );
        assert_eq!(
            cfg("https://visits.example.org/")
                .signaling_url()
                .expect("wss")
                .as_str(),
            "wss://visits.example.org/rtc"
        );
        assert_eq!(
            cfg("https://example.org/rounds/?x=1")
                .signaling_url()
                .expect("base")
                .as_str(),
            "wss://example.org/rounds/rtc"
        );
        assert!(cfg("ftp://example.org").signaling_url().is_err());
    }

    #[test]
    fn media_binds_loopback_for_a_loopback_server() {
        assert_eq!(
            cfg("http://127.0.0.1:1").media_bind_ip(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            cfg("http://localhost:1").media_bind_ip(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            cfg("https://example.org").media_bind_ip(),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
    }

    #[test]
    fn token_is_not_printed() {
        let mut c = cfg("http://127.0.0.1:1");
        c.token = "eyJsecret".into();
        assert!(!format!("{c:?}").contains("eyJsecret"));
    }

    #[test]
    fn validation_names_the_bad_setting() {
        let mut c = cfg("http://127.0.0.1:1");
        assert!(c.validate().is_ok());
        c.video = VideoSource::TestPattern {
            width: 641,
            height: 360,
            fps: 15,
            bitrate_kbps: 400,
        };
        assert!(matches!(c.validate(), Err(ClientError::Config(m)) if m.contains("641x360")));
        c.video = VideoSource::small();
        c.tone_dbfs = 3.0;
        assert!(c.validate().is_err());
        c.tone_dbfs = -20.0;
        c.video = VideoSource::External(ExternalVideo::new(1281, 720, 24, 1200));
        assert!(matches!(c.validate(), Err(ClientError::Config(m)) if m.contains("external")));
        c.video = VideoSource::External(ExternalVideo::hd());
        assert!(c.validate().is_ok());
        assert!(!c.video.is_synthetic() && VideoSource::hd().is_synthetic());
    }

    fn constraints(width: u32, height: u32, fps: u32, kbps: u32) -> VideoConstraints {
        VideoConstraints {
            width,
            height,
            fps,
            max_bitrate_kbps: kbps,
            simulcast: false,
            codec: "VP8".into(),
        }
    }

    #[test]
    fn constraints_only_lower_the_source() {
        let hd = VideoSource::hd().params();
        assert_eq!(hd.constrained(None), hd);
        // The server's default for two people asks for what we already do.
        assert_eq!(hd.constrained(Some(&constraints(1280, 720, 24, 1500))), hd);
        // A low-end cap: 480p, 15 fps, 800 kbps.
        let low = hd.constrained(Some(&constraints(854, 480, 15, 800)));
        assert_eq!(
            (low.width, low.height, low.fps, low.bitrate_kbps),
            (852, 480, 15, 800)
        );
        // Never raised.
        let small = VideoSource::small().params();
        assert_eq!(
            small.constrained(Some(&constraints(1920, 1080, 60, 5000))),
            small
        );
        // Aspect kept when only one side is too large; dimensions stay even.
        let narrow = hd.constrained(Some(&constraints(641, 720, 0, 0)));
        assert_eq!((narrow.width % 2, narrow.height % 2), (0, 0));
        assert!(narrow.width <= 641 && narrow.height < 720);
    }
}
