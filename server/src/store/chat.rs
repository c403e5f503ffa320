//! Chat messages, stored with the visit. The text is PHI.

use chrono::{DateTime, Utc};
use rounds_proto::{ChatMessage, Phi, Role};
use sqlx::Row;

use super::{Result, Store, StoreError, from_ms, new_id, to_ms};

impl Store {
    pub async fn insert_chat(
        &self,
        visit_id: &str,
        sender_id: &str,
        sender_role: Role,
        recipient_id: Option<&str>,
        body: &Phi<String>,
        now: DateTime<Utc>,
    ) -> Result<ChatMessage> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO chat_messages (id, visit_id, sender_id, sender_role, recipient_id, body, sent_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(visit_id)
        .bind(sender_id)
        .bind(sender_role.as_str())
        .bind(recipient_id)
        .bind(body.expose())
        .bind(to_ms(now))
        .execute(&self.pool)
        .await?;
        Ok(ChatMessage {
            id,
            from: sender_id.into(),
            from_role: sender_role,
            to: recipient_id.map(Into::into),
            text: body.clone(),
            sent_at: now,
        })
    }

    /// Every message of a visit, oldest first. Callers filter by what the reader may see.
    pub async fn chat(&self, visit_id: &str) -> Result<Vec<ChatMessage>> {
        let rows = sqlx::query(
            "SELECT id, sender_id, sender_role, recipient_id, body, sent_at FROM chat_messages
             WHERE visit_id = ? ORDER BY sent_at, id",
        )
        .bind(visit_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.get(2);
                Ok(ChatMessage {
                    id: r.get(0),
                    from: r.get(1),
                    from_role: Role::parse(&role)
                        .ok_or_else(|| StoreError::Corrupt(format!("chat role {role}")))?,
                    to: r.get(3),
                    text: Phi::new(r.get(4)),
                    sent_at: from_ms(r.get(5)),
                })
            })
            .collect()
    }
}
