//! Why a connection failed, read from an error chain, and the sentences that say so: what
//! happened, and what to ask IT to open. The wording lives here, apart from the I/O, so the
//! desktop app and the command line say the same thing and tests can read it.

use std::error::Error;
use std::io::ErrorKind;

/// The kinds of failure a person can act on differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The name did not resolve.
    Dns,
    /// The host answered that nothing listens there (TCP RST, ICMP port unreachable).
    Refused,
    /// No answer in time: usually a firewall dropping packets.
    Timeout,
    /// The network itself is unreachable from here.
    NoRoute,
    /// TLS failed: often a proxy inspecting HTTPS with a certificate this machine lacks.
    Certificate,
    /// Something else; the error's own words say what.
    Other,
}

/// Reads the most specific cause out of an error and its sources.
pub(crate) fn classify(error: &(dyn Error + 'static)) -> Failure {
    let mut current: Option<&(dyn Error + 'static)> = Some(error);
    let mut text = String::new();
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            // An I/O error wrapping another keeps it out of the `source()` chain.
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                return Failure::Certificate;
            }
            match io.kind() {
                ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset => {
                    return Failure::Refused;
                }
                ErrorKind::TimedOut => return Failure::Timeout,
                ErrorKind::NetworkUnreachable | ErrorKind::HostUnreachable => {
                    return Failure::NoRoute;
                }
                _ => {}
            }
        }
        if e.downcast_ref::<rustls::Error>().is_some() {
            return Failure::Certificate;
        }
        text.push_str(&e.to_string().to_ascii_lowercase());
        text.push(' ');
        current = e.source();
    }
    if text.contains("dns error")
        || text.contains("failed to lookup")
        || text.contains("name or service not known")
    {
        Failure::Dns
    } else if text.contains("certificate") || text.contains("invalid peer") {
        Failure::Certificate
    } else if text.contains("timed out") {
        Failure::Timeout
    } else {
        Failure::Other
    }
}

/// The innermost message of an error chain: usually the one that names the actual problem.
pub(crate) fn root_message(error: &(dyn Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// "TCP port 443 to rounds.example.org", for sentences.
pub(crate) fn port_phrase(protocol: &str, host: &str, port: u16) -> String {
    format!("{protocol} port {port} to {host}")
}

/// What happened when connecting to `what` (a host and port) failed with `failure`.
pub(crate) fn detail(failure: Failure, what: &str, message: &str) -> String {
    match failure {
        Failure::Dns => format!("The name in {what} could not be looked up ({message})."),
        Failure::Refused => format!(
            "{what} refused the connection: nothing is listening there, or a firewall rejected it."
        ),
        Failure::Timeout => {
            format!("No answer from {what} in time: a firewall is probably dropping the traffic.")
        }
        Failure::NoRoute => format!("This computer has no route to {what} ({message})."),
        Failure::Certificate => format!("The secure connection to {what} failed: {message}."),
        Failure::Other => format!("Connecting to {what} failed: {message}."),
    }
}

/// What to ask for when opening `opening` (see [`port_phrase`]) failed with `failure`.
pub(crate) fn advice(failure: Failure, opening: &str) -> String {
    match failure {
        Failure::Dns => "Check the server address; if it is right, ask IT why this network cannot look the name up.".into(),
        Failure::Certificate => "If this network inspects HTTPS, ask IT to install its certificate in this computer's certificate store; otherwise check the server's certificate.".into(),
        Failure::Refused => format!("Check that the server address is right and Rounds is running there; if it is, ask IT to allow outbound {opening}."),
        Failure::Timeout | Failure::NoRoute | Failure::Other => format!("Ask IT to allow outbound {opening}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(std::io::Error);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("error sending request")
        }
    }
    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn finds_the_cause_inside_a_chain() {
        let refused = Wrapper(ErrorKind::ConnectionRefused.into());
        assert_eq!(classify(&refused), Failure::Refused);
        let timeout = Wrapper(ErrorKind::TimedOut.into());
        assert_eq!(classify(&timeout), Failure::Timeout);
        let dns = Wrapper(std::io::Error::other(
            "dns error: failed to lookup address information",
        ));
        assert_eq!(classify(&dns), Failure::Dns);
        assert_eq!(
            root_message(&dns),
            "dns error: failed to lookup address information"
        );
        let tls = Wrapper(std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        )));
        assert_eq!(classify(&tls), Failure::Certificate);
    }

    #[test]
    fn advice_names_the_port_to_open() {
        let opening = port_phrase("UDP", "203.0.113.5", 3478);
        assert_eq!(
            advice(Failure::Timeout, &opening),
            "Ask IT to allow outbound UDP port 3478 to 203.0.113.5."
        );
        assert!(advice(Failure::Refused, &opening).contains("Rounds is running"));
        assert!(advice(Failure::Certificate, &opening).contains("certificate store"));
    }
}
