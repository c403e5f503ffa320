//! The EHR encounter behind each launched visit.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Result, Store, to_ms};

/// Where a launched visit came from.
#[derive(Debug, Clone)]
pub struct EhrEncounterRow {
    pub iss: String,
    pub encounter_id: String,
    pub visit_id: String,
}

impl Store {
    /// The visit opened for this encounter of this EHR, if any.
    pub async fn ehr_visit(&self, iss: &str, encounter_id: &str) -> Result<Option<String>> {
        let row =
            sqlx::query("SELECT visit_id FROM ehr_encounters WHERE iss = ? AND encounter_id = ?")
                .bind(iss)
                .bind(encounter_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Records the visit opened for an encounter; false when one was already recorded.
    pub async fn link_ehr_encounter(
        &self,
        iss: &str,
        encounter_id: &str,
        visit_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO ehr_encounters (iss, encounter_id, visit_id, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (iss, encounter_id) DO NOTHING",
        )
        .bind(iss)
        .bind(encounter_id)
        .bind(visit_id)
        .bind(to_ms(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The encounter behind a visit, when it was opened from an EHR.
    pub async fn ehr_encounter_of(&self, visit_id: &str) -> Result<Option<EhrEncounterRow>> {
        let row = sqlx::query(
            "SELECT iss, encounter_id, visit_id FROM ehr_encounters WHERE visit_id = ?",
        )
        .bind(visit_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| EhrEncounterRow {
            iss: r.get(0),
            encounter_id: r.get(1),
            visit_id: r.get(2),
        }))
    }
}
