//! Reading the server's live queue feed (`GET /api/v1/events`, Server-Sent Events).

use std::time::Duration;

use rounds_proto::QueueEvent;

use crate::api::{ApiError, ServerApi};

/// If nothing at all arrives for this long (the server comments every 15 s), the
/// connection is dead: a laptop that slept, a proxy that dropped it. Reconnect.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(45);

/// An open feed.
pub struct FeedStream {
    res: reqwest::Response,
    buf: Vec<u8>,
}

impl ServerApi {
    /// Opens the feed with an access token.
    pub async fn open_feed(&self, access: &str) -> Result<FeedStream, ApiError> {
        let res = self
            .http()
            .get(self.url("/api/v1/events"))
            .bearer_auth(access)
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| {
                tracing::info!(error = %e, "queue feed: cannot connect");
                ApiError::new(
                    "unreachable",
                    "Cannot reach the Rounds server. Rounds keeps trying.",
                )
            })?;
        let status = res.status();
        if !status.is_success() {
            return Err(ApiError {
                status: Some(status.as_u16()),
                code: "feed-refused".into(),
                message: format!("The server refused the live queue ({status})."),
            });
        }
        Ok(FeedStream {
            res,
            buf: Vec::new(),
        })
    }
}

/// Why a feed ended.
#[derive(Debug)]
pub enum FeedEnd {
    /// The server closed it (the access token expired, or the server is stopping).
    Closed,
    /// Nothing arrived for [`IDLE_TIMEOUT`].
    Idle,
    /// The connection broke.
    Broken(String),
}

impl FeedStream {
    /// The next event; keep-alive comments and unknown events are skipped.
    pub async fn next(&mut self) -> Result<QueueEvent, FeedEnd> {
        loop {
            if let Some(block) = take_block(&mut self.buf) {
                if let Some(event) = parse_block(&block) {
                    return Ok(event);
                }
                continue;
            }
            match tokio::time::timeout(IDLE_TIMEOUT, self.res.chunk()).await {
                Err(_) => return Err(FeedEnd::Idle),
                Ok(Ok(Some(chunk))) => {
                    self.buf.extend_from_slice(&chunk);
                    if self.buf.len() > 1 << 20 {
                        return Err(FeedEnd::Broken("an event larger than 1 MiB".into()));
                    }
                }
                Ok(Ok(None)) => return Err(FeedEnd::Closed),
                Ok(Err(e)) => return Err(FeedEnd::Broken(e.to_string())),
            }
        }
    }
}

/// Removes and returns the first complete event block (up to a blank line).
fn take_block(buf: &mut Vec<u8>) -> Option<String> {
    let text = std::str::from_utf8(buf).ok()?;
    let (end, sep) = [("\n\n", 2), ("\r\n\r\n", 4)]
        .iter()
        .filter_map(|(pat, len)| text.find(pat).map(|i| (i, *len)))
        .min()?;
    let block = text[..end].to_owned();
    buf.drain(..end + sep);
    Some(block)
}

/// The event in one SSE block, if it carries a Rounds queue event.
fn parse_block(block: &str) -> Option<QueueEvent> {
    let mut data = String::new();
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    if data.is_empty() {
        return None;
    }
    match serde_json::from_str(&data) {
        Ok(e) => Some(e),
        Err(e) => {
            // A newer server may send events this app does not know; skip them.
            tracing::debug!(error = %e, "queue feed: skipped an unknown event");
            None
        }
    }
}

/// Waits before reconnect attempt `attempt` (0-based): 1, 2, 4, 8, 16, then 30 s, with
/// up to 20 % jitter so a hospital's worth of apps do not reconnect in step.
pub fn backoff(attempt: u32) -> Duration {
    let base = 1u64 << attempt.min(5);
    let secs = base.min(30) as f64;
    let jitter = 1.0 + rand::random::<f64>() * 0.2;
    Duration::from_secs_f64(secs * jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_split_and_comments_skipped() {
        let mut buf = b": keep-alive\n\nevent: patient_checked_in\ndata: {\"type\":\"patient_checked_in\",\"visit_id\":\"v1\"}\n\nevent: hel".to_vec();
        let first = take_block(&mut buf).unwrap();
        assert_eq!(parse_block(&first), None);
        let second = take_block(&mut buf).unwrap();
        assert_eq!(
            parse_block(&second),
            Some(QueueEvent::PatientCheckedIn {
                visit_id: "v1".into()
            })
        );
        assert_eq!(take_block(&mut buf), None, "an incomplete block waits");
        assert_eq!(buf, b"event: hel");
    }

    #[test]
    fn unknown_events_are_skipped() {
        assert_eq!(
            parse_block("event: x\ndata: {\"type\":\"from_the_future\"}"),
            None
        );
    }

    #[test]
    fn backoff_grows_to_thirty_seconds() {
        assert!(backoff(0) >= Duration::from_secs(1) && backoff(0) < Duration::from_secs(2));
        assert!(backoff(3) >= Duration::from_secs(8));
        assert!(backoff(10) >= Duration::from_secs(30) && backoff(10) <= Duration::from_secs(36));
    }
}
