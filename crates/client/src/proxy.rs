//! The HTTP proxy between a workstation and the Rounds server, for the signaling WebSocket.
//!
//! Hospitals publish their proxy the way curl and reqwest read it: `https_proxy` for
//! `https`/`wss` addresses, `http_proxy` for `http`/`ws` ones, `all_proxy` for both, and
//! `no_proxy` for the hosts reached directly (either case of each name). [`ProxyConfig`]
//! holds that decision as data, so the REST client and the WebSocket take the same route;
//! the application reads the variables once ([`ProxyConfig::from_vars`]).
//!
//! The WebSocket goes through the proxy as browsers send it: an HTTP `CONNECT` tunnel to the
//! server's host and port, then TLS (for `wss`) and the WebSocket handshake inside it. Only
//! `http://` proxies are supported (with `user:password@` for Basic authentication).

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

use crate::ClientError;

/// Which proxy, if any, each kind of address goes through.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    /// For `https` and `wss` addresses.
    pub https: Option<Url>,
    /// For `http` and `ws` addresses.
    pub http: Option<Url>,
    /// Hosts reached directly.
    pub no_proxy: NoProxy,
}

impl std::fmt::Debug for ProxyConfig {
    /// Never prints a proxy's password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("https", &self.https.as_ref().map(redacted))
            .field("http", &self.http.as_ref().map(redacted))
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

/// A proxy address without its credentials, for logs and messages.
pub fn redacted(proxy: &Url) -> String {
    format!(
        "{}://{}:{}",
        proxy.scheme(),
        proxy.host_str().unwrap_or("?"),
        proxy.port_or_known_default().unwrap_or(0)
    )
}

impl ProxyConfig {
    /// Every connection goes directly.
    pub fn direct() -> ProxyConfig {
        ProxyConfig::default()
    }

    /// One proxy for every address.
    pub fn all(proxy: Url) -> ProxyConfig {
        ProxyConfig {
            https: Some(proxy.clone()),
            http: Some(proxy),
            no_proxy: NoProxy::default(),
        }
    }

    /// Reads `https_proxy`, `http_proxy`, `all_proxy` and `no_proxy` (lower case first, then
    /// upper case) through `var`. An empty variable is unset. A proxy address that cannot be
    /// used is an error that names the variable.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<ProxyConfig, ClientError> {
        let read = |name: &str| {
            var(name)
                .or_else(|| var(&name.to_ascii_uppercase()))
                .filter(|v| !v.trim().is_empty())
                .map(|v| (name.to_owned(), v))
        };
        let parse = |found: Option<(String, String)>| -> Result<Option<Url>, ClientError> {
            found
                .map(|(name, value)| parse_proxy(&value).map_err(|e| e.in_variable(&name)))
                .transpose()
        };
        let all = parse(read("all_proxy"))?;
        Ok(ProxyConfig {
            https: parse(read("https_proxy"))?.or_else(|| all.clone()),
            http: parse(read("http_proxy"))?.or(all),
            no_proxy: read("no_proxy")
                .map(|(_, v)| NoProxy::parse(&v))
                .unwrap_or_default(),
        })
    }

    /// The proxy for `target`, or `None` to connect directly.
    pub fn for_url(&self, target: &Url) -> Option<&Url> {
        let proxy = match target.scheme() {
            "https" | "wss" => self.https.as_ref(),
            "http" | "ws" => self.http.as_ref(),
            _ => None,
        }?;
        let host = target.host_str()?;
        (!self.no_proxy.matches(host)).then_some(proxy)
    }
}

/// A problem with a proxy address.
#[derive(Debug)]
struct BadProxy(String);

impl BadProxy {
    fn in_variable(self, name: &str) -> ClientError {
        ClientError::Config(format!("{name}: {}", self.0))
    }
}

/// A proxy address as people write it: `http://host:port`, or just `host:port`.
fn parse_proxy(text: &str) -> Result<Url, BadProxy> {
    let text = text.trim();
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let url = Url::parse(&with_scheme).map_err(|_| {
        BadProxy(format!(
            "\"{text}\" is not a proxy address like http://proxy.example:3128"
        ))
    })?;
    if url.scheme() != "http" {
        return Err(BadProxy(format!(
            "{}:// proxies are not supported; Rounds uses an HTTP proxy (http://host:port)",
            url.scheme()
        )));
    }
    if url.host_str().is_none() {
        return Err(BadProxy(format!("\"{text}\" names no proxy host")));
    }
    Ok(url)
}

/// The hosts that bypass the proxy, as `no_proxy` lists them: `*` (everything), host names
/// and domain suffixes (`example.org` and `.example.org` both match `a.example.org`), IP
/// addresses and networks (`10.0.0.0/8`). A `:port` on an entry is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    everything: bool,
    domains: Vec<String>,
    networks: Vec<(IpAddr, u8)>,
}

impl NoProxy {
    pub fn parse(list: &str) -> NoProxy {
        let mut out = NoProxy::default();
        for entry in list
            .split([',', ' '])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            if entry == "*" {
                out.everything = true;
                continue;
            }
            if let Some((ip, bits)) = entry.split_once('/')
                && let (Ok(ip), Ok(bits)) = (
                    ip.trim_matches(['[', ']']).parse::<IpAddr>(),
                    bits.parse::<u8>(),
                )
            {
                out.networks.push((ip, bits));
                continue;
            }
            let bare = entry.trim_start_matches('[');
            if let Some(end) = bare.find(']') {
                // [v6] or [v6]:port
                if let Ok(ip) = bare[..end].parse::<IpAddr>() {
                    out.networks.push((ip, full_bits(ip)));
                }
                continue;
            }
            if let Ok(ip) = entry.parse::<IpAddr>() {
                out.networks.push((ip, full_bits(ip)));
                continue;
            }
            let host = entry.rsplit_once(':').map_or(entry, |(h, _)| h);
            if let Ok(ip) = host.parse::<IpAddr>() {
                out.networks.push((ip, full_bits(ip)));
                continue;
            }
            out.domains.push(
                host.trim_start_matches("*.")
                    .trim_start_matches('.')
                    .to_ascii_lowercase(),
            );
        }
        out
    }

    /// `*` was listed: every host is reached directly.
    pub fn everything(&self) -> bool {
        self.everything
    }

    /// The host names and domain suffixes listed, lower case, without a leading `.`.
    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// The addresses and networks listed, each with its prefix length.
    pub fn networks(&self) -> &[(IpAddr, u8)] {
        &self.networks
    }

    /// Whether `host` (a name or an address, as a URL carries it) is reached directly.
    pub fn matches(&self, host: &str) -> bool {
        if self.everything {
            return true;
        }
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self
                .networks
                .iter()
                .any(|&(net, bits)| in_network(ip, net, bits));
        }
        let host = host.trim_end_matches('.');
        self.domains.iter().any(|d| {
            host == d
                || (host.len() > d.len()
                    && host.ends_with(d.as_str())
                    && host.as_bytes()[host.len() - d.len() - 1] == b'.')
        })
    }
}

fn full_bits(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let bits = u32::from(bits.min(32));
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let bits = u32::from(bits.min(128));
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// The longest proxy reply to `CONNECT` we read before giving up on it.
const MAX_REPLY: usize = 16 * 1024;

/// Opens a `CONNECT` tunnel through `proxy` to `target`'s host and port. What is sent next
/// on the stream (TLS, the WebSocket handshake) reaches the server.
pub(crate) async fn tunnel(
    proxy: &Url,
    target: &Url,
    timeout: Duration,
) -> Result<TcpStream, ClientError> {
    let host = target
        .host_str()
        .ok_or_else(|| ClientError::Config("the server address has no host".into()))?;
    let port = target
        .port_or_known_default()
        .ok_or_else(|| ClientError::Config("the server address has no port".into()))?;
    let authority = match target.host() {
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]:{port}"),
        _ => format!("{host}:{port}"),
    };
    let proxy_host = proxy
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_owned();
    let proxy_port = proxy.port_or_known_default().unwrap_or(80);
    let refused = |why: String| {
        ClientError::Connect(format!(
            "the proxy {} did not open a tunnel to {authority}: {why}",
            redacted(proxy)
        ))
    };
    tokio::time::timeout(timeout, async {
        let mut stream = TcpStream::connect((proxy_host.as_str(), proxy_port))
            .await
            .map_err(|e| refused(format!("cannot reach the proxy ({e})")))?;
        let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if !proxy.username().is_empty() {
            let user = percent_decode(proxy.username());
            let password = percent_decode(proxy.password().unwrap_or_default());
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request.push_str(&format!("Proxy-Authorization: Basic {basic}\r\n"));
        }
        request.push_str(concat!(
            "User-Agent: rounds-client/",
            env!("CARGO_PKG_VERSION"),
            "\r\n\r\n"
        ));
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| refused(e.to_string()))?;
        // Byte by byte up to the blank line: nothing after it belongs to the proxy.
        let mut reply = Vec::new();
        while !reply.ends_with(b"\r\n\r\n") {
            if reply.len() >= MAX_REPLY {
                return Err(refused("its answer is too long".into()));
            }
            let byte = stream
                .read_u8()
                .await
                .map_err(|_| refused("it closed the connection".into()))?;
            reply.push(byte);
        }
        let status_line = String::from_utf8_lossy(&reply);
        let status_line = status_line.lines().next().unwrap_or_default();
        let code = status_line.split_whitespace().nth(1).unwrap_or_default();
        if !code.starts_with('2') {
            return Err(refused(format!("it answered \"{}\"", status_line.trim())));
        }
        Ok(stream)
    })
    .await
    .map_err(|_| ClientError::Timeout("the proxy tunnel"))?
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn variables_choose_the_proxy_per_scheme() {
        let cfg = ProxyConfig::from_vars(vars(&[
            ("HTTPS_PROXY", "proxy.example:3128"),
            ("http_proxy", "http://plain.example:8080"),
            ("NO_PROXY", "localhost,.internal.example,10.0.0.0/8,[::1]"),
        ]))
        .unwrap();
        let via = |u: &str| cfg.for_url(&url(u)).map(redacted);
        assert_eq!(
            via("wss://rounds.example/rtc").as_deref(),
            Some("http://proxy.example:3128")
        );
        assert_eq!(
            via("https://rounds.example/").as_deref(),
            Some("http://proxy.example:3128")
        );
        assert_eq!(
            via("ws://rounds.example/rtc").as_deref(),
            Some("http://plain.example:8080")
        );
        assert_eq!(via("wss://a.internal.example/rtc"), None);
        assert_eq!(via("wss://internal.example/rtc"), None);
        assert_eq!(
            via("wss://notinternal.example/rtc").as_deref(),
            Some("http://proxy.example:3128")
        );
        assert_eq!(via("wss://10.1.2.3/rtc"), None);
        assert_eq!(
            via("wss://11.1.2.3/rtc").as_deref(),
            Some("http://proxy.example:3128")
        );
        assert_eq!(via("ws://localhost:8080/rtc"), None);
        assert_eq!(via("ws://[::1]:8080/rtc"), None);
        // Loopback by address is not exempt unless listed, as with curl and reqwest.
        assert_eq!(
            via("ws://127.0.0.1:8080/rtc").as_deref(),
            Some("http://plain.example:8080")
        );
    }

    #[test]
    fn lower_case_wins_and_all_proxy_fills_in() {
        let cfg = ProxyConfig::from_vars(vars(&[
            ("https_proxy", "http://lower.example:1"),
            ("HTTPS_PROXY", "http://upper.example:2"),
            ("ALL_PROXY", "http://all.example:3"),
        ]))
        .unwrap();
        assert_eq!(
            cfg.https.as_ref().map(redacted).as_deref(),
            Some("http://lower.example:1")
        );
        assert_eq!(
            cfg.http.as_ref().map(redacted).as_deref(),
            Some("http://all.example:3")
        );
        assert_eq!(
            ProxyConfig::from_vars(vars(&[("HTTPS_PROXY", " ")])).unwrap(),
            ProxyConfig::direct()
        );
    }

    #[test]
    fn unusable_proxies_are_named() {
        let e =
            ProxyConfig::from_vars(vars(&[("HTTPS_PROXY", "socks5://proxy:1080")])).unwrap_err();
        assert!(
            e.to_string().contains("https_proxy") && e.to_string().contains("socks5"),
            "{e}"
        );
        let e = ProxyConfig::from_vars(vars(&[("http_proxy", "http://")])).unwrap_err();
        assert!(e.to_string().contains("http_proxy"), "{e}");
    }

    #[test]
    fn no_proxy_star_and_ports() {
        assert!(NoProxy::parse("*").matches("anything.example"));
        let n = NoProxy::parse("rounds.example:443, 192.168.1.5:8080");
        assert!(n.matches("rounds.example"));
        assert!(n.matches("192.168.1.5"));
        assert!(!n.matches("192.168.1.6"));
        assert!(!n.matches("example"));
    }

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let cfg = ProxyConfig::all(url("http://nurse:s3cret@proxy.example:3128"));
        let text = format!("{cfg:?}");
        assert!(
            !text.contains("s3cret") && !text.contains("nurse"),
            "{text}"
        );
        assert!(text.contains("proxy.example:3128"), "{text}");
        assert_eq!(percent_decode("p%40ss%3Aword"), "p@ss:word");
    }
}
