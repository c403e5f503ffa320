//! The signaling WebSocket: opening it, the `join` handshake, and encoding messages.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rounds_proto::{ClientMessage, MAX_SIGNAL_BYTES, PROTOCOL_VERSION, ServerMessage};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use url::Url;

use crate::ClientError;

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// rustls with the ring provider and the OS trust store, chosen explicitly so a process that
/// links several rustls crypto providers does not have to install a default one.
fn tls_connector() -> Result<Connector, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A certificate the store cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Connect(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Connector::Rustls(Arc::new(config)))
}

pub(crate) fn encode(message: &ClientMessage) -> Result<Message, ClientError> {
    let text = serde_json::to_string(message)
        .map_err(|e| ClientError::Protocol(format!("could not encode a message: {e}")))?;
    Ok(Message::Text(text.into()))
}

/// A text frame as a server message. Unknown messages are an error for the caller to log;
/// it names the message type and where parsing failed, never the values (chat text and
/// names are PHI, and serde quotes the offending value).
pub(crate) fn decode(text: &str) -> Result<ServerMessage, ClientError> {
    serde_json::from_str(text).map_err(|e| {
        let kind = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| {
                v.get("type")
                    .and_then(|t| t.as_str())
                    .map(|t| t.chars().take(40).collect::<String>())
            })
            .unwrap_or_else(|| "?".to_owned());
        ClientError::Protocol(format!(
            "unreadable server message of type {kind:?} ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

/// Opens the WebSocket (through the proxy `proxy` chooses for it, if any) and performs the
/// `join` handshake. Returns the socket and the server's `joined` message; a typed refusal
/// becomes [`ClientError::Refused`].
pub(crate) async fn connect_and_join(
    url: &Url,
    token: &str,
    resume: Option<String>,
    timeout: Duration,
    proxy: &crate::ProxyConfig,
) -> Result<(Ws, ServerMessage), ClientError> {
    tokio::time::timeout(timeout, async {
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_SIGNAL_BYTES * 4))
            .max_frame_size(Some(MAX_SIGNAL_BYTES * 4));
        let connector = if url.scheme() == "wss" {
            Some(tls_connector()?)
        } else {
            None
        };
        let (mut ws, _) = match proxy.for_url(url) {
            Some(via) => {
                let stream = crate::proxy::tunnel(via, url, timeout).await?;
                tracing::debug!(proxy = %crate::proxy::redacted(via), "signaling through the proxy");
                tokio_tungstenite::client_async_tls_with_config(
                    url.as_str(),
                    stream,
                    Some(config),
                    connector,
                )
                .await
            }
            None => {
                tokio_tungstenite::connect_async_tls_with_config(
                    url.as_str(),
                    Some(config),
                    true,
                    connector,
                )
                .await
            }
        }
        .map_err(|e| ClientError::Connect(e.to_string()))?;
        let join = ClientMessage::Join {
            v: PROTOCOL_VERSION,
            token: token.to_owned(),
            resume,
            prepare_media: false,
        };
        ws.send(encode(&join)?)
            .await
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        loop {
            let frame = ws
                .next()
                .await
                .ok_or_else(|| ClientError::Connect("the server closed during join".into()))?
                .map_err(|e| ClientError::Connect(e.to_string()))?;
            let text = match frame {
                Message::Text(text) => text,
                Message::Close(_) => {
                    return Err(ClientError::Connect("the server closed during join".into()));
                }
                _ => continue,
            };
            return match decode(&text)? {
                joined @ ServerMessage::Joined { .. } => Ok((ws, joined)),
                ServerMessage::Error { code, message } => {
                    Err(ClientError::Refused { code, message })
                }
                other => Err(ClientError::Protocol(format!(
                    "expected joined, got {}",
                    message_type(&other)
                ))),
            };
        }
    })
    .await
    .map_err(|_| ClientError::Timeout("the signaling handshake"))?
}

/// The `type` tag of a server message, for logs (never its contents).
pub(crate) fn message_type(message: &ServerMessage) -> &'static str {
    match message {
        ServerMessage::Joined { .. } => "joined",
        ServerMessage::Admitted { .. } => "admitted",
        ServerMessage::Denied { .. } => "denied",
        ServerMessage::Removed { .. } => "removed",
        ServerMessage::ParticipantJoined { .. } => "participant_joined",
        ServerMessage::ParticipantUpdated { .. } => "participant_updated",
        ServerMessage::ParticipantLeft { .. } => "participant_left",
        ServerMessage::LobbyUpdated { .. } => "lobby_updated",
        ServerMessage::Offer { .. } => "offer",
        ServerMessage::Answer { .. } => "answer",
        ServerMessage::Ice { .. } => "ice",
        ServerMessage::TrackPublished { .. } => "track_published",
        ServerMessage::TrackUnpublished { .. } => "track_unpublished",
        ServerMessage::DominantSpeaker { .. } => "dominant_speaker",
        ServerMessage::NetworkQuality { .. } => "network_quality",
        ServerMessage::Chat { .. } => "chat",
        ServerMessage::MuteRequested { .. } => "mute_requested",
        ServerMessage::RunningLate { .. } => "running_late",
        ServerMessage::VideoConstraints { .. } => "video_constraints",
        ServerMessage::VisitEnded { .. } => "visit_ended",
        ServerMessage::Error { .. } => "error",
        ServerMessage::Ping { .. } => "ping",
        ServerMessage::Pong { .. } => "pong",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rounds_proto::{IceCandidate, PcKind, Phi};

    #[test]
    fn messages_round_trip_with_browser_field_names() {
        let ice = ClientMessage::Ice {
            pc: PcKind::Publisher,
            candidate: IceCandidate {
                candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".into(),
                sdp_mid: Some("0".into()),
                sdp_mline_index: Some(0),
            },
        };
        let Message::Text(text) = encode(&ice).expect("encode") else {
            panic!("text frame")
        };
        assert!(
            text.contains(r#""type":"ice""#) && text.contains(r#""sdpMid":"0""#),
            "{text}"
        );
        let chat = ClientMessage::Chat {
            text: Phi::new("hello".into()),
            to: None,
        };
        let Message::Text(text) = encode(&chat).expect("encode") else {
            panic!("text frame")
        };
        assert!(text.contains(r#""text":"hello""#), "{text}");
        let ping = decode(r#"{"type":"ping","t":7}"#).expect("ping");
        assert!(matches!(ping, ServerMessage::Ping { t: 7 }));
        assert_eq!(message_type(&ping), "ping");
        assert!(decode(r#"{"type":"teleport"}"#).is_err());
        let err =
            decode(r#"{"type":"chat","message":{"text":"my secret"}}"#).expect_err("bad chat");
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(err.to_string().contains("\"chat\""), "{err}");
    }
}
