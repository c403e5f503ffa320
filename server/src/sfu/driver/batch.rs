//! Outgoing UDP datagrams, gathered while one wake-up is handled and handed to the kernel
//! together: one `sendmmsg(2)` for a packet's whole fan-out instead of one `sendto(2)` each.
//!
//! Sending still never waits. A datagram the kernel will not take now (a full socket buffer)
//! is dropped and counted, as the network would drop it; one it refuses outright (an
//! unreachable address, say) is skipped and the rest still go.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::PcId;

/// Datagrams per system call. Well under the kernel's `UIO_MAXIOV` (1024); one call sends
/// the fan-out of a packet to every subscriber of a visit many times over.
const PER_CALL: usize = 64;

/// The datagrams waiting for the next [`UdpBatch::flush`], each with the connection that
/// wrote it.
#[derive(Default)]
pub(super) struct UdpBatch {
    queue: RefCell<Vec<Datagram>>,
}

struct Datagram {
    from: PcId,
    to: SocketAddr,
    data: BytesMut,
}

/// What one flush did: how many datagrams went, and the connection and length of each that
/// did not (so its counters can be taken back).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Flushed {
    pub(super) sent: usize,
    pub(super) dropped: Vec<(PcId, usize)>,
}

impl UdpBatch {
    pub(super) fn push(&self, from: PcId, to: SocketAddr, data: BytesMut) {
        self.queue.borrow_mut().push(Datagram { from, to, data });
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.borrow().is_empty()
    }

    /// Sends everything queued, in order.
    pub(super) fn flush(&self, socket: &UdpSocket) -> Flushed {
        let mut queue = self.queue.borrow_mut();
        let mut done = Flushed::default();
        let mut next = 0;
        while next < queue.len() {
            let end = (next + PER_CALL).min(queue.len());
            match send_many(socket, &queue[next..end]) {
                Ok(n) => {
                    done.sent += n;
                    next += n;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    // The socket buffer is full: everything still queued is dropped now, as
                    // it would be a moment later.
                    done.dropped
                        .extend(queue[next..].iter().map(|d| (d.from, d.data.len())));
                    break;
                }
                Err(error) => {
                    // The first datagram of the call was refused; the others may go.
                    let d = &queue[next];
                    tracing::debug!(to = %d.to, %error, "UDP send failed");
                    done.dropped.push((d.from, d.data.len()));
                    next += 1;
                }
            }
        }
        queue.clear();
        done
    }
}

/// Sends a prefix of `datagrams` and says how long it was (at least one), or why the first
/// could not go.
#[cfg(target_os = "linux")]
fn send_many(socket: &UdpSocket, datagrams: &[Datagram]) -> io::Result<usize> {
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};

    let slices: Vec<[IoSlice<'_>; 1]> = datagrams.iter().map(|d| [IoSlice::new(&d.data)]).collect();
    let addrs: Vec<Option<SockaddrStorage>> = datagrams
        .iter()
        .map(|d| Some(SockaddrStorage::from(d.to)))
        .collect();
    let none: [ControlMessage<'_>; 0] = [];
    let fd = socket.as_raw_fd();
    // Through tokio, so that a full buffer clears the socket's write readiness like any other
    // send on it would.
    socket.try_io(Interest::WRITABLE, || {
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(slices.len(), None);
        sendmmsg(
            fd,
            &mut headers,
            &slices,
            &addrs,
            none,
            MsgFlags::MSG_DONTWAIT,
        )
        .map(|sent| sent.count())
        .map_err(io::Error::from)
    })
}

/// Elsewhere, one `sendto` per datagram.
#[cfg(not(target_os = "linux"))]
fn send_many(socket: &UdpSocket, datagrams: &[Datagram]) -> io::Result<usize> {
    let mut sent = 0;
    for d in datagrams {
        match socket.try_send_to(&d.data, d.to) {
            Ok(_) => sent += 1,
            Err(error) if sent == 0 => return Err(error),
            Err(_) => break,
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sending socket the reactor has seen writable, as the driver's always has.
    async fn sender() -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        socket.writable().await.expect("writable");
        socket
    }

    async fn receiver() -> (UdpSocket, SocketAddr) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("addr");
        (socket, addr)
    }

    async fn receive(socket: &UdpSocket) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        let (n, _) = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            socket.recv_from(&mut buf),
        )
        .await
        .expect("a datagram arrives")
        .expect("recv");
        buf[..n].to_vec()
    }

    #[tokio::test]
    async fn every_queued_datagram_reaches_its_own_address_in_order() {
        let sender = sender().await;
        let (a, a_addr) = receiver().await;
        let (b, b_addr) = receiver().await;
        let batch = UdpBatch::default();
        // More than one system call's worth, alternating between two receivers.
        for i in 0..(PER_CALL as u32 + 10) {
            let to = if i % 2 == 0 { a_addr } else { b_addr };
            batch.push(PcId(1), to, BytesMut::from(&i.to_be_bytes()[..]));
        }
        let done = batch.flush(&sender);
        assert_eq!(
            done,
            Flushed {
                sent: PER_CALL + 10,
                dropped: vec![]
            }
        );
        assert!(batch.is_empty(), "a flush empties the queue");
        for i in (0..(PER_CALL as u32 + 10)).step_by(2) {
            assert_eq!(receive(&a).await, i.to_be_bytes());
            assert_eq!(receive(&b).await, (i + 1).to_be_bytes());
        }
    }

    #[tokio::test]
    async fn a_refused_datagram_is_skipped_and_the_rest_still_go() {
        let sender = sender().await;
        let (a, a_addr) = receiver().await;
        let batch = UdpBatch::default();
        batch.push(PcId(1), a_addr, BytesMut::from(&b"first"[..]));
        // An IPv6 destination on an IPv4 socket: the kernel refuses this one datagram.
        batch.push(
            PcId(2),
            "[::1]:9".parse().expect("addr"),
            BytesMut::from(&b"refused"[..]),
        );
        batch.push(PcId(1), a_addr, BytesMut::from(&b"last"[..]));
        let done = batch.flush(&sender);
        assert_eq!(
            done,
            Flushed {
                sent: 2,
                dropped: vec![(PcId(2), b"refused".len())]
            }
        );
        assert_eq!(receive(&a).await, b"first");
        assert_eq!(receive(&a).await, b"last");
    }
}
