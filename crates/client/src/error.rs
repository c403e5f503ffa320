//! The client's error type.

use rounds_proto::{ErrorCode, ParticipantState};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The configuration cannot work; the message names the setting.
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The signaling WebSocket could not be opened or broke during the handshake.
    #[error("could not connect to the signaling server: {0}")]
    Connect(String),
    /// The server answered with a typed error (bad token, visit ended, ...).
    #[error("the server refused ({code:?}): {message}")]
    Refused { code: ErrorCode, message: String },
    /// The server said something this client does not understand at that point.
    #[error("signaling protocol error: {0}")]
    Protocol(String),
    /// Waited too long for something.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The participant was not (or is no longer) admitted: denied, removed or gone.
    #[error("not admitted: the participant is {}", .0.as_str())]
    NotAdmitted(ParticipantState),
    /// The signaling socket is down (a reconnect may be under way); try again.
    #[error("not connected to the signaling server")]
    NotConnected,
    /// The client has left or was shut down.
    #[error("the client is closed")]
    Closed,
    /// The WebRTC stack refused an operation.
    #[error("WebRTC: {0}")]
    WebRtc(String),
    /// Encoding or decoding failed.
    #[error("media: {0}")]
    Media(#[from] rounds_media::MediaError),
    /// A REST call failed; `detail` is the server's problem detail when it sent one.
    #[error("HTTP {status}: {detail}")]
    Api { status: u16, detail: String },
    /// A REST call did not reach the server.
    #[error("HTTP request failed: {0}")]
    Http(String),
}

impl From<webrtc::error::Error> for ClientError {
    fn from(e: webrtc::error::Error) -> Self {
        ClientError::WebRtc(e.to_string())
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        // Without the URL: join codes live in paths.
        ClientError::Http(e.without_url().to_string())
    }
}
