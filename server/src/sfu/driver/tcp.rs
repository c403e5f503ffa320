//! One ICE-TCP connection: RFC 4571 frames in, frames out.
//!
//! The connection is two small tasks so that a client that stops reading (a full send buffer)
//! cannot stall our reading of what it sends, and vice versa. Neither task decides anything:
//! frames go to the driver, which authenticates the connection on its first frame and closes it
//! by dropping its end of the `kill` channel (and of the writer queue). A framing error closes
//! the connection here and is reported as garbage.

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::framing::{FrameDecoder, frame};
use super::{ConnId, TcpInbound};

/// Frames queued for one connection before we start dropping them (media, not a file transfer:
/// late packets are worthless, and a stalled client must not grow our memory).
pub(crate) const WRITE_QUEUE: usize = 256;

const READ_CHUNK: usize = 4096;

pub(crate) async fn serve(
    stream: TcpStream,
    prefix: Vec<u8>,
    conn: ConnId,
    to_driver: mpsc::Sender<TcpInbound>,
    writes: mpsc::Receiver<Bytes>,
    kill: oneshot::Receiver<()>,
) {
    // Media is latency-sensitive; never wait to coalesce small frames.
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let writer_task = tokio::spawn(write_loop(writer, writes));

    let garbage = read_loop(&mut reader, prefix, conn, &to_driver, kill).await;
    writer_task.abort();
    let _ = to_driver.send(TcpInbound::Closed { conn, garbage }).await;
}

/// Returns `true` if the connection ended because it sent something that is not RFC 4571.
async fn read_loop(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    prefix: Vec<u8>,
    conn: ConnId,
    to_driver: &mpsc::Sender<TcpInbound>,
    mut kill: oneshot::Receiver<()>,
) -> bool {
    let mut decoder = FrameDecoder::new();
    decoder.extend(&prefix);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    if to_driver
                        .send(TcpInbound::Frame { conn, frame })
                        .await
                        .is_err()
                    {
                        return false;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::debug!(conn = conn.0, %error, "closing ICE-TCP connection: bad framing");
                    return true;
                }
            }
        }
        tokio::select! {
            // The driver dropped its end: it rejected or no longer needs this connection.
            _ = &mut kill => return false,
            read = reader.read(&mut buf) => match read {
                Ok(0) | Err(_) => return false,
                Ok(n) => decoder.extend(&buf[..n]),
            },
        }
    }
}

async fn write_loop(
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    mut writes: mpsc::Receiver<Bytes>,
) {
    while let Some(payload) = writes.recv().await {
        let Some(framed) = frame(&payload) else {
            continue;
        };
        if writer.write_all(&framed).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}
