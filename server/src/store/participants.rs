//! Participants of a visit and their admission state.

use chrono::{DateTime, Utc};
use rounds_proto::{Participant, ParticipantState, Phi, Role};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Result, Store, StoreError, from_ms, new_id, opt_from_ms, to_ms};

#[derive(Debug, Clone)]
pub struct ParticipantRow {
    pub id: String,
    pub visit_id: String,
    pub role: Role,
    pub invitee_id: Option<String>,
    pub clinician_id: Option<String>,
    pub display_name: Phi<String>,
    pub state: ParticipantState,
    pub joined_at: DateTime<Utc>,
    pub admitted_at: Option<DateTime<Utc>>,
}

impl ParticipantRow {
    pub fn to_proto(&self) -> Participant {
        Participant {
            id: self.id.clone(),
            role: self.role,
            state: self.state,
            display_name: self.display_name.clone(),
            joined_at: self.joined_at,
            admitted_at: self.admitted_at,
        }
    }
}

const COLUMNS: &str =
    "id, visit_id, role, invitee_id, clinician_id, display_name, state, joined_at, admitted_at";

fn from_row(r: &SqliteRow) -> Result<ParticipantRow> {
    let role: String = r.get(2);
    let state: String = r.get(6);
    Ok(ParticipantRow {
        id: r.get(0),
        visit_id: r.get(1),
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role}")))?,
        invitee_id: r.get(3),
        clinician_id: r.get(4),
        display_name: Phi::new(r.get(5)),
        state: ParticipantState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("participant state {state}")))?,
        joined_at: from_ms(r.get(7)),
        admitted_at: opt_from_ms(r.get(8)),
    })
}

pub struct NewParticipant<'a> {
    pub visit_id: &'a str,
    pub role: Role,
    pub invitee_id: Option<&'a str>,
    pub clinician_id: Option<&'a str>,
    pub display_name: &'a Phi<String>,
    pub state: ParticipantState,
}

impl Store {
    pub async fn insert_participant(
        &self,
        p: &NewParticipant<'_>,
        now: DateTime<Utc>,
    ) -> Result<ParticipantRow> {
        let id = new_id();
        let admitted_at = (p.state == ParticipantState::Admitted).then_some(to_ms(now));
        sqlx::query(
            "INSERT INTO participants (id, visit_id, role, invitee_id, clinician_id, display_name, state, joined_at, admitted_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(p.visit_id)
        .bind(p.role.as_str())
        .bind(p.invitee_id)
        .bind(p.clinician_id)
        .bind(p.display_name.expose())
        .bind(p.state.as_str())
        .bind(to_ms(now))
        .bind(admitted_at)
        .bind(to_ms(now))
        .execute(&self.pool)
        .await?;
        Ok(ParticipantRow {
            id,
            visit_id: p.visit_id.into(),
            role: p.role,
            invitee_id: p.invitee_id.map(Into::into),
            clinician_id: p.clinician_id.map(Into::into),
            display_name: p.display_name.clone(),
            state: p.state,
            joined_at: now,
            admitted_at: admitted_at.map(from_ms),
        })
    }

    /// Inserts the participant unless the same invitee or clinician is already in the visit
    /// (two taps on a link at once), in which case the existing one is returned.
    pub async fn insert_or_get_participant(
        &self,
        p: &NewParticipant<'_>,
        now: DateTime<Utc>,
    ) -> Result<ParticipantRow> {
        match self.insert_participant(p, now).await {
            Ok(row) => Ok(row),
            Err(StoreError::Db(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                let existing = match (p.invitee_id, p.clinician_id) {
                    (Some(invitee), _) => self.participant_by_invitee(p.visit_id, invitee).await?,
                    (None, Some(clinician)) => {
                        self.participant_by_clinician(p.visit_id, clinician).await?
                    }
                    (None, None) => None,
                };
                existing.ok_or_else(|| {
                    StoreError::Corrupt("participant vanished after a conflict".into())
                })
            }
            Err(e) => Err(e),
        }
    }

    pub async fn participant(&self, id: &str) -> Result<Option<ParticipantRow>> {
        let generation = match self.participants.get(&id.to_owned()) {
            Ok(row) => return Ok(Some(row)),
            Err(generation) => generation,
        };
        let sql = format!("SELECT {COLUMNS} FROM participants WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let row = row.as_ref().map(from_row).transpose()?;
        if let Some(row) = &row {
            self.participants
                .fill(id.to_owned(), row.clone(), generation);
        }
        Ok(row)
    }

    pub async fn participant_by_invitee(
        &self,
        visit_id: &str,
        invitee_id: &str,
    ) -> Result<Option<ParticipantRow>> {
        self.participant_in_place(visit_id, "invitee_id", invitee_id)
            .await
    }

    pub async fn participant_by_clinician(
        &self,
        visit_id: &str,
        clinician_id: &str,
    ) -> Result<Option<ParticipantRow>> {
        self.participant_in_place(visit_id, "clinician_id", clinician_id)
            .await
    }

    /// The participant a clinician or an invitee is in a visit. Which participant that is never
    /// changes once it exists (a rejoin is the same participant), so the mapping is kept; the
    /// row itself comes through [`Store::participant`]'s cache, which writes keep current.
    async fn participant_in_place(
        &self,
        visit_id: &str,
        column: &'static str,
        who: &str,
    ) -> Result<Option<ParticipantRow>> {
        let place = (visit_id.to_owned(), format!("{column}:{who}"));
        let generation = match self.places.get(&place) {
            Ok(id) => return self.participant(&id).await,
            Err(generation) => generation,
        };
        let sql = format!("SELECT {COLUMNS} FROM participants WHERE visit_id = ? AND {column} = ?");
        let row = sqlx::query(&sql)
            .bind(visit_id)
            .bind(who)
            .fetch_optional(&self.pool)
            .await?;
        let row = row.as_ref().map(from_row).transpose()?;
        if let Some(row) = &row {
            self.places.fill(place, row.id.clone(), generation);
        }
        Ok(row)
    }

    pub async fn participants(&self, visit_id: &str) -> Result<Vec<ParticipantRow>> {
        let sql =
            format!("SELECT {COLUMNS} FROM participants WHERE visit_id = ? ORDER BY joined_at, id");
        let rows = sqlx::query(&sql)
            .bind(visit_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Moves a participant from `from` to `to`; false if someone else changed it first.
    pub async fn transition_participant(
        &self,
        id: &str,
        from: ParticipantState,
        to: ParticipantState,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE participants SET state = ?, updated_at = ?,
                admitted_at = CASE WHEN ? = 'admitted' AND admitted_at IS NULL THEN ? ELSE admitted_at END
             WHERE id = ? AND state = ?",
        )
        .bind(to.as_str())
        .bind(to_ms(now))
        .bind(to.as_str())
        .bind(to_ms(now))
        .bind(id)
        .bind(from.as_str())
        .execute(&self.pool)
        .await?;
        self.participants.invalidate(&id.to_owned());
        Ok(r.rows_affected() == 1)
    }

    pub async fn rename_participant(&self, id: &str, name: &Phi<String>) -> Result<()> {
        sqlx::query("UPDATE participants SET display_name = ? WHERE id = ?")
            .bind(name.expose())
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.participants.invalidate(&id.to_owned());
        Ok(())
    }
}
