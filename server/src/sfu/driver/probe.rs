//! Answering plain STUN Binding requests on the media ports, so that a patient's page or
//! `rounds-server check` can learn before a visit whether UDP (or ICE-TCP on the web port)
//! reaches the SFU.
//!
//! A plain request is the RFC 8489 kind a STUN server answers for anyone: a Binding request
//! with no USERNAME and no MESSAGE-INTEGRITY. Real peer connections never send one (their ICE
//! checks always carry our ufrag), so answering these cannot disturb the media demux; the
//! driver only asks [`Prober::answer`] about datagrams and frames it would otherwise drop.
//!
//! Cheap and safe by construction:
//! - nothing is kept per request: the reply is computed from the request's transaction id and
//!   the address it came from, and sent at once;
//! - the reply has a fixed shape (header plus XOR-MAPPED-ADDRESS, at most [`MAX_REPLY`] bytes)
//!   and never echoes anything of the request but its 12-byte transaction id, so it cannot be
//!   used to amplify traffic beyond that;
//! - each source address gets a small token bucket and all sources share one, so a flood of
//!   probes costs a bounded number of replies; the table of sources is bounded too;
//! - every request is counted in `rounds_sfu_stun_probes_total{transport, outcome}`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

const HEADER_LEN: usize = 20;
const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// Attributes below this value are comprehension-required (RFC 8489 §14): a server that does
/// not know one must not pretend it did. We know none of them, so we do not answer.
const FIRST_OPTIONAL_ATTR: u16 = 0x8000;
/// Longest request we look at: a probe is a header and perhaps SOFTWARE or FINGERPRINT.
const MAX_REQUEST: usize = 548;
/// Header (20) + XOR-MAPPED-ADDRESS for IPv6 (4 + 20).
pub(crate) const MAX_REPLY: usize = 44;

/// Replies one source address may get in a burst, and per second after that.
const PER_SOURCE_BURST: f64 = 20.0;
const PER_SOURCE_RATE: f64 = 10.0;
/// Replies all sources together may get in a burst, and per second after that.
const GLOBAL_BURST: f64 = 1000.0;
const GLOBAL_RATE: f64 = 1000.0;
/// Most sources remembered at once; idle ones are forgotten first.
const MAX_SOURCES: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProbeTransport {
    Udp,
    Tcp,
}

impl ProbeTransport {
    fn label(self) -> &'static str {
        match self {
            ProbeTransport::Udp => "udp",
            ProbeTransport::Tcp => "tcp",
        }
    }
}

/// What the driver does with a datagram or frame it showed the prober.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not a plain binding request: carry on as before.
    NotAProbe,
    /// A probe: send these bytes back to where it came from.
    Answer(Reply),
    /// A probe we do not answer (rate-limited, or media over UDP is off); drop it.
    Ignore,
}

/// A binding success response, on the stack.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    bytes: [u8; MAX_REPLY],
    len: usize,
}

impl Reply {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reply({} bytes)", self.len)
    }
}

/// Whether `data` is exactly one well-formed plain STUN Binding request that we understand:
/// no USERNAME or MESSAGE-INTEGRITY (those are ICE checks, for the peer connections), and no
/// other comprehension-required attribute either.
pub(crate) fn is_plain_binding_request(data: &[u8]) -> bool {
    if data.len() < HEADER_LEN || data.len() > MAX_REQUEST {
        return false;
    }
    let msg_type = u16::from_be_bytes([data[0], data[1]]);
    let msg_len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let cookie = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    if msg_type != BINDING_REQUEST
        || cookie != MAGIC_COOKIE
        || msg_len % 4 != 0
        || HEADER_LEN + msg_len != data.len()
    {
        return false;
    }
    let body = &data[HEADER_LEN..];
    let mut offset = 0;
    while offset < body.len() {
        if offset + 4 > body.len() {
            return false;
        }
        let attr_type = u16::from_be_bytes([body[offset], body[offset + 1]]);
        let attr_len = usize::from(u16::from_be_bytes([body[offset + 2], body[offset + 3]]));
        let end = offset + 4 + attr_len.div_ceil(4) * 4;
        if end > body.len() || attr_type < FIRST_OPTIONAL_ATTR {
            return false;
        }
        offset = end;
    }
    true
}

/// The success response to a plain binding request from `from`: its transaction id and the
/// address we saw it come from (RFC 8489 §14.2, XOR-MAPPED-ADDRESS).
pub(crate) fn binding_response(request: &[u8], from: SocketAddr) -> Reply {
    let mut bytes = [0u8; MAX_REPLY];
    let address_len = match from.ip() {
        IpAddr::V4(_) => 4,
        IpAddr::V6(_) => 16,
    };
    let attr_len = 4 + address_len;
    let len = HEADER_LEN + 4 + attr_len;
    bytes[0..2].copy_from_slice(&BINDING_SUCCESS.to_be_bytes());
    bytes[2..4].copy_from_slice(&((4 + attr_len) as u16).to_be_bytes());
    bytes[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    bytes[8..HEADER_LEN].copy_from_slice(&request[8..HEADER_LEN]);
    bytes[20..22].copy_from_slice(&ATTR_XOR_MAPPED_ADDRESS.to_be_bytes());
    bytes[22..24].copy_from_slice(&(attr_len as u16).to_be_bytes());
    let xor_port = from.port() ^ (MAGIC_COOKIE >> 16) as u16;
    bytes[26..28].copy_from_slice(&xor_port.to_be_bytes());
    // The address is XORed with the magic cookie and, for IPv6, the transaction id: the
    // first 16 bytes of the header after the type and length.
    let (family, octets): (u8, [u8; 16]) = match from.ip() {
        IpAddr::V4(v4) => {
            let mut o = [0u8; 16];
            o[..4].copy_from_slice(&v4.octets());
            (0x01, o)
        }
        IpAddr::V6(v6) => (0x02, v6.octets()),
    };
    bytes[25] = family;
    for i in 0..address_len {
        bytes[28 + i] = octets[i] ^ bytes[4 + i];
    }
    Reply { bytes, len }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
    }

    fn is_idle(&self, rate: f64, burst: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + elapsed * rate >= burst
    }
}

/// Decides which probes get an answer. Owned by the driver task; given `now`, so its tests
/// need no clock.
pub(crate) struct Prober {
    udp_enabled: bool,
    sources: HashMap<IpAddr, Bucket>,
    global: Bucket,
}

impl Prober {
    /// `udp_enabled: false` leaves UDP probes unanswered: with UDP media off, "the UDP port
    /// answers" would be a promise the server does not keep.
    pub(crate) fn new(udp_enabled: bool, now: Instant) -> Self {
        Prober {
            udp_enabled,
            sources: HashMap::new(),
            global: Bucket::full(GLOBAL_BURST, now),
        }
    }

    /// What to do with `data`, which arrived from `from` over `transport`.
    pub(crate) fn answer(
        &mut self,
        transport: ProbeTransport,
        from: SocketAddr,
        data: &[u8],
        now: Instant,
    ) -> Verdict {
        if !is_plain_binding_request(data) {
            return Verdict::NotAProbe;
        }
        let outcome = if transport == ProbeTransport::Udp && !self.udp_enabled {
            "udp_off"
        } else if !self.take(from.ip(), now) {
            "rate_limited"
        } else {
            "answered"
        };
        metrics::counter!(
            "rounds_sfu_stun_probes_total",
            "transport" => transport.label(),
            "outcome" => outcome
        )
        .increment(1);
        if outcome == "answered" {
            Verdict::Answer(binding_response(data, from))
        } else {
            Verdict::Ignore
        }
    }

    fn take(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.global.refill(GLOBAL_RATE, GLOBAL_BURST, now);
        if self.global.tokens < 1.0 {
            return false;
        }
        if !self.sources.contains_key(&ip) && self.sources.len() >= MAX_SOURCES {
            // Sources whose bucket has refilled are indistinguishable from new ones.
            self.sources
                .retain(|_, b| !b.is_idle(PER_SOURCE_RATE, PER_SOURCE_BURST, now));
            if self.sources.len() >= MAX_SOURCES {
                return false;
            }
        }
        let bucket = self
            .sources
            .entry(ip)
            .or_insert_with(|| Bucket::full(PER_SOURCE_BURST, now));
        bucket.refill(PER_SOURCE_RATE, PER_SOURCE_BURST, now);
        if bucket.tokens < 1.0 {
            return false;
        }
        bucket.tokens -= 1.0;
        self.global.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// How long a source that probed at the full rate needs to be answered again.
    fn per_source_refill() -> Duration {
        Duration::from_secs_f64(1.0 / PER_SOURCE_RATE)
    }

    fn request(txid: [u8; 12], attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (t, v) in attrs {
            body.extend_from_slice(&t.to_be_bytes());
            body.extend_from_slice(&(v.len() as u16).to_be_bytes());
            body.extend_from_slice(v);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&txid);
        m.extend_from_slice(&body);
        m
    }

    /// Decodes XOR-MAPPED-ADDRESS the way a client does, independently of the encoder.
    fn mapped(reply: &[u8]) -> SocketAddr {
        assert_eq!(&reply[0..2], &[0x01, 0x01], "binding success");
        assert_eq!(
            usize::from(u16::from_be_bytes([reply[2], reply[3]])),
            reply.len() - 20
        );
        assert_eq!(&reply[20..22], &[0x00, 0x20]);
        let port = u16::from_be_bytes([reply[26], reply[27]]) ^ 0x2112;
        let ip = match reply[25] {
            1 => {
                let v = u32::from_be_bytes([reply[28], reply[29], reply[30], reply[31]]);
                IpAddr::from((v ^ MAGIC_COOKIE).to_be_bytes())
            }
            2 => {
                let mut key = [0u8; 16];
                key[..4].copy_from_slice(&reply[4..8]);
                key[4..].copy_from_slice(&reply[8..20]);
                let mut o = [0u8; 16];
                for i in 0..16 {
                    o[i] = reply[28 + i] ^ key[i];
                }
                IpAddr::from(o)
            }
            f => panic!("family {f}"),
        };
        SocketAddr::new(ip, port)
    }

    #[test]
    fn answers_with_the_address_the_request_came_from() {
        let txid = [9u8; 12];
        for from in ["192.0.2.7:51234", "[2001:db8::5]:3478"] {
            let from: SocketAddr = from.parse().expect("addr");
            let reply = binding_response(&request(txid, &[]), from);
            let bytes = reply.as_bytes();
            assert_eq!(mapped(bytes), from);
            assert_eq!(&bytes[8..20], &txid, "same transaction");
            assert!(bytes.len() <= MAX_REPLY);
        }
    }

    #[test]
    fn only_plain_binding_requests_are_probes() {
        let txid = [1u8; 12];
        assert!(is_plain_binding_request(&request(txid, &[])));
        // SOFTWARE and FINGERPRINT are comprehension-optional: still a probe.
        assert!(is_plain_binding_request(&request(
            txid,
            &[(0x8022, b"netcheck"), (0x8028, &[0, 0, 0, 0])]
        )));
        // ICE checks carry USERNAME and MESSAGE-INTEGRITY: those belong to peer connections.
        assert!(!is_plain_binding_request(&request(
            txid,
            &[(0x0006, b"a:b")]
        )));
        assert!(!is_plain_binding_request(&request(
            txid,
            &[(0x0008, &[0; 20])]
        )));
        // RFC 5780's CHANGE-REQUEST is comprehension-required and not something we do.
        assert!(!is_plain_binding_request(&request(
            txid,
            &[(0x0003, &[0, 0, 0, 6])]
        )));
        let mut response = request(txid, &[]);
        response[1] = 0x01;
        response[0] = 0x01;
        assert!(!is_plain_binding_request(&response));
        let mut trailing = request(txid, &[]);
        trailing.push(0);
        assert!(!is_plain_binding_request(&trailing));
        let mut cookie = request(txid, &[]);
        cookie[4] = 0;
        assert!(!is_plain_binding_request(&cookie));
        assert!(!is_plain_binding_request(&request(txid, &[])[..19]));
        // An attribute whose length runs past the end.
        let mut long = request(txid, &[(0x8022, b"abcd")]);
        long[23] = 40;
        assert!(!is_plain_binding_request(&long));
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut prober = Prober::new(true, Instant::now());
        let from: SocketAddr = "198.51.100.2:4000".parse().expect("addr");
        for _ in 0..20_000 {
            let len = rng.gen_range(0..120);
            let mut data: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
            if len >= 20 && rng.gen_bool(0.5) {
                data[0] = 0;
                data[1] = 1;
                data[2..4].copy_from_slice(&((len - 20) as u16).to_be_bytes());
                data[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            }
            if let Verdict::Answer(reply) =
                prober.answer(ProbeTransport::Udp, from, &data, Instant::now())
            {
                assert_eq!(mapped(reply.as_bytes()), from);
            }
        }
    }

    #[test]
    fn each_source_is_rate_limited_and_recovers() {
        let start = Instant::now();
        let mut prober = Prober::new(true, start);
        let probe = request([2u8; 12], &[]);
        let a: SocketAddr = "198.51.100.2:4000".parse().expect("addr");
        let b: SocketAddr = "198.51.100.3:4000".parse().expect("addr");
        let answered = (0..100)
            .filter(|_| {
                matches!(
                    prober.answer(ProbeTransport::Udp, a, &probe, start),
                    Verdict::Answer(_)
                )
            })
            .count();
        assert_eq!(answered, PER_SOURCE_BURST as usize);
        // Another source is not held back by the first one's flood...
        assert!(matches!(
            prober.answer(ProbeTransport::Tcp, b, &probe, start),
            Verdict::Answer(_)
        ));
        // ...and the first is answered again once its bucket refills.
        assert_eq!(
            prober.answer(ProbeTransport::Udp, a, &probe, start),
            Verdict::Ignore
        );
        let later = start + per_source_refill();
        assert!(matches!(
            prober.answer(ProbeTransport::Udp, a, &probe, later),
            Verdict::Answer(_)
        ));
    }

    #[test]
    fn all_sources_together_are_bounded_and_the_table_too() {
        let start = Instant::now();
        let mut prober = Prober::new(true, start);
        let probe = request([3u8; 12], &[]);
        let mut answered = 0;
        for i in 0..20_000u32 {
            let from = SocketAddr::new(IpAddr::from((0x0a00_0000 + i).to_be_bytes()), 9);
            if matches!(
                prober.answer(ProbeTransport::Udp, from, &probe, start),
                Verdict::Answer(_)
            ) {
                answered += 1;
            }
        }
        assert_eq!(answered, GLOBAL_BURST as usize);
        assert!(prober.sources.len() <= MAX_SOURCES);
    }

    #[test]
    fn udp_probes_go_unanswered_when_udp_media_is_off() {
        let now = Instant::now();
        let mut prober = Prober::new(false, now);
        let probe = request([4u8; 12], &[]);
        let from: SocketAddr = "198.51.100.2:4000".parse().expect("addr");
        assert_eq!(
            prober.answer(ProbeTransport::Udp, from, &probe, now),
            Verdict::Ignore
        );
        // The TCP fallback still answers: that is the path media will take.
        assert!(matches!(
            prober.answer(ProbeTransport::Tcp, from, &probe, now),
            Verdict::Answer(_)
        ));
        assert_eq!(
            prober.answer(ProbeTransport::Udp, from, b"\x80garbage", now),
            Verdict::NotAProbe
        );
    }
}
