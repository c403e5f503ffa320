//! RFC 4571 framing for ICE-TCP: each packet is preceded by its length as two big-endian bytes.
//!
//! The decoder owns the only buffer a TCP peer can make us grow, so it enforces the bound: a
//! frame longer than [`MAX_FRAME`] (or empty) is an error and the connection is closed, which
//! keeps the buffer below `2 + MAX_FRAME` plus one read.

use bytes::{Buf, Bytes, BytesMut};

/// Largest frame we accept. WebRTC stacks keep datagrams under the path MTU (DTLS fragments at
/// 1200 bytes by default, browsers' RTP stays below 1500), so 4 KiB leaves ample room for odd
/// but honest peers while refusing anything that is not a datagram.
pub(crate) const MAX_FRAME: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("zero-length frame")]
    Empty,
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
}

#[derive(Debug, Default)]
pub(crate) struct FrameDecoder {
    buf: BytesMut,
}

impl FrameDecoder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        if self.buf.len() < 2 {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge(len));
        }
        if self.buf.len() < 2 + len {
            return Ok(None);
        }
        self.buf.advance(2);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// Bytes held while waiting for the rest of a frame.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Prefixes `payload` with its length. `None` if it cannot be framed (longer than 65535 bytes).
pub(crate) fn frame(payload: &[u8]) -> Option<Bytes> {
    let len = u16::try_from(payload.len()).ok()?;
    let mut out = BytesMut::with_capacity(2 + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_frames_split_anywhere() {
        let a = frame(b"hello").expect("frame");
        let b = frame(&[9u8; 1000]).expect("frame");
        let mut wire = Vec::new();
        wire.extend_from_slice(&a);
        wire.extend_from_slice(&b);
        for split in 0..wire.len() {
            let mut decoder = FrameDecoder::new();
            decoder.extend(&wire[..split]);
            let mut out = Vec::new();
            while let Some(f) = decoder.next_frame().expect("valid") {
                out.push(f);
            }
            decoder.extend(&wire[split..]);
            while let Some(f) = decoder.next_frame().expect("valid") {
                out.push(f);
            }
            assert_eq!(out.len(), 2, "split at {split}");
            assert_eq!(&out[0][..], b"hello");
            assert_eq!(out[1].len(), 1000);
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn rejects_oversized_and_empty_frames() {
        let mut decoder = FrameDecoder::new();
        decoder.extend(&[0xff, 0xff, 1, 2, 3]);
        assert_eq!(decoder.next_frame(), Err(FrameError::TooLarge(65535)));
        let mut decoder = FrameDecoder::new();
        decoder.extend(&[0, 0]);
        assert_eq!(decoder.next_frame(), Err(FrameError::Empty));
    }

    #[test]
    fn refuses_to_frame_what_does_not_fit() {
        assert!(frame(&vec![0u8; 70_000]).is_none());
    }
}
