//! The media driver's demultiplexer: every UDP datagram to the media port and every RFC 4571
//! frame on an ICE-TCP connection is classified (STUN, DTLS, RTP/RTCP or garbage), matched to
//! a peer connection by ICE username fragment or remote address, and handed on or dropped.
//! Nothing anyone sends may panic the driver, and it must keep answering.
//!
//! The first byte chooses the path: even, the rest is a run of up to 32 UDP datagrams (each
//! one a length byte then that many bytes); odd, the rest is the byte stream of one ICE-TCP
//! connection. One publisher connection is set up first, so the driver has a route table to
//! search; the fuzzer does not learn its ICE credentials, so inputs stop at the
//! authentication check rather than reaching that connection's DTLS and SRTP.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rounds_fuzz::{block_on, sfu};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// Datagrams sent per input at most. A run of zero bytes is a run of empty datagrams, and
/// thousands of them reach no more code than a few: without a cap, most of the fuzzer's time
/// went to the kernel sending them.
const MAX_DATAGRAMS: usize = 32;

struct Sockets {
    udp: UdpSocket,
    listener: TcpListener,
}

fn sockets() -> &'static Sockets {
    static SOCKETS: OnceLock<Sockets> = OnceLock::new();
    SOCKETS.get_or_init(|| {
        block_on(async {
            let sfu = sfu();
            let offer = include_str!("../seeds/chrome-like-offer.sdp");
            let _ = sfu.publisher_answer(&"demux-peer".to_owned(), offer.to_owned()).await;
            let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("udp");
            udp.connect(sfu.udp_addr()).await.expect("connect");
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("tcp");
            Sockets { udp, listener }
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let sockets = sockets();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    block_on(async {
        let sfu = sfu();
        if mode % 2 == 0 {
            let mut rest = rest;
            let mut sent = 0;
            while let Some((&len, tail)) = rest.split_first()
                && sent < MAX_DATAGRAMS
            {
                sent += 1;
                let n = usize::from(len).min(tail.len());
                let _ = sockets.udp.send(&tail[..n]).await;
                rest = &tail[n..];
            }
        } else {
            let addr: SocketAddr = sockets.listener.local_addr().expect("addr");
            let (client, accepted) =
                tokio::join!(TcpStream::connect(addr), sockets.listener.accept());
            let (Ok(mut client), Ok((server_side, _))) = (client, accepted) else {
                return;
            };
            sfu.serve_ice_tcp(server_side, Vec::new()).await;
            let _ = client.write_all(rest).await;
            let _ = client.shutdown().await;
            // Until the driver closes its side (garbage, EOF or its deadline).
            let mut sink = [0u8; 1500];
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while client.read(&mut sink).await.is_ok_and(|n| n > 0) {}
            })
            .await;
        }
        // A round trip through the driver's command queue: it is still answering.
        let _ = sfu.stats(&"demux-peer".to_owned()).await;
    });
});
