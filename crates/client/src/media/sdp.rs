//! The little SDP reading the client needs, on the text itself.

use std::collections::HashMap;

/// The value of `a=<name>:` lines, in order.
fn attributes<'a>(sdp: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    sdp.lines().filter_map(move |line| {
        let value = line.trim_end().strip_prefix("a=")?.strip_prefix(name)?;
        value.strip_prefix(':').map(str::trim)
    })
}

/// The DTLS fingerprint (without the hash name): a different one means the other side
/// started a new connection.
pub(crate) fn fingerprint(sdp: &str) -> Option<String> {
    attributes(sdp, "fingerprint").next().map(|v| {
        v.split_whitespace()
            .last()
            .unwrap_or(v)
            .to_ascii_uppercase()
    })
}

/// The first `a=mid:`, for candidates (with BUNDLE they apply to every section).
pub(crate) fn first_mid(sdp: &str) -> Option<String> {
    attributes(sdp, "mid").next().map(str::to_owned)
}

/// Track id (the second `msid` token) to the mid of its media section.
pub(crate) fn mids_by_track(sdp: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for section in sdp.split("\nm=").skip(1) {
        let mid = attributes(section, "mid").next();
        let track = attributes(section, "msid")
            .next()
            .and_then(|v| v.split_whitespace().nth(1));
        if let (Some(mid), Some(track)) = (mid, track) {
            out.insert(track.to_owned(), mid.to_owned());
        }
    }
    out
}

/// Passive ICE-TCP candidates (`a=candidate:... tcp ... tcptype passive`) as candidate lines.
/// The `webrtc` 0.21 client only dials a passive candidate handed to `add_ice_candidate`,
/// never one it reads in a remote description.
pub(crate) fn passive_tcp_candidates(sdp: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in sdp.lines() {
        let Some(candidate) = line.trim().strip_prefix("a=") else {
            continue;
        };
        let fields: Vec<&str> = candidate.split_whitespace().collect();
        let is_tcp = fields.get(2).is_some_and(|p| p.eq_ignore_ascii_case("tcp"));
        let passive = fields
            .windows(2)
            .any(|w| w[0] == "tcptype" && w[1] == "passive");
        if candidate.starts_with("candidate:")
            && is_tcp
            && passive
            && !out.iter().any(|c| c == candidate)
        {
            out.push(candidate.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=fingerprint:sha-256 ab:cd:ef\r\na=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=msid:me mic-1\r\n\
a=candidate:1 1 udp 2130706431 127.0.0.1 3478 typ host\r\n\
a=candidate:2 1 tcp 1671430143 127.0.0.1 8080 typ host tcptype passive\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=msid:me cam-1\r\n\
a=candidate:2 1 tcp 1671430143 127.0.0.1 8080 typ host tcptype passive\r\n";

    #[test]
    fn reads_what_the_client_needs() {
        assert_eq!(fingerprint(OFFER).as_deref(), Some("AB:CD:EF"));
        assert_eq!(first_mid(OFFER).as_deref(), Some("0"));
        let mids = mids_by_track(OFFER);
        assert_eq!(mids.get("mic-1").map(String::as_str), Some("0"));
        assert_eq!(mids.get("cam-1").map(String::as_str), Some("1"));
        let tcp = passive_tcp_candidates(OFFER);
        assert_eq!(
            tcp,
            vec!["candidate:2 1 tcp 1671430143 127.0.0.1 8080 typ host tcptype passive"]
        );
    }
}
