//! Clinician refresh tokens: single use, rotating, revoked by family on reuse.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Result, Store, to_ms};

/// What happened when a refresh token was presented.
#[derive(Debug, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// Valid and now spent; the caller issues the next one in `family`.
    Rotated {
        clinician_id: String,
        family: String,
    },
    /// Never issued, or expired.
    Unknown,
    /// Already used once: the family has now been revoked.
    Reused {
        family: String,
        clinician_id: String,
    },
    /// The family was revoked earlier (sign-out or reuse).
    Revoked,
}

/// Which session families are still active, remembered so that checking an access token
/// does not cost a database round trip. This process is the only one that revokes families
/// (a multi-node deployment must share revocations through its bus).
#[derive(Debug, Default)]
pub struct FamilyCache {
    known: std::sync::Mutex<std::collections::HashMap<String, bool>>,
}

impl FamilyCache {
    const MAX: usize = 100_000;

    fn get(&self, family: &str) -> Option<bool> {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(family)
            .copied()
    }

    fn set(&self, family: &str, active: bool) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= Self::MAX {
            known.clear();
        }
        known.insert(family.to_owned(), active);
    }
}

impl Store {
    pub async fn create_family(
        &self,
        family: &str,
        clinician_id: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO session_families (id, clinician_id, created_at) VALUES (?, ?, ?)")
            .bind(family)
            .bind(clinician_id)
            .bind(to_ms(now))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn insert_refresh_token(
        &self,
        token_hash: &str,
        family: &str,
        clinician_id: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, clinician_id, issued_at, expires_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(family)
        .bind(clinician_id)
        .bind(to_ms(now))
        .bind(to_ms(expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Spends a refresh token atomically. Reuse revokes the whole family.
    pub async fn use_refresh_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<RefreshOutcome> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT r.family_id, r.clinician_id, r.expires_at, r.used_at, f.revoked_at
             FROM refresh_tokens r JOIN session_families f ON f.id = r.family_id
             WHERE r.token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(RefreshOutcome::Unknown);
        };
        let family: String = row.get(0);
        let clinician_id: String = row.get(1);
        let expires_at: i64 = row.get(2);
        let used_at: Option<i64> = row.get(3);
        let revoked_at: Option<i64> = row.get(4);
        if revoked_at.is_some() {
            return Ok(RefreshOutcome::Revoked);
        }
        if used_at.is_some() {
            sqlx::query(
                "UPDATE session_families SET revoked_at = ?, revoked_reason = 'refresh token reused'
                 WHERE id = ? AND revoked_at IS NULL",
            )
            .bind(to_ms(now))
            .bind(&family)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            self.families.set(&family, false);
            return Ok(RefreshOutcome::Reused {
                family,
                clinician_id,
            });
        }
        if expires_at <= to_ms(now) {
            return Ok(RefreshOutcome::Unknown);
        }
        let updated = sqlx::query(
            "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
        )
        .bind(to_ms(now))
        .bind(token_hash)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Ok(RefreshOutcome::Revoked);
        }
        tx.commit().await?;
        Ok(RefreshOutcome::Rotated {
            clinician_id,
            family,
        })
    }

    pub async fn revoke_family(
        &self,
        family: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE session_families SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(to_ms(now))
        .bind(reason)
        .bind(family)
        .execute(&self.pool)
        .await?;
        self.families.set(family, false);
        Ok(r.rows_affected() == 1)
    }

    /// The family a refresh token belongs to, if it exists.
    pub async fn refresh_family(&self, token_hash: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = ?")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn family_active(&self, family: &str) -> Result<bool> {
        if let Some(active) = self.families.get(family) {
            return Ok(active);
        }
        let revoked: Option<Option<i64>> =
            sqlx::query_scalar("SELECT revoked_at FROM session_families WHERE id = ?")
                .bind(family)
                .fetch_optional(&self.pool)
                .await?;
        let active = matches!(revoked, Some(None));
        self.families.set(family, active);
        Ok(active)
    }
}
