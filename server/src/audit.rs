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

/// Events recorded together (committed in the same write, in order), when they were
/// recorded, and who waits for the last one's sequence number.
type Request = (
    Vec<Event>,
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
        self.record_all(vec![event]).await
    }

    /// Appends `events` in order, committed in the same write, and waits until they are;
    /// returns the last one's sequence number (with no events: the last committed one).
    /// One wait for the writer instead of one per event.
    pub async fn record_all(&self, events: Vec<Event>) -> Result<i64, AuditError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((events, Utc::now(), done))
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
    let (mut seq, mut prev) = head.clone();
    let mut rows = Vec::with_capacity(batch.len());
    let mut last = Vec::with_capacity(batch.len());
    for (events, at, _) in batch {
        let at = to_ms(*at);
        for event in events {
            seq += 1;
            let detail = event.detail.to_string();
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
            rows.push(LogRow {
                seq,
                at,
                event,
                detail,
                prev: std::mem::replace(&mut prev, hash.clone()),
                hash,
            });
        }
        last.push(seq);
    }
    // As few statements as possible: every one is a round trip to SQLite's worker thread. A
    // batch that fits one statement needs no transaction around it (a statement is atomic),
    // which saves the two round trips of BEGIN and COMMIT.
    if rows.len() <= ROWS_PER_STATEMENT {
        if !rows.is_empty() {
            insert_rows(&rows, pool).await?;
        }
    } else {
        let mut tx = pool.begin().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            insert_rows(chunk, &mut *tx).await?;
        }
        tx.commit().await?;
    }
    Ok(((seq, prev), last))
}

/// Rows per INSERT: 9 bound values each, far below SQLite's limit of 32,766 per statement.
const ROWS_PER_STATEMENT: usize = 512;

struct LogRow<'a> {
    seq: i64,
    at: i64,
    event: &'a Event,
    detail: String,
    prev: String,
    hash: String,
}

async fn insert_rows<'e, E>(rows: &[LogRow<'_>], db: E) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO audit_log (seq, at, actor, action, visit_id, subject, detail, prev_hash, hash) ",
    );
    insert.push_values(rows, |mut b, row| {
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
    insert.build().execute(db).await?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use crate::store::Store;

    async fn log() -> (tempfile::TempDir, Store, Audit) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Synchronous::Full).await.unwrap();
        store.migrate().await.unwrap();
        let audit = Audit::start(store.pool.clone()).await.unwrap();
        (dir, store, audit)
    }

    async fn subjects(store: &Store) -> Vec<(i64, String)> {
        sqlx::query_as("SELECT seq, subject FROM audit_log ORDER BY seq")
            .fetch_all(&store.pool)
            .await
            .unwrap()
    }

    fn event(n: usize) -> Event {
        Event::new("cli", Action::TokenIssued).subject(&format!("e{n}"))
    }

    #[tokio::test]
    async fn events_recorded_together_are_committed_in_order_on_the_chain() {
        let (_dir, store, audit) = log().await;
        assert_eq!(audit.record(event(0)).await.unwrap(), 1);
        let last = audit
            .record_all(vec![event(1), event(2), event(3)])
            .await
            .unwrap();
        assert_eq!(last, 4, "the last event's sequence number");
        // Nothing to record: the answer is what is already committed.
        assert_eq!(audit.record_all(Vec::new()).await.unwrap(), 4);
        assert_eq!(audit.record(event(4)).await.unwrap(), 5);
        let rows = subjects(&store).await;
        let expected: Vec<(i64, String)> =
            (0..5).map(|n| (n as i64 + 1, format!("e{n}"))).collect();
        assert_eq!(rows, expected);
        assert!(matches!(
            verify(&store.pool).await.unwrap(),
            Verdict::Intact { rows: 5, .. }
        ));
    }

    #[tokio::test]
    async fn a_batch_too_big_for_one_statement_is_committed_whole() {
        let (_dir, store, audit) = log().await;
        let many = ROWS_PER_STATEMENT * 2 + 3;
        let last = audit
            .record_all((0..many).map(event).collect())
            .await
            .unwrap();
        assert_eq!(last, many as i64);
        let rows = subjects(&store).await;
        assert_eq!(rows.len(), many);
        assert!(
            rows.iter()
                .enumerate()
                .all(|(n, (seq, subject))| *seq == n as i64 + 1 && *subject == format!("e{n}"))
        );
        assert!(matches!(
            verify(&store.pool).await.unwrap(),
            Verdict::Intact { rows, .. } if rows == many as u64
        ));
    }

    #[tokio::test]
    async fn concurrent_writers_each_get_their_own_rows_in_one_chain() {
        let (_dir, store, audit) = log().await;
        let writers: Vec<_> = (0..64)
            .map(|w| {
                let audit = audit.clone();
                tokio::spawn(async move {
                    audit
                        .record_all(vec![event(w * 2), event(w * 2 + 1)])
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut lasts = Vec::new();
        for w in writers {
            lasts.push(w.await.unwrap());
        }
        let rows = subjects(&store).await;
        assert_eq!(rows.len(), 128);
        // A writer's two events are adjacent, in its order, and its answer is the second.
        for last in lasts {
            let second = &rows[last as usize - 1].1;
            let first = &rows[last as usize - 2].1;
            let n: usize = second[1..].parse().unwrap();
            assert_eq!(n % 2, 1, "{first}, {second}");
            assert_eq!(*first, format!("e{}", n - 1));
        }
        assert!(matches!(
            verify(&store.pool).await.unwrap(),
            Verdict::Intact { rows: 128, .. }
        ));
    }
}
