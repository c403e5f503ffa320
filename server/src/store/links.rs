//! Join links. The 128-bit code is shown once; only its SHA-256 is stored.

use chrono::{DateTime, Utc};
use rand::RngCore;
use rounds_proto::Role;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Result, Store, StoreError, from_ms, opt_from_ms, to_ms};

/// A fresh unguessable link code: 128 random bits, base32 without padding (26 characters,
/// easy to read aloud over the phone if it comes to that).
pub fn new_link_code() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base32(&bytes)
}

fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut out = String::with_capacity(26);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

pub fn hash_code(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

#[derive(Debug, Clone)]
pub struct LinkRow {
    pub visit_id: String,
    pub role: Role,
    pub invitee_id: String,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Stores a new link for `invitee_id` and returns its code.
    pub async fn create_link(
        &self,
        visit_id: &str,
        role: Role,
        invitee_id: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let code = new_link_code();
        sqlx::query(
            "INSERT INTO join_links (code_hash, visit_id, role, invitee_id, expires_at, created_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(hash_code(&code))
        .bind(visit_id)
        .bind(role.as_str())
        .bind(invitee_id)
        .bind(to_ms(expires_at))
        .bind(to_ms(now))
        .execute(&self.pool)
        .await?;
        Ok(code)
    }

    pub async fn link(&self, code: &str) -> Result<Option<LinkRow>> {
        let code_hash = hash_code(code);
        let generation = match self.links.get(&code_hash) {
            Ok(link) => return Ok(Some(link)),
            Err(generation) => generation,
        };
        let row = sqlx::query(
            "SELECT visit_id, role, invitee_id, expires_at, revoked_at FROM join_links WHERE code_hash = ?",
        )
        .bind(&code_hash)
        .fetch_optional(&self.pool)
        .await?;
        let link = row
            .map(|r| -> Result<LinkRow> {
                let role: String = r.get(1);
                Ok(LinkRow {
                    visit_id: r.get(0),
                    role: Role::parse(&role)
                        .ok_or_else(|| StoreError::Corrupt(format!("link role {role}")))?,
                    invitee_id: r.get(2),
                    expires_at: from_ms(r.get(3)),
                    revoked_at: opt_from_ms(r.get(4)),
                })
            })
            .transpose()?;
        if let Some(link) = &link {
            self.links.fill(code_hash, link.clone(), generation);
        }
        Ok(link)
    }

    /// Revokes every live link of one invitee of a visit; returns how many.
    pub async fn revoke_links(
        &self,
        visit_id: &str,
        invitee_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE join_links SET revoked_at = ? WHERE visit_id = ? AND invitee_id = ? AND revoked_at IS NULL",
        )
        .bind(to_ms(now))
        .bind(visit_id)
        .bind(invitee_id)
        .execute(&self.pool)
        .await?;
        // Links are cached by code, which this statement does not know: forget them all.
        self.links.invalidate_all();
        Ok(r.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_128_bits_and_distinct() {
        let a = new_link_code();
        let b = new_link_code();
        assert_eq!(a.len(), 26);
        assert_ne!(a, b);
        assert_eq!(base32(&[0xff; 16]).len(), 26);
        assert_eq!(hash_code(&a).len(), 64);
    }
}
