//! The command line: `serve` (default), `demo`, `migrate`, `token`, `firewall`, `audit verify`,
//! `keys rotate` and `clinician add`.

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
        rounds-server --config /etc/rounds.toml serve\n  rounds-server audit verify --data-dir /var/lib/rounds"
)]
pub struct Cli {
    #[command(flatten)]
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
