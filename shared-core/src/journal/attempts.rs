//! Attempts: begin (before touching the device), record the assignment, finish atomically.

use rusqlite::{OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::{
    Journal, JournalError,
    types::{
        AssignmentRecord, AttemptId, AttemptOutcome, AttemptQuery, AttemptRecord, AttemptResult,
        Confirmation, ItemStatus, NewAttempt, StepRecord,
    },
};
use crate::workflow::LinkCounters;

pub(super) fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(super) fn from_sql(value: Option<i64>) -> Option<u64> {
    value.map(|v| u64::try_from(v).unwrap_or(0))
}

fn small(value: Option<i64>) -> Option<u32> {
    value.map(|v| u32::try_from(v).unwrap_or(0))
}

const ATTEMPT_COLUMNS: &str = "id, registration_id, installer, profile, transport, batch_id, \
    batch_position, started_at_ms, finished_at_ms, outcome, confirmation, dps_instance, id_scope, \
    assigned_hub, device_id, error_code, error_message, error_retryable, total_ms, mtu, resumes, \
    connections, round_trips, frames_sent, frames_received, bytes_sent, bytes_received, recheck";

fn read_attempt(row: &Row<'_>) -> rusqlite::Result<AttemptRecord> {
    let connections: Option<i64> = row.get(21)?;
    let link = connections.map(|connections| -> rusqlite::Result<LinkCounters> {
        Ok(LinkCounters {
            connections: u32::try_from(connections).unwrap_or(0),
            round_trips: small(row.get(22)?).unwrap_or(0),
            frames_sent: small(row.get(23)?).unwrap_or(0),
            frames_received: small(row.get(24)?).unwrap_or(0),
            bytes_sent: from_sql(row.get(25)?).unwrap_or(0),
            bytes_received: from_sql(row.get(26)?).unwrap_or(0),
        })
    });
    Ok(AttemptRecord {
        id: row.get(0)?,
        registration_id: row.get(1)?,
        installer: row.get(2)?,
        profile: row.get(3)?,
        transport: row.get(4)?,
        batch_id: row.get(5)?,
        batch_position: small(row.get(6)?),
        started_at_ms: row.get(7)?,
        finished_at_ms: row.get(8)?,
        outcome: row.get(9)?,
        confirmation: row.get(10)?,
        dps_instance: row.get(11)?,
        id_scope: row.get(12)?,
        assigned_hub: row.get(13)?,
        device_id: row.get(14)?,
        error_code: row.get(15)?,
        error_message: row.get(16)?,
        retryable: row.get::<_, Option<bool>>(17)?,
        total_ms: from_sql(row.get(18)?),
        mtu: row
            .get::<_, Option<i64>>(19)?
            .map(|v| u16::try_from(v).unwrap_or(0)),
        resumes: small(row.get(20)?),
        link: link.transpose()?,
        recheck: row.get(27)?,
        steps: Vec::new(),
    })
}

fn load_steps(tx: &rusqlite::Connection, attempt_id: i64) -> rusqlite::Result<Vec<StepRecord>> {
    let mut statement = tx.prepare_cached(
        "SELECT step, started_ms, finished_ms, attempts FROM attempt_steps \
         WHERE attempt_id = ?1 ORDER BY ordinal",
    )?;
    let rows = statement.query_map([attempt_id], |row| {
        Ok(StepRecord {
            step: row.get(0)?,
            started_ms: from_sql(row.get(1)?).unwrap_or(0),
            finished_ms: from_sql(row.get(2)?).unwrap_or(0),
            attempts: small(row.get(3)?).unwrap_or(0),
        })
    })?;
    rows.collect()
}

pub(super) fn touch_batch(tx: &Transaction<'_>, batch_id: &str, now: i64) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE batches SET heartbeat_ms = ?2 WHERE id = ?1",
        params![batch_id, now],
    )?;
    Ok(())
}

impl Journal {
    /// Records that an attempt starts. Call it **before** touching the device: for a batch item
    /// it marks the item `in_flight` in the same transaction.
    pub fn begin_attempt(&self, attempt: &NewAttempt) -> Result<AttemptId, JournalError> {
        let now = self.now();
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO attempts (registration_id, installer, profile, transport, batch_id, \
             batch_position, started_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                attempt.registration_id,
                attempt.installer.identity,
                attempt.installer.profile,
                attempt.transport,
                attempt
                    .batch_item
                    .as_ref()
                    .map(|item| item.batch_id.as_str()),
                attempt.batch_item.as_ref().map(|item| item.position),
                now,
            ],
        )?;
        let id = tx.last_insert_rowid();
        if let Some(item) = &attempt.batch_item {
            let changed = tx.execute(
                "UPDATE batch_items SET status = 'in_flight', attempts = attempts + 1, \
                 last_attempt_id = ?3, updated_at_ms = ?4 WHERE batch_id = ?1 AND position = ?2",
                params![item.batch_id, item.position, id, now],
            )?;
            if changed == 0 {
                return Err(JournalError::UnknownBatch(format!(
                    "{} (position {})",
                    item.batch_id, item.position
                )));
            }
            touch_batch(&tx, &item.batch_id, now)?;
        }
        tx.commit()?;
        Ok(AttemptId(id))
    }

    /// Records the assignment an attempt obtained (before its ticket is pushed), so a resume
    /// can ask the registration-status source about it.
    pub fn record_assignment(
        &self,
        id: AttemptId,
        assignment: &AssignmentRecord,
    ) -> Result<(), JournalError> {
        let conn = self.lock();
        let changed = conn.execute(
            "UPDATE attempts SET dps_instance = ?2, id_scope = ?3, ticket = ?4, \
             ticket_expires_at = ?5 WHERE id = ?1",
            params![
                id.0,
                assignment.dps_instance,
                assignment.id_scope,
                assignment.ticket,
                assignment.expires_at
            ],
        )?;
        if changed == 0 {
            return Err(JournalError::UnknownAttempt(id.0));
        }
        Ok(())
    }

    /// Sets the registration ID of an attempt that started from a manual code.
    pub fn set_registration_id(
        &self,
        id: AttemptId,
        registration_id: &str,
    ) -> Result<(), JournalError> {
        let conn = self.lock();
        let changed = conn.execute(
            "UPDATE attempts SET registration_id = ?2 WHERE id = ?1",
            params![id.0, registration_id],
        )?;
        if changed == 0 {
            return Err(JournalError::UnknownAttempt(id.0));
        }
        Ok(())
    }

    /// Records how an attempt ended: the outcome, its steps, its batch item's status and (for a
    /// queued confirmation) the queue entry, all in one transaction.
    pub fn finish_attempt(
        &self,
        id: AttemptId,
        outcome: &AttemptOutcome,
    ) -> Result<(), JournalError> {
        let now = self.now();
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (batch_id, position, has_ticket): (Option<String>, Option<i64>, bool) = tx
            .query_row(
                "SELECT batch_id, batch_position, ticket IS NOT NULL FROM attempts WHERE id = ?1",
                [id.0],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?
            .ok_or(JournalError::UnknownAttempt(id.0))?;
        let (result, confirmation, error) = match &outcome.result {
            AttemptResult::Succeeded { confirmation } => ("succeeded", Some(*confirmation), None),
            AttemptResult::Failed { error } => ("failed", None, Some(error)),
        };
        if confirmation == Some(Confirmation::Queued) && !has_ticket {
            return Err(JournalError::Corrupt(format!(
                "attempt {id} cannot queue a confirmation: no assignment was recorded"
            )));
        }
        let link = outcome.link.as_ref();
        tx.execute(
            "UPDATE attempts SET finished_at_ms = ?2, outcome = ?3, confirmation = ?4, \
             device_status = ?5, assigned_hub = ?6, device_id = ?7, error_code = ?8, \
             error_message = ?9, error_retryable = ?10, error_details = ?11, total_ms = ?12, \
             mtu = ?13, resumes = ?14, connections = ?15, round_trips = ?16, frames_sent = ?17, \
             frames_received = ?18, bytes_sent = ?19, bytes_received = ?20, recheck = ?21 \
             WHERE id = ?1",
            params![
                id.0,
                now,
                result,
                confirmation.map(Confirmation::as_str),
                outcome.device_status,
                outcome.assigned_hub,
                outcome.device_id,
                error.map(|e| e.code.as_str()),
                error.map(|e| e.message.as_str()),
                error.map(|e| e.retryable),
                error.map(|e| e.details.to_string()),
                to_sql(outcome.total_ms),
                outcome.mtu,
                outcome.resumes,
                link.map(|l| l.connections),
                link.map(|l| l.round_trips),
                link.map(|l| l.frames_sent),
                link.map(|l| l.frames_received),
                link.map(|l| to_sql(l.bytes_sent)),
                link.map(|l| to_sql(l.bytes_received)),
                outcome.recheck,
            ],
        )?;
        tx.execute("DELETE FROM attempt_steps WHERE attempt_id = ?1", [id.0])?;
        for (ordinal, step) in outcome.steps.iter().enumerate() {
            tx.execute(
                "INSERT INTO attempt_steps (attempt_id, ordinal, step, started_ms, finished_ms, \
                 attempts) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id.0,
                    i64::try_from(ordinal).unwrap_or(i64::MAX),
                    step.step,
                    to_sql(step.started_ms),
                    to_sql(step.finished_ms),
                    step.attempts
                ],
            )?;
        }
        if confirmation == Some(Confirmation::Queued) {
            tx.execute(
                "INSERT OR REPLACE INTO pending_confirmations (attempt_id, queued_at_ms) \
                 VALUES (?1, ?2)",
                params![id.0, now],
            )?;
        }
        if let (Some(batch_id), Some(position)) = (batch_id, position) {
            let status = match &outcome.result {
                AttemptResult::Succeeded { .. } => ItemStatus::Succeeded,
                AttemptResult::Failed { .. } => ItemStatus::Failed,
            };
            // Only the item's latest attempt may set its status.
            tx.execute(
                "UPDATE batch_items SET status = ?3, error_code = ?4, retryable = ?5, \
                 confirmation = ?6, updated_at_ms = ?7 \
                 WHERE batch_id = ?1 AND position = ?2 AND last_attempt_id = ?8",
                params![
                    batch_id,
                    position,
                    status.as_str(),
                    error.map(|e| e.code.as_str()),
                    error.map(|e| e.retryable),
                    confirmation.map(Confirmation::as_str),
                    now,
                    id.0
                ],
            )?;
            touch_batch(&tx, &batch_id, now)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Attempts, newest first.
    pub fn attempts(&self, query: &AttemptQuery) -> Result<Vec<AttemptRecord>, JournalError> {
        let conn = self.lock();
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts \
             WHERE (?1 IS NULL OR registration_id = ?1) AND (?2 IS NULL OR batch_id = ?2) \
             ORDER BY id DESC LIMIT ?3"
        );
        let limit = query.limit.map_or(-1, i64::from);
        let mut records = {
            let mut statement = conn.prepare(&sql)?;
            let rows = statement.query_map(
                params![query.registration_id, query.batch_id, limit],
                read_attempt,
            )?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };
        for record in &mut records {
            record.steps = load_steps(&conn, record.id)?;
        }
        Ok(records)
    }

    /// One attempt.
    pub fn attempt(&self, id: AttemptId) -> Result<Option<AttemptRecord>, JournalError> {
        let conn = self.lock();
        let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE id = ?1");
        let record = conn.query_row(&sql, [id.0], read_attempt).optional()?;
        match record {
            Some(mut record) => {
                record.steps = load_steps(&conn, record.id)?;
                Ok(Some(record))
            }
            None => Ok(None),
        }
    }

    /// The assignment an attempt recorded, if any.
    pub fn attempt_assignment(
        &self,
        id: AttemptId,
    ) -> Result<Option<AssignmentRecord>, JournalError> {
        let conn = self.lock();
        assignment_of(&conn, id.0)
    }

    /// The assignment of the newest attempt for `registration_id` that recorded a usable one
    /// (`None` when none did): what a shell hands a registration-status source to ask about a
    /// device commissioned earlier.
    pub fn latest_assignment(
        &self,
        registration_id: &str,
    ) -> Result<Option<crate::assignment::Assignment>, JournalError> {
        let attempts = self.attempts(&AttemptQuery {
            registration_id: Some(registration_id.to_owned()),
            batch_id: None,
            limit: None,
        })?;
        for attempt in attempts {
            if let Some(assignment) = self
                .attempt_assignment(AttemptId(attempt.id))?
                .and_then(|record| record.to_assignment())
            {
                return Ok(Some(assignment));
            }
        }
        Ok(None)
    }
}

pub(super) fn assignment_of(
    conn: &rusqlite::Connection,
    attempt_id: i64,
) -> Result<Option<AssignmentRecord>, JournalError> {
    let row = conn
        .query_row(
            "SELECT dps_instance, id_scope, ticket, ticket_expires_at FROM attempts \
             WHERE id = ?1 AND ticket IS NOT NULL",
            [attempt_id],
            |row| {
                Ok(AssignmentRecord {
                    dps_instance: row.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    id_scope: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    ticket: row.get(2)?,
                    expires_at: row.get::<_, Option<i64>>(3)?.unwrap_or(0),
                })
            },
        )
        .optional()?;
    Ok(row)
}
