//! Batches: creation, the single-runner claim, item status and the resume plan.

use rand::RngCore;
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};

use super::{
    Journal, JournalError,
    attempts::assignment_of,
    types::{BatchCounts, BatchItem, BatchRecord, ItemStatus, NewBatch, ResumeAction, ResumeStep},
};

const BATCH_COLUMNS: &str =
    "id, created_at_ms, installer, profile, source, source_digest, options, closed_at_ms";

fn read_batch(row: &Row<'_>) -> rusqlite::Result<BatchRecord> {
    let options: String = row.get(6)?;
    Ok(BatchRecord {
        id: row.get(0)?,
        created_at_ms: row.get(1)?,
        installer: row.get(2)?,
        profile: row.get(3)?,
        source: row.get(4)?,
        source_digest: row.get(5)?,
        options: serde_json::from_str(&options).unwrap_or(serde_json::Value::Null),
        closed_at_ms: row.get(7)?,
        counts: BatchCounts::default(),
    })
}

fn read_item(row: &Row<'_>) -> rusqlite::Result<BatchItem> {
    let status: String = row.get(3)?;
    let status = ItemStatus::parse(&status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            3,
            rusqlite::types::Type::Text,
            format!("unknown batch item status {status:?}").into(),
        )
    })?;
    Ok(BatchItem {
        batch_id: row.get(0)?,
        position: row.get(1)?,
        registration_id: row.get(2)?,
        status,
        attempts: row.get(4)?,
        last_attempt_id: row.get(5)?,
        error_code: row.get(6)?,
        retryable: row.get(7)?,
        confirmation: row.get(8)?,
    })
}

fn items(conn: &rusqlite::Connection, batch_id: &str) -> rusqlite::Result<Vec<BatchItem>> {
    let mut statement = conn.prepare_cached(
        "SELECT batch_id, position, registration_id, status, attempts, last_attempt_id, \
         error_code, retryable, confirmation FROM batch_items WHERE batch_id = ?1 \
         ORDER BY position",
    )?;
    let rows = statement.query_map([batch_id], read_item)?;
    rows.collect()
}

fn counts(conn: &rusqlite::Connection, batch_id: &str) -> rusqlite::Result<BatchCounts> {
    let mut statement = conn.prepare_cached(
        "SELECT status, COUNT(*) FROM batch_items WHERE batch_id = ?1 GROUP BY status",
    )?;
    let mut counts = BatchCounts::default();
    let mut rows = statement.query([batch_id])?;
    while let Some(row) = rows.next()? {
        let status: String = row.get(0)?;
        let n: u32 = row.get(1)?;
        match ItemStatus::parse(&status) {
            Some(ItemStatus::Pending) => counts.pending = n,
            Some(ItemStatus::InFlight) => counts.in_flight = n,
            Some(ItemStatus::Succeeded) => counts.succeeded = n,
            Some(ItemStatus::Failed) => counts.failed = n,
            None => {}
        }
    }
    Ok(counts)
}

impl Journal {
    /// Creates a batch with every device `pending`; returns its id.
    pub fn create_batch(&self, batch: &NewBatch) -> Result<String, JournalError> {
        let now = self.now();
        let id = format!("{:011x}{:08x}", now.max(0), rand::rngs::OsRng.next_u32());
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO batches (id, created_at_ms, installer, profile, source, source_digest, \
             options, heartbeat_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?2)",
            params![
                id,
                now,
                batch.installer.identity,
                batch.installer.profile,
                batch.source,
                batch.source_digest,
                batch.options.to_string()
            ],
        )?;
        for (position, registration_id) in batch.registration_ids.iter().enumerate() {
            tx.execute(
                "INSERT INTO batch_items (batch_id, position, registration_id, updated_at_ms) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    id,
                    i64::try_from(position).unwrap_or(i64::MAX),
                    registration_id,
                    now
                ],
            )?;
        }
        tx.commit()?;
        Ok(id)
    }

    /// Makes process `pid` the batch's runner. Fails with [`JournalError::BatchBusy`] when
    /// another runner is alive (`runner_alive`) and was heard from within `stale_after_ms`.
    pub fn claim_batch(
        &self,
        batch_id: &str,
        pid: u32,
        runner_alive: &dyn Fn(u32) -> bool,
        stale_after_ms: i64,
    ) -> Result<(), JournalError> {
        let now = self.now();
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let runner: Option<(Option<u32>, Option<i64>)> = tx
            .query_row(
                "SELECT runner_pid, heartbeat_ms FROM batches WHERE id = ?1",
                [batch_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let Some((runner_pid, heartbeat)) = runner else {
            return Err(JournalError::UnknownBatch(batch_id.to_owned()));
        };
        if let Some(other) = runner_pid.filter(|other| *other != pid) {
            let fresh = heartbeat.is_some_and(|at| now.saturating_sub(at) < stale_after_ms);
            if fresh && runner_alive(other) {
                return Err(JournalError::BatchBusy {
                    batch_id: batch_id.to_owned(),
                    pid: other,
                });
            }
        }
        tx.execute(
            "UPDATE batches SET runner_pid = ?2, heartbeat_ms = ?3, closed_at_ms = NULL \
             WHERE id = ?1",
            params![batch_id, pid, now],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Ends a run of the batch: clears the runner and closes the batch when every device
    /// succeeded. Returns the counts.
    pub fn release_batch(&self, batch_id: &str) -> Result<BatchCounts, JournalError> {
        let now = self.now();
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let counts = counts(&tx, batch_id)?;
        let closed = (counts.succeeded == counts.total()).then_some(now);
        let changed = tx.execute(
            "UPDATE batches SET runner_pid = NULL, heartbeat_ms = ?2, closed_at_ms = ?3 \
             WHERE id = ?1",
            params![batch_id, now, closed],
        )?;
        if changed == 0 {
            return Err(JournalError::UnknownBatch(batch_id.to_owned()));
        }
        tx.commit()?;
        Ok(counts)
    }

    /// One batch with its counts.
    pub fn batch(&self, batch_id: &str) -> Result<Option<BatchRecord>, JournalError> {
        let conn = self.lock();
        let sql = format!("SELECT {BATCH_COLUMNS} FROM batches WHERE id = ?1");
        let Some(mut record) = conn.query_row(&sql, [batch_id], read_batch).optional()? else {
            return Ok(None);
        };
        record.counts = counts(&conn, batch_id)?;
        Ok(Some(record))
    }

    /// Batches, newest first; only unfinished ones (some device not succeeded) if `open_only`.
    pub fn batches(&self, open_only: bool, limit: u32) -> Result<Vec<BatchRecord>, JournalError> {
        let conn = self.lock();
        let sql = format!(
            "SELECT {BATCH_COLUMNS} FROM batches WHERE (?1 = 0 OR closed_at_ms IS NULL) \
             ORDER BY created_at_ms DESC, rowid DESC LIMIT ?2"
        );
        let mut records = {
            let mut statement = conn.prepare(&sql)?;
            let rows = statement.query_map(params![open_only, limit], read_batch)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };
        for record in &mut records {
            record.counts = counts(&conn, &record.id)?;
        }
        Ok(records)
    }

    /// The batch's devices, in order.
    pub fn batch_items(&self, batch_id: &str) -> Result<Vec<BatchItem>, JournalError> {
        let conn = self.lock();
        Ok(items(&conn, batch_id)?)
    }

    /// What resuming the batch must do with each device (see the module's crash rules). Marks
    /// the open attempts of `in_flight` items `interrupted`. Failed items are retried when their
    /// error is retryable, or always with `retry_failed`.
    pub fn resume_plan(
        &self,
        batch_id: &str,
        retry_failed: bool,
    ) -> Result<Vec<ResumeStep>, JournalError> {
        let now = self.now();
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: bool = tx
            .query_row("SELECT 1 FROM batches WHERE id = ?1", [batch_id], |_| {
                Ok(true)
            })
            .optional()?
            .unwrap_or(false);
        if !exists {
            return Err(JournalError::UnknownBatch(batch_id.to_owned()));
        }
        let mut plan = Vec::new();
        for item in items(&tx, batch_id)? {
            let action = match item.status {
                ItemStatus::Succeeded => ResumeAction::Skip,
                ItemStatus::Pending => ResumeAction::Commission,
                ItemStatus::Failed if retry_failed || item.retryable.unwrap_or(true) => {
                    ResumeAction::Commission
                }
                ItemStatus::Failed => ResumeAction::Skip,
                ItemStatus::InFlight => {
                    let assignment = match item.last_attempt_id {
                        Some(attempt) => {
                            tx.execute(
                                "UPDATE attempts SET outcome = 'interrupted', finished_at_ms = ?2 \
                                 WHERE id = ?1 AND outcome IS NULL",
                                params![attempt, now],
                            )?;
                            assignment_of(&tx, attempt)?
                        }
                        None => None,
                    };
                    ResumeAction::Recheck { assignment }
                }
            };
            plan.push(ResumeStep { item, action });
        }
        tx.commit()?;
        Ok(plan)
    }
}
