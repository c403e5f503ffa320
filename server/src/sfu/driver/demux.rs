//! Telling datagrams apart and finding the peer connection they belong to.
//!
//! Everything here works on bytes a stranger sent us, so it never panics, never allocates on the
//! rejection path and never trusts a length field it has not checked against the buffer.
//!
//! Routing has two keys, in this order:
//! 1. a STUN binding request names our ICE username fragment in its USERNAME attribute
//!    (`ours:theirs`); we chose that fragment per peer connection, so it identifies the
//!    connection even from an address we have never seen;
//! 2. everything else (DTLS, SRTP, SRTCP, STUN without USERNAME) is routed by the remote
//!    address a verified binding request came from.

use std::collections::HashMap;
use std::net::SocketAddr;

use rtc::crypto::RTCCrypto;
use rtc::stun::attributes::ATTR_MESSAGE_INTEGRITY;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::Message;

use super::PcId;

/// What a datagram is, by its first byte (RFC 7983, section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PacketClass {
    Stun,
    Dtls,
    /// RTP or RTCP (SRTP/SRTCP once keyed).
    Rtp,
    /// ZRTP, TURN channel data or anything else: nothing a WebRTC peer sends us.
    Other,
}

pub(crate) fn classify(data: &[u8]) -> PacketClass {
    match data.first() {
        Some(0..=3) => PacketClass::Stun,
        Some(20..=63) => PacketClass::Dtls,
        Some(128..=191) => PacketClass::Rtp,
        _ => PacketClass::Other,
    }
}

const STUN_HEADER_LEN: usize = 20;
const STUN_MAGIC_COOKIE: u32 = 0x2112_A442;
const STUN_BINDING_REQUEST: u16 = 0x0001;
const STUN_ATTR_USERNAME: u16 = 0x0006;
/// HMAC-SHA1 output length: MESSAGE-INTEGRITY is always exactly this long.
const STUN_INTEGRITY_LEN: usize = 20;

const STUN_BINDING_SUCCESS: u16 = 0x0101;
const STUN_ATTR_USE_CANDIDATE: u16 = 0x0025;

/// The type of a well-formed STUN message (header and attribute lengths consistent), and
/// its attributes.
fn stun_message(data: &[u8]) -> Option<(u16, &[u8])> {
    if data.len() < STUN_HEADER_LEN {
        return None;
    }
    let msg_type = u16::from_be_bytes([data[0], data[1]]);
    let msg_len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let cookie = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    if cookie != STUN_MAGIC_COOKIE || msg_len % 4 != 0 || STUN_HEADER_LEN + msg_len > data.len() {
        return None;
    }
    Some((msg_type, &data[STUN_HEADER_LEN..STUN_HEADER_LEN + msg_len]))
}

/// The value of the first attribute `wanted` in a binding request, if `data` is a well-formed
/// one.
fn binding_request_attribute(data: &[u8], wanted: u16) -> Option<&[u8]> {
    let (msg_type, body) = stun_message(data)?;
    if msg_type != STUN_BINDING_REQUEST {
        return None;
    }
    let mut offset = 0;
    while offset + 4 <= body.len() {
        let attr_type = u16::from_be_bytes([body[offset], body[offset + 1]]);
        let attr_len = usize::from(u16::from_be_bytes([body[offset + 2], body[offset + 3]]));
        let value_start = offset + 4;
        let value_end = value_start.checked_add(attr_len)?;
        if value_end > body.len() {
            return None;
        }
        if attr_type == wanted {
            return Some(&body[value_start..value_end]);
        }
        // Attribute values are padded to a multiple of four bytes.
        offset = value_start + attr_len.div_ceil(4) * 4;
    }
    None
}

/// If `data` is a well-formed STUN binding request carrying `USERNAME = "a:b"`, returns `a`: the
/// receiver's (our) username fragment.
pub(crate) fn binding_request_ufrag(data: &[u8]) -> Option<&str> {
    let username = binding_request_attribute(data, STUN_ATTR_USERNAME)?;
    let username = std::str::from_utf8(username).ok()?;
    let (ours, theirs) = username.split_once(':')?;
    if ours.is_empty() || theirs.is_empty() {
        return None;
    }
    Some(ours)
}

/// Whether `data` is a binding request that nominates its candidate pair (USE-CANDIDATE).
pub(crate) fn binding_request_nominates(data: &[u8]) -> bool {
    binding_request_attribute(data, STUN_ATTR_USE_CANDIDATE).is_some()
}

/// Whether `data` is a well-formed STUN binding success response.
pub(crate) fn is_binding_success(data: &[u8]) -> bool {
    stun_message(data).is_some_and(|(msg_type, _)| msg_type == STUN_BINDING_SUCCESS)
}

/// Checks the MESSAGE-INTEGRITY of a binding request against the password we gave the peer.
///
/// This is what makes an address route trustworthy: only someone who read our SDP can produce
/// it, so a guessed or replayed ufrag from another address cannot claim a peer connection.
pub(crate) fn binding_request_is_authentic(data: &[u8], pwd: &str, crypto: &dyn RTCCrypto) -> bool {
    let mut message = Message {
        raw: data.to_vec(),
        ..Message::default()
    };
    if message.decode().is_err() {
        return false;
    }
    // The integrity check slices the buffer by the attribute's declared position; insist on the
    // one length HMAC-SHA1 can produce before handing it over.
    match message.get(ATTR_MESSAGE_INTEGRITY) {
        Ok(value) if value.len() == STUN_INTEGRITY_LEN => {}
        _ => return false,
    }
    MessageIntegrity::check(&mut message, pwd.as_bytes(), crypto).is_ok()
}

/// Most remote addresses one peer connection may hold routes for. A client has a handful of
/// candidates; anything beyond that is churn (or abuse) and the oldest route is forgotten.
const MAX_ADDRS_PER_PC: usize = 8;

/// The two routing tables for the UDP socket.
#[derive(Default)]
pub(crate) struct Routes {
    by_ufrag: HashMap<String, PcId>,
    by_addr: HashMap<SocketAddr, PcId>,
    /// Addresses per connection, oldest first, so dropping a connection is cheap and the per-
    /// connection bound can be enforced.
    addrs_of: HashMap<PcId, Vec<SocketAddr>>,
}

impl Routes {
    pub(crate) fn set_ufrag(&mut self, pc: PcId, ufrag: &str) {
        self.by_ufrag.retain(|_, id| *id != pc);
        self.by_ufrag.insert(ufrag.to_owned(), pc);
    }

    pub(crate) fn ufrag_in_use(&self, ufrag: &str) -> bool {
        self.by_ufrag.contains_key(ufrag)
    }

    pub(crate) fn by_ufrag(&self, ufrag: &str) -> Option<PcId> {
        self.by_ufrag.get(ufrag).copied()
    }

    pub(crate) fn by_addr(&self, addr: &SocketAddr) -> Option<PcId> {
        self.by_addr.get(addr).copied()
    }

    /// Points `addr` at `pc`, taking it away from whichever connection had it before.
    pub(crate) fn learn_addr(&mut self, pc: PcId, addr: SocketAddr) {
        if let Some(previous) = self.by_addr.insert(addr, pc)
            && previous != pc
            && let Some(list) = self.addrs_of.get_mut(&previous)
        {
            list.retain(|a| *a != addr);
        }
        let list = self.addrs_of.entry(pc).or_default();
        if !list.contains(&addr) {
            list.push(addr);
        }
        if list.len() > MAX_ADDRS_PER_PC {
            let oldest = list.remove(0);
            if self.by_addr.get(&oldest) == Some(&pc) {
                self.by_addr.remove(&oldest);
            }
        }
    }

    pub(crate) fn forget(&mut self, pc: PcId) {
        self.by_ufrag.retain(|_, id| *id != pc);
        for addr in self.addrs_of.remove(&pc).unwrap_or_default() {
            if self.by_addr.get(&addr) == Some(&pc) {
                self.by_addr.remove(&addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &[u8]) -> Vec<u8> {
        let padded = username.len().div_ceil(4) * 4;
        let mut v = vec![0x00, 0x01];
        v.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
        v.extend_from_slice(&STUN_MAGIC_COOKIE.to_be_bytes());
        v.extend_from_slice(&[7u8; 12]);
        v.extend_from_slice(&STUN_ATTR_USERNAME.to_be_bytes());
        v.extend_from_slice(&(username.len() as u16).to_be_bytes());
        v.extend_from_slice(username);
        v.resize(v.len() + padded - username.len(), 0);
        v
    }

    #[test]
    fn tells_a_nomination_and_a_success_response() {
        let mut nominating = binding_request(b"ours:theirs");
        assert!(!binding_request_nominates(&nominating));
        // USE-CANDIDATE: type 0x0025, no value.
        nominating.extend_from_slice(&[0x00, 0x25, 0x00, 0x00]);
        let len = u16::from_be_bytes([nominating[2], nominating[3]]) + 4;
        nominating[2..4].copy_from_slice(&len.to_be_bytes());
        assert!(binding_request_nominates(&nominating));
        assert_eq!(binding_request_ufrag(&nominating), Some("ours"));
        assert!(!is_binding_success(&nominating));

        let mut success = binding_request(b"ours:theirs");
        success[0..2].copy_from_slice(&STUN_BINDING_SUCCESS.to_be_bytes());
        assert!(is_binding_success(&success));
        assert!(
            !binding_request_nominates(&success),
            "only requests nominate"
        );
        // Truncated: no longer well-formed.
        assert!(!is_binding_success(&success[..success.len() - 4]));
        assert!(!binding_request_nominates(
            &nominating[..nominating.len() - 4]
        ));
    }

    #[test]
    fn classifies_by_first_byte() {
        assert_eq!(classify(&[0x00, 1]), PacketClass::Stun);
        assert_eq!(classify(&[22]), PacketClass::Dtls);
        assert_eq!(classify(&[0x80]), PacketClass::Rtp);
        assert_eq!(classify(&[0xff]), PacketClass::Other);
        assert_eq!(classify(&[17]), PacketClass::Other);
        assert_eq!(classify(&[]), PacketClass::Other);
    }

    #[test]
    fn extracts_our_ufrag() {
        let packet = binding_request(b"server1:client");
        assert_eq!(binding_request_ufrag(&packet), Some("server1"));
    }

    #[test]
    fn rejects_malformed_stun() {
        assert_eq!(binding_request_ufrag(&binding_request(b"nocolon")), None);
        assert_eq!(binding_request_ufrag(&binding_request(b":x")), None);
        let mut truncated = binding_request(b"abc:def");
        truncated.truncate(truncated.len() - 4);
        assert_eq!(binding_request_ufrag(&truncated), None);
        let mut wrong_cookie = binding_request(b"abc:def");
        wrong_cookie[4] = 0;
        assert_eq!(binding_request_ufrag(&wrong_cookie), None);
        // An attribute length pointing past the end of the message.
        let mut long_attr = binding_request(b"abc:def");
        long_attr[22] = 0xff;
        assert_eq!(binding_request_ufrag(&long_attr), None);
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let crypto = rtc::crypto::default_provider().expect("provider");
        for _ in 0..20_000 {
            let len = rng.gen_range(0..200);
            let mut data: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
            if len >= 8 && rng.gen_bool(0.5) {
                data[0] = 0;
                data[1] = 1;
                data[4..8].copy_from_slice(&STUN_MAGIC_COOKIE.to_be_bytes());
            }
            let _ = classify(&data);
            let _ = binding_request_ufrag(&data);
            let _ = binding_request_nominates(&data);
            let _ = is_binding_success(&data);
            let _ = binding_request_is_authentic(&data, "password", crypto.crypto());
        }
    }

    #[test]
    fn routes_follow_the_latest_verified_address() {
        let mut routes = Routes::default();
        let a = PcId(1);
        let b = PcId(2);
        let addr: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        routes.set_ufrag(a, "ua");
        routes.set_ufrag(b, "ub");
        routes.learn_addr(a, addr);
        assert_eq!(routes.by_addr(&addr), Some(a));
        routes.learn_addr(b, addr);
        assert_eq!(routes.by_addr(&addr), Some(b));
        routes.forget(a);
        assert_eq!(routes.by_addr(&addr), Some(b));
        assert_eq!(routes.by_ufrag("ua"), None);
        routes.forget(b);
        assert_eq!(routes.by_addr(&addr), None);
    }

    #[test]
    fn addresses_per_connection_are_bounded() {
        let mut routes = Routes::default();
        let a = PcId(1);
        for port in 0..100u16 {
            routes.learn_addr(a, SocketAddr::from(([127, 0, 0, 1], 1000 + port)));
        }
        assert_eq!(routes.by_addr.len(), MAX_ADDRS_PER_PC);
    }
}
