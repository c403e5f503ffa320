//! The server's configuration: the only place settings are read.
//!
//! Layers, later ones winning: built-in defaults, a TOML file (`--config`, documented in
//! `rounds.sample.toml`), `ROUNDS_*` environment variables, then command-line flags.
//! [`Config::validate`] runs once at start and names every bad setting in a sentence.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rounds_notify::{EmailConfig, SmsConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub tokens: TokenConfig,
    pub visits: VisitConfig,
    pub limits: LimitConfig,
    pub media: MediaConfig,
    pub email: Option<EmailConfig>,
    pub sms: Option<SmsConfig>,
    /// Clinician sign-in with the hospital's identity provider (docs/sso.md).
    pub oidc: Option<OidcConfig>,
    /// SMART on FHIR: the EHRs allowed to launch Rounds (docs/ehr.md).
    pub ehr: EhrConfig,
}

/// SMART App Launch: Rounds as a confidential client of each allow-listed EHR.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EhrConfig {
    /// The EHRs allowed to launch Rounds; a launch from any other `iss` is refused.
    pub issuers: Vec<EhrIssuer>,
    /// How long a clinician has between the launch and the EHR's answer.
    pub launch_ttl_secs: u32,
    /// When a launched visit ends, set its Encounter's status to `finished` in the EHR.
    pub write_back_encounter_status: bool,
    /// Seconds Rounds waits for the EHR's servers on each request.
    pub http_timeout_secs: u32,
}

impl Default for EhrConfig {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            launch_ttl_secs: 600,
            write_back_encounter_status: false,
            http_timeout_secs: 10,
        }
    }
}

/// One EHR: its FHIR base URL (the `iss` of its launches) and Rounds' registration there.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EhrIssuer {
    /// The FHIR base URL, exactly as the EHR sends it in `iss`.
    pub iss: String,
    /// What clinicians call this EHR, on the app's "Start from the EHR" button. Default:
    /// the host of `iss`.
    #[serde(default)]
    pub name: Option<String>,
    pub client_id: String,
    /// The client secret, sent as `client_secret_basic`.
    pub client_secret: String,
    /// The EHR's users, by `fhirUser` (`Practitioner/123`, relative to `iss`), to the email of
    /// their pre-registered Rounds clinician account.
    #[serde(default)]
    pub clinicians: std::collections::BTreeMap<String, String>,
    /// Also accept the id_token's `email` claim as the clinician's Rounds email.
    #[serde(default)]
    pub match_email: bool,
}

impl EhrConfig {
    /// The allow-listed EHR with this `iss` (a trailing slash does not matter).
    pub fn issuer(&self, iss: &str) -> Option<&EhrIssuer> {
        let iss = iss.trim_end_matches('/');
        self.issuers
            .iter()
            .find(|i| i.iss.trim_end_matches('/') == iss)
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(30..=3600).contains(&self.launch_ttl_secs) {
            problems.push("ehr.launch_ttl_secs must be between 30 and 3600".into());
        }
        if !(1..=120).contains(&self.http_timeout_secs) {
            problems.push("ehr.http_timeout_secs must be between 1 and 120".into());
        }
        for (n, i) in self.issuers.iter().enumerate() {
            match url::Url::parse(&i.iss) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => problems.push(format!(
                    "ehr.issuers[{n}].iss \"{}\" must be the EHR's FHIR base URL (https://...)",
                    i.iss
                )),
            }
            if i.client_id.trim().is_empty() || i.client_secret.trim().is_empty() {
                problems.push(format!(
                    "ehr.issuers[{n}] needs the client_id and client_secret Rounds was registered with"
                ));
            }
        }
        problems
    }
}

/// The hospital's OpenID Connect provider. The desktop app runs the browser part (code
/// flow with PKCE and a loopback redirect); the server exchanges the code, checks the
/// id_token and maps the person to a clinician account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL; its `/.well-known/openid-configuration` is read from it.
    pub issuer: String,
    /// The client id IT registered for Rounds at the provider.
    pub client_id: String,
    /// Only for a confidential registration; better set with `ROUNDS_OIDC_CLIENT_SECRET`.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Scopes the app asks for; must include `openid`.
    #[serde(default = "OidcConfig::default_scopes")]
    pub scopes: Vec<String>,
    /// `registered`: only people whose account IT created may sign in. `auto`: a first
    /// sign-in creates the account in `auto_clinic`.
    #[serde(default)]
    pub provisioning: Provisioning,
    /// Which claim finds a person's Rounds account on their first sign-in; afterwards the
    /// account is linked to the provider's issuer and subject.
    #[serde(default)]
    pub match_claim: MatchClaim,
    /// The clinic new accounts join in `auto` mode; created if it does not exist.
    #[serde(default)]
    pub auto_clinic: Option<String>,
    /// IANA time zone of that clinic, when Rounds creates it.
    #[serde(default = "OidcConfig::default_time_zone")]
    pub auto_time_zone: String,
    /// Keep the email-and-password sign-in too. Off: only the identity provider signs in.
    #[serde(default = "OidcConfig::default_password_login")]
    pub password_login: bool,
}

impl OidcConfig {
    fn default_scopes() -> Vec<String> {
        ["openid", "email", "profile"].map(String::from).to_vec()
    }

    fn default_time_zone() -> String {
        "UTC".into()
    }

    fn default_password_login() -> bool {
        true
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provisioning {
    #[default]
    Registered,
    Auto,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchClaim {
    /// The `email` claim equals the account's email (unless `email_verified` is false).
    #[default]
    Email,
    /// The `fhirUser` claim equals the account's FHIR user (`clinician add --fhir-user`).
    FhirUser,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Carry audio and video through this server's SFU. Off: signaling and chat only.
    pub enabled: bool,
    /// The one UDP socket that carries media for every participant.
    pub udp_listen: SocketAddr,
    /// Also accept media over UDP. Off: media only over ICE-TCP on the HTTP port.
    pub udp_enabled: bool,
    /// Offer passive ICE-TCP on the HTTP listener's port, for networks that block UDP.
    pub ice_tcp: bool,
    /// The address clients reach the media ports at; defaults to the listen address, or
    /// the public URL's host when that is an IP address.
    pub advertise_ip: Option<std::net::IpAddr>,
    /// The video codec cameras are asked for in every visit: `vp8` (the default), or `h264`
    /// (packetization mode 1, constrained baseline) where endpoints need it.
    pub video_codec: VideoCodecSetting,
}

/// `media.video_codec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodecSetting {
    #[default]
    Vp8,
    H264,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            udp_listen: SocketAddr::from(([127, 0, 0, 1], 3478)),
            udp_enabled: true,
            ice_tcp: true,
            advertise_ip: None,
            video_codec: VideoCodecSetting::Vp8,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP listener binds.
    pub listen: SocketAddr,
    /// The URL people reach this server at; links in invitations are built from it.
    pub public_url: String,
    /// Log format: `text` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// The built patient web app (`npm run build` in `ui/`), relative to the current directory.
    pub ui_dir: PathBuf,
    /// Per-clinic check-in and waiting-room content (TOML); built-in wording when absent.
    /// Videos and captions it names are served from the folder this file is in.
    pub clinic_content: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Folder for the SQLite database and the token keys.
    pub data_dir: PathBuf,
    /// `full` syncs every commit to disk; `normal` survives process crashes but not power
    /// loss of the last commits.
    pub synchronous: Synchronous,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    Full,
    Normal,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// `iss` of every token; defaults to `server.public_url`.
    pub issuer: Option<String>,
    /// Lifetime of a clinician's API access token.
    pub access_ttl_secs: u32,
    /// Lifetime of a clinician's refresh token (each use rotates it).
    pub refresh_ttl_secs: u32,
    /// Lifetime of a provider's room token (at most 4 hours).
    pub provider_ttl_secs: u32,
    /// Lifetime of a patient's or guest's room token (at most 4 hours).
    pub participant_ttl_secs: u32,
    /// Make a new signing key after this many hours; 0 never rotates.
    pub rotate_after_hours: u32,
    /// Clock skew tolerated when checking `nbf` and `exp`.
    pub leeway_secs: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VisitConfig {
    pub default_duration_minutes: u32,
    /// Patient links keep working this long after the visit's scheduled end.
    pub link_grace_minutes: u32,
    /// Reminders go out this many minutes before the visit; 0 disables them.
    pub reminder_minutes: u32,
    /// How often the reminder worker looks for due reminders.
    pub reminder_poll_secs: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Login attempts per client address per minute.
    pub login_per_minute: u32,
    /// Join-link lookups per client address per minute.
    pub join_per_minute: u32,
    /// Tokens minted per client address per minute.
    pub token_per_minute: u32,
    /// Seconds a request may take before the server gives up on it.
    pub request_timeout_secs: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://127.0.0.1:8080".into(),
            log_format: LogFormat::Text,
            ui_dir: PathBuf::from("ui/dist"),
            clinic_content: None,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            synchronous: Synchronous::Full,
        }
    }
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 12 * 3600,
            provider_ttl_secs: 4 * 3600,
            participant_ttl_secs: 2 * 3600,
            rotate_after_hours: 24 * 7,
            leeway_secs: 30,
        }
    }
}

impl Default for VisitConfig {
    fn default() -> Self {
        Self {
            default_duration_minutes: 20,
            link_grace_minutes: 60,
            reminder_minutes: 15,
            reminder_poll_secs: 15,
        }
    }
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            login_per_minute: 10,
            join_per_minute: 30,
            token_per_minute: 120,
            request_timeout_secs: 30,
        }
    }
}

/// Command-line and environment overrides, applied over the file.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Overrides {
    /// TOML configuration file (see rounds.sample.toml).
    #[arg(long, short = 'c', env = "ROUNDS_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Folder for the database and token keys [default: ./data].
    #[arg(long, env = "ROUNDS_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:443 [default: 127.0.0.1:8080].
    #[arg(long, env = "ROUNDS_LISTEN", global = true)]
    pub listen: Option<SocketAddr>,
    /// The URL people use to reach this server, e.g. https://visits.example-hospital.org.
    #[arg(long, env = "ROUNDS_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// The UDP address for media, e.g. 0.0.0.0:3478 [default: 127.0.0.1:3478].
    #[arg(long, env = "ROUNDS_MEDIA_UDP", global = true)]
    pub media_udp: Option<SocketAddr>,
    /// SMS provider auth token (kept out of the config file).
    #[arg(
        long,
        env = "ROUNDS_SMS_AUTH_TOKEN",
        global = true,
        hide_env_values = true,
        hide = true
    )]
    pub sms_auth_token: Option<String>,
    /// SMTP password (kept out of the config file).
    #[arg(
        long,
        env = "ROUNDS_SMTP_PASSWORD",
        global = true,
        hide_env_values = true,
        hide = true
    )]
    pub smtp_password: Option<String>,
    /// OIDC client secret, for a confidential registration (kept out of the config file).
    #[arg(
        long,
        env = "ROUNDS_OIDC_CLIENT_SECRET",
        global = true,
        hide_env_values = true,
        hide = true
    )]
    pub oidc_client_secret: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "ROUNDS_LOG_FORMAT", global = true, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
    /// Folder of the built patient web app [default: ./ui/dist].
    #[arg(long, env = "ROUNDS_UI_DIR", global = true)]
    pub ui_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("the configuration is not valid:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

impl Config {
    /// Reads the file (if any), applies overrides, and validates.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut config = match &overrides.config {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        config.apply(overrides);
        config.validate()?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    pub fn apply(&mut self, o: &Overrides) {
        if let Some(dir) = &o.data_dir {
            self.storage.data_dir = dir.clone();
        }
        if let Some(listen) = o.listen {
            self.server.listen = listen;
            // A public URL left at its default follows the listen address.
            if self.server.public_url == ServerConfig::default().public_url
                && o.public_url.is_none()
            {
                self.server.public_url = format!("http://{listen}");
            }
        }
        if let Some(url) = &o.public_url {
            self.server.public_url = url.clone();
        }
        if let Some(udp) = o.media_udp {
            self.media.udp_listen = udp;
        }
        if let (Some(sms), Some(token)) = (self.sms.as_mut(), &o.sms_auth_token) {
            sms.auth_token = token.clone();
        }
        if let (Some(email), Some(password)) = (self.email.as_mut(), &o.smtp_password) {
            email.password = Some(password.clone());
        }
        if let (Some(oidc), Some(secret)) = (self.oidc.as_mut(), &o.oidc_client_secret) {
            oidc.client_secret = Some(secret.clone());
        }
        if let Some(dir) = &o.ui_dir {
            self.server.ui_dir = dir.clone();
        }
        if let Some(format) = &o.log_format {
            self.server.log_format = if format == "json" {
                LogFormat::Json
            } else {
                LogFormat::Text
            };
        }
    }

    /// The issuer (`iss`) of this server's tokens.
    pub fn issuer(&self) -> String {
        self.tokens
            .issuer
            .clone()
            .unwrap_or_else(|| self.public_url().to_owned())
    }

    /// The address put in media candidates.
    pub fn media_advertise_ip(&self) -> std::net::IpAddr {
        if let Some(ip) = self.media.advertise_ip {
            return ip;
        }
        if !self.media.udp_listen.ip().is_unspecified() {
            return self.media.udp_listen.ip();
        }
        url::Url::parse(&self.server.public_url)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .and_then(|h| h.trim_matches(['[', ']']).parse().ok())
            })
            .unwrap_or(self.server.listen.ip())
    }

    /// `server.public_url` without a trailing slash.
    pub fn public_url(&self) -> &str {
        self.server.public_url.trim_end_matches('/')
    }

    /// Checks every setting and reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        match url::Url::parse(&self.server.public_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => problems.push(format!(
                "server.public_url \"{}\" must be an http:// or https:// URL",
                self.server.public_url
            )),
        }
        let t = &self.tokens;
        let four_hours = rounds_proto::MAX_ROOM_TOKEN_TTL_SECS as u32;
        if t.provider_ttl_secs == 0 || t.provider_ttl_secs > four_hours {
            problems.push("tokens.provider_ttl_secs must be between 1 and 14400 (4 hours)".into());
        }
        if t.participant_ttl_secs == 0 || t.participant_ttl_secs > four_hours {
            problems
                .push("tokens.participant_ttl_secs must be between 1 and 14400 (4 hours)".into());
        }
        if t.access_ttl_secs == 0 || t.access_ttl_secs > 3600 {
            problems.push("tokens.access_ttl_secs must be between 1 and 3600 (1 hour)".into());
        }
        if t.refresh_ttl_secs < t.access_ttl_secs {
            problems.push("tokens.refresh_ttl_secs must be at least tokens.access_ttl_secs".into());
        }
        if t.leeway_secs > 300 {
            problems.push("tokens.leeway_secs must be at most 300".into());
        }
        let v = &self.visits;
        if v.default_duration_minutes == 0 || v.default_duration_minutes > 24 * 60 {
            problems.push("visits.default_duration_minutes must be between 1 and 1440".into());
        }
        if v.reminder_poll_secs == 0 {
            problems.push("visits.reminder_poll_secs must be at least 1".into());
        }
        let l = &self.limits;
        if l.max_body_bytes < 1024 {
            problems.push("limits.max_body_bytes must be at least 1024".into());
        }
        for (name, value) in [
            ("limits.login_per_minute", l.login_per_minute),
            ("limits.join_per_minute", l.join_per_minute),
            ("limits.token_per_minute", l.token_per_minute),
            ("limits.request_timeout_secs", l.request_timeout_secs),
        ] {
            if value == 0 {
                problems.push(format!("{name} must be at least 1"));
            }
        }
        if self.media.enabled && !self.media.udp_enabled && !self.media.ice_tcp {
            problems.push("media: with media.udp_enabled = false, media.ice_tcp must be true, or there is no way for media to flow".into());
        }
        if self.media.enabled
            && self.media.advertise_ip.is_none()
            && self.media.udp_listen.ip().is_unspecified()
            && url::Url::parse(&self.server.public_url)
                .ok()
                .and_then(|u| {
                    u.host_str()
                        .and_then(|h| h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok())
                })
                .is_none()
        {
            problems.push("media.advertise_ip must be set when media.udp_listen is 0.0.0.0 and server.public_url is a host name: it is the address clients send media to".into());
        }
        if let Some(path) = &self.server.clinic_content
            && let Err(e) = crate::clinic_content::ContentFile::load(path)
        {
            problems.push(format!("server.clinic_content: {e}"));
        }
        if let Some(email) = &self.email
            && let Err(e) = email.validate()
        {
            problems.push(e);
        }
        if let Some(sms) = &self.sms
            && let Err(e) = sms.validate()
        {
            problems.push(e);
        }
        if let Some(oidc) = &self.oidc {
            problems.extend(oidc.problems());
        }
        problems.extend(self.ehr.problems());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

impl OidcConfig {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match url::Url::parse(&self.issuer) {
            Ok(u) if u.scheme() == "https" => {}
            Ok(u) if u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")) => {}
            _ => problems.push(format!(
                "oidc.issuer \"{}\" must be an https:// URL (http:// only for a provider on this machine)",
                self.issuer
            )),
        }
        if self.client_id.trim().is_empty() {
            problems.push("oidc.client_id must name the client IT registered for Rounds at the identity provider".into());
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            problems.push("oidc.scopes must include \"openid\"".into());
        }
        if self.match_claim == MatchClaim::FhirUser && !self.scopes.iter().any(|s| s == "fhirUser")
        {
            problems.push(
                "oidc.scopes must include \"fhirUser\" when oidc.match_claim is \"fhir_user\""
                    .into(),
            );
        }
        if self.provisioning == Provisioning::Auto
            && self
                .auto_clinic
                .as_deref()
                .is_none_or(|c| c.trim().is_empty())
        {
            problems.push("oidc.auto_clinic must name the clinic new accounts join when oidc.provisioning is \"auto\"".into());
        }
        if self.auto_time_zone.parse::<chrono_tz::Tz>().is_err() {
            problems.push(format!(
                "oidc.auto_time_zone \"{}\" is not an IANA time zone name, like America/Chicago",
                self.auto_time_zone
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_file_parses_and_validates() {
        let path = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
            .join("../rounds.sample.toml");
        let config = Config::from_file(&path).unwrap();
        config.validate().unwrap();
    }

    #[test]
    fn reports_every_problem_in_sentences() {
        let mut config = Config::default();
        config.server.public_url = "ftp://nope".into();
        config.tokens.provider_ttl_secs = 5 * 3600;
        config.limits.login_per_minute = 0;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("server.public_url"), "{err}");
        assert!(err.contains("tokens.provider_ttl_secs"), "{err}");
        assert!(err.contains("limits.login_per_minute"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<Config>("[server]\nlisten_adress = \"1.2.3.4:1\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen_adress"), "{err}");
    }

    #[test]
    fn flags_win_over_file() {
        let mut config = Config::default();
        config.apply(&Overrides {
            listen: Some("127.0.0.1:9999".parse().unwrap()),
            ..Default::default()
        });
        assert_eq!(config.public_url(), "http://127.0.0.1:9999");
        config.apply(&Overrides {
            public_url: Some("https://visits.example.org/".into()),
            ..Default::default()
        });
        assert_eq!(config.public_url(), "https://visits.example.org");
    }
}
