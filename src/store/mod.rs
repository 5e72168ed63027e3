//! The project store: the projects created at runtime through the projects
//! API (docs/projects.md), in an embedded SQLite file (one process) or a
//! PostgreSQL database (several replicas).
//!
//! This module is the I/O edge and nothing else: rows in, rows out, each
//! write one statement whose `WHERE` clause carries its precondition, so
//! concurrent writers (two replicas, the controller) can never lose an
//! update: a compare-and-set on the row's revision either applies whole or
//! changes nothing. What a row means (its access rules) is read by
//! [`crate::config::project_spec`], the same reader as the config's
//! projects; serve keeps a snapshot of all rows ([`crate::serve::projects`]).
//!
//! SQL is written once for both databases (`$N` parameters, which SQLite
//! reads as numbered too); only the schema differs
//! ([`migrations`]).

pub mod migrations;
pub mod view;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::config::StoreUrl;
use crate::naming::ProjectName;

/// A query against whichever database this is. Each arm is type-checked on
/// its own, so one body serves both drivers.
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

#[derive(Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An open, migrated store.
#[derive(Clone)]
pub struct Store {
    db: Db,
    /// What logs and errors may say of it (never a URL).
    describe: String,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("describe", &self.describe)
            .finish_non_exhaustive()
    }
}

/// A database call waits this long for a connection before it says the
/// store is unavailable: an API caller gets a 503 in seconds, not minutes.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// What went wrong, in the terms the API answers in.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or refused the statement.
    #[error("the project store is unavailable: {0}")]
    Unavailable(String),
    #[error(
        "the project store's schema is version {found}, newer than this rise-registry knows ({known}): a newer release migrated it; run that release (or newer)"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("no such project")]
    NotFound,
    /// `If-Match` / `If-None-Match` did not hold; the row as it is now.
    #[error("the project changed: its ETag no longer matches")]
    PreconditionFailed { current: Option<Box<Record>> },
    /// The project is being deleted: it cannot change until it is gone.
    #[error("the project is being deleted")]
    Deleting,
    /// A row this binary cannot read.
    #[error("the project store holds a row this rise-registry cannot read: {0}")]
    Corrupt(String),
}

fn unavailable(e: sqlx::Error) -> StoreError {
    // sqlx's messages name hosts, databases and server errors, never the
    // password: the URL itself is not part of any of them.
    StoreError::Unavailable(e.to_string())
}

/// Where a project's repository stands, as the controller last wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoState {
    /// Created or changed; the controller has not made its repository yet.
    Pending,
    Ready,
    /// `DELETE` was called; the row goes once the repository is orphaned
    /// (or deleted, with `auto_remove`).
    Deleting,
    Orphaned,
    Failed,
}

impl RepoState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Deleting => "deleting",
            Self::Orphaned => "orphaned",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "ready" => Self::Ready,
            "deleting" => Self::Deleting,
            "orphaned" => Self::Orphaned,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// A row's version, as the API shows it in `ETag`: the row's creation
/// time and its revision, so a project deleted and made again never
/// matches an ETag of the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Etag {
    pub created_ms: i64,
    pub revision: i64,
}

impl fmt::Display for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{:x}-{}\"", self.created_ms, self.revision)
    }
}

impl Etag {
    /// Reads an entity tag as a client sends it back (`"…"`, or weak
    /// `W/"…"`, which compares the same here: a row has one form).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let s = s.strip_prefix("W/").unwrap_or(s);
        let inner = s.strip_prefix('"')?.strip_suffix('"')?;
        let (created, revision) = inner.split_once('-')?;
        let plain =
            |t: &str| !t.is_empty() && t.len() <= 16 && t.bytes().all(|b| b.is_ascii_hexdigit());
        if !plain(created) || !revision.bytes().all(|b| b.is_ascii_digit()) || revision.len() > 18 {
            return None;
        }
        Some(Self {
            created_ms: i64::from_str_radix(created, 16).ok()?,
            revision: revision.parse().ok()?,
        })
    }
}

/// The condition a write must meet (`If-Match`, `If-None-Match`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// None given: create or replace.
    Any,
    /// `If-Match: *`: the project must exist.
    Exists,
    /// `If-Match: "…"`: the project must be at one of these versions.
    Matches(Vec<Etag>),
    /// `If-None-Match: *`: the project must not exist.
    Absent,
}

impl Precondition {
    fn holds(&self, current: Option<&Record>) -> bool {
        match (self, current) {
            (Self::Any, _) => true,
            (Self::Exists, c) => c.is_some(),
            (Self::Matches(tags), Some(c)) => tags.contains(&c.etag()),
            (Self::Matches(_), None) => false,
            (Self::Absent, c) => c.is_none(),
        }
    }
}

/// One project row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: ProjectName,
    /// The project's rules as JSON (`{"access": [...], "pull_access":
    /// [...]}`), as the API accepted them.
    pub spec: String,
    pub revision: i64,
    pub created_ms: i64,
    /// Unix seconds.
    pub updated_at: i64,
    pub state: RepoState,
    pub message: Option<String>,
    /// Unix seconds of the controller's last pass over this project.
    pub reconciled_at: Option<i64>,
}

impl Record {
    /// A row as tests need one: revision 1, made at 1 ms, never reconciled.
    #[cfg(test)]
    pub(crate) fn for_test(name: &str, state: RepoState, spec: &str) -> Self {
        Self {
            name: ProjectName::parse(name).expect("a valid test name"),
            spec: spec.into(),
            revision: 1,
            created_ms: 1,
            updated_at: 0,
            state,
            message: None,
            reconciled_at: None,
        }
    }

    pub fn etag(&self) -> Etag {
        Etag {
            created_ms: self.created_ms,
            revision: self.revision,
        }
    }
}

type Row = (
    String,
    String,
    i64,
    i64,
    i64,
    String,
    Option<String>,
    Option<i64>,
);

/// The columns of [`Row`], in its order.
macro_rules! columns {
    () => {
        "name, spec, revision, created_ms, updated_at, state, message, reconciled_at"
    };
}
const SELECT_ALL: &str = concat!("SELECT ", columns!(), " FROM rise_projects ORDER BY name");
const SELECT_ONE: &str = concat!("SELECT ", columns!(), " FROM rise_projects WHERE name = $1");

fn record(row: Row) -> Result<Record, StoreError> {
    let (name, spec, revision, created_ms, updated_at, state, message, reconciled_at) = row;
    let name = ProjectName::parse(&name)
        .map_err(|e| StoreError::Corrupt(format!("project name {name:?}: {}", e.message)))?;
    let state = RepoState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("project `{name}`: state {state:?}")))?;
    Ok(Record {
        name,
        spec,
        revision,
        created_ms,
        updated_at,
        state,
        message,
        reconciled_at,
    })
}

/// How [`Store::connect`] opens the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

/// What a `put` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
}

/// A write that lost a race is tried again this many times before the
/// caller is told the store is too busy.
const CAS_ATTEMPTS: usize = 8;

impl Store {
    /// Connects, reading and writing (serve) or reading only (plan, apply,
    /// doctor: a SQLite file opened read only, a small PostgreSQL pool).
    async fn connect(url: &StoreUrl, access: Access) -> Result<Self, StoreError> {
        let writes = access == Access::ReadWrite;
        match url {
            StoreUrl::Sqlite(path) => {
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(writes)
                    .read_only(!writes)
                    .busy_timeout(Duration::from_secs(5));
                // Readers never wait for the writer.
                let options = if writes {
                    options.journal_mode(SqliteJournalMode::Wal)
                } else {
                    options
                };
                let pool = SqlitePoolOptions::new()
                    .max_connections(if writes { 4 } else { 1 })
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(|e| {
                        StoreError::Unavailable(format!(
                            "opening SQLite file {}: {e}",
                            path.display()
                        ))
                    })?;
                Ok(Self {
                    db: Db::Sqlite(pool),
                    describe: url.describe(),
                })
            }
            StoreUrl::Postgres(secret) => {
                // The parser's message may quote the URL, password included.
                let options = PgConnectOptions::from_str(secret.expose()).map_err(|_| {
                    StoreError::Unavailable(
                        "store.url is not a PostgreSQL URL that can be used (its text is a secret and is not repeated here)"
                            .into(),
                    )
                })?;
                let pool = PgPoolOptions::new()
                    .max_connections(if writes { 8 } else { 2 })
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(unavailable)?;
                Ok(Self {
                    db: Db::Postgres(pool),
                    describe: url.describe(),
                })
            }
        }
    }

    /// Connects and migrates.
    ///
    /// # Errors
    /// The database cannot be reached or opened, or its schema is newer
    /// than this binary.
    pub async fn open(url: &StoreUrl) -> Result<Self, StoreError> {
        let store = Self::connect(url, Access::ReadWrite).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without changing anything: for `plan`, `apply` and doctor,
    /// which read the store but leave its schema to serve. `None` when a
    /// SQLite file does not exist yet (no project was ever made).
    ///
    /// # Errors
    /// The database cannot be reached, has no schema yet, or has a schema
    /// other than this binary's.
    pub async fn open_existing(url: &StoreUrl) -> Result<Option<Self>, StoreError> {
        if let StoreUrl::Sqlite(path) = url
            && !path.exists()
        {
            return Ok(None);
        }
        let store = Self::connect(url, Access::ReadOnly).await?;
        let version = store.schema_version().await.map_err(|e| {
            StoreError::Unavailable(format!(
                "{e} (a store serve has never opened has no schema: serve applies it at start)"
            ))
        })?;
        let known = migrations::latest();
        match version {
            Some(v) if v > known => Err(StoreError::SchemaTooNew { found: v, known }),
            Some(v) if v == known => Ok(Some(store)),
            found => Err(StoreError::Unavailable(format!(
                "the project store's schema is version {}, older than this rise-registry's ({known}): start this release's serve once (it migrates the store), or use the release that matches it",
                found.unwrap_or(0)
            ))),
        }
    }

    /// What logs may say of this store.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Whether it is PostgreSQL, where other processes may write too.
    pub fn is_shared(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        match &self.db {
            Db::Sqlite(pool) => {
                let mut conn = pool.acquire().await.map_err(unavailable)?;
                // IMMEDIATE takes the write lock at once: two processes on
                // one file migrate one after the other.
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?;
                let result: Result<(), StoreError> =
                    async { migrate_on!(&mut *conn, |m: &migrations::Migration| m.sqlite) }.await;
                let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
                sqlx::query(end)
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?;
                result
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(unavailable)?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(migrations::PG_MIGRATION_LOCK)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                let result: Result<(), StoreError> =
                    async { migrate_on!(&mut *tx, |m: &migrations::Migration| m.postgres) }.await;
                result?;
                tx.commit().await.map_err(unavailable)
            }
        }
    }

    /// The schema version the database records.
    ///
    /// # Errors
    /// The store is unavailable.
    pub async fn schema_version(&self) -> Result<Option<i64>, StoreError> {
        on_db!(&self.db, pool => {
            sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(version) FROM rise_registry_schema")
                .fetch_one(pool)
                .await
                .map_err(unavailable)
        })
    }

    /// Every row, by name.
    ///
    /// # Errors
    /// The store is unavailable, or holds a row this binary cannot read.
    pub async fn list(&self) -> Result<Vec<Record>, StoreError> {
        let rows: Vec<Row> = on_db!(&self.db, pool => {
            sqlx::query_as(SELECT_ALL).fetch_all(pool).await.map_err(unavailable)?
        });
        rows.into_iter().map(record).collect()
    }

    /// One row.
    ///
    /// # Errors
    /// As [`Self::list`].
    pub async fn get(&self, name: &ProjectName) -> Result<Option<Record>, StoreError> {
        let row: Option<Row> = on_db!(&self.db, pool => {
            sqlx::query_as(SELECT_ONE)
                .bind(name.as_str())
                .fetch_optional(pool)
                .await
                .map_err(unavailable)?
        });
        row.map(record).transpose()
    }

    /// Creates or replaces a project's rules, if `condition` holds. A new
    /// row is `pending`; a changed one keeps its repository's state (the
    /// rules say who may push, not what the repository is).
    ///
    /// # Errors
    /// [`StoreError::PreconditionFailed`], [`StoreError::Deleting`], or the
    /// store is unavailable.
    pub async fn put(
        &self,
        name: &ProjectName,
        spec: &str,
        condition: &Precondition,
        now_ms: i64,
    ) -> Result<(Record, Written), StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let current = self.get(name).await?;
            if !condition.holds(current.as_ref()) {
                return Err(StoreError::PreconditionFailed {
                    current: current.map(Box::new),
                });
            }
            let changed = match &current {
                None => {
                    let sql = "INSERT INTO rise_projects (name, spec, revision, created_ms, updated_at, state) VALUES ($1, $2, 1, $3, $4, 'pending') ON CONFLICT (name) DO NOTHING";
                    on_db!(&self.db, pool => {
                        sqlx::query(sql)
                            .bind(name.as_str())
                            .bind(spec)
                            .bind(now_ms)
                            .bind(now_ms / 1000)
                            .execute(pool)
                            .await
                            .map_err(unavailable)?
                            .rows_affected()
                    })
                }
                Some(row) if row.state == RepoState::Deleting => {
                    return Err(StoreError::Deleting);
                }
                Some(row) => {
                    let sql = "UPDATE rise_projects SET spec = $1, revision = revision + 1, updated_at = $2 WHERE name = $3 AND revision = $4 AND created_ms = $5";
                    on_db!(&self.db, pool => {
                        sqlx::query(sql)
                            .bind(spec)
                            .bind(now_ms / 1000)
                            .bind(name.as_str())
                            .bind(row.revision)
                            .bind(row.created_ms)
                            .execute(pool)
                            .await
                            .map_err(unavailable)?
                            .rows_affected()
                    })
                }
            };
            if changed == 1 {
                let written = if current.is_none() {
                    Written::Created
                } else {
                    Written::Updated
                };
                // Read back what now stands (another write may already
                // follow ours; the caller gets the row as it is).
                return match self.get(name).await? {
                    Some(row) => Ok((row, written)),
                    None => Err(StoreError::NotFound),
                };
            }
            // Someone else wrote between our read and our write: look again.
        }
        Err(StoreError::Unavailable(
            "too many concurrent writes to this project; try again".into(),
        ))
    }

    /// Marks a project `deleting`, if `condition` holds. Deleting one that
    /// is already being deleted changes nothing and succeeds.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::PreconditionFailed`], or the
    /// store is unavailable.
    pub async fn delete(
        &self,
        name: &ProjectName,
        condition: &Precondition,
        now_ms: i64,
    ) -> Result<Record, StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let Some(current) = self.get(name).await? else {
                return Err(StoreError::NotFound);
            };
            if !condition.holds(Some(&current)) {
                return Err(StoreError::PreconditionFailed {
                    current: Some(Box::new(current)),
                });
            }
            if current.state == RepoState::Deleting {
                return Ok(current);
            }
            let sql = "UPDATE rise_projects SET state = 'deleting', message = NULL, revision = revision + 1, updated_at = $1 WHERE name = $2 AND revision = $3 AND created_ms = $4";
            let changed = on_db!(&self.db, pool => {
                sqlx::query(sql)
                    .bind(now_ms / 1000)
                    .bind(name.as_str())
                    .bind(current.revision)
                    .bind(current.created_ms)
                    .execute(pool)
                    .await
                    .map_err(unavailable)?
                    .rows_affected()
            });
            if changed == 1 {
                return self.get(name).await?.ok_or(StoreError::NotFound);
            }
        }
        Err(StoreError::Unavailable(
            "too many concurrent writes to this project; try again".into(),
        ))
    }

    /// Takes or renews the lease `name` for `holder` until `now_ms +
    /// ttl_ms`, unless another holder's lease is still running. One
    /// statement, so two replicas asking at once cannot both win.
    ///
    /// # Errors
    /// The store is unavailable.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let sql = "INSERT INTO rise_leases (name, holder, expires_ms) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms WHERE rise_leases.holder = excluded.holder OR rise_leases.expires_ms < $4";
        let changed = on_db!(&self.db, pool => {
            sqlx::query(sql)
                .bind(name)
                .bind(holder)
                .bind(now_ms.saturating_add(ttl_ms))
                .bind(now_ms)
                .execute(pool)
                .await
                .map_err(unavailable)?
                .rows_affected()
        });
        Ok(changed == 1)
    }

    /// Gives the lease up, if `holder` has it, so another replica need not
    /// wait for it to run out.
    ///
    /// # Errors
    /// The store is unavailable.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            sqlx::query("DELETE FROM rise_leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(pool)
                .await
                .map_err(unavailable)?
                .rows_affected()
        });
        Ok(())
    }

    /// Who holds lease `name`, and until when (unix milliseconds).
    ///
    /// # Errors
    /// The store is unavailable.
    pub async fn lease(&self, name: &str) -> Result<Option<(String, i64)>, StoreError> {
        on_db!(&self.db, pool => {
            sqlx::query_as::<_, (String, i64)>(
                "SELECT holder, expires_ms FROM rise_leases WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(pool)
            .await
            .map_err(unavailable)
        })
    }

    /// Records what the controller found for `record`'s repository, if
    /// the row is still the one it read (same revision): a row changed
    /// since is left for the next pass. The revision stays: it versions
    /// the rules, which this does not touch.
    ///
    /// # Errors
    /// The store is unavailable.
    pub async fn set_state(
        &self,
        record: &Record,
        state: RepoState,
        message: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE rise_projects SET state = $1, message = $2, reconciled_at = $3 WHERE name = $4 AND revision = $5 AND created_ms = $6";
        let changed = on_db!(&self.db, pool => {
            sqlx::query(sql)
                .bind(state.as_str())
                .bind(message)
                .bind(now)
                .bind(record.name.as_str())
                .bind(record.revision)
                .bind(record.created_ms)
                .execute(pool)
                .await
                .map_err(unavailable)?
                .rows_affected()
        });
        Ok(changed == 1)
    }

    /// Removes a row whose deletion is done, if it is still the one the
    /// controller read.
    ///
    /// # Errors
    /// The store is unavailable.
    pub async fn remove_deleted(&self, record: &Record) -> Result<bool, StoreError> {
        let sql = "DELETE FROM rise_projects WHERE name = $1 AND revision = $2 AND created_ms = $3 AND state = 'deleting'";
        let changed = on_db!(&self.db, pool => {
            sqlx::query(sql)
                .bind(record.name.as_str())
                .bind(record.revision)
                .bind(record.created_ms)
                .execute(pool)
                .await
                .map_err(unavailable)?
                .rows_affected()
        });
        Ok(changed == 1)
    }

    /// A connection that receives a notification for every changed row
    /// (PostgreSQL only; `None` for SQLite, where this process is the only
    /// writer).
    ///
    /// # Errors
    /// The store is unavailable.
    pub async fn listener(&self) -> Result<Option<sqlx::postgres::PgListener>, StoreError> {
        let Db::Postgres(pool) = &self.db else {
            return Ok(None);
        };
        let mut listener = sqlx::postgres::PgListener::connect_with(pool)
            .await
            .map_err(unavailable)?;
        listener
            .listen(migrations::CHANNEL)
            .await
            .map_err(unavailable)?;
        Ok(Some(listener))
    }
}

/// Applies what [`migrations::step`] says, on `$conn` (a connection
/// inside the transaction the caller holds), with the text `$text` picks
/// for this database. A macro, so one body serves both drivers.
macro_rules! migrate_on {
    ($conn:expr, $text:expr) => {{
        let conn = $conn;
        sqlx::query(migrations::SCHEMA_TABLE)
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
        let recorded: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM rise_registry_schema")
                .fetch_one(&mut *conn)
                .await
                .map_err(unavailable)?;
        match migrations::step(recorded) {
            migrations::Step::TooNew { found, known } => {
                Err(StoreError::SchemaTooNew { found, known })
            }
            migrations::Step::Apply(list) => {
                for m in list {
                    for statement in migrations::statements($text(m)) {
                        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                            .execute(&mut *conn)
                            .await
                            .map_err(|e| {
                                StoreError::Unavailable(format!(
                                    "migration {} ({}): {e}",
                                    m.version, m.description
                                ))
                            })?;
                    }
                    sqlx::query(
                        "INSERT INTO rise_registry_schema (version, description, applied_at) VALUES ($1, $2, $3)",
                    )
                    .bind(m.version)
                    .bind(m.description)
                    .bind(crate::clock::unix_now())
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?;
                    tracing::info!(
                        version = m.version,
                        description = m.description,
                        "project store migrated"
                    );
                }
                Ok(())
            }
        }
    }};
}
use migrate_on;
