//! `fieldlink label`: onboarding labels as terminal QR codes, SVG or PNG files.

use fieldlink_protocol::payload::{OnboardingPayload, PopSecret};
use rand::Rng;
use serde_json::json;

use super::Context;
use crate::{
    args::{LabelArgs, LabelFormat},
    exit::{CliError, Exit},
    labels,
    manifest::Manifest,
    payloads::read_batch_file,
};

fn generate(count: u32, prefix: &str) -> Result<Vec<OnboardingPayload>, CliError> {
    let mut rng = rand::rngs::OsRng;
    (1..=count)
        .map(|index| {
            let suffix: u32 = rng.r#gen();
            OnboardingPayload::new(
                format!("{prefix}-{index:04}-{suffix:08x}"),
                PopSecret::generate(&mut rng),
                rng.gen_range(0..0x1000),
                0x0042,
            )
            .map_err(CliError::from)
        })
        .collect()
}

/// Runs `label`.
pub fn run(args: LabelArgs, context: &Context) -> Result<Exit, CliError> {
    let mut payloads = Vec::new();
    for text in &args.payloads {
        payloads.push(OnboardingPayload::parse(text.trim())?);
    }
    if let Some(path) = &args.from_file {
        payloads.extend(
            read_batch_file(path)?
                .entries
                .into_iter()
                .map(|e| e.payload),
        );
    }
    if let Some(path) = &args.sandbox {
        for device in Manifest::load(path)?.devices {
            payloads.push(OnboardingPayload::parse(&device.payload)?);
        }
    }
    if let Some(count) = args.generate {
        payloads.extend(generate(count, &args.prefix)?);
    }
    if payloads.is_empty() {
        return Err(CliError::new(
            Exit::Usage,
            "usage",
            "nothing to print: give payloads, --from-file, --sandbox or --generate N",
        ));
    }
    let output = &context.output;
    let mut labels_json = Vec::new();
    if matches!(args.format, LabelFormat::Svg | LabelFormat::Png) {
        std::fs::create_dir_all(&args.out).map_err(|error| {
            CliError::config(format!("cannot create {}: {error}", args.out.display()))
        })?;
    }
    for payload in &payloads {
        let text = payload.encode();
        let file = match args.format {
            LabelFormat::Terminal => {
                output.line(labels::terminal(payload)?);
                None
            }
            LabelFormat::Svg => {
                let path = args.out.join(format!("{}.svg", payload.registration_id));
                write(&path, labels::svg(&text)?.as_bytes())?;
                Some(path)
            }
            LabelFormat::Png => {
                let path = args.out.join(format!("{}.png", payload.registration_id));
                write(&path, &labels::png(&text, args.scale)?)?;
                Some(path)
            }
        };
        if let Some(path) = &file {
            output.line(format!("{}  {}", payload.registration_id, path.display()));
        }
        labels_json.push(json!({
            "registration_id": payload.registration_id,
            "payload": text,
            "manual_code": payload.manual_code().encode(),
            "qr_version": labels::version(&text)?,
            "file": file,
        }));
    }
    output.result("label", Exit::Success, json!({ "labels": labels_json }));
    Ok(Exit::Success)
}

fn write(path: &std::path::Path, bytes: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, bytes)
        .map_err(|error| CliError::config(format!("cannot write {}: {error}", path.display())))
}
