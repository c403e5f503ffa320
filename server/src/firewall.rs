//! `rounds-server firewall`: the exact list of connections this configuration needs, for the
//! hospital's IT team to allow. Nothing else is ever contacted: no STUN, CDN or telemetry.

use serde::Serialize;

use crate::config::Config;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Who opens the connection: `clients → server` or `server → host`.
    pub direction: &'static str,
    pub host: String,
    pub port: u16,
    pub protocol: &'static str,
    pub purpose: String,
}

fn host_of(url: &str) -> (String, Option<u16>) {
    match url::Url::parse(url) {
        Ok(u) => (
            u.host_str().unwrap_or("?").to_owned(),
            u.port_or_known_default(),
        ),
        Err(_) => ("?".into(), None),
    }
}

/// Every rule the configuration needs, inbound first.
pub fn rules(config: &Config) -> Vec<Rule> {
    let (public_host, public_port) = host_of(&config.server.public_url);
    let http_port = public_port.unwrap_or(config.server.listen.port());
    let mut rules = vec![Rule {
        direction: "inbound",
        host: public_host.clone(),
        port: http_port,
        protocol: "tcp",
        purpose: if config.media.enabled && config.media.ice_tcp {
            "patient pages, REST API, signaling WebSocket (/rtc), and media over ICE-TCP when UDP is blocked".into()
        } else {
            "patient pages, REST API and signaling WebSocket (/rtc)".into()
        },
    }];
    if config.media.enabled && config.media.udp_enabled {
        rules.push(Rule {
            direction: "inbound",
            host: config.media_advertise_ip().to_string(),
            port: config.media.udp_listen.port(),
            protocol: "udp",
            purpose: "audio and video of every visit (one port for all participants)".into(),
        });
    }
    if let Some(email) = &config.email {
        rules.push(Rule {
            direction: "outbound",
            host: email.smtp_host.clone(),
            port: email.smtp_port,
            protocol: "tcp",
            purpose: "email invitations and reminders (SMTP)".into(),
        });
    }
    if let Some(sms) = &config.sms {
        let (host, port) = host_of(&sms.base_url);
        rules.push(Rule {
            direction: "outbound",
            host,
            port: port.unwrap_or(443),
            protocol: "tcp",
            purpose: "SMS invitations and reminders (HTTPS to the SMS provider)".into(),
        });
    }
    rules
}

/// The rules as an aligned table for a terminal.
pub fn table(rules: &[Rule]) -> String {
    let headers = ["DIRECTION", "HOST", "PORT", "PROTOCOL", "PURPOSE"];
    let rows: Vec<[String; 5]> = rules
        .iter()
        .map(|r| {
            [
                r.direction.into(),
                r.host.clone(),
                r.port.to_string(),
                r.protocol.into(),
                r.purpose.clone(),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == 4 {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers);
    for row in &rows {
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3], &row[4]]));
    }
    out.push_str(
        "\nNothing else: Rounds makes no other connections (no STUN, CDN or telemetry).\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_needs_one_tcp_and_one_udp_port() {
        let config = Config::default();
        let rules = rules(&config);
        assert_eq!(rules.len(), 2);
        assert_eq!((rules[0].protocol, rules[0].port), ("tcp", 8080));
        assert_eq!((rules[1].protocol, rules[1].port), ("udp", 3478));
        assert!(table(&rules).contains("ICE-TCP"));
    }

    #[test]
    fn tcp_only_media_drops_the_udp_rule_and_notifications_add_outbound_rules() {
        let mut config: Config = toml::from_str(
            "[server]\npublic_url = \"https://visits.example.org\"\n[media]\nudp_enabled = false\n\
             [sms]\naccount_sid = \"AC1\"\nauth_token = \"t\"\nfrom = \"+15550001111\"\n\
             [email]\nsmtp_host = \"smtp.example.org\"\nsmtp_port = 587\nfrom = \"v@example.org\"\n",
        )
        .unwrap();
        config.server.listen = "0.0.0.0:443".parse().unwrap();
        let rules = rules(&config);
        assert_eq!(rules[0].port, 443);
        assert!(rules.iter().all(|r| r.protocol != "udp"));
        assert!(
            rules
                .iter()
                .any(|r| r.host == "api.twilio.com" && r.port == 443 && r.direction == "outbound")
        );
        assert!(
            rules
                .iter()
                .any(|r| r.host == "smtp.example.org" && r.port == 587)
        );
    }
}
