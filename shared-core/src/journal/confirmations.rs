//! Queued confirmations: devices that confirmed over BLE while the registration-status source
//! was unreachable. [`Journal::pending_confirmations`] lists them; a shell asks the source for
//! each and settles it with [`Journal::confirm_pending`], [`Journal::reject_pending`] or
//! [`Journal::note_sync_failure`].

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{
    Journal, JournalError,
    attempts::touch_batch,
    types::{AssignmentRecord, AttemptId, ErrorRecord, PendingConfirmation},
};
use crate::assignment::RegistrationView;

impl Journal {
    /// Every queued confirmation, oldest first.
    pub fn pending_confirmations(&self) -> Result<Vec<PendingConfirmation>, JournalError> {
        let conn = self.lock();
        let mut statement = conn.prepare(
            "SELECT a.id, a.registration_id, a.dps_instance, a.id_scope, a.ticket, \
             a.ticket_expires_at, a.device_status, a.assigned_hub, a.device_id, p.queued_at_ms, \
             p.tries, p.last_error \
             FROM pending_confirmations p JOIN attempts a ON a.id = p.attempt_id \
             ORDER BY p.queued_at_ms, a.id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(PendingConfirmation {
                attempt_id: row.get(0)?,
                registration_id: row.get(1)?,
                assignment: AssignmentRecord {
                    dps_instance: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    id_scope: row.get::<_, Option<String>>(3)?.unwrap_or_default(),
                    ticket: row.get::<_, Option<String>>(4)?.unwrap_or_default(),
                    expires_at: row.get::<_, Option<i64>>(5)?.unwrap_or(0),
                },
                device_status: row
                    .get::<_, Option<String>>(6)?
                    .unwrap_or_else(|| "assigned".into()),
                device_hub: row.get(7)?,
                device_id: row.get(8)?,
                queued_at_ms: row.get(9)?,
                tries: row.get(10)?,
                last_error: row.get(11)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The service agreed: the attempt becomes `confirmed` and leaves the queue.
    pub fn confirm_pending(
        &self,
        attempt: AttemptId,
        view: &RegistrationView,
    ) -> Result<(), JournalError> {
        let now = self.now();
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let batch = pending_batch(&tx, attempt)?;
        tx.execute(
            "UPDATE attempts SET confirmation = 'confirmed', \
             assigned_hub = COALESCE(assigned_hub, ?2), device_id = COALESCE(device_id, ?3) \
             WHERE id = ?1",
            params![attempt.0, view.assigned_hub, view.device_id],
        )?;
        tx.execute(
            "DELETE FROM pending_confirmations WHERE attempt_id = ?1",
            [attempt.0],
        )?;
        if let Some(batch_id) = batch {
            tx.execute(
                "UPDATE batch_items SET confirmation = 'confirmed', updated_at_ms = ?3 \
                 WHERE batch_id = ?1 AND last_attempt_id = ?2",
                params![batch_id, attempt.0, now],
            )?;
            touch_batch(&tx, &batch_id, now)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The service disagreed: the attempt fails with `error` (a confirmation mismatch:
    /// [`super::ConfirmationDisagreement::error_record`], whose details say `"at": "sync"`) and
    /// its batch item becomes `failed`.
    pub fn reject_pending(
        &self,
        attempt: AttemptId,
        error: &ErrorRecord,
    ) -> Result<(), JournalError> {
        let now = self.now();
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let batch = pending_batch(&tx, attempt)?;
        tx.execute(
            "UPDATE attempts SET outcome = 'failed', confirmation = NULL, error_code = ?2, \
             error_message = ?3, error_retryable = ?4, error_details = ?5 WHERE id = ?1",
            params![
                attempt.0,
                error.code,
                error.message,
                error.retryable,
                error.details.to_string()
            ],
        )?;
        tx.execute(
            "DELETE FROM pending_confirmations WHERE attempt_id = ?1",
            [attempt.0],
        )?;
        if let Some(batch_id) = batch {
            tx.execute(
                "UPDATE batch_items SET status = 'failed', error_code = ?3, retryable = ?4, \
                 confirmation = NULL, updated_at_ms = ?5 \
                 WHERE batch_id = ?1 AND last_attempt_id = ?2",
                params![batch_id, attempt.0, error.code, error.retryable, now],
            )?;
            tx.execute(
                "UPDATE batches SET closed_at_ms = NULL WHERE id = ?1",
                [&batch_id],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A sync try failed (the source is still unreachable); the entry stays queued.
    pub fn note_sync_failure(&self, attempt: AttemptId, detail: &str) -> Result<(), JournalError> {
        let now = self.now();
        let conn = self.lock();
        let changed = conn.execute(
            "UPDATE pending_confirmations SET tries = tries + 1, last_try_at_ms = ?2, \
             last_error = ?3 WHERE attempt_id = ?1",
            params![attempt.0, now, detail],
        )?;
        if changed == 0 {
            return Err(JournalError::UnknownAttempt(attempt.0));
        }
        Ok(())
    }
}

/// The batch of a queued attempt; fails if the attempt is not queued.
fn pending_batch(
    tx: &rusqlite::Transaction<'_>,
    attempt: AttemptId,
) -> Result<Option<String>, JournalError> {
    tx.query_row(
        "SELECT a.batch_id FROM pending_confirmations p JOIN attempts a ON a.id = p.attempt_id \
         WHERE p.attempt_id = ?1",
        [attempt.0],
        |row| row.get::<_, Option<String>>(0),
    )
    .optional()?
    .ok_or(JournalError::UnknownAttempt(attempt.0))
}
