//! Clinics and clinician accounts.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Result, Store, new_id, to_ms};

#[derive(Debug, Clone)]
pub struct ClinicRow {
    pub id: String,
    pub name: String,
    pub time_zone: String,
}

#[derive(Debug, Clone)]
pub struct ClinicianRow {
    pub id: String,
    pub clinic_id: String,
    pub email: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub disabled: bool,
}

impl Store {
    pub async fn create_clinic(
        &self,
        name: &str,
        time_zone: &str,
        now: DateTime<Utc>,
    ) -> Result<ClinicRow> {
        let id = new_id();
        sqlx::query("INSERT INTO clinics (id, name, time_zone, created_at) VALUES (?, ?, ?, ?)")
            .bind(&id)
            .bind(name)
            .bind(time_zone)
            .bind(to_ms(now))
            .execute(&self.pool)
            .await?;
        Ok(ClinicRow {
            id,
            name: name.into(),
            time_zone: time_zone.into(),
        })
    }

    pub async fn clinic(&self, id: &str) -> Result<Option<ClinicRow>> {
        let row = sqlx::query("SELECT id, name, time_zone FROM clinics WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| ClinicRow {
            id: r.get(0),
            name: r.get(1),
            time_zone: r.get(2),
        }))
    }

    pub async fn clinic_by_name(&self, name: &str) -> Result<Option<ClinicRow>> {
        let row = sqlx::query("SELECT id, name, time_zone FROM clinics WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| ClinicRow {
            id: r.get(0),
            name: r.get(1),
            time_zone: r.get(2),
        }))
    }

    pub async fn create_clinician(
        &self,
        clinic_id: &str,
        email: &str,
        display_name: &str,
        password_hash: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<ClinicianRow> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO clinicians (id, clinic_id, email, display_name, password_hash, created_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(clinic_id)
        .bind(email.to_lowercase())
        .bind(display_name)
        .bind(password_hash)
        .bind(to_ms(now))
        .execute(&self.pool)
        .await?;
        Ok(ClinicianRow {
            id,
            clinic_id: clinic_id.into(),
            email: email.to_lowercase(),
            display_name: display_name.into(),
            password_hash: password_hash.map(Into::into),
            disabled: false,
        })
    }

    pub async fn set_password_hash(&self, clinician_id: &str, hash: &str) -> Result<()> {
        sqlx::query("UPDATE clinicians SET password_hash = ? WHERE id = ?")
            .bind(hash)
            .bind(clinician_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn clinician_by_email(&self, email: &str) -> Result<Option<ClinicianRow>> {
        self.clinician_where("email = ?", &email.to_lowercase())
            .await
    }

    pub async fn clinician(&self, id: &str) -> Result<Option<ClinicianRow>> {
        self.clinician_where("id = ?", id).await
    }

    async fn clinician_where(&self, cond: &str, value: &str) -> Result<Option<ClinicianRow>> {
        let sql = format!(
            "SELECT id, clinic_id, email, display_name, password_hash, disabled FROM clinicians WHERE {cond}"
        );
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| ClinicianRow {
            id: r.get(0),
            clinic_id: r.get(1),
            email: r.get(2),
            display_name: r.get(3),
            password_hash: r.get(4),
            disabled: r.get::<i64, _>(5) != 0,
        }))
    }
}
