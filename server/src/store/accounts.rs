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

    /// The account linked to this identity provider's subject.
    pub async fn clinician_by_oidc(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<ClinicianRow>> {
        let row = sqlx::query(&format!(
            "SELECT {CLINICIAN_COLUMNS} FROM clinicians WHERE oidc_issuer = ? AND oidc_subject = ?"
        ))
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(clinician_row))
    }

    pub async fn clinician_by_fhir_user(&self, fhir_user: &str) -> Result<Option<ClinicianRow>> {
        self.clinician_where("fhir_user = ?", fhir_user).await
    }

    /// The identity provider subject linked to this account, if any.
    pub async fn oidc_link(&self, clinician_id: &str) -> Result<Option<(String, String)>> {
        let row = sqlx::query(
            "SELECT oidc_issuer, oidc_subject FROM clinicians WHERE id = ? AND oidc_subject IS NOT NULL",
        )
        .bind(clinician_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// Links an account to an identity provider's subject; later sign-ins find it by that.
    pub async fn link_oidc(&self, clinician_id: &str, issuer: &str, subject: &str) -> Result<()> {
        sqlx::query("UPDATE clinicians SET oidc_issuer = ?, oidc_subject = ? WHERE id = ?")
            .bind(issuer)
            .bind(subject)
            .bind(clinician_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_fhir_user(&self, clinician_id: &str, fhir_user: &str) -> Result<()> {
        sqlx::query("UPDATE clinicians SET fhir_user = ? WHERE id = ?")
            .bind(fhir_user)
            .bind(clinician_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn clinician_where(&self, cond: &str, value: &str) -> Result<Option<ClinicianRow>> {
        let sql = format!("SELECT {CLINICIAN_COLUMNS} FROM clinicians WHERE {cond}");
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(clinician_row))
    }
}

const CLINICIAN_COLUMNS: &str = "id, clinic_id, email, display_name, password_hash, disabled";

fn clinician_row(r: sqlx::sqlite::SqliteRow) -> ClinicianRow {
    ClinicianRow {
        id: r.get(0),
        clinic_id: r.get(1),
        email: r.get(2),
        display_name: r.get(3),
        password_hash: r.get(4),
        disabled: r.get::<i64, _>(5) != 0,
    }
}
