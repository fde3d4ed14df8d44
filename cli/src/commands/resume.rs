//! `fieldlink resume [BATCH_ID]`: finish the devices of a batch that are not done.
//!
//! The plan comes from `Journal::resume_plan`: succeeded devices are never touched; pending
//! (and retryably failed) devices are commissioned; devices that were in flight when the
//! previous run died are *re-checked*: the status source is asked about the assignment the
//! interrupted attempt obtained, then the workflow opens a fresh session whose `DeviceInfo`
//! says whether the device already holds a ticket, in which case it only resyncs (`GetStatus`)
//! and confirms; it never pushes a second ticket to such a device.

use std::{sync::Arc, time::Duration};

use fieldlink_core::journal::{ItemStatus, ResumeAction};

use super::{
    Context,
    batch::{BatchRun, run_batch},
    sync::auto_sync,
};
use crate::{
    args::ResumeArgs,
    exit::{CliError, Exit},
    network::batch_networks,
    payloads::{read_batch_file, request_for_payload},
    results::DeviceResult,
    runner::{Engine, Job, Recheck},
    target::{Target, installer, open_journal},
};

/// Runs `resume`.
pub async fn run(args: ResumeArgs, context: &Context) -> Result<Exit, CliError> {
    let settings = context.settings()?;
    let journal = open_journal(&settings)?;
    let batch_id = match &args.batch {
        Some(id) => id.clone(),
        None => match journal.batches(true, 1)?.into_iter().next() {
            Some(batch) => batch.id,
            None => {
                context
                    .output
                    .info("nothing to resume: every batch is done");
                context.output.result(
                    "resume",
                    Exit::Success,
                    serde_json::json!({"batch_id": null, "devices": []}),
                );
                return Ok(Exit::Success);
            }
        },
    };
    let batch = journal.batch(&batch_id)?.ok_or_else(|| {
        CliError::from(fieldlink_core::journal::JournalError::UnknownBatch(
            batch_id.clone(),
        ))
    })?;
    let file = read_batch_file(std::path::Path::new(&batch.source)).map_err(|error| CliError {
        message: format!(
            "batch {batch_id} cannot be resumed without its payload file: {}",
            error.message
        ),
        ..error
    })?;
    let items = journal.batch_items(&batch_id)?;
    let unchanged = items.len() == file.entries.len()
        && items
            .iter()
            .zip(&file.entries)
            .all(|(item, entry)| item.registration_id == entry.payload.registration_id);
    if !unchanged {
        return Err(CliError::new(
            Exit::InvalidPayload,
            "payload_file_changed",
            format!(
                "{} no longer lists the batch's devices in the same order; restore it or start a \
                 new batch",
                batch.source
            ),
        ));
    }
    let target = Target::resolve(&settings, &args.target)?;
    let backend = target.backend(&settings).await?;

    // The network: flags, else what the batch was started with (the passphrase is asked again).
    let mut network_args = args.network.clone();
    if network_args.wifi_ssid.is_none() && network_args.network.is_none() {
        network_args.network = batch.options["network"].as_str().map(str::to_owned);
        network_args.wifi_ssid = batch.options["wifi_ssid"].as_str().map(str::to_owned);
        network_args.wifi_hidden = batch.options["wifi_hidden"].as_bool().unwrap_or(false);
    }
    let mut names: Vec<String> = file
        .entries
        .iter()
        .filter_map(|e| e.network.clone())
        .collect();
    names.sort();
    names.dedup();
    let networks = batch_networks(&network_args, &settings, &names)?;

    auto_sync(&journal, &backend.status, &context.output).await?;
    let plan = journal.resume_plan(&batch_id, args.retry_failed)?;
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for step in plan {
        let position = step.item.position;
        let Some(entry) = file
            .entries
            .get(usize::try_from(position).unwrap_or(usize::MAX))
        else {
            continue;
        };
        let recheck = match step.action {
            ResumeAction::Skip => {
                let reason = match step.item.status {
                    ItemStatus::Succeeded => "done".to_owned(),
                    _ => format!(
                        "failed with {}; needs a person (use --retry-failed)",
                        step.item.error_code.as_deref().unwrap_or("an error")
                    ),
                };
                skipped.push((
                    position,
                    DeviceResult::skipped(&step.item.registration_id, &reason),
                ));
                continue;
            }
            ResumeAction::Commission => None,
            ResumeAction::Recheck { assignment } => Some(Recheck { assignment }),
        };
        jobs.push(Job {
            label: entry.payload.registration_id.clone(),
            request: request_for_payload(
                &entry.payload,
                networks.get(&entry.network).cloned().flatten(),
            ),
            batch_item: Some(step.item.item_ref()),
            recheck,
            correction: None,
        });
    }
    let parallel = args
        .jobs
        .or_else(|| {
            batch.options["jobs"]
                .as_u64()
                .and_then(|j| usize::try_from(j).ok())
        })
        .unwrap_or_else(|| settings.jobs(None))
        .max(1);
    let timeout = batch.options["timeout_s"].as_u64().unwrap_or(args.timeout);
    let engine = Arc::new(Engine {
        backend,
        config: target.commissioning_config(Duration::from_secs(timeout)),
        journal: Some(Arc::clone(&journal)),
        installer: installer(&settings).await,
    });
    let run = BatchRun {
        batch_id,
        jobs,
        skipped,
        parallel,
    };
    run_batch(engine, &journal, run, context, "resume").await
}
