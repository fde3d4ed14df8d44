//! `fieldlink commission <payload> | --manual-code <code> | --from-file <file>`.

use std::{sync::Arc, time::Duration};

use fieldlink_core::journal::{BatchItemRef, NewBatch};
use fieldlink_protocol::payload::OnboardingPayload;
use serde_json::json;

use super::{
    Context,
    batch::{BatchRun, run_batch},
    sync::auto_sync,
};
use crate::{
    args::CommissionArgs,
    exit::{CliError, Exit},
    network::{batch_networks, wifi_target, with_passphrase},
    payloads::{read_batch_file, request_for_manual_code, request_for_payload},
    progress::ProgressBoard,
    results::{DeviceResult, DeviceStatus},
    runner::{Engine, Job},
    target::{Target, installer, open_journal},
};

/// Runs `commission`.
pub async fn run(args: CommissionArgs, context: &Context) -> Result<Exit, CliError> {
    if args.from_file.is_some() {
        return run_file(args, context).await;
    }
    // Bad input fails before anything is opened or touched.
    let (request_without_network, label) = match (&args.payload, &args.manual_code) {
        (Some(text), _) => {
            let payload = OnboardingPayload::parse(text.trim())?;
            let label = payload.registration_id.clone();
            (request_for_payload(&payload, None), label)
        }
        (None, Some(code)) => request_for_manual_code(code, None)?,
        (None, None) => {
            return Err(CliError::new(
                Exit::Usage,
                "usage",
                "give an onboarding payload, --manual-code or --from-file",
            ));
        }
    };
    let settings = context.settings()?;
    let target = Target::resolve(&settings, &args.target)?;
    let backend = target.backend(&settings).await?;
    let network = match wifi_target(&args.network, &settings)? {
        Some(wifi) => Some(with_passphrase(&wifi, args.network.wifi_pass.as_deref())?),
        None => None,
    };
    let journal = open_journal(&settings)?;
    auto_sync(&journal, &backend.status, &context.output).await?;
    let engine = Engine {
        backend,
        config: target.commissioning_config(Duration::from_secs(args.timeout)),
        journal: Some(journal),
        installer: installer(&settings).await,
    };
    let mut request = request_without_network;
    request.network = network;
    let job = Job {
        label,
        request,
        batch_item: None,
        recheck: None,
        correction: None,
    };
    let board = ProgressBoard::new(&context.output, 1, context.bars());
    let result = engine.run(job, &board, context.cancel.clone()).await;
    board.finish();
    let result = result?;
    print_single(&result, context);
    let exit = match (&result.status, &result.error) {
        (DeviceStatus::Failed, Some(error)) => crate::exit::exit_for_code(&error.code),
        (DeviceStatus::Failed, None) => Exit::Failed,
        _ => Exit::Success,
    };
    context
        .output
        .result("commission", exit, json!({ "device": result }));
    Ok(exit)
}

fn print_single(result: &DeviceResult, context: &Context) {
    let output = &context.output;
    match (&result.status, &result.error) {
        (DeviceStatus::Failed, Some(error)) => output.line(format!(
            "FAILED {}: {} ({})",
            if result.registration_id.is_empty() {
                "device"
            } else {
                &result.registration_id
            },
            error.message,
            error.code
        )),
        _ => {
            output.line(format!(
                "commissioned {}: hub {} via {}, {} round trips, {} B out / {} B in, {:.2} s",
                result.registration_id,
                result
                    .assigned_hub
                    .as_deref()
                    .unwrap_or("(pending confirmation)"),
                result.dps_instance.as_deref().unwrap_or("-"),
                result.round_trips,
                result.bytes_sent,
                result.bytes_received,
                result.total_ms as f64 / 1000.0
            ));
            if result.confirmation.as_deref() == Some("queued") {
                output.line(
                    "confirmation: queued (the registration-status service was unreachable; the \
                     device confirmed over BLE). It syncs on the next run or with `fieldlink \
                     history --sync`.",
                );
            } else {
                output.info("confirmation: confirmed (device and service agree)");
            }
        }
    }
}

async fn run_file(args: CommissionArgs, context: &Context) -> Result<Exit, CliError> {
    let Some(path) = &args.from_file else {
        return Err(CliError::internal("run_file without a file"));
    };
    let file = read_batch_file(path)?;
    let settings = context.settings()?;
    let target = Target::resolve(&settings, &args.target)?;
    let backend = target.backend(&settings).await?;
    let mut names: Vec<String> = file
        .entries
        .iter()
        .filter_map(|e| e.network.clone())
        .collect();
    names.sort();
    names.dedup();
    let networks = batch_networks(&args.network, &settings, &names)?;
    let journal = open_journal(&settings)?;
    auto_sync(&journal, &backend.status, &context.output).await?;
    let parallel = settings.jobs(args.jobs);
    let installer = installer(&settings).await;
    let default_network = args
        .network
        .network
        .clone()
        .or_else(|| settings.profile.network.clone());
    let batch_id = journal.create_batch(&NewBatch {
        installer: installer.clone(),
        source: file.path.clone(),
        source_digest: file.digest.clone(),
        options: json!({
            "jobs": parallel,
            "wifi_ssid": args.network.wifi_ssid,
            "wifi_hidden": args.network.wifi_hidden,
            "network": default_network,
            "timeout_s": args.timeout,
        }),
        registration_ids: file
            .entries
            .iter()
            .map(|e| e.payload.registration_id.clone())
            .collect(),
    })?;
    let jobs = file
        .entries
        .iter()
        .enumerate()
        .map(|(position, entry)| Job {
            label: entry.payload.registration_id.clone(),
            request: request_for_payload(
                &entry.payload,
                networks.get(&entry.network).cloned().flatten(),
            ),
            batch_item: Some(BatchItemRef {
                batch_id: batch_id.clone(),
                position: u32::try_from(position).unwrap_or(u32::MAX),
            }),
            recheck: None,
            correction: None,
        })
        .collect();
    let engine = Arc::new(Engine {
        backend,
        config: target.commissioning_config(Duration::from_secs(args.timeout)),
        journal: Some(Arc::clone(&journal)),
        installer,
    });
    let run = BatchRun {
        batch_id,
        jobs,
        skipped: Vec::new(),
        parallel,
    };
    run_batch(engine, &journal, run, context, "commission").await
}
