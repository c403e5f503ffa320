//! The signing keys: one current, the retired ones kept until their tokens expire.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{SigningKey, VerifyingKey};
use rounds_proto::{Jwk, Jwks};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the key file is not valid: {0}")]
    Invalid(String),
}

struct Entry {
    kid: String,
    signing: SigningKey,
    verifying: VerifyingKey,
    created_at: i64,
    retired_at: Option<i64>,
}

/// The server's token keys. The first entry signs; all entries verify.
pub struct KeySet {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.entries.iter().map(|e| e.kid.as_str()).collect();
        f.debug_struct("KeySet").field("kids", &kids).finish()
    }
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    /// The 32-byte Ed25519 seed, base64url.
    seed: String,
    created_at: i64,
    retired_at: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    keys: Vec<StoredKey>,
}

fn thumbprint(key: &VerifyingKey) -> String {
    let x = B64.encode(key.as_bytes());
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    B64.encode(Sha256::digest(canonical.as_bytes()))
}

fn entry(signing: SigningKey, created_at: i64, retired_at: Option<i64>) -> Entry {
    let verifying = signing.verifying_key();
    Entry {
        kid: thumbprint(&verifying),
        signing,
        verifying,
        created_at,
        retired_at,
    }
}

impl KeySet {
    /// A new key set with one fresh key.
    pub fn generate(now: i64) -> Self {
        let signing = SigningKey::generate(&mut rand::rngs::OsRng);
        Self {
            entries: vec![entry(signing, now, None)],
        }
    }

    pub fn current_kid(&self) -> &str {
        &self.entries[0].kid
    }

    /// When the current key was created (Unix seconds).
    pub fn current_created_at(&self) -> i64 {
        self.entries[0].created_at
    }

    pub(crate) fn current(&self) -> &SigningKey {
        &self.entries[0].signing
    }

    pub(crate) fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.entries
            .iter()
            .find(|e| e.kid == kid)
            .map(|e| &e.verifying)
    }

    /// Makes a fresh key current. The old one keeps verifying until [`KeySet::prune`] drops it.
    pub fn rotate(&mut self, now: i64) {
        if let Some(current) = self.entries.first_mut() {
            current.retired_at = Some(now);
        }
        let signing = SigningKey::generate(&mut rand::rngs::OsRng);
        self.entries.insert(0, entry(signing, now, None));
    }

    /// Drops retired keys whose every token has expired (`max_ttl` after retirement).
    pub fn prune(&mut self, now: i64, max_ttl: i64) {
        self.entries.retain(|e| match e.retired_at {
            None => true,
            Some(retired) => now <= retired + max_ttl,
        });
    }

    /// The public keys, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self
                .entries
                .iter()
                .map(|e| Jwk {
                    kty: "OKP".into(),
                    crv: "Ed25519".into(),
                    x: B64.encode(e.verifying.as_bytes()),
                    kid: e.kid.clone(),
                    alg: "EdDSA".into(),
                    use_: "sig".into(),
                })
                .collect(),
        }
    }

    /// Serializes the private keys. The caller must store this where only the server reads it.
    pub fn to_json(&self) -> String {
        let stored = Stored {
            keys: self
                .entries
                .iter()
                .map(|e| StoredKey {
                    kid: e.kid.clone(),
                    seed: B64.encode(e.signing.to_bytes()),
                    created_at: e.created_at,
                    retired_at: e.retired_at,
                })
                .collect(),
        };
        serde_json::to_string_pretty(&stored).expect("keys serialize")
    }

    pub fn from_json(json: &str) -> Result<Self, KeyError> {
        let stored: Stored =
            serde_json::from_str(json).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let mut entries = Vec::with_capacity(stored.keys.len());
        for key in stored.keys {
            let seed: [u8; 32] = B64
                .decode(&key.seed)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| KeyError::Invalid(format!("key {} has a bad seed", key.kid)))?;
            let e = entry(
                SigningKey::from_bytes(&seed),
                key.created_at,
                key.retired_at,
            );
            if e.kid != key.kid {
                return Err(KeyError::Invalid(format!(
                    "key {} does not match its id",
                    key.kid
                )));
            }
            entries.push(e);
        }
        if entries.first().is_none_or(|e| e.retired_at.is_some()) {
            return Err(KeyError::Invalid("there is no current signing key".into()));
        }
        Ok(Self { entries })
    }
}
