//! Embedded SQLite storage, created and migrated on start. One connection behind a mutex;
//! every call runs on tokio's blocking pool ([`Store::call`]) so the async threads never
//! wait on the disk.
//!
//! Tables: `persons` (subject id, keyed hash of the phone, masked display fields, address —
//! never the raw ID number), `declarations`, `idempotency` (declaration keys and their
//! answers) and `colours` (the last computed colour per person, with when it next changes).

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use shouhu_code::time::UnixTime;
use shouhu_code::{Colour, SubjectId};

use crate::facts::Declaration;

/// Schema migrations, applied in order; the database records how many ran.
const MIGRATIONS: &[&str] = &["CREATE TABLE persons (
        subject TEXT PRIMARY KEY,
        phone_hash TEXT NOT NULL,
        masked_name TEXT NOT NULL,
        id_last4 TEXT NOT NULL,
        region TEXT NOT NULL,
        address TEXT NOT NULL,
        registered_at INTEGER NOT NULL
    );
    CREATE TABLE declarations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        subject TEXT NOT NULL,
        at INTEGER NOT NULL,
        temperature REAL NOT NULL,
        symptoms TEXT NOT NULL,
        travel TEXT NOT NULL
    );
    CREATE INDEX declarations_by_subject ON declarations (subject, at);
    CREATE TABLE idempotency (
        subject TEXT NOT NULL,
        key TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        response TEXT NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (subject, key)
    );
    CREATE TABLE colours (
        subject TEXT PRIMARY KEY,
        colour TEXT NOT NULL,
        ruleset_version INTEGER NOT NULL,
        as_of INTEGER NOT NULL,
        next_change_at INTEGER
    );
    CREATE INDEX colours_by_next_change ON colours (next_change_at);"];

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The blocking task died.
    #[error("storage task failed: {0}")]
    Task(String),
    /// A stored value does not parse.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// A registered person, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Subject id.
    pub subject: SubjectId,
    /// Keyed hash of the phone number.
    pub phone_hash: String,
    /// e.g. `张*`.
    pub masked_name: String,
    /// e.g. `002X`.
    pub id_last4: String,
    /// Region of issue of the ID.
    pub region: String,
    /// Address.
    pub address: String,
}

/// The stored colour of a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColourRow {
    /// Colour.
    pub colour: Colour,
    /// Ruleset version that produced it.
    pub ruleset_version: u32,
    /// When computed.
    pub as_of: UnixTime,
    /// When it may change on its own.
    pub next_change_at: Option<UnixTime>,
}

/// What happened to a declaration with an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Stored now.
    New,
    /// The key was seen with the same request: its stored answer.
    Replay(String),
    /// The key was seen with a different request.
    Conflict,
}

/// The database.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

fn subject_of(text: &str) -> Result<SubjectId, StoreError> {
    text.parse()
        .map_err(|e: shouhu_code::ParseError| StoreError::Corrupt(e.to_string()))
}

#[expect(clippy::cast_possible_wrap, reason = "times are far below i64::MAX")]
fn to_sql(t: UnixTime) -> i64 {
    t as i64
}

#[expect(clippy::cast_sign_loss, reason = "we only store non-negative times")]
fn from_sql(t: i64) -> UnixTime {
    t.max(0) as u64
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    ///
    /// # Errors
    /// The file cannot be opened or a migration fails.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Self::migrate(conn)
    }

    /// An in-memory database, for tests.
    ///
    /// # Errors
    /// A migration fails.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::migrate(Connection::open_in_memory()?)
    }

    fn migrate(mut conn: Connection) -> Result<Self, StoreError> {
        let done: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let done = usize::try_from(done).unwrap_or(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i + 1)?;
            tx.commit()?;
            tracing::info!(version = i + 1, "database migrated");
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    ///
    /// # Errors
    /// `f` fails, or the task dies.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Task("connection mutex poisoned".to_owned()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Stores a new person; `false` if the subject was already registered (nothing changes).
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn register(&self, person: Person, now: UnixTime) -> Result<bool, StoreError> {
        self.call(move |c| {
            let n = c.execute(
                "INSERT OR IGNORE INTO persons
                 (subject, phone_hash, masked_name, id_last4, region, address, registered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    person.subject.to_hex(),
                    person.phone_hash,
                    person.masked_name,
                    person.id_last4,
                    person.region,
                    person.address,
                    to_sql(now)
                ],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// A registered person.
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn person(&self, subject: SubjectId) -> Result<Option<Person>, StoreError> {
        self.call(move |c| person_sync(c, subject)).await
    }

    /// Every registered subject.
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn subjects(&self) -> Result<Vec<SubjectId>, StoreError> {
        self.call(|c| {
            let mut stmt = c.prepare("SELECT subject FROM persons")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.map(|r| subject_of(&r?)).collect()
        })
        .await
    }

    /// Stores a declaration under an idempotency key, once. `response` is the answer to
    /// return for replays.
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn declare(
        &self,
        subject: SubjectId,
        key: String,
        request_hash: String,
        declaration: Declaration,
        response: String,
    ) -> Result<Applied, StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let seen: Option<(String, String)> = tx
                .query_row(
                    "SELECT request_hash, response FROM idempotency WHERE subject = ?1 AND key = ?2",
                    params![subject.to_hex(), key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((hash, stored)) = seen {
                return Ok(if hash == request_hash {
                    Applied::Replay(stored)
                } else {
                    Applied::Conflict
                });
            }
            let symptoms = serde_json::to_string(&declaration.symptoms).unwrap_or_default();
            let travel = serde_json::to_string(&declaration.travel).unwrap_or_default();
            tx.execute(
                "INSERT INTO declarations (subject, at, temperature, symptoms, travel)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    subject.to_hex(),
                    to_sql(declaration.at),
                    declaration.temperature,
                    symptoms,
                    travel
                ],
            )?;
            tx.execute(
                "INSERT INTO idempotency (subject, key, request_hash, response, at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    subject.to_hex(),
                    key,
                    request_hash,
                    response,
                    to_sql(declaration.at)
                ],
            )?;
            tx.commit()?;
            Ok(Applied::New)
        })
        .await
    }

    /// A person's declarations since `since`, oldest first.
    ///
    /// # Errors
    /// SQLite failed or a row is corrupt.
    pub async fn declarations(
        &self,
        subject: SubjectId,
        since: UnixTime,
    ) -> Result<Vec<Declaration>, StoreError> {
        self.call(move |c| declarations_sync(c, subject, since))
            .await
    }

    /// A registered person and their declarations since `since`, in one blocking call.
    ///
    /// # Errors
    /// SQLite failed or a row is corrupt.
    pub async fn person_with_declarations(
        &self,
        subject: SubjectId,
        since: UnixTime,
    ) -> Result<Option<(Person, Vec<Declaration>)>, StoreError> {
        self.call(move |c| {
            let Some(person) = person_sync(c, subject)? else {
                return Ok(None);
            };
            Ok(Some((person, declarations_sync(c, subject, since)?)))
        })
        .await
    }

    /// Stores a colour if its colour, ruleset version or next change differ from the stored
    /// one; `true` if the colour or ruleset version changed (a snapshot record is due).
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn update_colour(
        &self,
        subject: SubjectId,
        row: ColourRow,
    ) -> Result<bool, StoreError> {
        self.call(move |c| {
            let old = colour_sync(c, subject)?;
            let changed = old
                .is_none_or(|o| o.colour != row.colour || o.ruleset_version != row.ruleset_version);
            let same_schedule = old.is_some_and(|o| o.next_change_at == row.next_change_at);
            if changed || !same_schedule {
                let as_of = match old {
                    Some(o) if !changed => o.as_of,
                    _ => row.as_of,
                };
                c.execute(
                    "INSERT INTO colours (subject, colour, ruleset_version, as_of, next_change_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (subject) DO UPDATE SET colour = ?2, ruleset_version = ?3,
                       as_of = ?4, next_change_at = ?5",
                    params![
                        subject.to_hex(),
                        row.colour.as_str(),
                        row.ruleset_version,
                        to_sql(as_of),
                        row.next_change_at.map(to_sql)
                    ],
                )?;
            }
            Ok(changed)
        })
        .await
    }

    /// Stores a colour; returns the one it replaces.
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn set_colour(
        &self,
        subject: SubjectId,
        row: ColourRow,
    ) -> Result<Option<ColourRow>, StoreError> {
        self.call(move |c| {
            let old = colour_sync(c, subject)?;
            c.execute(
                "INSERT INTO colours (subject, colour, ruleset_version, as_of, next_change_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (subject) DO UPDATE SET colour = ?2, ruleset_version = ?3,
                   as_of = ?4, next_change_at = ?5",
                params![
                    subject.to_hex(),
                    row.colour.as_str(),
                    row.ruleset_version,
                    to_sql(row.as_of),
                    row.next_change_at.map(to_sql)
                ],
            )?;
            Ok(old)
        })
        .await
    }

    /// A person's stored colour.
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn colour(&self, subject: SubjectId) -> Result<Option<ColourRow>, StoreError> {
        self.call(move |c| colour_sync(c, subject)).await
    }

    /// Subjects whose colour may change on its own by `now`.
    ///
    /// # Errors
    /// SQLite failed.
    pub async fn due(&self, now: UnixTime) -> Result<Vec<SubjectId>, StoreError> {
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT subject FROM colours WHERE next_change_at IS NOT NULL AND next_change_at <= ?1",
            )?;
            let rows = stmt.query_map(params![to_sql(now)], |r| r.get::<_, String>(0))?;
            rows.map(|r| subject_of(&r?)).collect()
        })
        .await
    }

    /// Every stored colour with its person's display fields, for the full sweep.
    ///
    /// # Errors
    /// SQLite failed or a row is corrupt.
    pub async fn all_colours(&self) -> Result<Vec<(Person, ColourRow)>, StoreError> {
        self.call(|c| {
            let mut stmt = c.prepare(
                "SELECT p.subject, p.phone_hash, p.masked_name, p.id_last4, p.region, p.address,
                        c.colour, c.ruleset_version, c.as_of, c.next_change_at
                 FROM persons p JOIN colours c ON c.subject = p.subject",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, u32>(7)?,
                    r.get::<_, i64>(8)?,
                    r.get::<_, Option<i64>>(9)?,
                ))
            })?;
            rows.map(|row| {
                let (
                    s,
                    phone_hash,
                    masked_name,
                    id_last4,
                    region,
                    address,
                    colour,
                    rv,
                    as_of,
                    next,
                ) = row?;
                Ok((
                    Person {
                        subject: subject_of(&s)?,
                        phone_hash,
                        masked_name,
                        id_last4,
                        region,
                        address,
                    },
                    ColourRow {
                        colour: parse_colour(&colour)?,
                        ruleset_version: rv,
                        as_of: from_sql(as_of),
                        next_change_at: next.map(from_sql),
                    },
                ))
            })
            .collect()
        })
        .await
    }
}

fn parse_colour(text: &str) -> Result<Colour, StoreError> {
    text.parse()
        .map_err(|e: shouhu_code::ParseError| StoreError::Corrupt(e.to_string()))
}

fn declarations_sync(
    c: &Connection,
    subject: SubjectId,
    since: UnixTime,
) -> Result<Vec<Declaration>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT at, temperature, symptoms, travel FROM declarations
         WHERE subject = ?1 AND at >= ?2 ORDER BY at",
    )?;
    let rows = stmt.query_map(params![subject.to_hex(), to_sql(since)], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, f64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    rows.map(|row| {
        let (at, temperature, symptoms, travel) = row?;
        Ok(Declaration {
            at: from_sql(at),
            temperature,
            symptoms: serde_json::from_str(&symptoms)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            travel: serde_json::from_str(&travel)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        })
    })
    .collect()
}

fn person_sync(c: &Connection, subject: SubjectId) -> Result<Option<Person>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT phone_hash, masked_name, id_last4, region, address FROM persons WHERE subject = ?1",
    )?;
    Ok(stmt
        .query_row(params![subject.to_hex()], |r| {
            Ok(Person {
                subject,
                phone_hash: r.get(0)?,
                masked_name: r.get(1)?,
                id_last4: r.get(2)?,
                region: r.get(3)?,
                address: r.get(4)?,
            })
        })
        .optional()?)
}

fn colour_sync(c: &Connection, subject: SubjectId) -> Result<Option<ColourRow>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT colour, ruleset_version, as_of, next_change_at FROM colours WHERE subject = ?1",
    )?;
    let row = stmt
        .query_row(params![subject.to_hex()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })
        .optional()?;
    row.map(|(colour, rv, as_of, next)| {
        Ok(ColourRow {
            colour: parse_colour(&colour)?,
            ruleset_version: rv,
            as_of: from_sql(as_of),
            next_change_at: next.map(from_sql),
        })
    })
    .transpose()
}

#[cfg(test)]
#[path = "store/tests.rs"]
mod tests;
