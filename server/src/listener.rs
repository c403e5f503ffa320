//! The one TCP listener. Each connection's first byte says what it is: an ASCII letter starts
//! an HTTP request (pages, API, the `/rtc` WebSocket); anything else is ICE-TCP media framing
//! (RFC 4571) and goes to the SFU. `0x16` would be a TLS handshake, which this server does not
//! terminate itself yet (DESIGN §6; see docs/ports.md).

use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use crate::sfu::Sfu;

/// How long a new connection may stay silent before it is dropped.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(15);

/// What a connection's first byte says it is.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    Http,
    Tls,
    IceTcp,
}

pub fn classify(first: u8) -> Kind {
    match first {
        b'A'..=b'Z' | b'a'..=b'z' => Kind::Http,
        0x16 => Kind::Tls,
        _ => Kind::IceTcp,
    }
}

/// Accepts connections until `shutdown` resolves, then waits briefly for open requests.
pub async fn run(
    listener: TcpListener,
    app: Router,
    sfu: Option<Sfu>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (app, sfu, builder, watcher) = (
            app.clone(),
            sfu.clone(),
            builder.clone(),
            graceful.watcher(),
        );
        // Classify off the accept loop: a client that connects and says nothing must not
        // hold up everyone behind it.
        tokio::spawn(async move {
            let Some(first) = peek_first(&stream).await else {
                return;
            };
            match classify(first) {
                Kind::Http => {
                    let service =
                        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                            let mut req = req.map(axum::body::Body::new);
                            req.extensions_mut().insert(ConnectInfo(remote));
                            app.clone().oneshot(req)
                        });
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                }
                Kind::IceTcp => match sfu {
                    Some(sfu) => sfu.serve_ice_tcp(stream, Vec::new()).await,
                    None => {
                        metrics::counter!("rounds_tcp_refused_total", "kind" => "ice").increment(1)
                    }
                },
                Kind::Tls => {
                    metrics::counter!("rounds_tcp_refused_total", "kind" => "tls").increment(1);
                    tracing::debug!(%remote, "TLS connection refused: terminate TLS in front of rounds-server");
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("some connections were still open at shutdown");
        }
    }
}

/// The first byte of the connection, without consuming it; None if it never comes.
async fn peek_first(stream: &TcpStream) -> Option<u8> {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(FIRST_BYTE_TIMEOUT, stream.peek(&mut byte)).await {
        Ok(Ok(1)) => Some(byte[0]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_are_told_apart() {
        for method in [b'G', b'P', b'D', b'O', b'H'] {
            assert_eq!(classify(method), Kind::Http);
        }
        assert_eq!(classify(0x16), Kind::Tls);
        // RFC 4571 frames start with a 16-bit length: a STUN binding request of 20-1500 bytes
        // begins 0x00 or 0x05.
        assert_eq!(classify(0x00), Kind::IceTcp);
        assert_eq!(classify(0x05), Kind::IceTcp);
    }
}
