//! Compact JWS encoding with EdDSA, and the checks every token passes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, Signer, Verifier};
use rand::RngCore;
use serde::Serialize;
use serde::de::DeserializeOwned;

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
        let sig_bytes: [u8; 64] = B64
            .decode(s)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(TokenError::Malformed("bad signature encoding"))?;
        let signed = &token[..h.len() + 1 + p.len()];
        key.verify(signed.as_bytes(), &Signature::from_bytes(&sig_bytes))
            .map_err(|_| TokenError::BadSignature)?;
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
        Ok(claims)
    }
}
