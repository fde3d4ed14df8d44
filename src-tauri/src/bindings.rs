//! TypeScript declarations for the UI, generated from the command types with ts-rs.
//!
//! `cargo test -p fieldlink-desktop generated_types` fails when `ui/src/generated/types.ts` is
//! stale; `FIELDLINK_WRITE_TYPES=1` makes the same test rewrite it.

use ts_rs::{Config, TS};

use crate::{
    dto::{batch, device, history, progress, result, settings},
    error::CommandError,
};

/// Where the generated file lives, relative to this crate.
pub const GENERATED_PATH: &str = "../ui/src/generated/types.ts";

fn declaration<T: TS>(config: &Config) -> String {
    format!("export {}\n", T::decl(config))
}

/// The whole generated file.
pub fn typescript() -> String {
    // Every 64-bit integer the commands send is a duration or a unix time in milliseconds: far
    // below 2^53, so a plain `number`.
    let config = Config::new().with_large_int("number");
    let declarations = [
        declaration::<CommandError>(&config),
        declaration::<progress::StepName>(&config),
        declaration::<progress::ProgressDetail>(&config),
        declaration::<progress::ProgressUpdate>(&config),
        declaration::<result::RegistrationStatus>(&config),
        declaration::<result::DeviceReport>(&config),
        declaration::<result::StepTime>(&config),
        declaration::<result::LinkTotals>(&config),
        declaration::<result::AssignmentSummary>(&config),
        declaration::<result::CommissionResult>(&config),
        declaration::<device::NearbyDevice>(&config),
        declaration::<device::ScanUpdate>(&config),
        declaration::<device::LabelKind>(&config),
        declaration::<device::LabelInfo>(&config),
        declaration::<device::LabelImage>(&config),
        declaration::<history::StepEntry>(&config),
        declaration::<history::AttemptEntry>(&config),
        declaration::<history::HistoryQuery>(&config),
        declaration::<history::ExportFormat>(&config),
        declaration::<history::ExportResult>(&config),
        declaration::<history::BatchItemStatus>(&config),
        declaration::<history::BatchTally>(&config),
        declaration::<history::BatchEntry>(&config),
        declaration::<history::BatchItemEntry>(&config),
        declaration::<batch::BatchRequest>(&config),
        declaration::<batch::BatchEvent>(&config),
        declaration::<batch::BatchSummary>(&config),
        declaration::<settings::Theme>(&config),
        declaration::<settings::SiteKind>(&config),
        declaration::<settings::Profile>(&config),
        declaration::<settings::Settings>(&config),
        declaration::<settings::SignInMethod>(&config),
        declaration::<settings::SessionInfo>(&config),
        declaration::<settings::SignInEvent>(&config),
        declaration::<settings::AdapterInfo>(&config),
        declaration::<settings::AppInfo>(&config),
        declaration::<settings::SiteLabel>(&config),
    ];
    let mut out = String::from(
        "// Generated from src-tauri/src/dto by ts-rs (src-tauri/src/bindings.rs). Do not edit:\n\
         // run `FIELDLINK_WRITE_TYPES=1 cargo test -p fieldlink-desktop generated_types`.\n\n",
    );
    for declaration in declarations {
        out.push_str(&declaration);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn generated_types_are_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(GENERATED_PATH);
        let expected = typescript();
        if std::env::var_os("FIELDLINK_WRITE_TYPES").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &expected).unwrap();
        }
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            current == expected,
            "{} is stale: run `FIELDLINK_WRITE_TYPES=1 cargo test -p fieldlink-desktop \
             generated_types` and commit the result",
            path.display()
        );
    }
}
