//! The server's signing keys: loaded from the data directory, rotated on schedule, and used
//! to mint and verify every token.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use anyhow::Context;
use chrono::Utc;
use rounds_auth::{Claims, KeySet, RoomGrant, TokenError, VerifiedTokens};
use rounds_proto::{Jwks, RoomClaims, SessionClaims};

use crate::config::Config;

pub const KEYS_FILE: &str = "token-keys.json";
/// Tokens remembered as verified (about 40 bytes each): far more than the live sessions and
/// room tokens of one server, so a busy hour does not push out a token still in use.
const REMEMBERED_TOKENS: usize = 65_536;

#[derive(Debug)]
pub struct Tokens {
    keys: RwLock<KeySet>,
    path: PathBuf,
    issuer: String,
    leeway: i64,
    /// Longest lifetime of any token we sign: retired keys verify this long.
    max_ttl: i64,
    rotate_after: Option<i64>,
    /// Tokens whose signature already checked out: each is verified once, not per request.
    verified: VerifiedTokens,
}

impl Tokens {
    /// Loads the key file, creating it on first start.
    pub fn load(config: &Config) -> anyhow::Result<Self> {
        let path = config.storage.data_dir.join(KEYS_FILE);
        let now = Utc::now().timestamp();
        let keys = load_or_create(&path, now)?;
        let t = &config.tokens;
        let max_ttl = i64::from(
            t.provider_ttl_secs
                .max(t.participant_ttl_secs)
                .max(t.access_ttl_secs),
        ) + i64::from(t.leeway_secs);
        Ok(Self {
            keys: RwLock::new(keys),
            path,
            issuer: config.issuer(),
            leeway: i64::from(t.leeway_secs),
            max_ttl,
            rotate_after: (t.rotate_after_hours > 0)
                .then(|| i64::from(t.rotate_after_hours) * 3600),
            verified: VerifiedTokens::new(REMEMBERED_TOKENS),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn mint_room(&self, grant: RoomGrant<'_>, ttl_secs: i64) -> (String, RoomClaims) {
        self.read()
            .mint_room(&self.issuer, grant, Utc::now().timestamp(), ttl_secs)
    }

    pub fn mint_session(
        &self,
        clinician: &str,
        clinic: &str,
        family: &str,
        ttl_secs: i64,
    ) -> (String, SessionClaims) {
        self.read().mint_session(
            &self.issuer,
            clinician,
            clinic,
            family,
            Utc::now().timestamp(),
            ttl_secs,
        )
    }

    pub fn verify<C: Claims>(&self, token: &str, audience: &str) -> Result<C, TokenError> {
        self.read().verify_remembering(
            token,
            audience,
            Utc::now().timestamp(),
            self.leeway,
            &self.verified,
        )
    }

    pub fn jwks(&self) -> Jwks {
        self.read().jwks()
    }

    /// Rotates if the current key is older than configured, and drops keys whose tokens have
    /// all expired. Returns the new key id when it rotated.
    pub fn maintain(&self) -> anyhow::Result<Option<String>> {
        let now = Utc::now().timestamp();
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let before = keys.jwks();
        let rotated = match self.rotate_after {
            Some(after) if now - keys.current_created_at() >= after => {
                keys.rotate(now);
                Some(keys.current_kid().to_owned())
            }
            _ => None,
        };
        keys.prune(now, self.max_ttl);
        if keys.jwks() != before {
            save(&self.path, &keys)?;
        }
        Ok(rotated)
    }
}

/// Rotates the key file of a stopped server (the `keys rotate` command).
pub fn rotate_file(data_dir: &Path, max_ttl: i64) -> anyhow::Result<String> {
    let path = data_dir.join(KEYS_FILE);
    let now = Utc::now().timestamp();
    let mut keys = load_or_create(&path, now)?;
    keys.rotate(now);
    keys.prune(now, max_ttl);
    save(&path, &keys)?;
    Ok(keys.current_kid().to_owned())
}

fn load_or_create(path: &Path, now: i64) -> anyhow::Result<KeySet> {
    match std::fs::read_to_string(path) {
        Ok(json) => KeySet::from_json(&json).with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keys = KeySet::generate(now);
            save(path, &keys)?;
            tracing::info!(kid = keys.current_kid(), "created a new token signing key");
            Ok(keys)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes the key file atomically, readable by the server's user only.
fn save(path: &Path, keys: &KeySet) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        file.write_all(keys.to_json().as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}
