//! Invitations sent and the reminders still due.

use chrono::{DateTime, Utc};
use rounds_proto::{Channel, InvitationStatus, Invitee, Phi};
use sqlx::Row;

use super::{Result, Store, to_ms};

pub struct NewInvitation<'a> {
    pub id: &'a str,
    pub visit_id: &'a str,
    pub invitee: Invitee,
    pub invitee_id: &'a str,
    pub channel: Channel,
    pub recipient: Option<&'a Phi<String>>,
    pub status: InvitationStatus,
    pub provider_id: Option<&'a str>,
    pub reminder_at: Option<DateTime<Utc>>,
    pub created_by: &'a str,
}

/// A reminder whose time has come.
#[derive(Debug, Clone)]
pub struct DueReminder {
    pub invitation_id: String,
    pub visit_id: String,
    pub invitee: Invitee,
    pub invitee_id: String,
    pub channel: Channel,
    pub recipient: Phi<String>,
    pub attempts: u32,
}

fn invitee_str(i: Invitee) -> &'static str {
    match i {
        Invitee::Patient => "patient",
        Invitee::Guest => "guest",
        Invitee::Interpreter => "interpreter",
    }
}

fn parse_invitee(s: &str) -> Invitee {
    match s {
        "guest" => Invitee::Guest,
        "interpreter" => Invitee::Interpreter,
        _ => Invitee::Patient,
    }
}

fn status_str(s: InvitationStatus) -> &'static str {
    match s {
        InvitationStatus::Sent => "sent",
        InvitationStatus::Failed => "failed",
        InvitationStatus::Created => "created",
    }
}

impl Store {
    pub async fn insert_invitation(&self, i: &NewInvitation<'_>, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "INSERT INTO invitations (id, visit_id, invitee, invitee_id, channel, recipient, status, provider_id, reminder_at, created_by, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(i.id)
        .bind(i.visit_id)
        .bind(invitee_str(i.invitee))
        .bind(i.invitee_id)
        .bind(i.channel.as_str())
        .bind(i.recipient.map(|r| r.expose().as_str()))
        .bind(status_str(i.status))
        .bind(i.provider_id)
        .bind(i.reminder_at.map(to_ms))
        .bind(i.created_by)
        .bind(to_ms(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Reminders due at `now` whose visit has not ended, oldest first.
    pub async fn due_reminders(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<DueReminder>> {
        let rows = sqlx::query(
            "SELECT i.id, i.visit_id, i.invitee, i.invitee_id, i.channel, i.recipient, i.reminder_attempts
             FROM invitations i JOIN visits v ON v.id = i.visit_id
             WHERE i.reminder_at IS NOT NULL AND i.reminder_at <= ? AND i.reminder_sent_at IS NULL
               AND i.recipient IS NOT NULL AND i.reminder_attempts < 5
               AND v.ended_at IS NULL AND v.started_at IS NULL
             ORDER BY i.reminder_at LIMIT ?",
        )
        .bind(to_ms(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let channel: String = r.get(4);
                DueReminder {
                    invitation_id: r.get(0),
                    visit_id: r.get(1),
                    invitee: parse_invitee(&r.get::<String, _>(2)),
                    invitee_id: r.get(3),
                    channel: if channel == "email" {
                        Channel::Email
                    } else {
                        Channel::Sms
                    },
                    recipient: Phi::new(r.get(5)),
                    attempts: r.get::<i64, _>(6).try_into().unwrap_or(0),
                }
            })
            .collect())
    }

    pub async fn mark_reminder_sent(&self, invitation_id: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE invitations SET reminder_sent_at = ?, reminder_attempts = reminder_attempts + 1 WHERE id = ?")
            .bind(to_ms(now))
            .bind(invitation_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a failed attempt and pushes the next one back.
    pub async fn defer_reminder(&self, invitation_id: &str, retry_at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE invitations SET reminder_at = ?, reminder_attempts = reminder_attempts + 1 WHERE id = ?")
            .bind(to_ms(retry_at))
            .bind(invitation_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
