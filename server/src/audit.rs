//! The audit log: append-only and hash-chained.
//!
//! One writer task owns the chain head. Callers send an [`Event`] and wait until it is
//! committed, so an action is never reported done before its audit row is durable. Events
//! arriving together are committed in one transaction (group commit), which keeps token
//! minting fast while every token issued is still recorded.
//!
//! Each row's hash is `SHA-256(prev_hash ‖ seq ‖ at ‖ actor ‖ action ‖ visit ‖ subject ‖
//! detail)`; [`verify`] recomputes the chain and names the first row that does not match.
//! Details hold identifiers and enums only, never PHI.

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use sqlx::{Row, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::store::to_ms;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened. The string forms are stable: auditors query them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    LoginSucceeded,
    LoginFailed,
    SessionRefreshed,
    SessionRevoked,
    RefreshTokenReused,
    TokenIssued,
    VisitCreated,
    CheckedIn,
    Admitted,
    Denied,
    Removed,
    Left,
    Muted,
    VisitEnded,
    /// An EHR launched Rounds and the clinician was handed to the visit.
    EhrLaunched,
    /// An EHR launch stopped on an error page.
    EhrLaunchFailed,
    /// The visit's end was written back to the EHR's Encounter.
    EhrWrittenBack,
    /// Writing the visit's end back to the EHR failed.
    EhrWriteBackFailed,
    RunningLate,
    InvitationSent,
    InvitationFailed,
    ReminderSent,
    ReminderFailed,
    LinkRevoked,
    LinkIssued,
    KeysRotated,
    VisitViewed,
    /// A first sign-in through the identity provider created the account.
    AccountProvisioned,
    /// An account was linked to an identity provider's subject.
    AccountLinked,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::LoginSucceeded => "login.succeeded",
            Action::LoginFailed => "login.failed",
            Action::SessionRefreshed => "session.refreshed",
            Action::SessionRevoked => "session.revoked",
            Action::RefreshTokenReused => "session.refresh_reused",
            Action::TokenIssued => "token.issued",
            Action::VisitCreated => "visit.created",
            Action::CheckedIn => "visit.checked_in",
            Action::Admitted => "participant.admitted",
            Action::Denied => "participant.denied",
            Action::Removed => "participant.removed",
            Action::Left => "participant.left",
            Action::Muted => "participant.muted",
            Action::VisitEnded => "visit.ended",
            Action::EhrLaunched => "ehr.launched",
            Action::EhrLaunchFailed => "ehr.launch_failed",
            Action::EhrWrittenBack => "ehr.written_back",
            Action::EhrWriteBackFailed => "ehr.write_back_failed",
            Action::RunningLate => "visit.running_late",
            Action::InvitationSent => "invitation.sent",
            Action::InvitationFailed => "invitation.failed",
            Action::ReminderSent => "reminder.sent",
            Action::ReminderFailed => "reminder.failed",
            Action::LinkRevoked => "link.revoked",
            Action::LinkIssued => "link.issued",
            Action::KeysRotated => "keys.rotated",
            Action::VisitViewed => "visit.viewed",
            Action::AccountProvisioned => "account.provisioned",
            Action::AccountLinked => "account.linked",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Event {
    /// `clinician:<id>`, `participant:<id>`, `system`, `cli` or `anonymous`.
    pub actor: String,
    pub action: Action,
    pub visit_id: Option<String>,
    /// What the action was done to: a participant, token id, invitation.
    pub subject: Option<String>,
    /// Identifiers and enums only; never PHI.
    pub detail: serde_json::Value,
}

impl Event {
    pub fn new(actor: impl Into<String>, action: Action) -> Self {
        Self {
            actor: actor.into(),
            action,
            visit_id: None,
            subject: None,
            detail: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn visit(mut self, visit_id: &str) -> Self {
        self.visit_id = Some(visit_id.to_owned());
        self
    }

    pub fn subject(mut self, subject: &str) -> Self {
        self.subject = Some(subject.to_owned());
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("the audit log could not be written: {0}")]
    Write(String),
    #[error("the audit log could not be written: the disk is full")]
    DiskFull,
    #[error("the audit writer has stopped")]
    Stopped,
}

type Request = (
    Event,
    DateTime<Utc>,
    oneshot::Sender<Result<i64, AuditError>>,
);

/// A handle to the audit writer.
#[derive(Clone, Debug)]
pub struct Audit {
    tx: mpsc::Sender<Request>,
}

impl Audit {
    /// Starts the writer task on `pool`, continuing the stored chain.
    pub async fn start(pool: SqlitePool) -> Result<Self, sqlx::Error> {
        let head = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&pool)
            .await?
            .map(|r| (r.get::<i64, _>(0), r.get::<String, _>(1)))
            .unwrap_or((0, GENESIS.to_owned()));
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(writer(pool, rx, head));
        Ok(Self { tx })
    }

    /// Appends `event` and waits until it is committed; returns its sequence number.
    pub async fn record(&self, event: Event) -> Result<i64, AuditError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((event, Utc::now(), done))
            .await
            .map_err(|_| AuditError::Stopped)?;
        wait.await.map_err(|_| AuditError::Stopped)?
    }
}

const MAX_BATCH: usize = 512;

async fn writer(pool: SqlitePool, mut rx: mpsc::Receiver<Request>, mut head: (i64, String)) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match commit(&pool, &batch, &head).await {
            Ok((new_head, seqs)) => {
                head = new_head;
                for ((_, _, done), seq) in batch.drain(..).zip(seqs) {
                    let _ = done.send(Ok(seq));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, rows = batch.len(), "audit log write failed");
                let disk_full =
                    matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("13"));
                let message = e.to_string();
                for (_, _, done) in batch.drain(..) {
                    let error = if disk_full {
                        AuditError::DiskFull
                    } else {
                        AuditError::Write(message.clone())
                    };
                    let _ = done.send(Err(error));
                }
            }
        }
    }
}

async fn commit(
    pool: &SqlitePool,
    batch: &[Request],
    head: &(i64, String),
) -> Result<((i64, String), Vec<i64>), sqlx::Error> {
    struct Row<'a> {
        seq: i64,
        at: i64,
        event: &'a Event,
        detail: String,
        prev: String,
        hash: String,
    }
    let (mut seq, mut prev) = head.clone();
    let mut rows = Vec::with_capacity(batch.len());
    for (event, at, _) in batch {
        seq += 1;
        let detail = event.detail.to_string();
        let at = to_ms(*at);
        let hash = row_hash(
            &prev,
            seq,
            at,
            &event.actor,
            event.action.as_str(),
            event.visit_id.as_deref(),
            event.subject.as_deref(),
            &detail,
        );
        rows.push(Row {
            seq,
            at,
            event,
            detail,
            prev: std::mem::replace(&mut prev, hash.clone()),
            hash,
        });
    }
    // One statement per batch: every statement is a round trip to SQLite's worker thread.
    let mut tx = pool.begin().await?;
    for chunk in rows.chunks(256) {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO audit_log (seq, at, actor, action, visit_id, subject, detail, prev_hash, hash) ",
        );
        insert.push_values(chunk, |mut b, row| {
            b.push_bind(row.seq)
                .push_bind(row.at)
                .push_bind(&row.event.actor)
                .push_bind(row.event.action.as_str())
                .push_bind(&row.event.visit_id)
                .push_bind(&row.event.subject)
                .push_bind(&row.detail)
                .push_bind(&row.prev)
                .push_bind(&row.hash);
        });
        insert.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    let seqs = rows.iter().map(|r| r.seq).collect();
    Ok(((seq, prev), seqs))
}

#[allow(clippy::too_many_arguments)]
fn row_hash(
    prev: &str,
    seq: i64,
    at: i64,
    actor: &str,
    action: &str,
    visit: Option<&str>,
    subject: Option<&str>,
    detail: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [prev, &seq.to_string(), &at.to_string(), actor, action] {
        h.update(part.len().to_le_bytes());
        h.update(part.as_bytes());
    }
    for part in [visit, subject] {
        match part {
            Some(p) => {
                h.update([1]);
                h.update(p.len().to_le_bytes());
                h.update(p.as_bytes());
            }
            None => h.update([0]),
        }
    }
    h.update(detail.len().to_le_bytes());
    h.update(detail.as_bytes());
    hex::encode(h.finalize())
}

/// The result of checking the chain.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Intact { rows: u64, head: String },
    Broken { seq: i64, reason: String },
}

/// Recomputes every row's hash in order.
pub async fn verify(pool: &SqlitePool) -> Result<Verdict, sqlx::Error> {
    let mut rows = sqlx::query(
        "SELECT seq, at, actor, action, visit_id, subject, detail, prev_hash, hash FROM audit_log ORDER BY seq",
    )
    .fetch(pool);
    let mut expected_prev = GENESIS.to_owned();
    let mut expected_seq = 1;
    let mut count = 0u64;
    while let Some(row) = rows.next().await {
        let row = row?;
        let seq: i64 = row.get(0);
        if seq != expected_seq {
            return Ok(Verdict::Broken {
                seq: expected_seq,
                reason: format!("row {expected_seq} is missing (next row is {seq})"),
            });
        }
        let prev: String = row.get(7);
        if prev != expected_prev {
            return Ok(Verdict::Broken {
                seq,
                reason: "its prev_hash does not match the hash of the row before".into(),
            });
        }
        let visit: Option<String> = row.get(4);
        let subject: Option<String> = row.get(5);
        let computed = row_hash(
            &prev,
            seq,
            row.get(1),
            &row.get::<String, _>(2),
            &row.get::<String, _>(3),
            visit.as_deref(),
            subject.as_deref(),
            &row.get::<String, _>(6),
        );
        let stored: String = row.get(8);
        if computed != stored {
            return Ok(Verdict::Broken {
                seq,
                reason: "its contents do not match its hash (the row was altered)".into(),
            });
        }
        expected_prev = stored;
        expected_seq += 1;
        count += 1;
    }
    Ok(Verdict::Intact {
        rows: count,
        head: expected_prev,
    })
}
