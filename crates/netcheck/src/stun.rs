//! The few bytes of STUN (RFC 8489) and ICE-TCP framing (RFC 4571) a reachability probe needs:
//! a Binding request without credentials, and reading the server's XOR-MAPPED-ADDRESS back.
//! No I/O here.

use std::net::{IpAddr, SocketAddr};

const HEADER_LEN: usize = 20;
const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const BINDING_ERROR: u16 = 0x0111;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;

/// A STUN transaction id: what ties an answer to our request.
pub type TransactionId = [u8; 12];

/// A fresh random transaction id.
pub fn new_transaction() -> TransactionId {
    rand::random()
}

/// A plain Binding request: the header and nothing else, as browsers send to a STUN server.
pub fn binding_request(txid: &TransactionId) -> [u8; HEADER_LEN] {
    let mut m = [0u8; HEADER_LEN];
    m[0..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    m[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    m[8..].copy_from_slice(txid);
    m
}

/// What came back for our transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A success response, with the address the server saw us at (if it said).
    Mapped(Option<SocketAddr>),
    /// An error response: something answered, but refused.
    Refused,
}

/// Reads `data` as the answer to `txid`. `None` for anything else (another transaction, not
/// STUN, truncated), which the caller ignores and keeps waiting.
pub fn read_answer(data: &[u8], txid: &TransactionId) -> Option<Answer> {
    if data.len() < HEADER_LEN {
        return None;
    }
    let kind = u16::from_be_bytes([data[0], data[1]]);
    let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    if data[4..8] != MAGIC_COOKIE.to_be_bytes() || data[8..HEADER_LEN] != txid[..] {
        return None;
    }
    if HEADER_LEN + len > data.len() {
        return None;
    }
    match kind {
        BINDING_SUCCESS => Some(Answer::Mapped(xor_mapped_address(
            &data[..HEADER_LEN + len],
        ))),
        BINDING_ERROR => Some(Answer::Refused),
        _ => None,
    }
}

fn xor_mapped_address(message: &[u8]) -> Option<SocketAddr> {
    let body = &message[HEADER_LEN..];
    let mut offset = 0;
    while offset + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[offset], body[offset + 1]]);
        let len = usize::from(u16::from_be_bytes([body[offset + 2], body[offset + 3]]));
        let value = body.get(offset + 4..offset + 4 + len)?;
        if kind == ATTR_XOR_MAPPED_ADDRESS {
            return decode_xor_address(value, &message[4..HEADER_LEN]);
        }
        offset += 4 + len.div_ceil(4) * 4;
    }
    None
}

/// `key` is the magic cookie followed by the transaction id (RFC 8489 §14.2).
fn decode_xor_address(value: &[u8], key: &[u8]) -> Option<SocketAddr> {
    if value.len() < 8 {
        return None;
    }
    let port = u16::from_be_bytes([value[2], value[3]]) ^ u16::from_be_bytes([key[0], key[1]]);
    let ip = match value[1] {
        0x01 => {
            let mut o = [0u8; 4];
            for (i, b) in o.iter_mut().enumerate() {
                *b = value[4 + i] ^ key[i];
            }
            IpAddr::from(o)
        }
        0x02 if value.len() >= 20 => {
            let mut o = [0u8; 16];
            for (i, b) in o.iter_mut().enumerate() {
                *b = value[4 + i] ^ key[i];
            }
            IpAddr::from(o)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Prefixes `payload` with its length, as ICE-TCP does (RFC 4571).
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + payload.len());
    // Our payloads are STUN requests of 20 bytes; nothing longer is ever framed.
    out.extend_from_slice(&(payload.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A success response for `txid` carrying `addr`, encoded by hand from RFC 8489's layout.
    fn success(txid: &TransactionId, addr: SocketAddr) -> Vec<u8> {
        let mut key = MAGIC_COOKIE.to_be_bytes().to_vec();
        key.extend_from_slice(txid);
        let (family, raw): (u8, Vec<u8>) = match addr.ip() {
            IpAddr::V4(v4) => (1, v4.octets().to_vec()),
            IpAddr::V6(v6) => (2, v6.octets().to_vec()),
        };
        let mut value = vec![0, family];
        value.extend_from_slice(&(addr.port() ^ 0x2112).to_be_bytes());
        value.extend(raw.iter().zip(&key).map(|(a, k)| a ^ k));
        // An unrelated attribute first, so the reader has to walk past it.
        let mut body = vec![0x80, 0x22, 0x00, 0x03, b'a', b'b', b'c', 0];
        body.extend_from_slice(&ATTR_XOR_MAPPED_ADDRESS.to_be_bytes());
        body.extend_from_slice(&(value.len() as u16).to_be_bytes());
        body.extend_from_slice(&value);
        let mut m = BINDING_SUCCESS.to_be_bytes().to_vec();
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&key);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn a_request_is_a_bare_binding_header() {
        let txid = [7u8; 12];
        let r = binding_request(&txid);
        assert_eq!(&r[0..4], &[0, 1, 0, 0]);
        assert_eq!(&r[4..8], &[0x21, 0x12, 0xa4, 0x42]);
        assert_eq!(&r[8..], &txid);
    }

    #[test]
    fn reads_the_mapped_address_of_our_transaction_only() {
        let txid = [3u8; 12];
        for addr in ["203.0.113.9:61000", "[2001:db8::9]:5000"] {
            let addr: SocketAddr = addr.parse().expect("addr");
            let answer = success(&txid, addr);
            assert_eq!(
                read_answer(&answer, &txid),
                Some(Answer::Mapped(Some(addr)))
            );
            assert_eq!(
                read_answer(&answer, &[4u8; 12]),
                None,
                "another transaction"
            );
            assert_eq!(read_answer(&answer[..answer.len() - 4], &txid), None);
        }
        let mut error = success(&txid, "192.0.2.1:1".parse().expect("addr"));
        error[0..2].copy_from_slice(&BINDING_ERROR.to_be_bytes());
        assert_eq!(read_answer(&error, &txid), Some(Answer::Refused));
        assert_eq!(read_answer(&binding_request(&txid), &txid), None);
    }

    #[test]
    fn garbage_never_panics() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let txid = [1u8; 12];
        for _ in 0..20_000 {
            let len = rng.gen_range(0..80);
            let mut data: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
            if len >= 20 {
                data[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
                data[8..20].copy_from_slice(&txid);
            }
            let _ = read_answer(&data, &txid);
        }
    }

    #[test]
    fn frames_carry_their_length() {
        assert_eq!(frame(&[9, 9, 9]), vec![0, 3, 9, 9, 9]);
    }
}
