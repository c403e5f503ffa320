//! The command line: `serve` (default), `demo`, `migrate`, `token`, `firewall`, `check`,
//! `audit verify`, `keys rotate` and `clinician add`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Overrides;

#[derive(Debug, Parser)]
#[command(
    name = "rounds-server",
    version,
    about = "The Rounds companion server: visits, waiting room, tokens, invitations and the audit log.",
    long_about = "The Rounds companion server.\n\nIt issues room-scoped access tokens, keeps visits, \
        invitations and a hash-chained audit log in an embedded SQLite database, and serves the \
        REST API and the patient pages.\n\nSettings come from a TOML file (--config, see \
        rounds.sample.toml), then ROUNDS_* environment variables, then flags.",
    after_help = "Examples:\n  rounds-server demo                      try it out on this machine\n  \
        rounds-server --config /etc/rounds.toml serve\n  \
        rounds-server check https://rounds.example.org   can this network reach it?\n  \
        rounds-server audit verify --data-dir /var/lib/rounds"
)]
pub struct Cli {
    // A heading of their own, so a command's own options (e.g. `check --json`) stand apart.
    #[command(flatten, next_help_heading = "Server settings")]
    pub overrides: Overrides,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default when no command is given).
    Serve,
    /// Run on this machine with a demo clinic, clinician and visit, and print how to use them.
    Demo {
        /// Time zone of the demo clinic (IANA name).
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        /// Also write a one-time `rounds://signin?...` link to this file (mode 0600), which
        /// signs the desktop app in to the demo clinician. It works once, for two minutes.
        #[arg(long, value_name = "FILE")]
        desktop_link: Option<std::path::PathBuf>,
    },
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Mint a room token for an existing visit (administrators and scripts).
    Token {
        /// The visit (room) id.
        #[arg(long)]
        room: String,
        /// provider, patient, guest or interpreter.
        #[arg(long, value_parser = ["provider", "patient", "guest", "interpreter"])]
        role: String,
        /// The name others will see.
        #[arg(long)]
        name: String,
        /// Lifetime in seconds (at most 14400).
        #[arg(long, default_value_t = 3600)]
        ttl: u32,
    },
    /// Print the exact list of hosts, ports and protocols to allow in firewalls.
    Firewall {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check, from this computer, every path a video visit needs to a Rounds server: the web
    /// port, the signaling WebSocket, media over UDP and the media fallback over TCP.
    #[command(
        long_about = "Check, from this computer, every path a video visit needs to a Rounds \
            server, and say what to ask IT to open for each one that fails.\n\n\
            It checks the web port (GET /healthz over HTTPS, or HTTP for a demo server), the \
            signaling WebSocket (/rtc), media over UDP (a STUN binding request to the media \
            port) and media over TCP (the same request as ICE-TCP on the web port), and prints \
            one line per path with its round-trip time.\n\n\
            Web and signaling go through the proxy in HTTPS_PROXY / HTTP_PROXY (ALL_PROXY, \
            NO_PROXY) when set, and trust this computer's certificate store; media connects \
            directly, as browsers and the desktop app do. Run it from the network people will \
            use, for example a clinician's computer. The server settings do not apply to it.",
        after_help = "Exit status:\n  \
            0  every path works\n  \
            1  video visits cannot work from here (web, signaling, or both media paths failed)\n  \
            2  the command was used wrongly (a bad address or proxy setting)\n  \
            3  visits work, but media only through the TCP fallback (UDP failed)\n\n\
            Examples:\n  \
            rounds-server check https://rounds.example.org\n  \
            rounds-server check --json rounds.example.org > check.json"
    )]
    Check {
        /// The server's address, e.g. https://rounds.example.org (a bare host name means HTTPS).
        url: String,
        /// Print the results as JSON on standard output (progress still goes to standard error).
        #[arg(long)]
        json: bool,
        /// Seconds each step may take before it counts as blocked.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
        timeout: u64,
    },
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Manage the token signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage clinician accounts.
    Clinician {
        #[command(subcommand)]
        command: ClinicianCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; names the first broken row. Exit status 1 when broken.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new signing key current. Tokens signed with the old key keep verifying until
    /// they expire. Restart the server afterwards.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum ClinicianCommand {
    /// Add a clinician with a local password (read from ROUNDS_NEW_PASSWORD or standard input).
    Add {
        /// The clinic's name; created if it does not exist.
        #[arg(long)]
        clinic: String,
        /// IANA time zone of a new clinic.
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        #[arg(long)]
        email: String,
        /// Name shown to patients, e.g. "Dr. Amara Okafor".
        #[arg(long)]
        name: String,
        /// File holding the password (otherwise ROUNDS_NEW_PASSWORD, then standard input).
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// The clinician's FHIR user in the hospital's EHR, e.g. Practitioner/123: finds the
        /// account on a first hospital sign-in when `oidc.match_claim = "fhir_user"`.
        #[arg(long)]
        fhir_user: Option<String>,
    },
}
