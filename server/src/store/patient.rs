//! What the patient pages collect: intake answers (PHI), consent agreements and post-visit
//! surveys, all stored with the visit.

use chrono::{DateTime, Utc};
use rounds_proto::{CheckInRecord, ConsentRecord, IntakeAnswerRecord, Phi, Role, SurveyRecord};
use sqlx::Row;

use super::{Result, Store, StoreError, from_ms, new_id, to_ms};

/// One checked intake answer: question id, the question's English label, the answer.
pub type CanonicalAnswer = (String, String, Phi<String>);

fn role_of(raw: &str) -> Result<Role> {
    Role::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("role {raw}")))
}

impl Store {
    /// Replaces the visit's intake answers and records the consent, in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn save_check_in(
        &self,
        visit_id: &str,
        participant_id: &str,
        role: Role,
        answers: &[CanonicalAnswer],
        consent_version: &str,
        lang: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if role == Role::Patient {
            sqlx::query("DELETE FROM intake_answers WHERE visit_id = ?")
                .bind(visit_id)
                .execute(&mut *tx)
                .await?;
            for (question_id, label, answer) in answers {
                sqlx::query(
                    "INSERT INTO intake_answers (visit_id, question_id, participant_id, label, answer, lang, submitted_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(visit_id)
                .bind(question_id)
                .bind(participant_id)
                .bind(label)
                .bind(answer.expose())
                .bind(lang)
                .bind(to_ms(now))
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query(
            "INSERT INTO consents (id, visit_id, participant_id, role, version, lang, accepted_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(new_id())
        .bind(visit_id)
        .bind(participant_id)
        .bind(role.as_str())
        .bind(consent_version)
        .bind(lang)
        .bind(to_ms(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores (or replaces) a participant's survey.
    pub async fn save_survey(
        &self,
        visit_id: &str,
        participant_id: &str,
        role: Role,
        rating: u8,
        comment: Option<&Phi<String>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO surveys (participant_id, visit_id, role, rating, comment, submitted_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (participant_id) DO UPDATE SET rating = excluded.rating,
                 comment = excluded.comment, submitted_at = excluded.submitted_at",
        )
        .bind(participant_id)
        .bind(visit_id)
        .bind(role.as_str())
        .bind(i64::from(rating))
        .bind(comment.map(|c| c.expose().as_str()))
        .bind(to_ms(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Everything the patient pages stored for a visit.
    pub async fn check_in_record(&self, visit_id: &str) -> Result<CheckInRecord> {
        let rows = sqlx::query(
            "SELECT question_id, label, answer, submitted_at FROM intake_answers WHERE visit_id = ?
             ORDER BY rowid",
        )
        .bind(visit_id)
        .fetch_all(&self.pool)
        .await?;
        let intake_submitted_at = rows.iter().map(|r| from_ms(r.get(3))).max();
        let intake = rows
            .iter()
            .map(|r| IntakeAnswerRecord {
                question_id: r.get(0),
                label: r.get(1),
                answer: Phi::new(r.get(2)),
            })
            .collect();
        let consents = sqlx::query(
            "SELECT participant_id, role, version, lang, accepted_at FROM consents WHERE visit_id = ?
             ORDER BY accepted_at, id",
        )
        .bind(visit_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ConsentRecord {
                participant_id: r.get(0),
                role: role_of(&r.get::<String, _>(1))?,
                version: r.get(2),
                lang: r.get(3),
                accepted_at: from_ms(r.get(4)),
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let surveys = sqlx::query(
            "SELECT participant_id, role, rating, comment, submitted_at FROM surveys WHERE visit_id = ?
             ORDER BY submitted_at, participant_id",
        )
        .bind(visit_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(SurveyRecord {
                participant_id: r.get(0),
                role: role_of(&r.get::<String, _>(1))?,
                rating: r.get::<i64, _>(2).clamp(0, 5) as u8,
                comment: r.get::<Option<String>, _>(3).map(Phi::new),
                submitted_at: from_ms(r.get(4)),
            })
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(CheckInRecord {
            intake,
            intake_submitted_at,
            consents,
            surveys,
        })
    }
}
