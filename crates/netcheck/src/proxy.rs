//! The system HTTP(S) proxy, as `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (or
//! their lower-case forms) describe it, and tunnelling a TCP connection through it with HTTP
//! `CONNECT`. Reading the variables is the caller's business: [`ProxySettings::from_vars`]
//! takes a lookup function, so this library never reads the environment itself.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

/// Which proxy, if any, to use for which URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {
    /// For `https://` and `wss://` URLs.
    pub https: Option<Url>,
    /// For `http://` and `ws://` URLs.
    pub http: Option<Url>,
    /// Hosts reached directly (the `NO_PROXY` list).
    pub no_proxy: Vec<NoProxyRule>,
}

/// One entry of `NO_PROXY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoProxyRule {
    /// `*`: no proxy for anything.
    Everything,
    /// A host name: itself and every name under it (`example.org` and `.example.org` both
    /// match `rounds.example.org`).
    Domain(String),
    /// An address, or a network in CIDR notation.
    Network { addr: IpAddr, prefix: u8 },
}

impl ProxySettings {
    /// No proxy at all.
    pub fn direct() -> Self {
        Self::default()
    }

    /// The settings the usual variables describe. `get("HTTPS_PROXY")` and so on; both upper
    /// and lower case are asked, lower case first, as curl does. A variable that is not a URL
    /// is reported, so a mistyped proxy is not silently bypassed.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, ProxyError> {
        let var = |name: &str| {
            get(&name.to_ascii_lowercase())
                .or_else(|| get(name))
                .filter(|v| !v.trim().is_empty())
        };
        let parse = |name: &str| -> Result<Option<Url>, ProxyError> {
            match var(name) {
                None => Ok(None),
                Some(value) => {
                    parse_proxy_url(&value)
                        .map(Some)
                        .ok_or_else(|| ProxyError::BadSetting {
                            name: name.to_owned(),
                            value,
                        })
                }
            }
        };
        let all = parse("ALL_PROXY")?;
        Ok(ProxySettings {
            https: parse("HTTPS_PROXY")?.or_else(|| all.clone()),
            http: parse("HTTP_PROXY")?.or(all),
            no_proxy: var("NO_PROXY")
                .map(|v| parse_no_proxy(&v))
                .unwrap_or_default(),
        })
    }

    /// The proxy for `url`, or `None` to connect directly.
    pub fn for_url(&self, url: &Url) -> Option<&Url> {
        let proxy = match url.scheme() {
            "https" | "wss" => self.https.as_ref(),
            "http" | "ws" => self.http.as_ref(),
            _ => None,
        }?;
        let host = url.host_str()?;
        if self.bypasses(host) {
            return None;
        }
        Some(proxy)
    }

    fn bypasses(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip: Option<IpAddr> = host.parse().ok();
        let host = host.to_ascii_lowercase();
        self.no_proxy.iter().any(|rule| match rule {
            NoProxyRule::Everything => true,
            NoProxyRule::Domain(domain) => {
                host == *domain
                    || host
                        .strip_suffix(domain.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            }
            NoProxyRule::Network { addr, prefix } => {
                ip.is_some_and(|ip| in_network(ip, *addr, *prefix))
            }
        })
    }
}

fn parse_proxy_url(value: &str) -> Option<Url> {
    let value = value.trim();
    // curl and most tools take `host:port` to mean an HTTP proxy.
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    let url = Url::parse(&with_scheme).ok()?;
    (url.scheme() == "http" && url.host_str().is_some()).then_some(url)
}

fn parse_no_proxy(value: &str) -> Vec<NoProxyRule> {
    value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            if entry == "*" {
                return NoProxyRule::Everything;
            }
            let (addr, prefix) = match entry.split_once('/') {
                Some((a, p)) => (a, p.parse::<u8>().ok()),
                None => (entry, None),
            };
            let bare = addr.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = bare.parse::<IpAddr>() {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                return NoProxyRule::Network {
                    addr: ip,
                    prefix: prefix.unwrap_or(max).min(max),
                };
            }
            // `host:port` entries: the port is not something we distinguish by.
            let host = entry.rsplit_once(':').map_or(entry, |(h, _)| h);
            NoProxyRule::Domain(host.trim_start_matches('.').to_ascii_lowercase())
        })
        .collect()
}

fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{name} is set to {value:?}, which is not an http:// proxy address")]
    BadSetting { name: String, value: String },
    #[error("could not reach the proxy at {proxy}: {source}")]
    Unreachable {
        proxy: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the proxy at {proxy} refused to connect to {target}: {status}")]
    Refused {
        proxy: String,
        target: String,
        status: String,
    },
    #[error("the proxy at {proxy} did not answer like an HTTP proxy")]
    NotAProxy { proxy: String },
}

/// Longest proxy answer to `CONNECT` we read before giving up on it.
const MAX_CONNECT_RESPONSE: usize = 8192;

/// Opens a TCP connection to `proxy` and asks it, with `CONNECT host:port`, for a tunnel to
/// `host:port`. The stream returned carries the tunnel.
pub async fn connect_via(
    proxy: &Url,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, ProxyError> {
    let proxy_name = proxy_display(proxy);
    let proxy_host = proxy.host_str().unwrap_or_default();
    let proxy_port = proxy.port_or_known_default().unwrap_or(80);
    let unreachable = |source: std::io::Error| ProxyError::Unreachable {
        proxy: proxy_name.clone(),
        source,
    };
    let mut stream = tokio::time::timeout(timeout, TcpStream::connect((proxy_host, proxy_port)))
        .await
        .map_err(|_| unreachable(std::io::ErrorKind::TimedOut.into()))?
        .map_err(unreachable)?;
    let _ = stream.set_nodelay(true);
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if !proxy.username().is_empty() {
        let user = percent_decode(proxy.username());
        let pass = percent_decode(proxy.password().unwrap_or_default());
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        // Read byte by byte up to the blank line: anything after it belongs to the tunnel.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < MAX_CONNECT_RESPONSE {
            if stream.read(&mut byte).await? == 0 {
                break;
            }
            head.push(byte[0]);
        }
        Ok::<_, std::io::Error>(head)
    };
    let head = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| unreachable(std::io::ErrorKind::TimedOut.into()))?
        .map_err(unreachable)?;
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or_default(), parts.next());
    if !version.starts_with("HTTP/") || !head.ends_with(b"\r\n\r\n") {
        return Err(ProxyError::NotAProxy { proxy: proxy_name });
    }
    match code {
        Some(code) if code.starts_with('2') => Ok(stream),
        _ => Err(ProxyError::Refused {
            proxy: proxy_name,
            target: authority,
            status: status_line
                .split_once(' ')
                .map_or(status_line, |(_, s)| s)
                .to_owned(),
        }),
    }
}

/// The proxy's address without its credentials, for messages.
pub fn proxy_display(proxy: &Url) -> String {
    let host = proxy.host_str().unwrap_or("?");
    match proxy.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> ProxySettings {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ProxySettings::from_vars(|name| vars.get(name).cloned()).expect("valid settings")
    }

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn each_scheme_uses_its_own_proxy() {
        let s = settings(&[
            ("HTTPS_PROXY", "http://secure-proxy:3128"),
            ("http_proxy", "plain-proxy:8080"),
        ]);
        let https = s
            .for_url(&url("https://rounds.example.org/"))
            .expect("proxied");
        assert_eq!(proxy_display(https), "secure-proxy:3128");
        let wss = s
            .for_url(&url("wss://rounds.example.org/rtc"))
            .expect("proxied");
        assert_eq!(proxy_display(wss), "secure-proxy:3128");
        let ws = s
            .for_url(&url("ws://rounds.example.org/rtc"))
            .expect("proxied");
        assert_eq!(proxy_display(ws), "plain-proxy:8080");
    }

    #[test]
    fn lower_case_wins_and_all_proxy_fills_in() {
        let s = settings(&[
            ("HTTPS_PROXY", "http://upper:1"),
            ("https_proxy", "http://lower:2"),
            ("ALL_PROXY", "http://all:3"),
        ]);
        assert_eq!(proxy_display(s.https.as_ref().expect("https")), "lower:2");
        assert_eq!(proxy_display(s.http.as_ref().expect("http")), "all:3");
        assert_eq!(settings(&[]), ProxySettings::direct());
    }

    #[test]
    fn no_proxy_matches_names_addresses_and_networks() {
        let s = settings(&[
            ("HTTPS_PROXY", "http://proxy:3128"),
            (
                "NO_PROXY",
                "localhost, .internal.example, 10.0.0.0/8, ::1, rounds.test:443",
            ),
        ]);
        let direct = |u: &str| s.for_url(&url(u)).is_none();
        assert!(direct("https://localhost/"));
        assert!(direct("https://video.internal.example/"));
        assert!(direct("https://internal.example/"));
        assert!(!direct("https://notinternal.example/"));
        assert!(direct("https://10.20.30.40/"));
        assert!(!direct("https://11.0.0.1/"));
        assert!(direct("https://[::1]:8443/"));
        assert!(direct("https://rounds.test/"));
        assert!(!direct("https://rounds.example.org/"));
        let all = settings(&[("HTTPS_PROXY", "http://proxy:3128"), ("no_proxy", "*")]);
        assert!(all.for_url(&url("https://anything/")).is_none());
    }

    #[test]
    fn a_proxy_that_is_not_a_url_is_reported() {
        let err = ProxySettings::from_vars(|n| (n == "HTTPS_PROXY").then(|| "socks5://x:1".into()))
            .expect_err("not supported");
        assert!(err.to_string().contains("HTTPS_PROXY"), "{err}");
    }

    #[tokio::test]
    async fn connect_tunnels_and_reports_refusals() {
        use tokio::net::TcpListener;
        // A proxy speaking the real CONNECT exchange: 200 for one target, 403 for others.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1024];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let reply = if req.starts_with("CONNECT allowed.test:443 HTTP/1.1\r\n")
                        && req.contains("Proxy-Authorization: Basic dXNlcjpwIHc=\r\n")
                    {
                        "HTTP/1.1 200 Connection established\r\n\r\nhello"
                    } else {
                        "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
                    };
                    let _ = s.write_all(reply.as_bytes()).await;
                });
            }
        });
        let proxy = url(&format!("http://user:p%20w@127.0.0.1:{port}"));
        let mut tunnel = connect_via(&proxy, "allowed.test", 443, Duration::from_secs(5))
            .await
            .expect("tunnel");
        let mut first = [0u8; 5];
        tunnel.read_exact(&mut first).await.expect("tunnel bytes");
        assert_eq!(
            &first, b"hello",
            "bytes after the proxy's answer belong to the tunnel"
        );
        let refused = connect_via(&proxy, "other.test", 443, Duration::from_secs(5))
            .await
            .expect_err("refused");
        assert!(refused.to_string().contains("403 Forbidden"), "{refused}");
        assert!(
            !refused.to_string().contains("p%20w"),
            "no credentials in messages"
        );
    }
}
