//! Settings: what IT fixes by policy, and what the clinician chooses.
//!
//! The **policy file** is TOML, deployed by IT next to the app (see `docs/desktop.md`). It
//! can fix the server URL, turn on a synthetic camera and microphone where no devices
//! exist, set when a long wait raises an alert, and choose whether notifications name the
//! patient. Its place: `$ROUNDS_POLICY`, else `/etc/rounds/policy.toml` (Linux),
//! `/Library/Application Support/Rounds/policy.toml` (macOS),
//! `%ProgramData%\Rounds\policy.toml` (Windows).
//!
//! The clinician's **settings** are JSON in the app's data folder. Neither file ever holds
//! a secret: those live in the keychain ([`crate::secrets`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// What IT fixed. Every field is optional; absent means "the clinician decides".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The Rounds server everyone uses; when set, the clinician cannot change it.
    pub server_url: Option<String>,
    /// Use a synthetic camera and microphone (labelled on screen) when no real device
    /// exists. Off unless IT turns it on: a clinician should never be shown fake media by
    /// accident.
    pub synthetic_media: Option<bool>,
    /// Minutes after check-in before "still waiting" alerts. Default 10.
    pub wait_alert_minutes: Option<u32>,
    /// Show patient names in OS notifications (visible on a shared screen). Default off.
    pub notification_names: Option<bool>,
    /// Start at login, and the clinician cannot turn it off.
    pub autostart: Option<bool>,
}

/// Where the policy file is on this system.
pub fn policy_path() -> PathBuf {
    if let Some(p) = std::env::var_os("ROUNDS_POLICY") {
        return PathBuf::from(p);
    }
    if cfg!(target_os = "macos") {
        PathBuf::from("/Library/Application Support/Rounds/policy.toml")
    } else if cfg!(windows) {
        let base = std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into());
        PathBuf::from(base).join("Rounds").join("policy.toml")
    } else {
        PathBuf::from("/etc/rounds/policy.toml")
    }
}

impl Policy {
    /// Reads the policy file; no file means no policy. A file that cannot be read or
    /// parsed is an error, not silently ignored: IT must hear that their policy is broken.
    pub fn load(path: &Path) -> anyhow::Result<Policy> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Policy::default()),
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "cannot read the IT policy file {}: {e}",
                    path.display()
                ));
            }
        };
        let policy: Policy = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!("the IT policy file {} is not valid: {e}", path.display())
        })?;
        if let Some(url) = &policy.server_url {
            crate::api::parse_server_url(url).map_err(|e| {
                anyhow::anyhow!("the IT policy file {}: server_url: {e}", path.display())
            })?;
        }
        Ok(policy)
    }

    pub fn wait_alert_minutes(&self) -> u32 {
        self.wait_alert_minutes.unwrap_or(10).max(1)
    }
}

/// What the clinician chose. Saved as JSON in the app's data folder; never secrets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
#[serde(default)]
pub struct Settings {
    /// The server last signed in to (unless the policy fixes one).
    pub server_url: Option<String>,
    /// The email last signed in with, to prefill the form.
    pub email: Option<String>,
    pub camera: Option<String>,
    pub microphone: Option<String>,
    pub speaker: Option<String>,
    pub start_at_login: bool,
}

impl Settings {
    /// Reads the settings; a missing or damaged file gives the defaults (and says so).
    pub fn load(path: &Path) -> Settings {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "settings file damaged; using defaults");
                Settings::default()
            }),
            Err(_) => Settings::default(),
        }
    }

    /// Writes the settings atomically (a temporary file, then a rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).unwrap_or_default())?;
        std::fs::rename(tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_policy_is_no_policy() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Policy::load(&dir.path().join("none.toml")).unwrap(),
            Policy::default()
        );
    }

    #[test]
    fn a_broken_policy_is_an_error_that_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "server_url = 'ftp://nope'\n").unwrap();
        let e = Policy::load(&path).unwrap_err().to_string();
        assert!(e.contains("policy.toml") && e.contains("server_url"), "{e}");
        std::fs::write(&path, "serverurl = 'https://x'\n").unwrap();
        assert!(Policy::load(&path).is_err());
    }

    #[test]
    fn a_policy_fixes_what_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(
            &path,
            "server_url = 'https://rounds.hospital.example'\nwait_alert_minutes = 5\n",
        )
        .unwrap();
        let p = Policy::load(&path).unwrap();
        assert_eq!(
            p.server_url.as_deref(),
            Some("https://rounds.hospital.example")
        );
        assert_eq!(p.wait_alert_minutes(), 5);
        assert_eq!(p.synthetic_media, None);
    }

    #[test]
    fn settings_round_trip_and_survive_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        let s = Settings {
            server_url: Some("http://127.0.0.1:8443".into()),
            start_at_login: true,
            ..Settings::default()
        };
        s.save(&path).unwrap();
        assert_eq!(Settings::load(&path), s);
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(Settings::load(&path), Settings::default());
    }
}
