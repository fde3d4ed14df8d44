//! `fieldlink status <registration-id>`: the service's view of a DPS registration, plus the
//! journal's last attempt for the device.

use fieldlink_core::journal::AttemptQuery;
use serde_json::json;

use super::Context;
use crate::{
    args::StatusArgs,
    exit::{CliError, Exit},
    fleet::wire::WireView,
    target::{Target, open_journal},
};

/// Runs `status`.
pub async fn run(args: StatusArgs, context: &Context) -> Result<Exit, CliError> {
    fieldlink_protocol::registration_id::validate_registration_id(&args.registration_id).map_err(
        |error| {
            CliError::new(
                Exit::InvalidPayload,
                "invalid_registration_id",
                format!(
                    "{:?} is not a DPS registration ID: {error}",
                    args.registration_id
                ),
            )
        },
    )?;
    let settings = context.settings()?;
    let target = Target::resolve(&settings, &args.target)?;
    let view =
        match &target {
            Target::Sandbox { client, .. } => client
                .status_of(&args.registration_id)
                .await
                .map_err(|error| {
                    CliError::new(
                        Exit::ServiceUnavailable,
                        "api_unavailable",
                        format!("the registration-status service did not answer: {error}"),
                    )
                })?,
            Target::Ble { .. } => {
                let answer = target
                    .api_client(&settings)?
                    .registration(&args.registration_id)
                    .await
                    .map_err(|error| {
                        CliError::from(&error.to_commission_error(&args.registration_id))
                    })?;
                WireView::of(&answer.view, Some(answer.dps_instance))
            }
        };
    let last = open_journal(&settings)?
        .attempts(&AttemptQuery {
            registration_id: Some(args.registration_id.clone()),
            limit: Some(1),
            ..AttemptQuery::default()
        })?
        .into_iter()
        .next();
    let output = &context.output;
    output.line(format!("registration: {}", args.registration_id));
    output.line(format!("  status:       {}", view.status));
    output.line(format!(
        "  DPS instance: {}",
        view.dps_instance.as_deref().unwrap_or("-")
    ));
    output.line(format!(
        "  hub:          {}",
        view.assigned_hub.as_deref().unwrap_or("-")
    ));
    output.line(format!(
        "  device ID:    {}",
        view.device_id.as_deref().unwrap_or("-")
    ));
    if let Some(substatus) = &view.substatus {
        output.line(format!("  substatus:    {substatus}"));
    }
    if let Some(attempt) = &last {
        output.line(format!(
            "  last attempt: #{} {} {}",
            attempt.id,
            attempt.outcome.as_deref().unwrap_or("open"),
            attempt
                .confirmation
                .as_deref()
                .or(attempt.error_code.as_deref())
                .unwrap_or("")
        ));
    }
    output.result(
        "status",
        Exit::Success,
        json!({"registration_id": args.registration_id, "service": view, "last_attempt": last}),
    );
    Ok(Exit::Success)
}
