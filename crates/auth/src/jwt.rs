//! Compact JWS encoding with EdDSA, and the checks every token passes.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, Signer, Verifier};
use rand::RngCore;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::KeySet;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(&'static str),
    #[error("the token is not signed with EdDSA")]
    UnsupportedAlgorithm,
    #[error("the token names a signing key this server does not know")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is meant for a different audience")]
    WrongAudience,
}

/// The registered claims every Rounds token carries.
pub trait Claims: DeserializeOwned + Serialize {
    fn aud(&self) -> &str;
    fn exp(&self) -> i64;
    fn nbf(&self) -> i64;
}

impl Claims for rounds_proto::RoomClaims {
    fn aud(&self) -> &str {
        &self.aud
    }
    fn exp(&self) -> i64 {
        self.exp
    }
    fn nbf(&self) -> i64 {
        self.nbf
    }
}

impl Claims for rounds_proto::SessionClaims {
    fn aud(&self) -> &str {
        &self.aud
    }
    fn exp(&self) -> i64 {
        self.exp
    }
    fn nbf(&self) -> i64 {
        self.nbf
    }
}

#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

/// The `aud` a token claims, read WITHOUT checking its signature: only for choosing which
/// kind of token to verify it as, so a token is verified once. Never trust it otherwise.
pub fn peek_audience(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Aud {
        aud: String,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = B64.decode(payload).ok()?;
    serde_json::from_slice::<Aud>(&bytes).ok().map(|a| a.aud)
}

/// 128 random bits, hex-encoded: token ids, participant ids, refresh families.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl KeySet {
    /// `base64url(header) + "."`: every token signed with the current key starts with this.
    pub fn header_prefix(&self) -> String {
        let header = format!(
            r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}"}}"#,
            self.current_kid()
        );
        let mut out = B64.encode(header);
        out.push('.');
        out
    }

    /// Signs `claims` with the current key.
    pub fn sign<C: Serialize>(&self, claims: &C) -> String {
        let payload = serde_json::to_vec(claims).expect("claims serialize");
        let mut token = self.header_prefix();
        B64.encode_string(payload, &mut token);
        let signature = self.current().sign(token.as_bytes());
        token.push('.');
        B64.encode_string(signature.to_bytes(), &mut token);
        token
    }

    /// Verifies signature, audience and validity window (`leeway` seconds either side).
    pub fn verify<C: Claims>(
        &self,
        token: &str,
        audience: &str,
        now: i64,
        leeway: i64,
    ) -> Result<C, TokenError> {
        self.verify_inner(token, audience, now, leeway, None)
    }

    /// [`KeySet::verify`], skipping the signature check for a token that `seen` remembers
    /// passing it, and remembering this one once it passes every check. Audience, validity
    /// window and the signing key's presence in this set are checked every time.
    pub fn verify_remembering<C: Claims>(
        &self,
        token: &str,
        audience: &str,
        now: i64,
        leeway: i64,
        seen: &VerifiedTokens,
    ) -> Result<C, TokenError> {
        self.verify_inner(token, audience, now, leeway, Some(seen))
    }

    fn verify_inner<C: Claims>(
        &self,
        token: &str,
        audience: &str,
        now: i64,
        leeway: i64,
        seen: Option<&VerifiedTokens>,
    ) -> Result<C, TokenError> {
        if token.len() > 8192 {
            return Err(TokenError::Malformed("too long"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("expected three dot-separated parts"));
        };
        let header: Header = B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed("bad header"))?;
        if header.alg != "EdDSA" {
            return Err(TokenError::UnsupportedAlgorithm);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.verifying_key(&kid).ok_or(TokenError::UnknownKey)?;
        let digest = seen.map(|_| VerifiedTokens::digest(token));
        let known = matches!((seen, &digest), (Some(seen), Some(d)) if seen.contains(d, now));
        if !known {
            let sig_bytes: [u8; 64] = B64
                .decode(s)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or(TokenError::Malformed("bad signature encoding"))?;
            let signed = &token[..h.len() + 1 + p.len()];
            key.verify(signed.as_bytes(), &Signature::from_bytes(&sig_bytes))
                .map_err(|_| TokenError::BadSignature)?;
        }
        let claims: C = B64
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed(
                "claims do not match this kind of token",
            ))?;
        if claims.aud() != audience {
            return Err(TokenError::WrongAudience);
        }
        if now >= claims.exp() + leeway {
            return Err(TokenError::Expired);
        }
        if now + leeway < claims.nbf() {
            return Err(TokenError::NotYetValid);
        }
        if let (false, Some(seen), Some(digest)) = (known, seen, digest) {
            seen.insert(digest, claims.exp() + leeway, now);
        }
        Ok(claims)
    }
}

/// Tokens whose signature has already been checked, by the SHA-256 of their whole text.
///
/// A clinician's app sends the same access token with every request for its lifetime; checking
/// an Ed25519 signature costs tens of microseconds, looking up a digest a fraction of one. Only
/// a token that passed every check is remembered, and only until it expires. Forgetting is
/// always safe (the next use verifies the signature again), so the set is bounded: when full,
/// expired entries go, and if that is not enough, everything does. Callers that remove a
/// signing key need do nothing: the key lookup runs before this set is consulted.
pub struct VerifiedTokens {
    entries: Mutex<HashMap<[u8; 32], i64>>,
    capacity: usize,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl VerifiedTokens {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn digest(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], i64>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn contains(&self, digest: &[u8; 32], now: i64) -> bool {
        self.lock().get(digest).is_some_and(|until| now < *until)
    }

    fn insert(&self, digest: [u8; 32], until: i64, now: i64) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, until| now < *until);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(digest, until);
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
