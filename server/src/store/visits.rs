//! Visits and their life cycle timestamps.

use chrono::{DateTime, Duration, Utc};
use rounds_proto::{DeviceCheck, Phi, Visit, VisitState};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Result, Store, StoreError, from_ms, opt_from_ms, to_ms};

#[derive(Debug, Clone)]
pub struct VisitRow {
    pub id: String,
    pub clinic_id: String,
    pub clinician_id: String,
    pub scheduled_at: DateTime<Utc>,
    pub duration_minutes: u32,
    pub patient_name: Option<Phi<String>>,
    pub waiting_since: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub running_late_minutes: Option<u32>,
    pub device_check: Option<DeviceCheck>,
}

impl VisitRow {
    pub fn scheduled_end(&self) -> DateTime<Utc> {
        self.scheduled_at + Duration::minutes(i64::from(self.duration_minutes))
    }

    /// The patient link stops working at the end of the visit plus the grace period. An
    /// ended visit keeps its links for the grace period after it ended, for the survey.
    pub fn link_expires_at(&self, grace_minutes: u32) -> DateTime<Utc> {
        let end = match self.ended_at {
            Some(ended) => ended.min(self.scheduled_end()),
            None => self.scheduled_end(),
        };
        end + Duration::minutes(i64::from(grace_minutes))
    }

    pub fn state(&self, now: DateTime<Utc>) -> VisitState {
        if self.ended_at.is_some() {
            VisitState::Ended
        } else if self.started_at.is_some() {
            VisitState::InProgress
        } else if self.waiting_since.is_some() {
            VisitState::Waiting
        } else if now > self.scheduled_end() {
            VisitState::NoShow
        } else {
            VisitState::Scheduled
        }
    }

    pub fn is_live(&self) -> bool {
        self.ended_at.is_none()
    }

    pub fn to_proto(&self, now: DateTime<Utc>, grace_minutes: u32) -> Visit {
        Visit {
            id: self.id.clone(),
            room: self.id.clone(),
            clinic_id: self.clinic_id.clone(),
            clinician_id: self.clinician_id.clone(),
            scheduled_at: self.scheduled_at,
            duration_minutes: self.duration_minutes,
            state: self.state(now),
            patient_name: self.patient_name.clone(),
            waiting_since: self.waiting_since,
            started_at: self.started_at,
            ended_at: self.ended_at,
            running_late_minutes: self.running_late_minutes,
            device_check: self.device_check.clone(),
            link_expires_at: self.link_expires_at(grace_minutes),
        }
    }
}

const COLUMNS: &str = "id, clinic_id, clinician_id, scheduled_at, duration_minutes, patient_name, \
    waiting_since, started_at, ended_at, running_late_minutes, device_check";

fn visit_from_row(r: &SqliteRow) -> Result<VisitRow> {
    let device_check: Option<String> = r.get(10);
    let device_check = match device_check {
        Some(json) => Some(
            serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("visit device_check: {e}")))?,
        ),
        None => None,
    };
    Ok(VisitRow {
        id: r.get(0),
        clinic_id: r.get(1),
        clinician_id: r.get(2),
        scheduled_at: from_ms(r.get(3)),
        duration_minutes: r.get::<i64, _>(4).try_into().unwrap_or(0),
        patient_name: r.get::<Option<String>, _>(5).map(Phi::new),
        waiting_since: opt_from_ms(r.get(6)),
        started_at: opt_from_ms(r.get(7)),
        ended_at: opt_from_ms(r.get(8)),
        running_late_minutes: r.get::<Option<i64>, _>(9).and_then(|m| m.try_into().ok()),
        device_check,
    })
}

pub struct NewVisit<'a> {
    pub id: &'a str,
    pub clinic_id: &'a str,
    pub clinician_id: &'a str,
    pub scheduled_at: DateTime<Utc>,
    pub duration_minutes: u32,
    pub patient_name: Option<&'a Phi<String>>,
}

impl Store {
    pub async fn insert_visit(&self, v: &NewVisit<'_>, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "INSERT INTO visits (id, clinic_id, clinician_id, scheduled_at, duration_minutes, patient_name, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(v.id)
        .bind(v.clinic_id)
        .bind(v.clinician_id)
        .bind(to_ms(v.scheduled_at))
        .bind(i64::from(v.duration_minutes))
        .bind(v.patient_name.map(|n| n.expose().as_str()))
        .bind(to_ms(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn visit(&self, id: &str) -> Result<Option<VisitRow>> {
        let generation = match self.visits.get(&id.to_owned()) {
            Ok(visit) => return Ok(Some(visit)),
            Err(generation) => generation,
        };
        let sql = format!("SELECT {COLUMNS} FROM visits WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let visit = row.as_ref().map(visit_from_row).transpose()?;
        if let Some(visit) = &visit {
            self.visits.fill(id.to_owned(), visit.clone(), generation);
        }
        Ok(visit)
    }

    /// A clinician's visits scheduled in `[from, to)`, earliest first.
    pub async fn visits_between(
        &self,
        clinician_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<VisitRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM visits WHERE clinician_id = ? AND scheduled_at >= ? AND scheduled_at < ?
             ORDER BY scheduled_at, id"
        );
        let rows = sqlx::query(&sql)
            .bind(clinician_id)
            .bind(to_ms(from))
            .bind(to_ms(to))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(visit_from_row).collect()
    }

    /// Marks the patient as waiting, unless they already are or the visit moved on.
    pub async fn mark_waiting(&self, id: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE visits SET waiting_since = ? WHERE id = ? AND waiting_since IS NULL AND started_at IS NULL AND ended_at IS NULL",
        )
        .bind(to_ms(now))
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.visits.invalidate(&id.to_owned());
        Ok(())
    }

    pub async fn mark_started(&self, id: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE visits SET started_at = ? WHERE id = ? AND started_at IS NULL AND ended_at IS NULL")
            .bind(to_ms(now))
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.visits.invalidate(&id.to_owned());
        Ok(())
    }

    /// Ends the visit; returns false if it had already ended.
    pub async fn end_visit(&self, id: &str, now: DateTime<Utc>) -> Result<bool> {
        let r = sqlx::query("UPDATE visits SET ended_at = ? WHERE id = ? AND ended_at IS NULL")
            .bind(to_ms(now))
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.visits.invalidate(&id.to_owned());
        Ok(r.rows_affected() == 1)
    }

    pub async fn set_running_late(&self, id: &str, minutes: Option<u32>) -> Result<()> {
        sqlx::query("UPDATE visits SET running_late_minutes = ? WHERE id = ?")
            .bind(minutes.map(i64::from))
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.visits.invalidate(&id.to_owned());
        Ok(())
    }

    pub async fn set_device_check(&self, id: &str, check: &DeviceCheck) -> Result<()> {
        sqlx::query("UPDATE visits SET device_check = ? WHERE id = ?")
            .bind(serde_json::to_string(check).map_err(|e| StoreError::Corrupt(e.to_string()))?)
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.visits.invalidate(&id.to_owned());
        Ok(())
    }
}
