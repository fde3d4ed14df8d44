//! The journal: attempts, batches, exports.

use fieldlink_core::journal::AttemptQuery;
use tauri::State;

use crate::{
    dto::history::{
        AttemptEntry, BatchEntry, BatchItemEntry, ExportFormat, ExportResult, HistoryQuery,
    },
    error::{CommandResult, ShellError},
    export,
    state::DesktopState,
};

fn attempts(state: &DesktopState, query: HistoryQuery) -> CommandResult<Vec<AttemptEntry>> {
    let HistoryQuery {
        registration_id,
        batch_id,
        limit,
    } = query;
    let records = state.journal().attempts(&AttemptQuery {
        registration_id: registration_id.filter(|id| !id.is_empty()),
        batch_id: batch_id.filter(|id| !id.is_empty()),
        limit,
    })?;
    Ok(records.into_iter().map(AttemptEntry::from).collect())
}

/// Attempts, newest first.
#[tauri::command]
pub fn history(
    state: State<'_, DesktopState>,
    query: HistoryQuery,
) -> CommandResult<Vec<AttemptEntry>> {
    attempts(&state, query)
}

/// Batches, newest first (only unfinished ones with `open_only`).
#[tauri::command]
pub fn batches(state: State<'_, DesktopState>, open_only: bool) -> CommandResult<Vec<BatchEntry>> {
    let records = state.journal().batches(open_only, 100)?;
    Ok(records.into_iter().map(BatchEntry::from).collect())
}

/// A batch's devices.
#[tauri::command]
pub fn batch_items(
    state: State<'_, DesktopState>,
    batch_id: String,
) -> CommandResult<Vec<BatchItemEntry>> {
    let items = state.journal().batch_items(&batch_id)?;
    Ok(items.into_iter().map(BatchItemEntry::from).collect())
}

/// Writes the attempts `query` selects to a new file in the exports folder.
#[tauri::command]
pub fn export_history(
    state: State<'_, DesktopState>,
    format: ExportFormat,
    query: HistoryQuery,
) -> CommandResult<ExportResult> {
    let entries = attempts(&state, query)?;
    let dir = &state.paths().exports;
    let stamp = fieldlink_core::journal::system_clock_ms()();
    let extension = match format {
        ExportFormat::Csv => "csv",
        ExportFormat::Json => "json",
    };
    let path = dir.join(format!("fieldlink-history-{stamp}.{extension}"));
    let file_error = |detail: String| ShellError::File {
        path: path.display().to_string(),
        detail,
    };
    let text = export::render(&entries, format).map_err(file_error)?;
    std::fs::create_dir_all(dir).map_err(|error| file_error(error.to_string()))?;
    std::fs::write(&path, &text).map_err(|error| file_error(error.to_string()))?;
    Ok(ExportResult {
        path: path.display().to_string(),
        count: u32::try_from(entries.len()).unwrap_or(u32::MAX),
        bytes: text.len() as u64,
    })
}
