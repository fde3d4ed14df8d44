//! Connection settings and the schema (versioned with `PRAGMA user_version`).

use rusqlite::Connection;

use super::JournalError;

/// The newest schema version this build writes.
pub(super) const SCHEMA_VERSION: i64 = 1;

const V1: &str = "
CREATE TABLE batches (
    id TEXT PRIMARY KEY,
    created_at_ms INTEGER NOT NULL,
    installer TEXT NOT NULL,
    profile TEXT NOT NULL,
    source TEXT NOT NULL,
    source_digest TEXT NOT NULL,
    options TEXT NOT NULL,
    runner_pid INTEGER,
    heartbeat_ms INTEGER,
    closed_at_ms INTEGER
);
CREATE TABLE batch_items (
    batch_id TEXT NOT NULL REFERENCES batches(id),
    position INTEGER NOT NULL,
    registration_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'in_flight', 'succeeded', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_attempt_id INTEGER,
    error_code TEXT,
    retryable INTEGER,
    confirmation TEXT,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (batch_id, position)
);
CREATE TABLE attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    registration_id TEXT NOT NULL,
    installer TEXT NOT NULL,
    profile TEXT NOT NULL,
    transport TEXT NOT NULL,
    batch_id TEXT,
    batch_position INTEGER,
    started_at_ms INTEGER NOT NULL,
    finished_at_ms INTEGER,
    outcome TEXT CHECK (outcome IN ('succeeded', 'failed', 'interrupted')),
    confirmation TEXT CHECK (confirmation IN ('confirmed', 'queued')),
    dps_instance TEXT,
    id_scope TEXT,
    ticket TEXT,
    ticket_expires_at INTEGER,
    device_status TEXT,
    assigned_hub TEXT,
    device_id TEXT,
    error_code TEXT,
    error_message TEXT,
    error_retryable INTEGER,
    error_details TEXT,
    total_ms INTEGER,
    mtu INTEGER,
    resumes INTEGER,
    connections INTEGER,
    round_trips INTEGER,
    frames_sent INTEGER,
    frames_received INTEGER,
    bytes_sent INTEGER,
    bytes_received INTEGER,
    recheck TEXT
);
CREATE INDEX attempts_by_device ON attempts (registration_id, id);
CREATE INDEX attempts_by_batch ON attempts (batch_id, batch_position);
CREATE TABLE attempt_steps (
    attempt_id INTEGER NOT NULL REFERENCES attempts(id),
    ordinal INTEGER NOT NULL,
    step TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    finished_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    PRIMARY KEY (attempt_id, ordinal)
);
CREATE TABLE pending_confirmations (
    attempt_id INTEGER PRIMARY KEY REFERENCES attempts(id),
    queued_at_ms INTEGER NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    last_try_at_ms INTEGER,
    last_error TEXT
);
";

/// WAL for concurrent readers, `FULL` sync so a committed transaction survives a power cut, a
/// busy timeout so two fieldlink processes wait for each other instead of failing.
pub(super) fn configure(conn: &Connection) -> Result<(), JournalError> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "the journal could not switch to WAL mode");
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Brings the schema to [`SCHEMA_VERSION`].
pub(super) fn migrate(conn: &mut Connection) -> Result<(), JournalError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(JournalError::NewerSchema {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < 1 {
        tx.execute_batch(V1)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}
