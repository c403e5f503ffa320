//! Persistence: visits, participants, links, sessions, invitations, chat and the audit log.
//!
//! SQLite through sqlx, in WAL mode, in the data directory; the schema in `migrations/` is
//! kept portable so Postgres can be added behind the same functions. Times are Unix
//! milliseconds in the database and `DateTime<Utc>` everywhere else.

mod accounts;
mod cache;
mod chat;
mod ehr;
#[allow(unused_imports)]
pub use chat::*;
pub use ehr::*;
mod invitations;
mod links;
mod participants;
mod patient;
mod sessions;
mod visits;

pub use accounts::*;

pub use invitations::*;
pub use links::*;
pub use participants::*;
pub use patient::*;
pub use sessions::*;
pub use visits::*;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::config::Synchronous;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The database file inside the data directory.
pub const DB_FILE: &str = "rounds.db";

#[derive(Clone)]
pub struct Store {
    pub pool: SqlitePool,
    families: std::sync::Arc<FamilyCache>,
    /// Visits by id.
    visits: std::sync::Arc<cache::RowCache<String, VisitRow>>,
    /// Participants by id.
    participants: std::sync::Arc<cache::RowCache<String, ParticipantRow>>,
    /// (visit, clinician or invitee) to participant id: never changes once it exists.
    places: std::sync::Arc<cache::RowCache<(String, String), String>>,
    /// Join links by the hash of their code.
    links: std::sync::Arc<cache::RowCache<String, LinkRow>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

/// Rows kept by the read-through caches; see `cache.rs`.
const CACHED_VISITS: usize = 4096;
const CACHED_PARTICIPANTS: usize = 16_384;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("a stored row is not valid: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// True when the disk is full: the caller can say so instead of a generic failure.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Db(sqlx::Error::Database(e)) if e.code().as_deref() == Some("13"))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl Store {
    /// Opens (creating if needed) the database in `data_dir`. Does not migrate.
    pub async fn open(data_dir: &Path, synchronous: Synchronous) -> Result<Self> {
        let path = data_dir.join(DB_FILE);
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match synchronous {
                Synchronous::Full => SqliteSynchronous::Full,
                Synchronous::Normal => SqliteSynchronous::Normal,
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            families: Default::default(),
            visits: std::sync::Arc::new(cache::RowCache::new(CACHED_VISITS)),
            participants: std::sync::Arc::new(cache::RowCache::new(CACHED_PARTICIPANTS)),
            places: std::sync::Arc::new(cache::RowCache::new(CACHED_PARTICIPANTS)),
            links: std::sync::Arc::new(cache::RowCache::new(CACHED_PARTICIPANTS)),
        })
    }

    /// Applies pending migrations; returns how many ran.
    pub async fn migrate(&self) -> std::result::Result<usize, sqlx::migrate::MigrateError> {
        let before: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name='_sqlx_migrations'",
        )
        .fetch_one(&self.pool)
        .await?;
        let applied_before: i64 = if before > 0 {
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
                .fetch_one(&self.pool)
                .await?
        } else {
            0
        };
        MIGRATOR.run(&self.pool).await?;
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&self.pool)
            .await?;
        Ok((applied - applied_before).max(0) as usize)
    }

    /// A cheap query proving the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

pub fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub fn opt_from_ms(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(from_ms)
}

/// A fresh 128-bit identifier.
pub fn new_id() -> String {
    rounds_auth::random_id()
}
